"""Doctor checks of the board itself, each reading files under an injectable `root` (a temp tree in tests).

cgroups, swap, clock, NFS client, GPIO, free space and SD card health: what a Pi must have before `edgekube agent`
can keep its promises (memory limits enforced, no swapping, TLS certificates valid, volumes mountable, LEDs).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from edgekube.doctor.result import Result, failed, passed, warned

CMDLINE_FIX = (
    "add `cgroup_enable=memory cgroup_memory=1` to the one line of /boot/firmware/cmdline.txt "
    "(`edgekube firmware apply --boot /boot/firmware`) and reboot"
)
#: The kubelet's hard eviction threshold for the node's filesystem (nodefs.available<10%), and a margin above it.
DISK_FAIL_FRACTION = 0.10
DISK_WARN_FRACTION = 0.15
#: Linux adjtimex(2): the kernel clock is not synchronised (no NTP discipline) when this status bit is set.
STA_UNSYNC = 0x0040
TIME_ERROR = 5


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def cgroup_memory(root: Path) -> Result:
    """The cgroup v2 hierarchy at /sys/fs/cgroup has the memory controller (Pi kernels leave it off)."""
    check, title = "cgroup-memory", "cgroup memory controller"
    controllers = _read(root / "sys/fs/cgroup/cgroup.controllers")
    cmdline = (_read(root / "proc/cmdline") or "").split()
    disabled = "cgroup_disable=memory" in cmdline
    if controllers is not None:
        if "memory" in controllers.split():
            return passed(check, title, f"cgroup v2, controllers: {controllers.strip()}")
        why = " (the kernel command line has cgroup_disable=memory)" if disabled else ""
        detail = f"cgroup v2 without the memory controller{why}: pod memory limits cannot be enforced"
        return failed(check, title, detail, CMDLINE_FIX)
    v1 = _v1_memory_enabled(root)
    if v1 is None:
        return failed(
            check,
            title,
            "no cgroup filesystem at /sys/fs/cgroup",
            "mount cgroup2 at /sys/fs/cgroup (boot with systemd)",
        )
    if not v1:
        return failed(check, title, "cgroup v1 with the memory controller disabled", CMDLINE_FIX)
    return warned(
        check,
        title,
        "cgroup v1/hybrid hierarchy (no /sys/fs/cgroup/cgroup.controllers); memory is enabled in v1",
        "use cgroup v2 (Raspberry Pi OS bookworm's default; or boot with systemd.unified_cgroup_hierarchy=1): "
        "crun fails on hybrid hierarchies (runc works)",
    )


def _v1_memory_enabled(root: Path) -> bool | None:
    """The `enabled` column of memory in /proc/cgroups; None when there is no cgroup hierarchy at all."""
    text = _read(root / "proc/cgroups")
    if text is None or not (root / "sys/fs/cgroup").is_dir():
        return None
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "memory" and len(parts) >= 4:
            return parts[3] == "1"
    return False


def swap(root: Path) -> Result:
    """No active swap (/proc/swaps): swapping hides memory limits and wears the SD card out."""
    check, title = "swap", "swap off"
    text = _read(root / "proc/swaps")
    if text is None:
        return warned(check, title, "cannot read /proc/swaps", "check that /proc is mounted")
    active = [line.split()[0] for line in text.splitlines()[1:] if line.strip()]
    if not active:
        return passed(check, title, "no swap in use")
    return failed(
        check,
        title,
        f"swap in use: {', '.join(active)}",
        "`sudo dphys-swapfile swapoff && sudo dphys-swapfile uninstall && sudo systemctl disable dphys-swapfile` "
        "(Raspberry Pi OS), or `swapoff -a` and remove swap from /etc/fstab",
    )


class _Timex(ctypes.Structure):
    """The head of struct timex (<sys/timex.h>) up to `status`, padded to the kernel's full size and more."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_byte * 256),
    ]


