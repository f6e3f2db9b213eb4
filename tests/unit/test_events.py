"""The in-memory event recorder: Kubernetes-style aggregation, a hard bound, agent reports validated, clock injected."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from edgekube.master.eventlog import EventLog, ObjectRef
from edgekube.model.errors import NotFoundError, ValidationError
from edgekube.model.event import Event
from edgekube.model.labels import parse_selector
from edgekube.model.wire import EventReport


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rec(clock: Clock) -> EventLog:
    return EventLog(capacity=5, clock=clock)


POD = ObjectRef("Pod", "web-abcde", "default", "uid-1")


def pod_event(rec: EventLog, reason: str = "Scheduled", message: str = "assigned", **kw: Any) -> dict[str, Any]:
    return rec.record(POD, reason, message, component=kw.pop("component", "default-scheduler"), **kw)


def test_a_recorded_event_has_kubernetes_shape_and_validates(rec: EventLog) -> None:
    event = pod_event(rec, host="node-2", type="Warning")
    assert event["involvedObject"] == {"kind": "Pod", "name": "web-abcde", "namespace": "default", "uid": "uid-1"}
    assert (event["reason"], event["message"], event["type"], event["count"]) == ("Scheduled", "assigned", "Warning", 1)
    assert event["source"] == {"component": "default-scheduler", "host": "node-2"}
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2026-11-28T10:00:00Z"
    assert event["metadata"]["namespace"] == "default"
    assert event["metadata"]["name"].startswith("web-abcde.")
    assert Event.from_dict(event).reason == "Scheduled"  # what `ekctl get events` can parse


def test_a_repeat_bumps_count_and_last_timestamp(rec: EventLog, clock: Clock) -> None:
    first = pod_event(rec)
    clock.advance(30)
    again = pod_event(rec)
    assert again is first
    assert (again["count"], again["firstTimestamp"], again["lastTimestamp"]) == (
        2,
        "2026-11-28T10:00:00Z",
        "2026-11-28T10:00:30Z",
    )
    assert len(rec) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"reason": "Killing"},
        {"message": "other"},
        {"type": "Warning"},
        {"component": "kubelet"},
        {"host": "node-9"},
    ],
)
def test_any_difference_in_the_key_is_a_new_event(rec: EventLog, change: dict[str, Any]) -> None:
    pod_event(rec)
    pod_event(rec, **change)
    assert len(rec) == 2
    assert [e["count"] for e in rec.list()] == [1, 1]


def test_another_object_is_another_event(rec: EventLog) -> None:
    rec.record(POD, "Scheduled", "assigned", component="s")
    rec.record(ObjectRef("Pod", "web-abcde", "default", "uid-2"), "Scheduled", "assigned", component="s")
    rec.record(ObjectRef("Pod", "web-abcde", "prod", "uid-1"), "Scheduled", "assigned", component="s")
    assert len(rec) == 3


def test_the_recorder_is_bounded_and_drops_the_least_recently_seen(rec: EventLog) -> None:
    for i in range(5):
        pod_event(rec, message=f"m{i}")
    pod_event(rec, message="m0")  # refreshed: now the newest
    pod_event(rec, message="m5")  # pushes out m1, the oldest untouched one
    assert len(rec) == 5
    assert sorted(e["message"] for e in rec.list()) == ["m0", "m2", "m3", "m4", "m5"]


def test_names_are_unique_and_gettable(rec: EventLog) -> None:
    a = pod_event(rec, message="a")
    b = pod_event(rec, message="b")
    assert a["metadata"]["name"] != b["metadata"]["name"]
    assert rec.get("default", a["metadata"]["name"])["message"] == "a"
    with pytest.raises(NotFoundError, match="Event default/nope not found"):
        rec.get("default", "nope")


def test_a_dropped_event_is_no_longer_gettable(rec: EventLog) -> None:
    first = pod_event(rec, message="first")
    for i in range(5):
        pod_event(rec, message=f"m{i}")
    with pytest.raises(NotFoundError):
        rec.get("default", first["metadata"]["name"])


def test_cluster_scoped_objects_have_their_events_in_default(rec: EventLog) -> None:
    event = rec.record(ObjectRef("Node", "node-1"), "NodeNotReady", "gone", component="node-controller")
    assert event["metadata"]["namespace"] == "default"
    assert event["involvedObject"] == {"kind": "Node", "name": "node-1", "namespace": ""}


def test_record_takes_a_stored_object(rec: EventLog) -> None:
    stored = {"kind": "ReplicationController", "metadata": {"name": "web", "namespace": "prod", "uid": "u"}}
    event = rec.record(stored, "SuccessfulCreate", "Created pod: web-x", component="replication-controller")
    assert event["involvedObject"] == {"kind": "ReplicationController", "name": "web", "namespace": "prod", "uid": "u"}


def test_list_filters_by_namespace_and_sorts_by_last_timestamp(rec: EventLog, clock: Clock) -> None:
    pod_event(rec, message="old")
    clock.advance(1)
    rec.record(ObjectRef("Pod", "db", "prod"), "Scheduled", "x", component="s")
    clock.advance(1)
    pod_event(rec, message="new")
    clock.advance(1)
    pod_event(rec, message="old")  # seen again: now the newest
    assert [e["message"] for e in rec.list("default")] == ["new", "old"]
    assert [e["metadata"]["namespace"] for e in rec.list()] == ["default", "default", "prod"]
    assert rec.list("nowhere") == []
    assert rec.list(None, parse_selector("app=web")) == []  # events carry no labels
    assert len(rec.list(None, parse_selector(""))) == 3


def test_listed_events_are_copies(rec: EventLog) -> None:
    pod_event(rec)
    [listed] = rec.list()
    listed["count"] = 99
    listed["involvedObject"]["name"] = "x"
    assert rec.list()[0]["count"] == 1
    assert rec.list()[0]["involvedObject"]["name"] == "web-abcde"


def test_about_returns_one_objects_events(rec: EventLog) -> None:
    pod_event(rec, message="a")
    rec.record(ObjectRef("Pod", "other", "default"), "Scheduled", "b", component="s")
    pod_event(rec, reason="Started", message="c")
    assert [e["message"] for e in rec.about("Pod", "default", "web-abcde")] == ["a", "c"]
    assert rec.about("Node", "", "web-abcde") == []


# -- from agents ------------------------------------------------------------------------------------------------


def agent_event(name: str = "web-abcde.1", count: int = 1, **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web-abcde", "namespace": "default", "uid": "uid-1"},
        "reason": "BackOff",
        "message": "Back-off restarting failed container web",
        "type": "Warning",
        "source": {"component": "edgekube-agent", "host": "node-1"},
        "count": count,
        "firstTimestamp": "2026-11-28T09:59:00Z",
        "lastTimestamp": "2026-11-28T09:59:30Z",
    }
    event.update(fields)
    return event


def test_an_agent_event_is_kept_with_its_own_name_count_and_times(rec: EventLog) -> None:
    assert rec.ingest("node-1", EventReport(node="node-1", events=[agent_event(count=3)])) == 1
    [event] = rec.list()
    assert event["metadata"]["name"] == "web-abcde.1"
    assert (event["count"], event["firstTimestamp"], event["lastTimestamp"]) == (
        3,
        "2026-11-28T09:59:00Z",
        "2026-11-28T09:59:30Z",
    )
    assert event["source"] == {"component": "edgekube-agent", "host": "node-1"}


def test_an_agent_resending_its_aggregated_event_sets_the_count(rec: EventLog) -> None:
    rec.ingest("node-1", EventReport(node="node-1", events=[agent_event(count=3)]))
    again = agent_event(count=5, lastTimestamp="2026-11-28T10:00:00Z")
    rec.ingest("node-1", EventReport(node="node-1", events=[again]))
    [event] = rec.list()
    assert (event["count"], event["lastTimestamp"]) == (5, "2026-11-28T10:00:00Z")


def test_the_same_event_under_another_name_adds_up(rec: EventLog) -> None:
    rec.ingest("node-1", EventReport(node="node-1", events=[agent_event("a.1", count=2)]))
    rec.ingest("node-1", EventReport(node="node-1", events=[agent_event("a.2", count=1)]))
    [event] = rec.list()
    assert event["count"] == 3


def test_the_host_defaults_to_the_sending_node(rec: EventLog) -> None:
    rec.ingest("node-1", EventReport(node="node-1", events=[agent_event(source={"component": "edgekube-agent"})]))
    assert rec.list()[0]["source"]["host"] == "node-1"


def test_a_report_for_another_node_is_refused(rec: EventLog) -> None:
    with pytest.raises(ValidationError, match="node: 'node-2' does not match the topic's node 'node-1'"):
        rec.ingest("node-1", EventReport(node="node-2", events=[agent_event()]))
    assert len(rec) == 0


@pytest.mark.parametrize(
    ("bad", "logged"),
    [
        (agent_event(source={"component": "edgekube-agent", "host": "node-2"}), "is not the sending node 'node-1'"),
        (agent_event(reason=None), "reason"),
        (agent_event(count=0), "count"),
        (agent_event(bogus=1), "bogus: not supported"),
        ({"metadata": {"name": "x"}}, "involvedObject: Required value"),
        (agent_event(metadata={"name": "Bad Name"}), "metadata.name"),
    ],
)
def test_bad_agent_events_are_dropped_and_logged_the_rest_kept(
    rec: EventLog, bad: dict[str, Any], logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="edgekube.master.eventlog"):
        kept = rec.ingest("node-1", EventReport(node="node-1", events=[bad, agent_event()]))
    assert kept == 1
    assert [e["metadata"]["name"] for e in rec.list()] == ["web-abcde.1"]
    assert "dropped event 0 from node node-1" in caplog.text
    assert logged in caplog.text


def test_a_capacity_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity"):
        EventLog(capacity=0)
