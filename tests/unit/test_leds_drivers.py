"""LED drivers: the board's ACT/PWR LEDs through a temp dir laid out like /sys/class/leds (trigger none while driven,
the original trigger back on close, blinking by a small thread), and opening drivers that cannot work: a missing or
busy GPIO chip, an absent or unwritable sysfs LED is one warning and no LEDs, never an exception.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest
from gpiozero import LED
from gpiozero.pins.mock import MockFactory, MockPWMPin

from edgekube.agent.indicators.drivers import (
    GpioPair,
    LedSettings,
    NoLeds,
    SysfsLeds,
    lit_at,
    next_change,
    open_driver,
)
from edgekube.agent.indicators.table import BLIP, SHOWS, SLOW, Pattern
from edgekube.model.errors import ValidationError


def board(root: Path, *names: str, trigger: str = "none [mmc0] timer heartbeat", max_brightness: str = "255") -> Path:
    """A directory laid out like /sys/class/leds with these LEDs (trigger, brightness, max_brightness)."""
    for name in names:
        led = root / name
        led.mkdir(parents=True)
        (led / "trigger").write_text(trigger + "\n")
        (led / "brightness").write_text("0\n")
        (led / "max_brightness").write_text(max_brightness + "\n")
    return root


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def brightness(root: Path, name: str) -> str:
    return (root / name / "brightness").read_text().strip()


def test_sysfs_takes_the_leds_over_and_gives_their_triggers_back(tmp_path: Path) -> None:
    root = board(tmp_path, "ACT", "PWR")
    (root / "PWR" / "trigger").write_text("none [default-on] mmc0\n")
    leds = SysfsLeds(root, start_thread=False)
    assert (root / "ACT" / "trigger").read_text() == "none"
    assert (root / "PWR" / "trigger").read_text() == "none"
    leds.close()
    assert (root / "ACT" / "trigger").read_text() == "mmc0"
    assert (root / "PWR" / "trigger").read_text() == "default-on"


def test_sysfs_healthy_lights_act_at_max_brightness_and_pwr_dark(tmp_path: Path) -> None:
    root = board(tmp_path, "ACT", "PWR")
    leds = SysfsLeds(root, start_thread=False)
    leds.show(SHOWS[Pattern.HEALTHY])
    assert leds.tick() is None  # solid and dark: nothing more to do
    assert (brightness(root, "ACT"), brightness(root, "PWR")) == ("255", "0")
    leds.close()


def test_sysfs_blinks_on_the_lights_own_timing(tmp_path: Path) -> None:
    root = board(tmp_path, "ACT", "PWR")
    clock = Clock()
    leds = SysfsLeds(root, clock=clock, start_thread=False)
    leds.show(SHOWS[Pattern.POD_FAILING])  # ACT solid, PWR slow 0.5/0.5
    seen = []
    for _ in range(4):
        wait = leds.tick()
        seen.append((brightness(root, "ACT"), brightness(root, "PWR"), wait))
        assert wait is not None
        clock.now += wait
    assert seen == [("255", "255", 0.5), ("255", "0", 0.5), ("255", "255", 0.5), ("255", "0", 0.5)]
    leds.close()


def test_sysfs_older_kernels_name_the_leds_led0_and_led1(tmp_path: Path) -> None:
    root = board(tmp_path, "led0", "led1", "input3::capslock")
    leds = SysfsLeds(root, start_thread=False)
    leds.show(SHOWS[Pattern.NOT_READY])  # green dark, red solid
    leds.tick()
    assert (brightness(root, "led0"), brightness(root, "led1")) == ("0", "255")
    assert brightness(root, "input3::capslock") == "0"
    leds.close()


def test_sysfs_thread_follows_a_new_pattern(tmp_path: Path) -> None:
    root = board(tmp_path, "ACT", "PWR")
    leds = SysfsLeds(root)
    leds.show(SHOWS[Pattern.HEALTHY])
    deadline = time.monotonic() + 5
    while brightness(root, "ACT") != "255" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert brightness(root, "ACT") == "255"
    leds.show(SHOWS[Pattern.NOT_READY])
    while brightness(root, "PWR") != "255" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (brightness(root, "ACT"), brightness(root, "PWR")) == ("0", "255")
    leds.close()
    assert (root / "ACT" / "trigger").read_text() == "mmc0"


def test_lit_at_and_next_change_walk_a_blink() -> None:
    assert [lit_at(BLIP, t) for t in (0.0, 0.05, 0.1, 1.0, 2.0, 2.05)] == [True, True, False, False, True, True]
    assert next_change(SLOW, 0.0) == 0.5
    assert next_change(SLOW, 0.75) == pytest.approx(0.25)


# -- opening drivers that cannot work ---------------------------------------------------------------------------
def test_no_pins_and_no_sysfs_is_no_leds_without_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    assert isinstance(open_driver(LedSettings()), NoLeds)
    assert not caplog.records


@pytest.mark.parametrize("kind", ["lgpio", "rpigpio", "default"])
def test_a_missing_gpio_chip_is_one_warning_and_no_leds(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    # This machine has no /dev/gpiochip*: every real pin factory fails to open a pin.
    with caplog.at_level(logging.WARNING):
        driver = open_driver(LedSettings(pins=(17, 27), pin_factory=kind))
    assert isinstance(driver, NoLeds)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "running without LEDs" in warnings[0].getMessage()
    assert "[17, 27]" in warnings[0].getMessage()


def test_a_busy_pin_is_one_warning_and_no_leds(caplog: pytest.LogCaptureFixture) -> None:
    factory = MockFactory(pin_class=MockPWMPin)
    other = LED(27, pin_factory=factory)  # someone else holds GPIO 27
    with caplog.at_level(logging.WARNING):
        driver = open_driver(LedSettings(pins=(17, 27), pin_factory="mock"), factory=factory)
    assert isinstance(driver, NoLeds)
    assert "GPIOPinInUse" in caplog.text
    # The green LED it had opened was let go again.
    LED(17, pin_factory=factory).close()
    other.close()
    factory.reset()


def test_a_missing_sysfs_led_is_one_warning_and_no_leds(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    board(tmp_path, "input3::capslock")
    with caplog.at_level(logging.WARNING):
        driver = open_driver(LedSettings(sysfs=str(tmp_path)))
    assert isinstance(driver, NoLeds)
    assert "no ACT/PWR LED" in caplog.text


def test_an_unwritable_sysfs_led_is_one_warning_and_no_leds(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = board(tmp_path, "ACT")
    (root / "ACT" / "trigger").unlink()
    (root / "ACT" / "trigger").mkdir()  # writing it fails even for root
    with caplog.at_level(logging.WARNING):
        driver = open_driver(LedSettings(sysfs=str(root)))
    assert isinstance(driver, NoLeds)
    assert "IsADirectoryError" in caplog.text


def test_mock_pin_factory_gives_working_leds() -> None:
    driver = open_driver(LedSettings(pins=(17, 27), pin_factory="mock"))
    assert isinstance(driver, GpioPair)
    driver.show(SHOWS[Pattern.HEALTHY])
    assert driver.factory.pin(17).state == 1
    driver.close()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"pin_factory": "pigpio"}, "led_pin_factory: Unsupported value: 'pigpio'"),
        ({"pins": (40,)}, "led_pins: 40 is not a BCM GPIO number"),
        ({"pins": (17, 17)}, "names a pin twice"),
        ({"pins": (17, 27), "rgb": True}, "an RGB LED takes 3 pins"),
        ({"pins": (17, 27, 22)}, "at most 2 pins (green, red) unless led_rgb"),
    ],
)
def test_bad_settings_name_the_field_and_rule(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        LedSettings(**settings)  # type: ignore[arg-type]


# -- contract: the temp tree against a board's real /sys/class/leds -------------------------------------------
REAL = Path("/sys/class/leds")


@pytest.fixture(params=["temp tree", "real sysfs"])
def leds_root(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """The same checks on the temp tree and, on a board that has them (root), the real ACT/PWR LEDs."""
    if request.param == "temp tree":
        return board(tmp_path, "ACT", "PWR")
    act = next((REAL / n for n in ("ACT", "led0") if (REAL / n / "brightness").exists()), None)
    if act is None or not os.access(act / "trigger", os.W_OK):
        pytest.skip("no writable ACT LED under /sys/class/leds here (not a Raspberry Pi, or not root)")
    return REAL


def selected(trigger_text: str) -> str:
    """The trigger in effect: real sysfs brackets it among all of them; the temp tree holds what was written."""
    words = trigger_text.split()
    return next((w[1:-1] for w in words if w.startswith("[")), trigger_text.strip())


def test_contract_a_shown_pattern_lands_in_brightness_and_triggers_come_back(leds_root: Path) -> None:
    act = next(leds_root / n for n in ("ACT", "led0") if (leds_root / n / "brightness").exists())
    original = selected((act / "trigger").read_text())
    leds = SysfsLeds(leds_root, start_thread=False)
    assert selected((act / "trigger").read_text()) == "none"
    leds.show(SHOWS[Pattern.HEALTHY])
    leds.tick()
    assert (act / "brightness").read_text().strip() == (act / "max_brightness").read_text().strip()
    leds.show(SHOWS[Pattern.NOT_READY])
    leds.tick()
    assert (act / "brightness").read_text().strip() == "0"
    leds.close()
    assert selected((act / "trigger").read_text()) == original
