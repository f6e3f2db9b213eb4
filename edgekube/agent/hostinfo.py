"""Facts about this board for Node registration and heartbeats: capacity, OS, Pi model, load, SoC temperature."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

from edgekube.agent.health import pi
from edgekube.agent.health.pressure import parse_thresholds
from edgekube.agent.health.signals import Signal
from edgekube.model.node import DEFAULT_MAX_PODS


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace").strip().rstrip("\x00")
    except OSError:
        return ""


def meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes."""
    out: dict[str, int] = {}
    for line in _read("/proc/meminfo").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return out


def os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip('"')
    return platform.system()


def machine_model() -> str:
    """`Raspberry Pi 4 Model B Rev 1.4` on a Pi (device tree), the DMI product name elsewhere."""
    return _read("/proc/device-tree/model") or _read("/sys/class/dmi/id/product_name")


#: Device-tree model strings (prefixes, most specific first) → the `edgekube.io/model` label value.
PI_MODELS = (
    ("Raspberry Pi 500", "pi500"),
    ("Raspberry Pi 400", "pi400"),
    ("Raspberry Pi 5", "pi5"),
    ("Raspberry Pi 4 Model B", "pi4b"),
    ("Raspberry Pi 3 Model B Plus", "pi3bplus"),
    ("Raspberry Pi 3 Model A Plus", "pi3aplus"),
    ("Raspberry Pi 3 Model B", "pi3b"),
    ("Raspberry Pi 2 Model B", "pi2b"),
    ("Raspberry Pi Zero 2 W", "pizero2w"),
    ("Raspberry Pi Zero W", "pizerow"),
    ("Raspberry Pi Zero", "pizero"),
    ("Raspberry Pi Compute Module 5", "cm5"),
    ("Raspberry Pi Compute Module 4S", "cm4s"),
    ("Raspberry Pi Compute Module 4", "cm4"),
    ("Raspberry Pi Compute Module 3 Plus", "cm3plus"),
    ("Raspberry Pi Compute Module 3", "cm3"),
    ("Raspberry Pi Model B Plus", "pi1bplus"),
    ("Raspberry Pi Model A Plus", "pi1aplus"),
    ("Raspberry Pi Model B", "pi1b"),
)
MODEL_LABEL = "edgekube.io/model"


def pi_model(root: Path = Path("/")) -> str | None:
    """`pi4b`, `pi5`, ... from the device tree's model string; None when this is not a Raspberry Pi.

    An unknown Pi gets its model string as a label value (`Raspberry Pi 6 Model C Rev 1.0` → `pi6modelc`).
    """
    model = _read(str(root / "proc/device-tree/model")) or _read(str(root / "sys/firmware/devicetree/base/model"))
    if not model.startswith("Raspberry Pi"):
        return None
    for prefix, label in PI_MODELS:
        if model == prefix or model.startswith(prefix + " "):
            return label
    name = model.split(" Rev ")[0].removeprefix("Raspberry ")
    return "".join(c for c in name.lower() if c.isalnum())[:63] or None


def model_labels(root: Path = Path("/")) -> dict[str, str]:
    """The agent's board label (`edgekube.io/model: pi4b`), empty off a Pi; user-given labels override it."""
    model = pi_model(root)
    return {MODEL_LABEL: model} if model else {}


def architecture() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm"}.get(machine, machine)


def primary_address() -> str:
    """The source address this host would use to reach the outside (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: routing lookup only, UDP connect sends nothing
            return str(probe.getsockname()[0])
    except OSError:
        return "127.0.0.1"


def capacity(max_pods: int = DEFAULT_MAX_PODS) -> dict[str, str | int]:
    cpus = len(os.sched_getaffinity(0))
    memory = meminfo().get("MemTotal", 0)
    return {"cpu": str(cpus), "memory": f"{memory // 1024}Ki", "pods": max_pods}


def ephemeral_storage(store: str, eviction_hard: str) -> tuple[int, int] | None:
    """(capacity, allocatable) bytes of `ephemeral-storage`: the filesystem holding Podman's store (`store`).

    Allocatable is less the hard eviction threshold guarding that filesystem (imagefs.available, else
    nodefs.available), as the kubelet subtracts its eviction threshold. None when the filesystem cannot be read.
    """
    path = Path(store)
    while not path.exists() and path != path.parent:
        path = path.parent  # a store not created yet lives on its nearest existing parent's filesystem
    try:
        st = os.statvfs(path)
        thresholds = {t.signal: t for t in parse_thresholds(eviction_hard)}
    except (OSError, ValueError):
        return None
    total = st.f_blocks * st.f_frsize
    guard = thresholds.get(Signal.IMAGEFS_AVAILABLE) or thresholds.get(Signal.NODEFS_AVAILABLE)
    reserve = guard.value(total) if guard is not None else 0
    return total, max(total - reserve, 0)


def usage() -> dict[str, float]:
    """Volatile node usage for heartbeats (never written to disk)."""
    mem = meminfo()
    load1, _, _ = os.getloadavg()
    out: dict[str, float] = {
        "load1": round(load1, 2),
        "memoryAvailableBytes": float(mem.get("MemAvailable", 0)),
        "memoryTotalBytes": float(mem.get("MemTotal", 0)),
    }
    temp = pi.read_soc_temperature()
    if temp is not None:
        out["socTemperatureC"] = temp
    flags = pi.read_throttle_flags(vcgencmd=False)  # sysfs only: the heartbeat never waits on a subprocess
    if flags is not None:
        out["throttled"] = float(flags.raw)
    return out


def kernel_version() -> str:
    return platform.release()
