"""LED drivers behind one small protocol: gpiozero LEDs (a green + red pair or one RGB LED) and sysfs LEDs (ACT, PWR).

Indicator calls `show` only when the pattern changes; every driver returns at once (gpiozero blinks on its own
thread, SysfsLeds on one of its own), so LEDs never hold up the agent's loop. `open_driver` (used by the agent's
wiring) turns a missing or busy GPIO chip or an unwritable sysfs LED into one warning and `NoLeds`, never a crash.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edgekube.agent.indicators.table import Light, Show
from edgekube.model.errors import ValidationError

log = logging.getLogger(__name__)

PIN_FACTORIES = ("default", "lgpio", "rpigpio", "mock")
#: The board's LEDs under /sys/class/leds: ACT (green) is `ACT` on current kernels, `led0` on older ones; PWR (red)
#: is `PWR` or `led1`.
SYSFS_NAMES = {"green": ("ACT", "led0"), "red": ("PWR", "led1")}


class LedDriver(Protocol):
    """Shows one pattern until told another; `close` leaves the LEDs as the agent found them (or dark)."""

    #: What is driven, for the start-up log line and `describe node` (e.g. "gpio pins 17,27").
    name: str

    def show(self, show: Show) -> None: ...

    def close(self) -> None: ...


class NoLeds:
    """No LEDs configured or usable: patterns are still computed and reported, nothing is lit."""

    name = "none"

    def show(self, show: Show) -> None:
        return None

    def close(self) -> None:
        return None


@dataclass(frozen=True)
class LedSettings:
    """The agent's LED configuration (AgentConfig's led_* fields), checked."""

    pins: tuple[int, ...] = ()
    active_high: bool = True
    rgb: bool = False
    pin_factory: str = "default"
    #: The sysfs LED class directory whose ACT/PWR LEDs to drive when no pins are given ("" : none).
    sysfs: str = ""

    def __post_init__(self) -> None:
        if self.pin_factory not in PIN_FACTORIES:
            supported = ", ".join(PIN_FACTORIES)
            problem = f"Unsupported value: {self.pin_factory!r}: supported values: {supported}"
            raise ValidationError(f"led_pin_factory: {problem}")
        for pin in self.pins:
            if not 0 <= pin <= 27:
                raise ValidationError(f"led_pins: {pin} is not a BCM GPIO number (0-27)")
        if len(set(self.pins)) != len(self.pins):
            raise ValidationError(f"led_pins: {list(self.pins)} names a pin twice")
        if self.rgb and len(self.pins) != 3:
            raise ValidationError(f"led_pins: an RGB LED takes 3 pins (red, green, blue), got {len(self.pins)}")
        if not self.rgb and len(self.pins) > 2:
            raise ValidationError(f"led_pins: at most 2 pins (green, red) unless led_rgb, got {len(self.pins)}")


def pin_factory(kind: str) -> Any:
    """The gpiozero pin factory `kind` names; None lets gpiozero choose (GPIOZERO_PIN_FACTORY, or what works)."""
    if kind == "default":
        return None
    if kind == "mock":
        from gpiozero.pins.mock import MockFactory, MockPWMPin  # noqa: PLC0415 - gpiozero loads only when LEDs are used

        return MockFactory(pin_class=MockPWMPin)  # PWM pins also serve plain LEDs
    if kind == "lgpio":
        from gpiozero.pins.lgpio import LGPIOFactory  # noqa: PLC0415

        return LGPIOFactory()
    from gpiozero.pins.rpigpio import RPiGPIOFactory  # noqa: PLC0415

    return RPiGPIOFactory()


def _drive(led: Any, light: Light) -> None:
    """One gpiozero LED to `light` (blink runs on gpiozero's background thread)."""
    if light.dark:
        led.off()
    elif light.solid:
        led.on()
    else:
        led.blink(on_time=light.on_time, off_time=light.off_time, background=True)


class GpioPair:
    """A green LED and, if a second pin is given, a red one, on gpiozero (`LED`)."""

    def __init__(self, pins: Sequence[int], *, active_high: bool = True, factory: Any = None) -> None:
        from gpiozero import LED  # noqa: PLC0415 - gpiozero loads only when LEDs are used

        self.factory = factory
        self.name = f"gpio pins {','.join(map(str, pins))} (green{', red' if len(pins) > 1 else ''})"
        self._leds: list[Any] = []
        try:
            for pin in pins:
                self._leds.append(LED(pin, active_high=active_high, initial_value=False, pin_factory=factory))
        except Exception:
            self.close()
            raise

    def show(self, show: Show) -> None:
        for led, light in zip(self._leds, (show.green, show.red), strict=False):
            _drive(led, light)

    def close(self) -> None:
        for led in self._leds:
            led.close()
        self._leds = []


class GpioRgb:
    """One RGB LED on three pins (red, green, blue), driven on/off per channel (gpiozero `RGBLED`, pwm=False)."""

    def __init__(self, pins: Sequence[int], *, active_high: bool = True, factory: Any = None) -> None:
        from gpiozero import RGBLED  # noqa: PLC0415

        red, green, blue = pins
        self.factory = factory
        self.name = f"gpio RGB LED on pins {red},{green},{blue}"
        self._led: Any = RGBLED(red, green, blue, active_high=active_high, pwm=False, pin_factory=factory)

    def show(self, show: Show) -> None:
        if show.rgb.dark or show.colour == (0, 0, 0):
            self._led.off()
        elif show.rgb.solid:
            self._led.color = show.colour
        else:
            self._led.blink(
                on_time=show.rgb.on_time, off_time=show.rgb.off_time, on_color=show.colour, off_color=(0, 0, 0)
            )

    def close(self) -> None:
        self._led.close()


def _current_trigger(text: str) -> str:
    """The selected trigger in a sysfs `trigger` file ("none rc-feedback [mmc0] timer" → "mmc0")."""
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            return word[1:-1]
    return "none"


class _SysfsLed:
    """One LED under /sys/class/leds: trigger set to none while driven, the original one restored on close."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.original = _current_trigger((path / "trigger").read_text())
        self.original_brightness = (path / "brightness").read_text().strip()
        try:
            self.max = (path / "max_brightness").read_text().strip() or "1"
        except OSError:
            self.max = "1"
        (path / "trigger").write_text("none")
        self.lit: bool | None = None

    def set(self, lit: bool) -> None:
        if lit != self.lit:
            (self.path / "brightness").write_text(self.max if lit else "0")
            self.lit = lit

    def restore(self) -> None:
        (self.path / "trigger").write_text(self.original)
        if self.original == "none":
            (self.path / "brightness").write_text(self.original_brightness)


def lit_at(light: Light, elapsed: float) -> bool:
    """Whether `light` is lit `elapsed` seconds into its pattern (it starts lit, as gpiozero's blink does)."""
    if light.dark:
        return False
    if light.solid:
        return True
    return elapsed % (light.on_time + light.off_time) < light.on_time


def next_change(light: Light, elapsed: float) -> float | None:
    """Seconds from `elapsed` until `light` next turns on or off (None: it never changes)."""
    if light.dark or light.solid:
        return None
    period = light.on_time + light.off_time
    into = elapsed % period
    return (light.on_time - into) if into < light.on_time else (period - into)


class SysfsLeds:
    """The board's ACT (green) and PWR (red) LEDs through a sysfs LED class directory, blinked by a small thread.

    Writes go to sysfs (kernel memory), never to the SD card. `clock` and `start_thread` are for tests.
    """

    def __init__(
        self,
        root: Path,
        *,
        clock: Callable[[], float] = time.monotonic,
        start_thread: bool = True,
    ) -> None:
        self.root = root
        self.clock = clock
        self._leds: dict[str, _SysfsLed] = {}
        self._lock = threading.Lock()
        self._show: Show | None = None
        self._since = 0.0
        self._changed = threading.Event()
        self._closed = threading.Event()
        self._failed = False
        self._thread: threading.Thread | None = None
        try:
            for colour, names in SYSFS_NAMES.items():
                found = next((root / n for n in names if (root / n / "brightness").exists()), None)
                if found is not None:
                    self._leds[colour] = _SysfsLed(found)
        except OSError:
            self.close()
            raise
        if not self._leds:
            wanted = ", ".join(n for pair in SYSFS_NAMES.values() for n in pair)
            raise FileNotFoundError(f"no ACT/PWR LED under {root} (looked for {wanted})")
        self.name = f"sysfs {', '.join(str(led.path) for led in self._leds.values())}"
        if start_thread:
            self._thread = threading.Thread(target=self._run, name="leds-sysfs", daemon=True)
            self._thread.start()

    def show(self, show: Show) -> None:
        with self._lock:
            self._show, self._since = show, self.clock()
        self._changed.set()

    def tick(self) -> float | None:
        """Set each LED for now; seconds until the next change (None: none due). The thread calls it; tests too."""
        with self._lock:
            show, since = self._show, self._since
        if show is None:
            return None
        elapsed = self.clock() - since
        waits = []
        for colour, led in self._leds.items():
            light = show.green if colour == "green" else show.red
            try:
                led.set(lit_at(light, elapsed))
            except OSError as exc:
                if not self._failed:
                    log.warning("LEDs: cannot write %s (%s); LEDs left as they are", led.path / "brightness", exc)
                    self._failed = True
            wait = next_change(light, elapsed)
            if wait is not None:
                waits.append(wait)
        return min(waits, default=None)

    def _run(self) -> None:
        while not self._closed.is_set():
            wait = self.tick()
            self._changed.wait(wait)
            self._changed.clear()

    def close(self) -> None:
        self._closed.set()
        self._changed.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        for led in self._leds.values():
            try:
                led.restore()
            except OSError as exc:
                log.warning("LEDs: cannot restore %s's trigger (%s)", led.path, exc)
        self._leds = {}


def open_driver(settings: LedSettings, *, factory: Any = None) -> LedDriver:
    """The driver the settings ask for; any failure to open it is one warning, and the agent runs on without LEDs.

    `factory`: a gpiozero pin factory to use instead of the one settings name (tests share a MockFactory).
    """
    if not settings.pins and not settings.sysfs:
        return NoLeds()
    try:
        if settings.pins:
            with warnings.catch_warnings():  # gpiozero warns while falling back from one pin factory to the next
                warnings.simplefilter("ignore")
                factory = factory if factory is not None else pin_factory(settings.pin_factory)
                if settings.rgb:
                    return GpioRgb(settings.pins, active_high=settings.active_high, factory=factory)
                return GpioPair(settings.pins, active_high=settings.active_high, factory=factory)
        return SysfsLeds(Path(settings.sysfs))
    except Exception as exc:  # gpiozero raises its own classes, OSError, RuntimeError...; none may stop the agent
        what = f"GPIO pins {list(settings.pins)} ({settings.pin_factory})" if settings.pins else settings.sysfs
        log.warning("LEDs: cannot drive %s: %s: %s; running without LEDs", what, type(exc).__name__, exc)
        return NoLeds()
