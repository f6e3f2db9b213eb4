"""The agent's telemetry as one part: the sampler, its metrics report on the bus and the /metrics endpoint.

Built by agent.app from AgentConfig (`Telemetry.of`), started with the agent's threads and stopped with it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from edgekube.agent.runtime.protocol import PodRuntime
from edgekube.agent.telemetry.sampler import Sampler, TelemetrySettings
from edgekube.agent.telemetry.samples import NodeSample
from edgekube.bus import topics
from edgekube.bus.protocol import MessageBus
from edgekube.model.errors import EdgekubeError, ValidationError

if TYPE_CHECKING:
    from edgekube.metrics_http import MetricsServer

log = logging.getLogger(__name__)


class TelemetryConfig(Protocol):
    """The AgentConfig settings telemetry reads."""

    node_name: str
    telemetry_interval: float
    telemetry_history: float
    container_store: str
    proc_root: str
    sys_root: str
    nodefs_path: str
    metrics_port: int
    metrics_address: str


def check_telemetry(interval: float, history: float, metrics_port: int) -> None:
    """AgentConfig's rules for the telemetry settings (a ValidationError names the setting and the rule)."""
    if interval < 0:
        raise ValidationError("telemetry_interval: must be 0 (off) or greater")
    if interval > 0 and history < interval:
        raise ValidationError(f"telemetry_history: must be at least telemetry_interval ({interval:g} s)")
    if not 0 <= metrics_port <= 65535:
        raise ValidationError(f"metrics_port: {metrics_port}: must be 0 (off) or a TCP port (1-65535)")


class Telemetry:
    """Sampler + bus report (every sample, QoS 0) + optional /metrics server."""

    def __init__(
        self, sampler: Sampler, bus: MessageBus, node: str, boot_id: str, metrics: MetricsServer | None = None
    ) -> None:
        self.sampler = sampler
        self.bus = bus
        self.node = node
        self.boot_id = boot_id
        self.metrics = metrics
        sampler.on_sample = self._publish

    @classmethod
    def of(cls, config: TelemetryConfig, runtime: PodRuntime, bus: MessageBus, boot_id: str) -> Telemetry | None:
        if config.telemetry_interval <= 0:
            return None
        settings = TelemetrySettings(
            interval=config.telemetry_interval,
            history=config.telemetry_history,
            container_store=Path(config.container_store),
            proc=Path(config.proc_root),
            sys=Path(config.sys_root),
            root=Path(config.nodefs_path),
        )
        sampler = Sampler(runtime, settings)
        metrics = None
        if config.metrics_port:
            # prometheus_client costs the agent ~10 MB of RSS: loaded only when /metrics is on.
            from prometheus_client import CollectorRegistry  # noqa: PLC0415

            from edgekube.agent.telemetry.prometheus import TelemetryCollector  # noqa: PLC0415
            from edgekube.metrics_http import MetricsServer  # noqa: PLC0415

            registry = CollectorRegistry(auto_describe=False)
            registry.register(TelemetryCollector(sampler))
            metrics = MetricsServer(registry, config.metrics_address, config.metrics_port)
        return cls(sampler, bus, config.node_name, boot_id, metrics)

    def start(self) -> None:
        self.sampler.start()
        if self.metrics is not None:
            try:
                self.metrics.start()
            except EdgekubeError as exc:  # the agent runs on without /metrics rather than not at all
                log.error("%s", exc)
                self.metrics = None

    def stop(self) -> None:
        self.sampler.stop()
        if self.metrics is not None:
            self.metrics.stop()

    def usage(self) -> dict[str, float]:
        return self.sampler.usage()

    def _publish(self, sample: NodeSample) -> None:
        """On the sampler's thread: the report goes out at once (QoS 0, dropped while the broker is away)."""
        if not self.bus.connected:
            return
        report = self.sampler.report(self.node, self.boot_id)
        if report is not None:
            self.bus.publish(topics.node_metrics(self.node), report.encode(), qos=0)
