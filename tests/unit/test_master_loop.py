"""The master's pass with a fake bus and injected clocks: self-healing end to end, and when nodes are NOT judged.

Messages are delivered synchronously to the master's handlers; `reconcile()` is called by the test, never by a
background loop, so every step is deterministic.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.bus import topics
from edgekube.bus.protocol import Handler, Message
from edgekube.master.app import Master, MasterConfig, encode_response, fitted
from edgekube.model.wire import (
    MAX_PAYLOAD_BYTES,
    ApiRequest,
    ApiResponse,
    ErrorInfo,
    EventReport,
    Heartbeat,
    NodeDesired,
    NodeReport,
    Presence,
    Verb,
)
from edgekube.store.state import TinyStateStore

RC = """
apiVersion: v1
kind: ReplicationController
metadata: {name: web}
spec:
  replicas: 4
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: busybox:1.36}]}
"""


class FakeBus:
    """Just enough MessageBus: handlers by topic filter (with +); publishes are recorded, and delivered back
    at once to matching subscriptions like a broker would (the master's self-ping comes back that way)."""

    def __init__(self) -> None:
        self.connected = True
        self.subs: list[tuple[str, Handler]] = []
        self.published: list[tuple[str, bytes]] = []

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        self.subs.append((topic_filter, handler))

    def publish(self, topic: str, payload: bytes, **_: Any) -> None:
        self.published.append((topic, payload))
        if "/master/ping/" in topic:
            self.deliver(topic, payload)

    def request(self, topic: str, payload: bytes, timeout: float = 5.0) -> Message:
        raise NotImplementedError

    def close(self) -> None:
        self.connected = False

    def deliver(self, topic: str, payload: bytes, response_topic: str | None = None) -> None:
        for topic_filter, handler in self.subs:
            pattern, parts = topic_filter.split("/"), topic.split("/")
            if len(pattern) == len(parts) and all(p in ("+", t) for p, t in zip(pattern, parts, strict=True)):
                handler(Message(topic=topic, payload=payload, response_topic=response_topic))

    def desired(self, node: str) -> NodeDesired | None:
        sent = [p for t, p in self.published if t == topics.node_desired(node)]
        return NodeDesired.decode(sent[-1]) if sent else None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return 1_800_000_000.0 + self.now


class Cluster:
    """A master on a fake bus and three nodes whose messages the test sends by hand."""

    def __init__(self, tmp: Path, store: TinyStateStore, bus: FakeBus, clock: Clock) -> None:
        self.bus, self.clock, self.store = bus, clock, store
        config = MasterConfig(data_dir=tmp, node_timeout=2.0, pod_eviction_timeout=0.0)
        self.master = Master(config, store=store, bus=bus, clock=clock, wall=clock.wall).start(loop=False)
        self.answers: list[ApiResponse] = []

    def node_up(self, node: str, pods: list[dict[str, Any]] | None = None) -> None:
        self.bus.deliver(topics.node_online(node), Presence(online=True, boot_id="b").encode())
        report = NodeReport(
            node=node,
            boot_id="b",
            node_object={
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": node},
                "status": {"allocatable": {"cpu": "4", "memory": "4Gi", "pods": 110}},
            },
            pods=pods or [],
        )
        self.bus.deliver(topics.node_status(node), report.encode())

    def beat(self, *nodes: str) -> None:
        for node in nodes:
            self.bus.deliver(topics.node_heartbeat(node), Heartbeat(node=node, boot_id="b", seq=1).encode())

    def api(self, **fields: Any) -> ApiResponse:
        answer = self.master.api.handle(ApiRequest(**fields))
        self.master.reconcile()
        return answer

    def pods(self) -> dict[str, str]:
        """name → node."""
        return {name: p["spec"].get("nodeName", "") for (_, name), p in self.master.store.objects("Pod").items()}

    def pass_after(self, seconds: float, beating: tuple[str, ...] = ()) -> None:
        """Let time pass in small steps, heartbeats from `beating`, with a reconcile pass per step."""
        steps = max(1, round(seconds / 0.25))
        for _ in range(steps):
            self.clock.now += seconds / steps
            self.beat(*beating)
            self.master.ping()
            self.master.reconcile()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def bus() -> FakeBus:
    return FakeBus()


@pytest.fixture
def store() -> Iterator[TinyStateStore]:
    backend = TinyStateStore(None)
    yield backend
    backend.close()


@pytest.fixture
def cluster(tmp_path: Path, store: TinyStateStore, bus: FakeBus, clock: Clock) -> Cluster:
    c = Cluster(tmp_path, store, bus, clock)
    for node in ("n1", "n2", "n3"):
        c.node_up(node)
    c.api(verb=Verb.APPLY, manifest=RC)
    c.pass_after(2.5, beating=("n1", "n2", "n3"))  # past the grace period after connecting
    return c


def test_an_rc_is_spread_and_dispatched(cluster: Cluster) -> None:
    placed = cluster.pods()
    assert sorted(list(placed.values()).count(n) for n in ("n1", "n2", "n3")) == [1, 1, 2]
    for node in ("n1", "n2", "n3"):
        desired = cluster.bus.desired(node)
        assert desired is not None
        assert sorted(p["metadata"]["name"] for p in desired.pods) == sorted(k for k, v in placed.items() if v == node)


def test_a_dead_node_is_tainted_and_its_pods_replaced_once_its_will_settled(cluster: Cluster) -> None:
    victims = {k for k, v in cluster.pods().items() if v == "n1"}
    cluster.bus.deliver(topics.node_online("n1"), Presence(online=False).encode())
    cluster.master.reconcile()
    assert cluster.pods()  # within the settle window nothing moves yet
    cluster.pass_after(0.25, beating=("n2", "n3"))
    placed = cluster.pods()
    assert victims.isdisjoint(placed)
    assert len(placed) == 4 and "n1" not in placed.values()
    assert cluster.master.store.peek("Node", "", "n1")["spec"]["taints"][0]["key"] == "node.kubernetes.io/not-ready"
    desired = cluster.bus.desired("n1")
    assert desired is not None and desired.pods == []  # fencing: when n1 returns, it stops the old copies
    reasons = [e["reason"] for e in cluster.master.events.list()]
    assert reasons.count("TaintManagerEviction") == len(victims)


def test_stopped_heartbeats_evict_after_the_node_timeout(cluster: Cluster) -> None:
    before = cluster.pods()
    cluster.pass_after(1.75, beating=("n2", "n3"))
    assert cluster.pods() == before
    cluster.pass_after(0.5, beating=("n2", "n3"))
    assert "n1" not in cluster.pods().values()
    taint = cluster.master.store.peek("Node", "", "n1")["spec"]["taints"][0]
    assert taint["key"] == "node.kubernetes.io/unreachable"


def test_wills_of_most_nodes_at_once_evict_nothing(cluster: Cluster) -> None:
    """A broker shutting down gracefully publishes every client's Will just before it drops the master."""
    before = cluster.pods()
    for node in ("n1", "n2", "n3"):
        cluster.bus.deliver(topics.node_online(node), Presence(online=False).encode())
        cluster.master.reconcile()
    cluster.pass_after(1.0)
    assert cluster.pods() == before


def test_a_returning_node_loses_its_taint_and_the_moved_pods_stay_put(cluster: Cluster) -> None:
    cluster.bus.deliver(topics.node_online("n1"), Presence(online=False).encode())
    cluster.pass_after(0.25, beating=("n2", "n3"))
    moved = cluster.pods()
    assert "n1" not in moved.values()
    cluster.node_up("n1")
    cluster.pass_after(3, beating=("n1", "n2", "n3"))
    assert cluster.pods() == moved
    assert cluster.master.store.peek("Node", "", "n1")["spec"]["taints"] == []


def test_nothing_is_evicted_while_the_master_is_disconnected(cluster: Cluster) -> None:
    before = cluster.pods()
    cluster.bus.connected = False
    cluster.pass_after(30)  # no heartbeats arrive while we are cut off
    assert cluster.pods() == before
    cluster.bus.connected = True
    hook = cluster.master._on_connected  # what PahoBus runs after every reconnection
    hook(Message(topic="", payload=b""))
    cluster.pass_after(1.5)  # the grace: the nodes have not beaten yet
    assert cluster.pods() == before
    cluster.pass_after(1.0, beating=("n1", "n2", "n3"))
    assert cluster.pods() == before


def test_the_grace_after_connecting_then_judgement(cluster: Cluster) -> None:
    cluster.bus.connected = False
    cluster.master.reconcile()
    cluster.bus.connected = True
    cluster.master._on_connected(Message(topic="", payload=b""))  # what PahoBus runs after a reconnection
    cluster.pass_after(1.5, beating=("n2", "n3"))
    assert "n1" in cluster.pods().values()  # judged only a full node_timeout after connecting
    cluster.pass_after(1.0, beating=("n2", "n3"))
    assert "n1" not in cluster.pods().values()


def test_nodes_are_not_judged_while_the_masters_own_messages_lag(
    cluster: Cluster, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = cluster.pods()
    real: Callable[[ApiRequest], ApiResponse] = cluster.master.api.handle

    def slow(req: ApiRequest) -> ApiResponse:
        clock.now += 5  # e.g. a 10,000-pod apply: heartbeats (and the self-ping) queue up behind it
        return real(req)

    monkeypatch.setattr(cluster.master.api, "handle", slow)
    request = ApiRequest(verb=Verb.LIST, kind="Pod").encode()
    cluster.bus.deliver(topics.API_REQUEST, request, response_topic="edgekube/v1/clients/t/reply")
    cluster.master.reconcile()  # the newest echo is 5 s old: heartbeats this old prove nothing
    assert cluster.pods() == before
    assert not cluster.master.judging()
    cluster.pass_after(0.5, beating=("n1", "n2", "n3"))  # the queued heartbeats, then the ping, come through
    assert cluster.master.judging()
    assert cluster.pods() == before


def test_without_an_echo_of_its_ping_the_master_judges_nobody(cluster: Cluster, clock: Clock) -> None:
    before = cluster.pods()
    for _ in range(12):  # 3 s of heartbeats from n2/n3 only, but no ping comes back (e.g. a broker ACL)
        clock.now += 0.25
        cluster.beat("n2", "n3")
        cluster.master.reconcile()
    assert cluster.pods() == before
    cluster.pass_after(0.75, beating=("n2", "n3"))  # echoes again: now n1's silence counts
    assert "n1" not in cluster.pods().values()


def test_heartbeat_ages_run_on_the_echo_watermark(cluster: Cluster, clock: Clock) -> None:
    """A heartbeat handled late is stamped with the newest echo, not the moment the master got to it."""
    cluster.pass_after(0.25, beating=("n1", "n2", "n3"))
    assert cluster.master.liveness.ready("n1")
    clock.now += 10  # the master was busy: no echo came through meanwhile
    assert cluster.master.liveness.ready("n1")  # ten seconds of our own lag are not n1's silence
    assert not cluster.master.judging()


def test_too_many_nodes_down_at_once_evicts_nothing(cluster: Cluster) -> None:
    before = cluster.pods()
    cluster.pass_after(3, beating=("n3",))  # 2 of 3 silent: more likely our own network
    assert cluster.pods() == before
    reasons = {e["reason"] for e in cluster.master.events.list()}
    assert "EvictionsSuspended" in reasons


def test_a_master_restart_on_the_same_store_changes_nothing(
    cluster: Cluster, tmp_path: Path, store: TinyStateStore, clock: Clock
) -> None:
    before = {p["metadata"]["uid"] for p in cluster.master.store.objects("Pod").values()}
    fresh_bus = FakeBus()
    again = Cluster(tmp_path, store, fresh_bus, clock)
    again.pass_after(1.0)  # nobody heard from yet: still within the grace
    for node in ("n1", "n2", "n3"):
        again.node_up(node)
    again.pass_after(3, beating=("n1", "n2", "n3"))
    assert {p["metadata"]["uid"] for p in again.master.store.objects("Pod").values()} == before
    assert not any(e["reason"] in ("TaintManagerEviction", "SuccessfulCreate") for e in again.master.events.list())


def test_agent_events_arrive_over_the_events_topic(cluster: Cluster) -> None:
    event = {
        "metadata": {"name": "web.1", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
        "reason": "Started",
        "message": "Started container web",
        "source": {"component": "edgekube-agent"},
    }
    cluster.bus.deliver(topics.node_events("n2"), EventReport(node="n2", events=[event]).encode())
    cluster.bus.deliver(topics.node_events("n2"), EventReport(node="n3", events=[event]).encode())  # refused
    cluster.bus.deliver(topics.node_events("n2"), b"not json")  # dropped
    started = [e for e in cluster.master.events.list() if e["reason"] == "Started"]
    assert [(e["source"]["host"], e["count"]) for e in started] == [("n2", 1)]


def test_unschedulable_pods_get_one_failed_scheduling_event(cluster: Cluster) -> None:
    cluster.api(verb=Verb.SCALE, kind="ReplicationController", name="web", replicas=5)
    for node in ("n1", "n2", "n3"):
        cluster.api(verb=Verb.CORDON, name=node)
    cluster.api(verb=Verb.SCALE, kind="ReplicationController", name="web", replicas=6)
    cluster.pass_after(2, beating=("n1", "n2", "n3"))
    failed = [e for e in cluster.master.events.list() if e["reason"] == "FailedScheduling"]
    assert [e["message"] for e in failed] == ["0/3 nodes are available: 3 node(s) were unschedulable."]
    assert failed[0]["count"] == 1
    assert failed[0]["type"] == "Warning"


def test_answers_to_writes_wait_for_the_group_commit_reads_do_not(cluster: Cluster) -> None:
    reply = "edgekube/v1/clients/t/reply"

    def answers() -> list[bytes]:
        return [p for t, p in cluster.bus.published if t == reply]

    cluster.bus.deliver(topics.API_REQUEST, ApiRequest(verb=Verb.LIST, kind="Node").encode(), response_topic=reply)
    assert len(answers()) == 1  # nothing written: answered at once
    scale = ApiRequest(verb=Verb.SCALE, kind="ReplicationController", name="web", replicas=5).encode()
    cluster.bus.deliver(topics.API_REQUEST, scale, response_topic=reply)
    assert len(answers()) == 1  # written, not yet on flash: not yet answered
    cluster.master.commit()
    assert len(answers()) == 2
    assert ApiResponse.decode(answers()[-1]).ok
    cluster.bus.deliver(topics.APPLY, RC.replace("replicas: 4", "replicas: 6").encode())
    results = [p for t, p in cluster.bus.published if t == topics.APPLY_RESULT]
    assert results == []
    cluster.master.reconcile()  # a pass commits too, then answers
    assert [p for t, p in cluster.bus.published if t == topics.APPLY_RESULT] != []


@pytest.mark.parametrize(
    "response",
    [
        ApiResponse(ok=True, items=[{"kind": "Pod", "metadata": {"name": "a", "labels": {"x": "1"}}}, {"n": [1, 2.5]}]),
        ApiResponse(ok=True, object={"kind": "Node", "status": {"conditions": []}}, outcomes=[]),
        ApiResponse(ok=True, items=[]),
        ApiResponse(ok=False, error=ErrorInfo(reason="NotFound", message="Pod default/x not found")),
    ],
)
def test_answers_are_encoded_as_the_wire_model_would(response: ApiResponse) -> None:
    encoded = encode_response(response)
    assert ApiResponse.decode(encoded) == response
    assert json.loads(encoded) == json.loads(response.encode())


def test_an_answer_over_the_message_limit_becomes_an_error_saying_so() -> None:
    small = b'{"schema":"edgekube/v1","ok":true}'
    assert fitted(small) == small
    big = ApiResponse.decode(fitted(b"x" * (MAX_PAYLOAD_BYTES + 1)))
    assert not big.ok and big.error is not None
    assert "over the 1048576-byte message limit" in big.error.message and "pages" in big.error.hint
