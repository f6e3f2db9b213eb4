"""The master's pass on the in-memory broker with injected clocks: self-healing end to end, and when nodes are NOT
judged.

The broker runs handlers inside each publish (MemoryBroker(inline=True)), so a message the test sends has been
handled when the call returns; `reconcile()` is called by the test, never by a background loop, so every step is
deterministic. Connection loss is the broker's: `outage()` and `recover()` (the master's connect hook runs then).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.bus import topics
from edgekube.master import app as app_module
from edgekube.master.app import Master
from edgekube.master.cache import CachedStore
from edgekube.master.config import MasterConfig
from edgekube.master.controllers.base import Action, Snapshot
from edgekube.master.controllers.registry import CONTROLLERS
from edgekube.master.encoding import encode_response, fitted
from edgekube.master.wiring import master_will
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
from tests.support.apiserver import Clock
from tests.support.membus import MemoryBroker

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


REPLY = "edgekube/v1/clients/t/reply"


class Cluster:
    """A master on an in-memory broker, and three nodes whose messages the test sends by hand (client "nodes")."""

    def __init__(self, tmp: Path, store: TinyStateStore, broker: MemoryBroker, clock: Clock) -> None:
        self.broker, self.clock = broker, clock
        config = MasterConfig(data_dir=tmp, node_timeout=2.0, pod_eviction_timeout=0.0)
        bus = broker.client(config.client_id, will=master_will(), persistent=True)
        self.master = Master(config, bus=bus, store=CachedStore(store), clock=clock, wall=clock.wall)
        self.master.start(loop=False)
        self.nodes = broker.client("nodes").start()

    def send(self, topic: str, payload: bytes, *, retain: bool = False, response_topic: str | None = None) -> None:
        self.nodes.publish(topic, payload, retain=retain, response_topic=response_topic)

    def presence(self, node: str, online: bool) -> None:
        """What an agent says on connecting (online) and its Last Will says (offline): retained, as agents do."""
        self.send(topics.node_online(node), Presence(online=online, boot_id="b").encode(), retain=True)

    def desired(self, node: str) -> NodeDesired | None:
        sent = self.broker.published(topics.node_desired(node))
        return NodeDesired.decode(sent[-1].payload) if sent else None

    def node_up(self, node: str, pods: list[dict[str, Any]] | None = None) -> None:
        self.presence(node, True)
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
        self.send(topics.node_status(node), report.encode())

    def beat(self, *nodes: str) -> None:
        for node in nodes:
            heartbeat = Heartbeat(node=node, boot_id="b", seq=1).encode()
            self.nodes.publish(topics.node_heartbeat(node), heartbeat, qos=0)  # as agents: lost while cut off

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
def broker() -> MemoryBroker:
    return MemoryBroker(inline=True)


@pytest.fixture
def store() -> Iterator[TinyStateStore]:
    backend = TinyStateStore(None)
    yield backend
    backend.close()


@pytest.fixture
def cluster(tmp_path: Path, store: TinyStateStore, broker: MemoryBroker, clock: Clock) -> Cluster:
    c = Cluster(tmp_path, store, broker, clock)
    for node in ("n1", "n2", "n3"):
        c.node_up(node)
    c.api(verb=Verb.APPLY, manifest=RC)
    c.pass_after(2.5, beating=("n1", "n2", "n3"))  # past the grace period after connecting
    return c


def test_an_rc_is_spread_and_dispatched(cluster: Cluster) -> None:
    placed = cluster.pods()
    assert sorted(list(placed.values()).count(n) for n in ("n1", "n2", "n3")) == [1, 1, 2]
    for node in ("n1", "n2", "n3"):
        desired = cluster.desired(node)
        assert desired is not None
        assert sorted(p["metadata"]["name"] for p in desired.pods) == sorted(k for k, v in placed.items() if v == node)


def test_a_dead_node_is_tainted_and_its_pods_replaced_once_its_will_settled(cluster: Cluster) -> None:
    victims = {k for k, v in cluster.pods().items() if v == "n1"}
    cluster.presence("n1", False)
    cluster.master.reconcile()
    assert cluster.pods()  # within the settle window nothing moves yet
    cluster.pass_after(0.25, beating=("n2", "n3"))
    placed = cluster.pods()
    assert victims.isdisjoint(placed)
    assert len(placed) == 4 and "n1" not in placed.values()
    assert cluster.master.store.peek("Node", "", "n1")["spec"]["taints"][0]["key"] == "node.kubernetes.io/not-ready"
    desired = cluster.desired("n1")
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
        cluster.presence(node, False)
        cluster.master.reconcile()
    cluster.pass_after(1.0)
    assert cluster.pods() == before


def test_a_returning_node_loses_its_taint_and_the_moved_pods_stay_put(cluster: Cluster) -> None:
    cluster.presence("n1", False)
    cluster.pass_after(0.25, beating=("n2", "n3"))
    moved = cluster.pods()
    assert "n1" not in moved.values()
    cluster.node_up("n1")
    cluster.pass_after(3, beating=("n1", "n2", "n3"))
    assert cluster.pods() == moved
    assert cluster.master.store.peek("Node", "", "n1")["spec"]["taints"] == []


def test_nothing_is_evicted_while_the_master_is_disconnected(cluster: Cluster) -> None:
    before = cluster.pods()
    cluster.broker.outage()
    cluster.pass_after(30, beating=("n1", "n2", "n3"))  # sent, but no heartbeat arrives while we are cut off
    assert cluster.pods() == before
    cluster.broker.recover()  # the master's connect hook runs: a full node timeout of grace
    cluster.pass_after(1.5)  # the grace: the nodes have not beaten yet
    assert cluster.pods() == before
    cluster.pass_after(1.0, beating=("n1", "n2", "n3"))
    assert cluster.pods() == before


def test_the_grace_after_connecting_then_judgement(cluster: Cluster) -> None:
    cluster.broker.outage()
    cluster.master.reconcile()
    cluster.broker.recover()
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
    cluster.send(topics.API_REQUEST, request, response_topic=REPLY)
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
    again = Cluster(tmp_path, store, MemoryBroker(inline=True), clock)  # a new broker too: nothing retained
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
    cluster.send(topics.node_events("n2"), EventReport(node="n2", events=[event]).encode())
    cluster.send(topics.node_events("n2"), EventReport(node="n3", events=[event]).encode())  # refused
    cluster.send(topics.node_events("n2"), b"not json")  # dropped
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
    def answers() -> list[bytes]:
        return [m.payload for m in cluster.broker.published(REPLY)]

    cluster.send(topics.API_REQUEST, ApiRequest(verb=Verb.LIST, kind="Node").encode(), response_topic=REPLY)
    assert len(answers()) == 1  # nothing written: answered at once
    scale = ApiRequest(verb=Verb.SCALE, kind="ReplicationController", name="web", replicas=5).encode()
    cluster.send(topics.API_REQUEST, scale, response_topic=REPLY)
    assert len(answers()) == 1  # written, not yet on flash: not yet answered
    cluster.master.commit()
    assert len(answers()) == 2
    assert ApiResponse.decode(answers()[-1]).ok
    cluster.send(topics.APPLY, RC.replace("replicas: 4", "replicas: 6").encode())
    assert cluster.broker.published(topics.APPLY_RESULT) == []
    cluster.master.reconcile()  # a pass commits too, then answers
    assert cluster.broker.published(topics.APPLY_RESULT) != []


def test_the_master_runs_the_registered_controllers_in_order(cluster: Cluster) -> None:
    assert [c.name for c in cluster.master.controllers] == [
        "node-lifecycle",
        "deployment",
        "replication",
        "endpoints",
        "pvc-protection",
        "persistentvolume-binder",
        "nfs-provisioner",
        "podcidr",
    ]


def test_a_registered_controller_plans_every_pass_and_sees_what_the_ones_before_it_wrote(
    tmp_path: Path, store: TinyStateStore, broker: MemoryBroker, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []

    class CountingPods:
        name = "counting-pods"

        def plan(self, snapshot: Snapshot) -> list[Action]:
            seen.append(len(snapshot.store.objects("Pod")))
            return []

    monkeypatch.setattr(app_module, "CONTROLLERS", (*CONTROLLERS, lambda setup: CountingPods()))
    c = Cluster(tmp_path, store, broker, clock)
    for node in ("n1", "n2", "n3"):
        c.node_up(node)
    assert seen == []
    c.api(verb=Verb.APPLY, manifest=RC)  # one pass: replication creates 4 pods, then the new controller plans
    assert seen == [4]
    c.master.reconcile()
    assert seen == [4, 4]


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
