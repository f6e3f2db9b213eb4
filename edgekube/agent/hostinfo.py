"""Facts about this board for Node registration and heartbeats: capacity, OS, Pi model, load, SoC temperature."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

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


def soc_temperature() -> float | None:
    """Degrees Celsius of thermal zone 0 (the SoC on a Pi)."""
    raw = _read("/sys/class/thermal/thermal_zone0/temp")
    return int(raw) / 1000 if raw.lstrip("-").isdigit() else None


def throttled() -> int | None:
    """The Pi firmware's get_throttled bit field, where the kernel exposes it."""
    raw = _read("/sys/devices/platform/soc/soc:firmware/get_throttled")
    try:
        return int(raw, 16) if raw else None
    except ValueError:
        return None


def usage() -> dict[str, float]:
    """Volatile node usage for heartbeats (never written to disk)."""
    mem = meminfo()
    load1, _, _ = os.getloadavg()
    out: dict[str, float] = {
        "load1": round(load1, 2),
        "memoryAvailableBytes": float(mem.get("MemAvailable", 0)),
        "memoryTotalBytes": float(mem.get("MemTotal", 0)),
    }
    temp = soc_temperature()
    if temp is not None:
        out["socTemperatureC"] = temp
    flags = throttled()
    if flags is not None:
        out["throttled"] = float(flags)
    return out


def kernel_version() -> str:
    return platform.release()