def adjtimex() -> tuple[int, int] | None:
    """(adjtimex's clock state, the status bits), read-only (modes 0); None where the call is unavailable."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        timex = _Timex()
        state = int(libc.adjtimex(ctypes.byref(timex)))
    except (OSError, AttributeError):
        return None
    return (state, int(timex.status)) if state >= 0 else None


def clock(root: Path, kernel: Callable[[], tuple[int, int] | None] = adjtimex) -> Result:
    """The clock is synchronised: systemd-timesyncd's flag file, else the kernel's NTP state (adjtimex)."""
    check, title = "clock", "clock synchronised"
    if (root / "run/systemd/timesync/synchronized").exists():
        return passed(check, title, "systemd-timesyncd: synchronized")
    fix = (
        "enable NTP (`sudo timedatectl set-ntp true`, or chrony): a Pi has no battery-backed clock, and a wrong date "
        "makes TLS certificates invalid and events out of order"
    )
    state = kernel()
    if state is None:
        return warned(check, title, "cannot tell: no timesyncd flag and adjtimex(2) is unavailable", fix)
    code, status = state
    if code == TIME_ERROR or status & STA_UNSYNC:
        return failed(check, title, f"the kernel clock is not synchronised (adjtimex state {code}, STA_UNSYNC)", fix)
    return passed(check, title, f"the kernel clock is synchronised (adjtimex state {code})")


def nfs_client(root: Path, libnfs: Callable[[], str | None] | None = None) -> Result:
    """A way to mount NFS volumes: the kernel's nfs4, or /dev/fuse and libnfs for edgekube's userspace client."""
    check, title = "nfs-client", "NFS client"
    filesystems = (_read(root / "proc/filesystems") or "").split()
    if "nfs4" in filesystems:
        return passed(check, title, "kernel NFSv4 client (nfs4 in /proc/filesystems)")
    library = (libnfs or _find_libnfs)()
    fuse = (root / "dev/fuse").exists()
    if fuse and library:
        return passed(check, title, f"userspace client: /dev/fuse and {library} (no kernel nfs4)")
    missing = [what for what, ok in (("/dev/fuse", fuse), ("libnfs", library)) if not ok]
    return failed(
        check,
        title,
        f"no kernel nfs4 and no userspace client ({', '.join(missing)} missing): NFS volumes cannot be mounted",
        "`sudo apt install nfs-common` (kernel client), or `sudo apt install libnfs13 fuse3` (userspace client)",
    )


def _find_libnfs() -> str | None:
    return ctypes.util.find_library("nfs")


def gpio(root: Path) -> Result:
    """GPIO character devices the agent (status LEDs) and pods (edgekube.io/gpiochip) can open."""
    check, title = "gpio", "GPIO access"
    chips = sorted((root / "dev").glob("gpiochip*"))
    if not chips:
        return failed(
            check,
            title,
            "no /dev/gpiochip*: not a Raspberry Pi, or its GPIO driver is not loaded; status LEDs and "
            "edgekube.io/gpiochip are unavailable",
            "on a Pi running Raspberry Pi OS bookworm /dev/gpiochip0 (Pi 5: gpiochip4) exists; elsewhere leave the "
            'agent\'s led_pins empty (or led_pin_factory = "mock")',
        )
    closed = [c.name for c in chips if not os.access(c, os.R_OK | os.W_OK)]
    if closed:
        return failed(
            check,
            title,
            f"{', '.join(closed)} not readable and writable by this user",
            "add the user running edgekube to the `gpio` group (`sudo usermod -aG gpio USER`) or run it as root",
        )
    return passed(check, title, ", ".join(f"/dev/{c.name}" for c in chips))


def free_space(path: Path, what: str, usage: Callable[[Path], tuple[int, int, int]] | None = None) -> Result:
    """Free space where `path` lives (the nearest existing parent): fail under 10 %, warn under 15 %."""
    check, title = f"disk-{what}", f"free space on {path}"
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    total, _, free = (usage or _disk_usage)(existing)
    fraction = free / total if total else 0.0
    detail = f"{_gib(free)} free of {_gib(total)} ({fraction:.0%})"
    if existing != path:
        detail += f"; {path} does not exist yet, measured {existing}"
    fix = "free space (`podman image prune -a`, `journalctl --vacuum-size=50M`) or use a larger card/SSD"
    if fraction < DISK_FAIL_FRACTION:
        return failed(check, title, detail + ": below the kubelet's 10% eviction threshold", fix)
    if fraction < DISK_WARN_FRACTION:
        return warned(check, title, detail + ": under 15%", fix)
    return passed(check, title, detail)


def _disk_usage(path: Path) -> tuple[int, int, int]:
    usage = shutil.disk_usage(path)
    return usage.total, usage.used, usage.free


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB"


#: eMMC/SD life_time estimate values (JEDEC): 0x01 = 0-10 % of the life used ... 0x0A = 90-100 %, 0x0B exceeded.
LIFE_WARN = 0x09


def sd_card(root: Path) -> Result:
    """Hints for an SD card root: noatime, the card's life-time estimate where it reports one."""
    check, title = "sd-card", "SD card health"
    mount = _root_mount(root)
    if mount is None:
        return warned(
            check, title, "cannot find the root filesystem in /proc/self/mounts", "check that /proc is mounted"
        )
    source, options = mount
    name = source.removeprefix("/dev/")
    if not name.startswith("mmcblk"):
        return passed(check, title, f"root is {source}, not an SD card")
    disk = name.split("p")[0] if "p" in name[6:] else name
    hints, fixes = [f"root on SD card {source}"], []
    if "noatime" not in options.split(","):
        hints.append("mounted without noatime")
        fixes.append("add noatime to / in /etc/fstab")
    status = "pass"
    life = _read(root / f"sys/block/{disk}/device/life_time")
    if life:
        values = [int(v, 16) for v in life.split() if v.startswith("0x")]
        worst = max(values, default=0)
        hints.append(f"life time estimate {life.strip()} ({_life(worst)})")
        if worst >= LIFE_WARN:
            status = "fail" if worst >= 0x0B else "warn"
            fixes.append("replace the card soon; move /var/lib/containers to a USB SSD")
    else:
        hints.append("the card reports no life time estimate")
    fixes.append("keep writes low: journald Storage=volatile, container store on a USB SSD")
    detail, fix = "; ".join(hints), "; ".join(fixes)
    if status == "fail":
        return failed(check, title, detail, fix)
    if status == "warn" or "noatime" not in options.split(","):
        return warned(check, title, detail, fix)
    return passed(check, title, detail)


def _life(value: int) -> str:
    if value == 0:
        return "not defined"
    if value >= 0x0B:
        return "estimated life time exceeded"
    return f"{(value - 1) * 10}-{value * 10}% of its life used"


def _root_mount(root: Path) -> tuple[str, str] | None:
    """(source, options) of the filesystem mounted at / (the last mount there wins, as in the kernel)."""
    found = None
    for line in (_read(root / "proc/self/mounts") or "").splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] == "/":
            found = (parts[0], parts[3])
    return found
