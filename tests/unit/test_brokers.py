"""Broker lists (`--broker HOST:PORT`) and the failover order PahoBus follows (edgekube/bus/brokers.py)."""

from __future__ import annotations

import pytest

from edgekube.bus.brokers import Broker, Failover, parse_broker, resolve
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.model.errors import ValidationError

A, B, C = Broker("a", 1883), Broker("b", 1884), Broker("c", 1885)


@pytest.mark.parametrize(
    ("text", "broker"),
    [
        ("pi-1:1883", Broker("pi-1", 1883)),
        ("pi-1", Broker("pi-1", 1883)),
        ("192.168.1.20:8883", Broker("192.168.1.20", 8883)),
        ("[fd00::1]:1884", Broker("fd00::1", 1884)),
        ("[fd00::1]", Broker("fd00::1", 1883)),
        (" pi-2:1884 ", Broker("pi-2", 1884)),
    ],
)
def test_a_broker_is_host_and_optional_port(text: str, broker: Broker) -> None:
    assert parse_broker(text) == broker


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        (":1883", "Required value"),
        ("pi-1:http", "port must be a number"),
        ("pi-1:0", "port must be a number"),
        ("pi-1:70000", "port must be a number"),
        ("fd00::1", r"\[ADDRESS\]:PORT"),
        ("[fd00::1:1883", "in brackets"),
    ],
)
def test_a_bad_broker_is_refused_naming_the_flag_and_the_rule(text: str, rule: str) -> None:
    with pytest.raises(ValidationError, match=rf"^--broker .*{rule}"):
        parse_broker(text)


def test_an_ipv6_broker_prints_in_brackets() -> None:
    assert str(Broker("fd00::1", 1884)) == "[fd00::1]:1884"
    assert str(A) == "a:1883"


def test_the_list_keeps_its_order_and_drops_repeats() -> None:
    assert resolve(["b:1884", "a", "b:1884"], "x", 1) == (B, A)


def test_a_comma_separated_string_is_a_list_as_an_environment_variable_gives_it() -> None:
    assert resolve("a:1883, b:1884", "x", 1) == (A, B)


def test_without_brokers_the_list_is_host_and_port() -> None:
    assert resolve([], "h", 2000) == (Broker("h", 2000),)
    assert resolve("", "h", 2000) == (Broker("h", 2000),)


def test_bus_config_lists_host_port_first_then_its_fallbacks() -> None:
    config = BusConfig.on((A, B, C), client_id="x")
    assert (config.host, config.port, config.brokers) == ("a", 1883, (A, B, C))


def test_per_broker_gives_one_config_per_broker_without_fallbacks() -> None:
    config = BusConfig.on((A, B), client_id="master", persistent=True)
    split = config.per_broker()
    assert [c.brokers for c in split] == [(A,), (B,)]
    assert all(c.client_id == "master" and c.persistent for c in split)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_first_attempt_goes_to_the_first_broker() -> None:
    assert Failover((A, B, C)).attempt() == A


def test_a_failed_attempt_moves_to_the_next_broker_at_once_and_wraps_around() -> None:
    failover = Failover((A, B, C))
    tried, back_off = [], []
    for _ in range(4):
        tried.append(failover.attempt())
        failover.failed()
        back_off.append(failover.must_wait())  # paho asks after each failure, before the next attempt
    assert tried == [A, B, C, A]
    # B and C are tried without waiting; once all three failed in a row, every further attempt backs off first.
    assert back_off == [False, False, True, True]


def test_the_client_stays_on_a_working_broker_and_moves_on_only_when_it_is_lost() -> None:
    clock = Clock()
    failover = Failover((A, B), clock=clock)
    failover.attempt()
    failover.failed()  # A is down
    assert failover.attempt() == B
    failover.connected()
    clock.now += 60
    assert failover.current == B  # A may be back: the client does not return while B works
    failover.failed()  # B lost after a minute
    assert (failover.must_wait(), failover.attempt()) == (False, A)  # A at once, no back-off


def test_after_a_lost_connection_every_other_broker_is_tried_before_backing_off() -> None:
    clock = Clock()
    failover = Failover((A, B, C), clock=clock)
    failover.attempt()
    failover.connected()
    clock.now += 10
    failover.failed()  # A lost: it counts as tried
    order = []
    while not failover.must_wait():
        order.append(failover.attempt())
        failover.failed()
    assert order == [B, C]
    assert failover.attempt() == A


def test_a_single_broker_is_retried_with_a_back_off_as_before() -> None:
    clock = Clock()
    failover = Failover((A,), clock=clock)
    failover.attempt()
    failover.connected()
    clock.now += 10
    failover.failed()
    assert (failover.must_wait(), failover.attempt()) == (True, A)


def test_a_connection_dropped_at_once_does_not_restart_the_round() -> None:
    """A broker that accepts and drops the client at once must not make it bounce between brokers unthrottled."""
    clock = Clock()
    failover = Failover((A, B), stable=1.0, clock=clock)
    for _ in range(2):
        failover.attempt()
        failover.connected()
        clock.now += 0.1
        failover.failed()
    assert failover.must_wait()


def test_an_empty_list_is_refused() -> None:
    with pytest.raises(ValidationError, match="at least one MQTT broker"):
        Failover(())


def test_the_end_of_one_attempt_reported_twice_moves_on_once() -> None:
    """paho reports a keep-alive timeout twice; counting both would skip the next broker."""
    failover = Failover((A, B, C))
    failover.attempt()
    failover.connected()
    failover.failed()
    failover.failed()
    assert failover.attempt() == B


@pytest.mark.parametrize("bad", ["", "a/b+/c", "a/#/c", "a/b#", "nodes+/online"])
def test_a_bad_topic_filter_is_refused_when_subscribing_not_inside_a_later_connect(bad: str) -> None:
    bus = PahoBus(BusConfig(client_id="filter-check"))
    try:
        with pytest.raises(ValidationError, match="must be whole levels"):
            bus.subscribe(bad, lambda _msg: None)
    finally:
        bus.close()


@pytest.mark.parametrize("good", ["a/b", "a/+/c", "a/#", "#", "+", "edgekube/v1/nodes/+/online"])
def test_good_topic_filters_are_taken(good: str) -> None:
    bus = PahoBus(BusConfig(client_id="filter-check"))
    try:
        bus.subscribe(good, lambda _msg: None)
    finally:
        bus.close()
