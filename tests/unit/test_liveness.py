"""Node liveness from presence (Last Will) and heartbeat age, driven by a fake clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from edgekube.master.liveness import Health, Liveness


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def live(clock: FakeClock) -> Liveness:
    return Liveness(timeout=4.0, clock=clock)


def test_an_unknown_node_is_not_ready(live: Liveness) -> None:
    assert not live.ready("pi-1")
    assert live.reason("pi-1") == "NodeStatusUnknown: the agent has not been heard from since the master started"
    assert live.heartbeat_age("pi-1") is None
    assert live.usage("pi-1") == {}


def test_presence_online_makes_a_node_ready(live: Liveness) -> None:
    live.presence("pi-1", True, "boot-1")
    assert live.ready("pi-1")
    assert live.reason("pi-1") == "AgentReady: heartbeats arriving"
    assert live.heartbeat_age("pi-1") == 0.0


def test_the_last_will_makes_a_node_not_ready_once_it_settled(live: Liveness, clock: FakeClock) -> None:
    live.presence("pi-1", True, "boot-1")
    live.heartbeat("pi-1", "boot-1", {}, 1)
    clock.advance(0.5)
    live.presence("pi-1", False)
    # A broker shutting down sends every Will a moment before it drops the master: wait for the rest of them.
    assert live.ready("pi-1")
    assert live.next_expiry() == pytest.approx(clock() + live.will_settle)
    clock.advance(live.will_settle)
    assert not live.ready("pi-1")
    assert live.reason("pi-1") == "AgentOffline: the agent disconnected (Last Will received)"


def test_an_offline_presence_for_an_unknown_node_is_not_ready(live: Liveness) -> None:
    live.presence("pi-1", False)
    assert not live.ready("pi-1")
    assert live.reason("pi-1").startswith("AgentOffline: ")


@pytest.mark.parametrize(
    ("silence", "ready"),
    [(0.0, True), (3.9, True), (4.0, True), (4.1, False), (60.0, False)],
)
def test_ready_while_the_last_heartbeat_is_within_the_timeout(
    live: Liveness, clock: FakeClock, silence: float, ready: bool
) -> None:
    live.presence("pi-1", True, "boot-1")
    live.heartbeat("pi-1", "boot-1", {}, 1)
    clock.advance(silence)
    assert live.ready("pi-1") is ready
    assert live.heartbeat_age("pi-1") == pytest.approx(silence)


def test_a_heartbeat_timeout_gives_the_age_and_the_timeout(live: Liveness, clock: FakeClock) -> None:
    live.presence("pi-1", True, "boot-1")
    clock.advance(12.34)
    assert live.reason("pi-1") == "NodeStatusUnknown: no heartbeat for 12.3s (timeout 4s)"


def test_a_heartbeat_revives_a_timed_out_node(live: Liveness, clock: FakeClock) -> None:
    live.presence("pi-1", True, "boot-1")
    clock.advance(10)
    assert not live.ready("pi-1")
    live.heartbeat("pi-1", "boot-1", {"cpu": 0.5}, 2)
    assert live.ready("pi-1")
    assert live.reason("pi-1") == "AgentReady: heartbeats arriving"


def test_a_heartbeat_proves_the_agent_is_up_even_after_a_lost_presence(live: Liveness) -> None:
    live.presence("pi-1", False)
    live.heartbeat("pi-1", "boot-2", {}, 0)
    assert live.ready("pi-1")


def test_a_heartbeat_alone_makes_a_node_ready(live: Liveness) -> None:
    live.heartbeat("pi-1", "boot-1", {"cpu": 0.25, "memory": 1e9}, 5)
    assert live.ready("pi-1")
    assert live.usage("pi-1") == {"cpu": 0.25, "memory": 1e9}


def test_usage_is_a_copy_and_replaced_by_each_heartbeat(live: Liveness) -> None:
    sent = {"cpu": 0.25}
    live.heartbeat("pi-1", "b", sent, 1)
    sent["cpu"] = 9.0
    got = live.usage("pi-1")
    got["cpu"] = 7.0
    assert live.usage("pi-1") == {"cpu": 0.25}
    live.heartbeat("pi-1", "b", {"memory": 1.0}, 2)
    assert live.usage("pi-1") == {"memory": 1.0}


def test_nodes_are_independent(live: Liveness, clock: FakeClock) -> None:
    live.presence("pi-1", True)
    clock.advance(3)
    live.presence("pi-2", True)
    clock.advance(2)
    assert (live.ready("pi-1"), live.ready("pi-2")) == (False, True)


def test_an_offline_node_stays_not_ready_whatever_the_time(live: Liveness, clock: FakeClock) -> None:
    live.presence("pi-1", True)
    live.presence("pi-1", False)
    for _ in range(3):
        clock.advance(1)
        assert not live.ready("pi-1")


def test_the_default_clock_is_monotonic() -> None:
    live = Liveness()
    live.heartbeat("pi-1", "b", {}, 0)
    assert live.ready("pi-1")
    age = live.heartbeat_age("pi-1")
    assert age is not None and 0 <= age < live.timeout


# -- health, reset, next expiry -----------------------------------------------------------------------------------


def test_health_tells_a_fired_will_from_stopped_heartbeats(live: Liveness, clock: FakeClock) -> None:
    assert live.health("never-seen") is Health.UNREACHABLE
    live.presence("pi-1", True, "b")
    live.presence("pi-2", True, "b")
    assert live.health("pi-1") is Health.READY
    live.presence("pi-1", False)
    assert live.health("pi-1") is Health.READY  # settling: more Wills may be on their way
    clock.advance(live.will_settle)
    assert live.health("pi-1") is Health.OFFLINE
    clock.advance(4.01)
    assert live.health("pi-2") is Health.UNREACHABLE
    assert live.health("pi-1") is Health.OFFLINE


def test_reset_gives_every_online_node_a_full_timeout_again(live: Liveness, clock: FakeClock) -> None:
    live.presence("pi-1", True, "b")
    live.presence("gone", True, "b")
    live.presence("gone", False)
    clock.advance(10)
    assert not live.ready("pi-1")
    live.reset()
    assert live.ready("pi-1")
    assert live.health("gone") is Health.OFFLINE  # a Will is news, not a missed heartbeat
    clock.advance(4.01)
    assert not live.ready("pi-1")


def test_next_expiry_is_when_the_first_ready_node_would_turn_stale(live: Liveness, clock: FakeClock) -> None:
    assert live.next_expiry() is None
    live.presence("pi-1", True, "b")
    clock.advance(1)
    live.heartbeat("pi-2", "b", {}, 1)
    assert live.next_expiry() == 1004.0
    clock.advance(3.5)
    assert live.next_expiry() == 1005.0  # pi-1 already stale: it no longer counts
    clock.advance(1)
    assert live.next_expiry() is None


# -- the Ready condition the API shows ----------------------------------------------------------------------------


def stored_node(name: str = "pi-1") -> dict[str, Any]:
    return {
        "kind": "Node",
        "metadata": {"name": name},
        "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "DiskPressure", "status": "False"}]},
    }


def test_a_node_shows_the_live_ready_condition_in_place_of_the_stored_one(live: Liveness) -> None:
    live.heartbeat("pi-1", "boot", {"cpu": 0.5}, 1)
    node = stored_node()
    shown = live.decorate(node)
    assert shown["status"]["conditions"] == [
        {"type": "DiskPressure", "status": "False"},
        {"type": "Ready", "status": "True", "reason": "AgentReady", "message": "heartbeats arriving"},
    ]
    assert shown["usage"] == {"cpu": 0.5}
    assert node == stored_node()  # the stored object is not changed


@pytest.mark.parametrize(
    ("offline", "status", "reason"),
    [(False, "Unknown", "NodeStatusUnknown"), (True, "False", "AgentOffline")],
    ids=["never-heard-of", "will-fired"],
)
def test_a_node_that_is_not_ready_says_why(live: Liveness, offline: bool, status: str, reason: str) -> None:
    if offline:
        live.presence("pi-1", online=True)
        live.presence("pi-1", online=False)
        live.will_settle = 0.0
    [ready] = [c for c in live.decorate(stored_node())["status"]["conditions"] if c["type"] == "Ready"]
    assert (ready["status"], ready["reason"]) == (status, reason)
    assert "usage" not in live.decorate(stored_node())
