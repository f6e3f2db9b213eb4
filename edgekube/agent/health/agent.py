"""The agent's side of node health: settings from AgentConfig, the pods that may be evicted, the eviction path.

Built by Agent (`build_monitor`); kept here so the daemon's module holds only the wiring lines.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from edgekube.agent.actions import PodActions
from edgekube.agent.health.monitor import HealthMonitor
from edgekube.agent.health.pressure import Eviction, PiSettings, PodCandidate, Settings, candidate, parse_thresholds
from edgekube.agent.health.signals import SignalReader
from edgekube.agent.reconcile import DesiredPod
from edgekube.agent.runtime.protocol import ContainerRunState, PodRuntime
from edgekube.model.errors import EdgekubeError, ValidationError
from edgekube.model.names import PodUID

log = logging.getLogger(__name__)


class HealthConfig(Protocol):
    """The AgentConfig settings node health reads (docs/node-health.md)."""

    eviction_hard: str
    eviction_pressure_transition_period: float
    health_check_interval: float
    thermal_throttling: bool
    under_voltage: bool
    soc_temperature_limit: float
    nodefs_path: str
    container_store: str
    proc_root: str
    sys_root: str


def settings_of(config: HealthConfig) -> Settings:
    """The pressure plan's settings; ValidationError naming the setting when one is wrong."""
    for name in ("eviction_pressure_transition_period", "soc_temperature_limit"):
        if getattr(config, name) < 0:
            raise ValidationError(f"{name}: must be greater than or equal to 0")
    if config.health_check_interval <= 0:
        raise ValidationError("health_check_interval: must be greater than 0")
    return Settings(
        parse_thresholds(config.eviction_hard, "eviction_hard"),
        config.eviction_pressure_transition_period,
        PiSettings(config.thermal_throttling, config.under_voltage, config.soc_temperature_limit),
    )


def reader_of(config: HealthConfig) -> SignalReader:
    pi = config.thermal_throttling or config.under_voltage
    store = Path(config.container_store) if config.container_store else None
    return SignalReader(Path(config.proc_root), Path(config.sys_root), Path(config.nodefs_path), store, pi)


class EvictablePods:
    """What the monitor may evict: running desired pods, with per-container memory and pids from the runtime."""

    def __init__(self, desired: Callable[[], Sequence[DesiredPod]], runtime: PodRuntime, actions: PodActions) -> None:
        self.desired = desired
        self.runtime = runtime
        self.actions = actions

    def candidates(self) -> list[PodCandidate]:
        wanted = {d.uid: d for d in self.desired()}
        skip = self.actions.busy() | set(self.actions.failures())  # failures: evicted ones, failed creates
        try:
            pods = self.runtime.list_pods()
        except EdgekubeError as exc:  # the engine is away: nothing can be evicted this check, conditions still count
            log.warning("eviction: cannot list pods: %s", exc)
            return []
        running = {p.uid for p in pods if any(c.state is ContainerRunState.RUNNING for c in p.containers)}
        usage: dict[PodUID, dict[str, tuple[int | None, int | None]]] = {}
        try:
            for s in self.runtime.stats():
                usage.setdefault(s.uid, {})[s.container] = (s.memory_bytes, s.pids)
        except EdgekubeError as exc:  # ranked without usage: by QoS class and priority
            log.warning("eviction: cannot read container usage: %s", exc)
        return [
            candidate(uid, d.pod, usage.get(uid, {})) for uid, d in wanted.items() if uid in running and uid not in skip
        ]

    def evict(self, eviction: Eviction) -> None:
        d = next((d for d in self.desired() if d.uid == eviction.uid), None)
        observed = next((p for p in self.runtime.list_pods() if p.uid == eviction.uid), None)
        if d is not None and observed is not None:
            self.actions.evict(d, observed, eviction.message)


def build_monitor(
    config: HealthConfig,
    node: str,
    desired: Callable[[], Sequence[DesiredPod]],
    runtime: PodRuntime,
    actions: PodActions,
    *,
    on_change: Callable[[], None],
    clock: Callable[[], float],
) -> HealthMonitor:
    pods = EvictablePods(desired, runtime, actions)
    return HealthMonitor(
        node, settings_of(config), reader_of(config).read, pods=pods.candidates, evict=pods.evict,
        interval=config.health_check_interval, on_change=on_change, clock=clock,
    )  # fmt: skip
