"""Readers of the node's counters from /proc and /sys (CPU, load, memory, network, disk writes, filesystems).

Called by the telemetry sampler on its own thread. Every reader takes the proc (or sys) root, so tests lay out a
temporary tree; a missing or malformed file reads as "unknown" (None or empty), never as an exception.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: /proc/diskstats counts sectors of 512 bytes whatever the device's own sector size (Documentation/block/stat).
SECTOR_BYTES = 512
#: Interfaces that are not traffic of the node: loopback and the container bridges' virtual ends are left out of
#: the node's totals (each pod's own traffic is counted per container).
_VIRTUAL_PREFIXES = ("lo", "veth", "cni", "podman", "docker", "br-", "virbr", "ifb", "dummy")


@dataclass(frozen=True)
class CpuTimes:
    """/proc/stat's first line in seconds: busy (everything but idle and iowait) and total, and per mode."""

    modes: dict[str, float]

    @property
    def total(self) -> float:
        return sum(v for k, v in self.modes.items() if k not in ("guest", "guest_nice"))  # guest is inside user

    @property
    def idle(self) -> float:
        return self.modes.get("idle", 0.0) + self.modes.get("iowait", 0.0)


@dataclass(frozen=True)
class FsUsage:
    """statvfs of a mount point: total size, free for unprivileged users, and free altogether (bytes)."""

    size: int
    available: int
    free: int


_CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest", "guest_nice")


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def clock_ticks() -> int:
    """USER_HZ: the unit of /proc/stat (100 on Linux, also on the Pi)."""
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (ValueError, OSError):
        return 100


def cpu_times(proc: Path, ticks: int | None = None) -> CpuTimes | None:
    """The aggregate `cpu` line of /proc/stat, in seconds per mode; None if unreadable."""
    hz = ticks or clock_ticks()
    for line in _text(proc / "stat").splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            try:
                values = [int(v) / hz for v in parts[1:]]
            except ValueError:
                return None
            return CpuTimes(dict(zip(_CPU_MODES, values, strict=False)))
    return None


def cpu_count(proc: Path) -> int:
    """CPUs listed in /proc/stat (`cpu0`, `cpu1`, ...); 1 if none can be read."""
    found = sum(1 for line in _text(proc / "stat").splitlines() if line.startswith("cpu") and line[3:4].isdigit())
    return found or 1


def load_average(proc: Path) -> tuple[float, float, float] | None:
    parts = _text(proc / "loadavg").split()
    try:
        return float(parts[0]), float(parts[1]), float(parts[2])
    except (IndexError, ValueError):
        return None


def meminfo(proc: Path) -> dict[str, int]:
    """/proc/meminfo in bytes, by field name (`MemTotal`, `MemAvailable`, ...)."""
    out: dict[str, int] = {}
    for line in _text(proc / "meminfo").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return out


def network(proc: Path) -> dict[str, tuple[int, int]]:
    """Received and transmitted bytes of each physical interface in /proc/net/dev (virtual ones left out)."""
    out: dict[str, tuple[int, int]] = {}
    for line in _text(proc / "net" / "dev").splitlines()[2:]:
        name, _, rest = line.partition(":")
        name, fields = name.strip(), rest.split()
        if not name or len(fields) < 9 or name.startswith(_VIRTUAL_PREFIXES):
            continue
        try:
            out[name] = (int(fields[0]), int(fields[8]))
        except ValueError:
            continue
    return out


def disk_written(proc: Path, device: str) -> int | None:
    """Bytes written to block device `device` (e.g. `mmcblk0p2`) since boot, from /proc/diskstats."""
    for line in _text(proc / "diskstats").splitlines():
        parts = line.split()
        if len(parts) >= 10 and parts[2] == device:
            try:
                return int(parts[9]) * SECTOR_BYTES
            except ValueError:
                return None
    return None


def device_of(path: Path, proc: Path) -> str | None:
    """The /proc/diskstats name of the block device holding `path` (its st_dev), None for overlay/tmpfs/unknown."""
    try:
        dev = os.stat(path).st_dev
    except OSError:
        return None
    major, minor = os.major(dev), os.minor(dev)
    for line in _text(proc / "diskstats").splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == str(major) and parts[1] == str(minor):
            return parts[2]
    return None


def filesystem(path: Path) -> FsUsage | None:
    """Size and free space of the filesystem holding `path`; None if it does not exist."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return FsUsage(size=st.f_blocks * st.f_frsize, available=st.f_bavail * st.f_frsize, free=st.f_bfree * st.f_frsize)
