"""Benchmark: what the LEDs cost the agent — the Indicator per loop pass, and each driver's blinking thread.

Run: .venv/bin/python benchmarks/leds.py [--window 10]

1. `Indicator.update` with an unchanged state (what every pass of the agent's loop costs), in microseconds.
2. CPU of this process (getrusage) over `--window` seconds while a driver shows Identify (both LEDs at 5 Hz),
   PodFailing (one LED at 1 Hz) and Healthy (nothing moves), as % of one core: gpiozero's LEDs on MockFactory pins
   (its blink threads; a real pin factory adds its own write per change) and SysfsLeds on a temp dir laid out like
   /sys/class/leds (on a real board the writes go to sysfs, kernel memory, never the SD card).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

from gpiozero.pins.mock import MockFactory, MockPWMPin

from edgekube.agent.indicators.drivers import GpioPair, LedDriver, SysfsLeds
from edgekube.agent.indicators.indicator import Indicator
from edgekube.agent.indicators.table import SHOWS, NodeState, Pattern


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def board() -> Path:
    root = Path(tempfile.mkdtemp())
    for name in ("ACT", "PWR"):
        (root / name).mkdir()
        (root / name / "trigger").write_text("none [mmc0]")
        (root / name / "brightness").write_text("0")
        (root / name / "max_brightness").write_text("255")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=10.0)
    args = parser.parse_args()
    indicator, state, n = Indicator(None), NodeState(started=True), 100_000
    per_pass = timeit.timeit(lambda: indicator.update(state), number=n) / n
    print(f"Indicator.update, pattern unchanged: {per_pass * 1e6:.1f} us per pass")
    root = board()
    drivers: dict[str, Callable[[], LedDriver]] = {
        "gpiozero (MockFactory)": lambda: GpioPair([17, 27], factory=MockFactory(pin_class=MockPWMPin)),
        "sysfs (temp dir)": lambda: SysfsLeds(root),
    }
    for name, make in drivers.items():
        for pattern in (Pattern.IDENTIFY, Pattern.POD_FAILING, Pattern.HEALTHY):
            driver = make()
            before = cpu()
            driver.show(SHOWS[pattern])
            time.sleep(args.window)
            used = cpu() - before
            driver.close()
            print(f"{name:24} {pattern.value:11} {used / args.window * 100:.3f}% of a core")


if __name__ == "__main__":
    main()
