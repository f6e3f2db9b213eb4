"""The Indicator: LEDs touched only when the pattern changes, identify (start, duplicate request, cancel, expiry on
an injected clock), a failing pod held for a while so a crash loop does not flicker, the status it reports, and a
driver that fails mid-run (a warning; the pattern is still reported).
"""

from __future__ import annotations

import dataclasses
import logging

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from edgekube.agent.indicators.drivers import GpioPair, NoLeds
from edgekube.agent.indicators.indicator import MAX_IDENTIFY, Indicator
from edgekube.agent.indicators.table import NodeState, Pattern, Show

HEALTHY = NodeState(started=True)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A driver that remembers what it was asked to show."""

    name = "recorder"

    def __init__(self) -> None:
        self.shown: list[Pattern] = []
        self.closed = False

    def show(self, show: Show) -> None:
        self.shown.append(show.pattern)

    def close(self) -> None:
        self.closed = True


def make(clock: Clock | None = None, hold: float = 30.0) -> tuple[Indicator, Recorder, Clock]:
    clock = clock or Clock()
    driver = Recorder()
    return Indicator(driver, clock=clock, wall=lambda: 1_700_000_000.0, hold_failing=hold), driver, clock


def test_leds_change_only_when_the_pattern_does() -> None:
    ind, driver, _ = make()
    for state in (NodeState(), NodeState(), HEALTHY, HEALTHY, HEALTHY, dataclasses.replace(HEALTHY, throttled=True)):
        ind.update(state)
    assert driver.shown == [Pattern.STARTING, Pattern.HEALTHY, Pattern.THROTTLED]


def test_identify_blinks_until_it_expires() -> None:
    ind, driver, clock = make()
    ind.update(HEALTHY)
    until = ind.identify(30)
    assert until == clock.now + 30
    assert ind.next_due() == until
    clock.now += 29.9
    ind.update(HEALTHY)
    assert ind.identifying()
    clock.now += 0.1
    ind.update(HEALTHY)
    assert not ind.identifying()
    assert ind.next_due() is None
    assert driver.shown == [Pattern.HEALTHY, Pattern.IDENTIFY, Pattern.HEALTHY]


def test_identify_cancel_ends_it_at_once() -> None:
    ind, driver, _ = make()
    ind.update(HEALTHY)
    ind.identify(30)
    ind.cancel()
    assert driver.shown == [Pattern.HEALTHY, Pattern.IDENTIFY, Pattern.HEALTHY]
    assert "identifyUntil" not in ind.status()


def test_identify_for_zero_seconds_cancels() -> None:
    ind, driver, _ = make()
    ind.update(HEALTHY)
    ind.identify(30)
    ind.identify(0)
    assert driver.shown[-1] is Pattern.HEALTHY


def test_a_duplicated_identify_request_keeps_the_first_end_time() -> None:
    ind, _, clock = make()
    first = ind.identify(30, key="req-1")
    clock.now += 10
    assert ind.identify(30, key="req-1") == first  # QoS 1 delivered it twice
    assert ind.identify(30, key="req-2") == clock.now + 30  # a new request starts the time again


def test_a_duplicate_arriving_after_the_end_starts_nothing() -> None:
    ind, _, clock = make()
    ind.identify(5, key="req-1")
    clock.now += 6
    ind.identify(5, key="req-1")
    assert not ind.identifying()


def test_identify_is_capped_at_an_hour() -> None:
    ind, _, clock = make()
    assert ind.identify(10 * MAX_IDENTIFY) == clock.now + MAX_IDENTIFY


def test_identify_outranks_every_state() -> None:
    ind, _, _ = make()
    ind.identify(30)
    worst = NodeState(broker_connected=False, master_ready=False, failing_pods=3, under_voltage=True)
    assert ind.update(worst).pattern is Pattern.IDENTIFY


def test_a_failing_pod_is_held_so_a_crash_loop_does_not_flicker() -> None:
    ind, driver, clock = make(hold=30)
    failing = dataclasses.replace(HEALTHY, failing_pods=1)
    ind.update(failing)  # CrashLoopBackOff
    clock.now += 2
    ind.update(HEALTHY)  # running again between two restarts
    clock.now += 27
    ind.update(HEALTHY)
    assert driver.shown == [Pattern.POD_FAILING]
    clock.now += 1
    ind.update(HEALTHY)  # 30 s without a failure
    assert driver.shown == [Pattern.POD_FAILING, Pattern.HEALTHY]


def test_status_reports_the_pattern_and_when_identify_ends() -> None:
    ind, _, _ = make()
    assert ind.status() == {"pattern": "Off", "description": "the agent is not driving the LEDs", "driver": "recorder"}
    ind.update(HEALTHY)
    ind.identify(30)
    assert ind.status() == {
        "pattern": "Identify",
        "description": "identify requested (ekctl node identify)",
        "driver": "recorder",
        "identifyUntil": "2023-11-14T22:13:50Z",  # wall 1_700_000_000 + 30 s
    }


def test_close_darkens_and_lets_the_driver_go() -> None:
    ind, driver, _ = make()
    ind.update(HEALTHY)
    ind.close()
    assert driver.shown == [Pattern.HEALTHY, Pattern.OFF]
    assert driver.closed


def test_a_driver_failing_mid_run_is_a_warning_and_the_pattern_still_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(Recorder):
        def show(self, show: Show) -> None:
            raise OSError(5, "Input/output error")

    broken = Broken()
    ind = Indicator(broken)
    with caplog.at_level(logging.WARNING):
        ind.update(HEALTHY)
        ind.update(dataclasses.replace(HEALTHY, failing_pods=1))
    assert isinstance(ind.driver, NoLeds)
    assert broken.closed
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    assert ind.status()["pattern"] == "PodFailing"


def test_identify_on_mock_pins_blinks_both_leds_then_goes_back() -> None:
    factory = MockFactory(pin_class=MockPWMPin)
    clock = Clock()
    ind = Indicator(GpioPair([17, 27], factory=factory), clock=clock)
    green, red = factory.pin(17), factory.pin(27)
    ind.update(HEALTHY)
    ind.identify(30)
    clock.now += 30
    ind.update(HEALTHY)
    ind.close()
    # healthy (green on), identify (both blinking: at least lit once each), healthy, off
    assert [s.state for s in green.states][:2] == [False, True]
    assert True in [s.state for s in red.states]
    assert (green.states[-1].state, red.states[-1].state) == (0, 0)
    factory.reset()


def test_a_pattern_asking_for_attention_and_its_end_are_node_events_queued_until_published() -> None:
    ind = Indicator(Recorder(), clock=Clock(), wall=lambda: 1_700_000_000.0, node="pi-1")
    ind.update(NodeState())  # starting, then healthy: a quiet node makes no events
    ind.update(HEALTHY)
    ind.update(dataclasses.replace(HEALTHY, broker_connected=False))
    ind.update(HEALTHY)
    failed: list[int] = []

    def broken(batch: list[dict[str, object]]) -> None:
        failed.append(len(batch))
        raise OSError("broker away")

    with pytest.raises(OSError, match="broker away"):
        ind.flush_events(broken)
    sent: list[dict[str, object]] = []
    assert ind.flush_events(sent.extend) == 2
    assert [(e["reason"], e["type"], e["message"]) for e in sent] == [
        ("LEDs", "Warning", "LEDs show CutOff: cut off from broker or master: running pods from the local copy"),
        ("LEDs", "Normal", "LEDs show Healthy: Ready, all pods healthy"),
    ]
    assert [sent[0]["involvedObject"][k] for k in ("kind", "name")] == ["Node", "pi-1"]  # type: ignore[index]
    assert ind.flush_events(sent.extend) == 0
