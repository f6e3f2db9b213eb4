"""The telemetry sampler: reads the node and its containers every interval on its own thread, keeps them in memory.

Started and stopped by the agent (agent.app). The agent's loop never waits for it: the heartbeat reads the latest
sample (`usage`), the metrics report and /metrics read what it holds. A Podman that does not answer leaves the
containers out of that sample (logged once per outage); a reader that fails leaves its figure out. Nothing is
written to disk: the history is a fixed-size ring in memory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from edgekube.agent.health.pi import read_soc_temperature, read_throttle_flags
from edgekube.agent.runtime.protocol import ContainerStats, PodRuntime
from edgekube.agent.telemetry import readers
from edgekube.agent.telemetry.history import History, Point
from edgekube.agent.telemetry.samples import ContainerSample, NodeSample, container_samples, cpu_cores, rate
from edgekube.model.errors import EdgekubeError
from edgekube.model.wire import ContainerMetrics, NodeMetrics

log = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(frozen=True)
class TelemetrySettings:
    """Where and how often to sample; `proc`/`sys` are roots of the kernel's trees (temporary trees in tests)."""

    interval: float = 10.0
    history: float = 900.0
    proc: Path = Path("/proc")
    sys: Path = Path("/sys")
    root: Path = Path("/")
    #: The container store (Podman's graph root): its filesystem is the node's image filesystem.
    container_store: Path = Path("/var/lib/containers/storage")
    #: Block device whose writes are counted (a /proc/diskstats name); empty: the device holding `root`.
    disk_device: str = ""
    ticks: int = field(default_factory=readers.clock_ticks)

    @property
    def capacity(self) -> int:
        return max(1, round(self.history / self.interval))


class Sampler:
    """Samples every `settings.interval` seconds on a thread of its own; `on_sample` gets each new sample."""

    def __init__(
        self,
        runtime: PodRuntime | None,
        settings: TelemetrySettings | None = None,
        *,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
        on_sample: Callable[[NodeSample], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.settings = settings or TelemetrySettings()
        self.clock = clock
        self.wall = wall
        self.on_sample = on_sample
        self.history = History(self.settings.capacity)
        self._latest: NodeSample | None = None
        self._containers: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._runtime_down = False
        self._device = self.settings.disk_device or readers.device_of(self.settings.root, self.settings.proc)

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> Sampler:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="agent-telemetry", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = self.clock()
            try:
                self.sample()
            except Exception:
                log.exception("telemetry sample failed")
            self._stop.wait(max(self.settings.interval - (self.clock() - started), 0.0))

    # -- sampling ---------------------------------------------------------------------------------------
    def sample(self) -> NodeSample:
        """Take one sample now (the thread calls this every interval; tests call it directly)."""
        s = self.settings
        now, wall = self.clock(), self.wall()
        with self._lock:
            previous = self._latest
        cpus = readers.cpu_count(s.proc)
        cpu = readers.cpu_times(s.proc, s.ticks)
        memory = readers.meminfo(s.proc)
        filesystems = {}
        for role, path in (("root", s.root), ("containers", s.container_store)):
            usage = readers.filesystem(path)
            if usage is not None:
                filesystems[role] = (str(path), usage)
        written = readers.disk_written(s.proc, self._device) if self._device else None
        stats = self._stats()
        total = memory.get("MemTotal")
        if total is not None:  # Podman gives the node's memory as the limit of an unlimited container
            stats = [replace(c, memory_limit_bytes=None) if c.memory_limit_bytes == total else c for c in stats]
        containers, self._containers = container_samples(self._containers, stats, now)
        seconds = now - previous.time if previous is not None else 0.0
        sample = NodeSample(
            time=now,
            wall=wall,
            cpus=cpus,
            cpu=cpu,
            cpu_cores=cpu_cores(previous.cpu if previous else None, cpu, cpus),
            load=readers.load_average(s.proc),
            memory=memory,
            filesystems=filesystems,
            network=readers.network(s.proc),
            disk_device=self._device,
            disk_written=written,
            disk_write_rate=rate(previous.disk_written if previous else None, written, seconds),
            soc_temperature=read_soc_temperature(s.sys),
            throttled=self._throttle_bits(),
            containers=containers,
        )
        self.history.append(Point(now, sample.cpu_cores, sample.memory_working_set))
        with self._lock:
            self._latest = sample
        if self.on_sample is not None:
            self.on_sample(sample)
        return sample

    def _throttle_bits(self) -> int | None:
        flags = read_throttle_flags(self.settings.sys)
        return None if flags is None else flags.raw

    def _stats(self) -> list[ContainerStats]:
        if self.runtime is None:
            return []
        try:
            stats = self.runtime.stats()
        except EdgekubeError as exc:
            if not self._runtime_down:
                log.warning("container stats unavailable (containers left out until it answers): %s", exc)
            self._runtime_down = True
            return []
        if self._runtime_down:
            log.info("container stats available again")
        self._runtime_down = False
        return stats

    # -- what the rest of the agent reads --------------------------------------------------------------
    @property
    def latest(self) -> NodeSample | None:
        with self._lock:
            return self._latest

    def usage(self) -> dict[str, float]:
        """The latest sample's node figures for the heartbeat ({} before the first)."""
        sample = self.latest
        return {} if sample is None else node_usage(sample)

    def report(self, node: str, boot_id: str) -> NodeMetrics | None:
        """The volatile metrics message of the latest sample; None before the first."""
        sample = self.latest
        if sample is None:
            return None
        return NodeMetrics(
            node=node,
            boot_id=boot_id,
            timestamp=datetime.fromtimestamp(sample.wall, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            window=self.settings.interval,
            usage=node_usage(sample),
            history=[summary.to_dict() for summary in self.history.summaries(sample.time)],
            containers=[container_metrics(c) for c in sample.containers],
        )


def node_usage(sample: NodeSample) -> dict[str, float]:
    """Heartbeat keys (camelCase, base units): what `ekctl top nodes` and describe node show."""
    out: dict[str, float] = {"cpuCapacityCores": float(sample.cpus)}
    if sample.cpu_cores is not None:
        out["cpuCores"] = round(sample.cpu_cores, 4)
    if sample.memory_working_set is not None:
        out["memoryWorkingSetBytes"] = float(sample.memory_working_set)
    for role, key in (("root", "rootfs"), ("containers", "imagefs")):
        if role in sample.filesystems:
            _, fs = sample.filesystems[role]
            out[f"{key}AvailableBytes"] = float(fs.available)
            out[f"{key}CapacityBytes"] = float(fs.size)
    if sample.disk_write_rate is not None:
        out["diskWriteBytesPerSecond"] = round(sample.disk_write_rate, 1)
    return out


def container_metrics(c: ContainerSample) -> ContainerMetrics:
    s = c.stats
    return ContainerMetrics(
        namespace=s.namespace, pod=s.pod, container=s.container,
        cpu_cores=None if c.cpu_cores is None else round(c.cpu_cores, 4), memory_bytes=s.memory_bytes,
        rx_bytes=s.rx_bytes, tx_bytes=s.tx_bytes, read_bytes=s.read_bytes, write_bytes=s.write_bytes,
    )  # fmt: skip
