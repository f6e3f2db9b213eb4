"""The LED table (docs/leds.md): which state picks which row, the priority between them, and how every row looks on
gpiozero's MockFactory pins (pin state sequences with their timing) for a green + red pair and for one RGB LED.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from edgekube.agent.indicators.drivers import GpioPair, GpioRgb
from edgekube.agent.indicators.table import (
    BLIP,
    DARK,
    FAST,
    SLOW,
    SOLID,
    TABLE,
    Light,
    NodeState,
    Pattern,
    Show,
    choose,
)

HEALTHY = NodeState(started=True)

#: One state per row that picks that row, and nothing above it applies.
PICKS = {
    Pattern.IDENTIFY: dataclasses.replace(HEALTHY, identify=True),
    Pattern.UNDER_VOLTAGE: dataclasses.replace(HEALTHY, under_voltage=True),
    Pattern.CUT_OFF: dataclasses.replace(HEALTHY, broker_connected=False),
    Pattern.NOT_READY: dataclasses.replace(HEALTHY, master_ready=False),
    Pattern.POD_FAILING: dataclasses.replace(HEALTHY, failing_pods=1),
    Pattern.THROTTLED: dataclasses.replace(HEALTHY, throttled=True),
    Pattern.STARTING: dataclasses.replace(HEALTHY, starting_pods=2),
    Pattern.HEALTHY: HEALTHY,
}
SHOWS = {row.show.pattern: row.show for row in TABLE}


@pytest.mark.parametrize("pattern", list(PICKS))
def test_each_row_is_chosen_by_its_state(pattern: Pattern) -> None:
    assert choose(PICKS[pattern]).pattern is pattern


def test_every_row_has_a_picking_state_and_a_description() -> None:
    assert [row.show.pattern for row in TABLE] == list(PICKS)
    assert all(row.show.description and row.when for row in TABLE)


def test_patterns_are_told_apart_on_two_leds_and_on_one_rgb_led() -> None:
    pairs = [(row.show.green, row.show.red) for row in TABLE]
    rgbs = [(row.show.colour, row.show.rgb) for row in TABLE]
    assert len(set(pairs)) == len(TABLE)
    assert len(set(rgbs)) == len(TABLE)


def test_a_node_before_its_first_pass_is_starting() -> None:
    assert choose(NodeState()).pattern is Pattern.STARTING


def test_master_offline_is_cut_off_like_a_lost_broker() -> None:
    assert choose(dataclasses.replace(HEALTHY, master_online=False)).pattern is Pattern.CUT_OFF


def test_priority_follows_the_table_order_when_every_state_holds_at_once() -> None:
    everything = NodeState(
        started=False, starting_pods=1, failing_pods=1, broker_connected=False, master_online=False,
        master_ready=False, throttled=True, under_voltage=True, identify=True,
    )  # fmt: skip
    seen = []
    state = everything
    # Take away the winner's condition one at a time: the next row of the table wins.
    clears: dict[Pattern, dict[str, Any]] = {
        Pattern.IDENTIFY: {"identify": False},
        Pattern.UNDER_VOLTAGE: {"under_voltage": False},
        Pattern.CUT_OFF: {"broker_connected": True, "master_online": True},
        Pattern.NOT_READY: {"master_ready": True},
        Pattern.POD_FAILING: {"failing_pods": 0},
        Pattern.THROTTLED: {"throttled": False},
        Pattern.STARTING: {"started": True, "starting_pods": 0},
    }
    while True:
        shown = choose(state).pattern
        seen.append(shown)
        if shown is Pattern.HEALTHY:
            break
        state = dataclasses.replace(state, **clears[shown])
    assert seen == [row.show.pattern for row in TABLE]


@pytest.mark.parametrize(
    ("winner", "loser"),
    [
        (Pattern.CUT_OFF, Pattern.NOT_READY),  # cut off, the master's view is stale: the node's own view wins
        (Pattern.POD_FAILING, Pattern.STARTING),
        (Pattern.UNDER_VOLTAGE, Pattern.CUT_OFF),  # a weak supply is the likelier root cause
        (Pattern.IDENTIFY, Pattern.UNDER_VOLTAGE),
    ],
)
def test_pairs_of_states_pick_the_higher_row(winner: Pattern, loser: Pattern) -> None:
    both = {
        f.name: getattr(PICKS[winner], f.name)
        if getattr(PICKS[winner], f.name) != getattr(HEALTHY, f.name)
        else getattr(PICKS[loser], f.name)
        for f in dataclasses.fields(NodeState)
    }
    assert choose(NodeState(**both)).pattern is winner


# -- on gpiozero's MockFactory --------------------------------------------------------------------------------
@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory(pin_class=MockPWMPin)
    yield f
    f.reset()


def expected(light: Light, *, active_high: bool = True, cycles: int = 1) -> list[tuple[float, bool]]:
    """The pin states (time since the previous change, level) a freshly cleared pin goes through for `light`.

    A blinking light: lit at once, dark after on_time, lit again after off_time (then the pattern repeats).
    """
    lit, dark = active_high, not active_high
    states = [(0.0, dark)]
    if light.dark:
        return states
    states.append((0.0, lit))
    if light.solid:
        return states
    for _ in range(cycles):
        states += [(light.on_time, dark), (light.off_time, lit)]
    return states


def wait_states(pin: object, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(pin.states) < count and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.01)


def check_pin(pin: object, light: Light, *, active_high: bool = True) -> None:
    want = expected(light, active_high=active_high)
    if light.dark or light.solid:
        time.sleep(0.3)  # a solid or dark LED must not start blinking on its own
        assert [s.state for s in pin.states] == [s for _, s in want]  # type: ignore[attr-defined]
        return
    wait_states(pin, len(want))
    assert len(pin.states) >= len(want)  # type: ignore[attr-defined]
    pin.assert_states_and_times(want)  # type: ignore[attr-defined]


@pytest.mark.parametrize("row", TABLE, ids=lambda r: r.show.pattern.value)
def test_each_row_on_a_green_and_red_pair(row: object, factory: MockFactory) -> None:
    show: Show = row.show  # type: ignore[attr-defined]
    leds = GpioPair([17, 27], factory=factory)
    green, red = factory.pin(17), factory.pin(27)
    green.clear_states()
    red.clear_states()
    leds.show(show)
    check_pin(green, show.green)
    check_pin(red, show.red)
    leds.close()


@pytest.mark.parametrize("pattern", [Pattern.HEALTHY, Pattern.POD_FAILING, Pattern.NOT_READY])
def test_active_low_leds_get_the_inverted_levels(pattern: Pattern, factory: MockFactory) -> None:
    show = SHOWS[pattern]
    leds = GpioPair([5, 6], active_high=False, factory=factory)
    green, red = factory.pin(5), factory.pin(6)
    assert (green.state, red.state) == (True, True)  # off is high on an active-low LED
    green.clear_states()
    red.clear_states()
    leds.show(show)
    check_pin(green, show.green, active_high=False)
    check_pin(red, show.red, active_high=False)
    leds.close()


def test_one_pin_drives_the_green_led_only(factory: MockFactory) -> None:
    leds = GpioPair([17], factory=factory)
    leds.show(SHOWS[Pattern.NOT_READY])  # green dark, red solid: nothing lit without a red LED
    leds.show(SHOWS[Pattern.HEALTHY])
    assert [s.state for s in factory.pin(17).states] == [False, True]
    leds.close()


@pytest.mark.parametrize("row", TABLE, ids=lambda r: r.show.pattern.value)
def test_each_row_on_one_rgb_led(row: object, factory: MockFactory) -> None:
    show: Show = row.show  # type: ignore[attr-defined]
    leds = GpioRgb([22, 23, 24], factory=factory)
    pins = [factory.pin(n) for n in (22, 23, 24)]
    for pin in pins:
        pin.clear_states()
    leds.show(show)
    for channel, pin in zip(show.colour, pins, strict=True):
        check_pin(pin, show.rgb if channel else DARK)
    leds.close()


def test_the_named_lights_are_what_the_docs_say() -> None:
    assert (FAST.on_time, FAST.off_time) == (0.1, 0.1)
    assert (SLOW.on_time, SLOW.off_time) == (0.5, 0.5)
    assert (BLIP.on_time, BLIP.off_time) == (0.1, 1.9)
    assert SOLID.solid and not SOLID.dark
    assert DARK.dark and not DARK.solid
