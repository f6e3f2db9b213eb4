"""Eviction signals as the kubelet names them, read from proc/sys trees and statvfs; called by the health monitor.

`memory.available` is /proc/meminfo's MemAvailable (the kernel's estimate of what can be had without swapping),
out of MemTotal; `nodefs.*` and `imagefs.*` are statvfs of the node's filesystem and of the container store;
`pid.available` is kernel.pid_max less the tasks that exist (/proc/loadavg). Every root is injectable, and a
reading that cannot be had is None (that signal is then not judged), never an exception.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from edgekube.agent.health.pi import ThrottleFlags, read_soc_temperature, read_throttle_flags


class Signal(StrEnum):
    MEMORY_AVAILABLE = "memory.available"
    NODEFS_AVAILABLE = "nodefs.available"
    NODEFS_INODES_FREE = "nodefs.inodesFree"
    IMAGEFS_AVAILABLE = "imagefs.available"
    IMAGEFS_INODES_FREE = "imagefs.inodesFree"
    PID_AVAILABLE = "pid.available"


@dataclass(frozen=True)
class Amount:
    """How much of something is left (`available`) out of how much there is (`capacity`): bytes, inodes, PIDs."""

    available: int
    capacity: int


@dataclass(frozen=True)
class Signals:
    """One reading of everything the pressure plan judges; None where it could not be read."""

    amounts: dict[Signal, Amount]
    temperature: float | None = None
    throttle: ThrottleFlags | None = None

    def get(self, signal: Signal) -> Amount | None:
        return self.amounts.get(signal)


def memory_available(proc: Path) -> Amount | None:
    """MemAvailable out of MemTotal, in bytes."""
    values: dict[str, int] = {}
    try:
        text = (proc / "meminfo").read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if key in ("MemAvailable", "MemTotal") and parts and parts[0].isdigit():
            values[key] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    if "MemAvailable" not in values or "MemTotal" not in values:
        return None
    return Amount(values["MemAvailable"], values["MemTotal"])


def filesystem(path: Path) -> tuple[Amount, Amount] | None:
    """(bytes, inodes) an unprivileged writer may still use on the filesystem holding `path`, as df shows them."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    space = Amount(st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize)
    return space, Amount(st.f_favail, st.f_files)


def pid_available(proc: Path) -> Amount | None:
    """kernel.pid_max less the tasks (processes and threads) that exist now."""
    try:
        pid_max = int((proc / "sys" / "kernel" / "pid_max").read_text().strip())
        fields = (proc / "loadavg").read_text().split()
        tasks = int(fields[3].partition("/")[2])
    except (OSError, ValueError, IndexError):
        return None
    return Amount(max(pid_max - tasks, 0), pid_max)


@dataclass(frozen=True)
class SignalReader:
    """Reads every signal from the trees a node has: `/proc`, `/sys`, `/` and the Podman store in production."""

    proc: Path = Path("/proc")
    sys: Path = Path("/sys")
    nodefs: Path = Path("/")
    imagefs: Path | None = Path("/var/lib/containers/storage")
    #: Read the Pi's temperature and throttle flags (off: ThermalThrottling and UnderVoltage are never reported).
    pi: bool = True

    def read(self) -> Signals:
        amounts: dict[Signal, Amount] = {}
        memory = memory_available(self.proc)
        if memory is not None:
            amounts[Signal.MEMORY_AVAILABLE] = memory
        node = filesystem(self.nodefs)
        if node is not None:
            amounts[Signal.NODEFS_AVAILABLE], amounts[Signal.NODEFS_INODES_FREE] = node
        image = filesystem(self.imagefs) if self.imagefs is not None else None
        if image is not None:
            amounts[Signal.IMAGEFS_AVAILABLE], amounts[Signal.IMAGEFS_INODES_FREE] = image
        pids = pid_available(self.proc)
        if pids is not None:
            amounts[Signal.PID_AVAILABLE] = pids
        if not self.pi:
            return Signals(amounts)
        return Signals(amounts, read_soc_temperature(self.sys), read_throttle_flags(self.sys))
