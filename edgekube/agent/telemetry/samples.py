"""What one telemetry sample holds (node and container usage) and the rates made from two readings; pure.

Built by the sampler, read by the heartbeat (`usage`), the metrics report, the history and the /metrics collector.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgekube.agent.runtime.protocol import ContainerStats
from edgekube.agent.telemetry.readers import CpuTimes, FsUsage


@dataclass(frozen=True, slots=True)
class ContainerSample:
    """One running container's usage: cumulative counters as Podman gave them, and the CPU rate since the last."""

    stats: ContainerStats
    #: Cores used on average since the previous sample (None on a container's first sample).
    cpu_cores: float | None


@dataclass(frozen=True)
class NodeSample:
    """One reading of the node: cumulative counters (for /metrics) and rates over the interval before it."""

    time: float  # the sampler's clock (monotonic)
    wall: float  # seconds since the epoch, for timestamps
    cpus: int
    cpu: CpuTimes | None = None
    #: Cores busy on average since the previous sample (None on the first).
    cpu_cores: float | None = None
    load: tuple[float, float, float] | None = None
    memory: dict[str, int] = field(default_factory=dict)  # /proc/meminfo in bytes
    #: statvfs by role: `root` (/) and `containers` (the Podman store's graph root), each (mount point, usage).
    filesystems: dict[str, tuple[str, FsUsage]] = field(default_factory=dict)
    network: dict[str, tuple[int, int]] = field(default_factory=dict)  # interface → (rx bytes, tx bytes)
    disk_device: str | None = None
    disk_written: int | None = None  # bytes written to disk_device since boot
    disk_write_rate: float | None = None  # bytes/s since the previous sample
    soc_temperature: float | None = None
    throttled: int | None = None
    containers: tuple[ContainerSample, ...] = ()

    @property
    def memory_total(self) -> int | None:
        return self.memory.get("MemTotal")

    @property
    def memory_working_set(self) -> int | None:
        """Bytes in use: MemTotal - MemAvailable (what the kernel could not hand out without swapping)."""
        total, available = self.memory.get("MemTotal"), self.memory.get("MemAvailable")
        return None if total is None or available is None else total - available


def cpu_cores(before: CpuTimes | None, after: CpuTimes | None, cpus: int) -> float | None:
    """Cores busy between two /proc/stat readings: busy share of all CPU time times CPUs; None without two readings."""
    if before is None or after is None:
        return None
    total = after.total - before.total
    if total <= 0:
        return None
    busy = total - (after.idle - before.idle)
    return max(0.0, min(1.0, busy / total)) * cpus


def rate(before: int | float | None, after: int | float | None, seconds: float) -> float | None:
    """Per-second increase of a counter; None without two readings, 0 across a reset (reboot, new container)."""
    if before is None or after is None or seconds <= 0:
        return None
    return max(0.0, (after - before) / seconds)


def container_samples(
    before: dict[str, tuple[float, float]], stats: list[ContainerStats], now: float
) -> tuple[tuple[ContainerSample, ...], dict[str, tuple[float, float]]]:
    """Container samples with CPU rates from `before` (container id → (time, cpu seconds)), and the next `before`."""
    out = []
    seen: dict[str, tuple[float, float]] = {}
    for s in stats:
        previous = before.get(s.container_id)
        cores = rate(previous[1], s.cpu_seconds, now - previous[0]) if previous is not None else None
        out.append(ContainerSample(s, cores))
        seen[s.container_id] = (now, s.cpu_seconds)
    out.sort(key=lambda c: (c.stats.namespace, c.stats.pod, c.stats.container))
    return tuple(out), seen
