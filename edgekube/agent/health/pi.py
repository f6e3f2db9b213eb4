"""Raspberry Pi hardware readings: SoC temperature and the firmware's get_throttled flags; used by health, telemetry.

Every reader takes the root of a sys tree (`/sys` on a board), so tests lay out a temporary directory instead.
`get_throttled` comes from sysfs where the firmware driver exposes it, else from `vcgencmd get_throttled` on the
real tree (a short subprocess; absent off the Pi). The bit layout is the one documented for vcgencmd.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

#: Where the Pi firmware driver exposes get_throttled (hex, e.g. `50005`), relative to the sys root.
THROTTLED_SYSFS = "devices/platform/soc/soc:firmware/get_throttled"
#: vcgencmd's answer: `throttled=0x50005`.
_VCGENCMD = re.compile(r"^\s*throttled=(0x[0-9a-fA-F]+|[0-9]+)\s*$")

# Bits of get_throttled (raspberrypi.com documentation, "vcgencmd get_throttled").
UNDER_VOLTAGE = 1 << 0
ARM_FREQUENCY_CAPPED = 1 << 1
THROTTLED = 1 << 2
SOFT_TEMPERATURE_LIMIT = 1 << 3
UNDER_VOLTAGE_OCCURRED = 1 << 16
ARM_FREQUENCY_CAPPING_OCCURRED = 1 << 17
THROTTLING_OCCURRED = 1 << 18
SOFT_TEMPERATURE_LIMIT_OCCURRED = 1 << 19


@dataclass(frozen=True)
class ThrottleFlags:
    """The firmware's get_throttled bit field, decoded: what holds now, and what has happened since boot."""

    raw: int

    @property
    def under_voltage(self) -> bool:
        return bool(self.raw & UNDER_VOLTAGE)

    @property
    def arm_frequency_capped(self) -> bool:
        return bool(self.raw & ARM_FREQUENCY_CAPPED)

    @property
    def throttled(self) -> bool:
        return bool(self.raw & THROTTLED)

    @property
    def soft_temperature_limit(self) -> bool:
        return bool(self.raw & SOFT_TEMPERATURE_LIMIT)

    @property
    def under_voltage_occurred(self) -> bool:
        return bool(self.raw & UNDER_VOLTAGE_OCCURRED)

    @property
    def arm_frequency_capping_occurred(self) -> bool:
        return bool(self.raw & ARM_FREQUENCY_CAPPING_OCCURRED)

    @property
    def throttling_occurred(self) -> bool:
        return bool(self.raw & THROTTLING_OCCURRED)

    @property
    def soft_temperature_limit_occurred(self) -> bool:
        return bool(self.raw & SOFT_TEMPERATURE_LIMIT_OCCURRED)

    @property
    def slowed(self) -> bool:
        """The SoC runs slower than it should right now: throttled, frequency capped or at its soft limit."""
        return self.throttled or self.arm_frequency_capped or self.soft_temperature_limit

    def now(self) -> list[str]:
        """What holds now, in words (empty when nothing does)."""
        names = (
            (self.under_voltage, "under-voltage"),
            (self.arm_frequency_capped, "arm frequency capped"),
            (self.throttled, "throttled"),
            (self.soft_temperature_limit, "soft temperature limit active"),
        )
        return [name for on, name in names if on]

    def occurred(self) -> list[str]:
        """What has happened since boot, in words."""
        names = (
            (self.under_voltage_occurred, "under-voltage"),
            (self.arm_frequency_capping_occurred, "arm frequency capping"),
            (self.throttling_occurred, "throttling"),
            (self.soft_temperature_limit_occurred, "soft temperature limit"),
        )
        return [name for on, name in names if on]

    def __str__(self) -> str:
        return f"0x{self.raw:x}"


def parse_vcgencmd(output: str) -> ThrottleFlags:
    """`vcgencmd get_throttled`'s output (`throttled=0x50005`); ValueError naming the output when it is not that."""
    match = _VCGENCMD.match(output)
    if match is None:
        raise ValueError(f"vcgencmd get_throttled: {output.strip()!r}: expected 'throttled=0x<hex>'")
    return ThrottleFlags(int(match.group(1), 0))


def parse_sysfs(text: str) -> ThrottleFlags:
    """The firmware driver's get_throttled file: hex digits without the 0x (`50005`); ValueError when it is not."""
    value = text.strip().rstrip("\x00")
    try:
        return ThrottleFlags(int(value, 16))
    except ValueError:
        raise ValueError(f"{THROTTLED_SYSFS}: {value!r}: expected a hexadecimal number") from None


#: vcgencmd's answer is reused this long: health and telemetry both read the flags every few seconds.
VCGENCMD_TTL = 5.0
_vcgencmd_lock = threading.Lock()
_vcgencmd_last: tuple[float, ThrottleFlags | None] | None = None


def read_throttle_flags(root: Path = Path("/sys"), *, vcgencmd: bool | None = None) -> ThrottleFlags | None:
    """The throttle flags from `root`'s sysfs file, else from vcgencmd; None where neither exists or answers.

    `vcgencmd` None: ask it only on the real tree (root `/sys`), so a test's tree never reaches the real board.
    """
    try:
        return parse_sysfs((root / THROTTLED_SYSFS).read_text(errors="replace"))
    except (OSError, ValueError):
        pass
    if vcgencmd is None:
        vcgencmd = root == Path("/sys")
    return _ask_vcgencmd() if vcgencmd else None


def _ask_vcgencmd() -> ThrottleFlags | None:
    """`vcgencmd get_throttled` (2 s timeout), its answer reused for VCGENCMD_TTL seconds; None without vcgencmd."""
    global _vcgencmd_last  # noqa: PLW0603 - one board, one firmware: a process-wide cache
    with _vcgencmd_lock:
        now = time.monotonic()
        if _vcgencmd_last is not None and now - _vcgencmd_last[0] < VCGENCMD_TTL:
            return _vcgencmd_last[1]
        binary = shutil.which("vcgencmd")
        flags = None
        if binary is not None:
            try:
                done = subprocess.run([binary, "get_throttled"], capture_output=True, text=True, timeout=2, check=False)
                flags = parse_vcgencmd(done.stdout) if done.returncode == 0 else None
            except (OSError, subprocess.SubprocessError, ValueError):
                flags = None
        _vcgencmd_last = (now, flags)
        return flags


def read_soc_temperature(root: Path = Path("/sys")) -> float | None:
    """Degrees Celsius of the SoC: the first thermal zone under `root`/class/thermal (millidegrees), or None.

    On a Pi thermal_zone0 is the SoC (type `cpu-thermal`); a zone whose type says `cpu` or `soc` is preferred
    when there are several, else the lowest-numbered one that reads.
    """
    zones = sorted((root / "class" / "thermal").glob("thermal_zone*"), key=_zone_number)
    preferred = [z for z in zones if any(word in _read(z / "type").lower() for word in ("cpu", "soc"))]
    for zone in [*preferred, *zones]:
        raw = _read(zone / "temp")
        if raw.lstrip("-").isdigit():
            return int(raw) / 1000
    return None


def _zone_number(path: Path) -> int:
    digits = path.name.removeprefix("thermal_zone")
    return int(digits) if digits.isdigit() else 1 << 30


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return ""
