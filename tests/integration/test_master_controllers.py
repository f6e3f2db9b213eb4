"""The self-healing master on a real Mosquitto with simulated nodes: replication, scheduling, node failures.

Each test runs its own broker, an in-process Master on a temporary data dir (node_timeout 2 s, pod eviction
at once) and three simulated agents on one MQTT connection (tests/support/simnodes.py) that report every pod
they are given as Running + Ready 50 ms later; tests/integration/test_simnodes_contract.py holds the simulation
to what the real agent sends. Requests go over MQTT as `ekctl` sends them. Tests assert outcomes and the order
of what the master recorded (its events), not how long it took: benchmarks/failover.py times failover on
real agents. The tests that lean most on the protocol (presence and Last Will, retained desired state, a master
that comes back) run on rumqttd too (`on_every_broker`, tests/support/broker.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edgekube.master.app import Master
from edgekube.master.config import MasterConfig
from edgekube.master.wiring import build_master
from edgekube.model.wire import ApiRequest, ApiResponse, Verb
from tests.support.broker import AnyBroker, on_every_broker
from tests.support.cluster import ApiClient, wait_for
from tests.support.simnodes import SimNodes

pytestmark = pytest.mark.integration

NODES = ("node-1", "node-2", "node-3")
RC = """
apiVersion: v1
kind: ReplicationController
metadata: {name: web}
spec:
  replicas: %d
  selector: {app: web}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: busybox:1.36}]
"""


@dataclass
class Env:
    broker: AnyBroker
    data_dir: Path
    master: Master
    sims: SimNodes
    client: ApiClient

    def call(self, **fields: Any) -> ApiResponse:
        response = self.client.call(ApiRequest(**fields))
        assert response.ok, response.error
        return response

    def pods(self, selector: str | None = None) -> list[dict[str, Any]]:
        return self.call(verb=Verb.LIST, kind="Pod", selector=selector).items or []

    def running(self) -> dict[str, set[str]]:
        """Pods each simulated node reports Running, by node."""
        return {n: self.sims.running(n) for n in NODES}

    def all_running(self, count: int, on: tuple[str, ...] = NODES, dead: str = "") -> dict[str, set[str]] | None:
        """The running sets when exactly `count` pods run, all on `on`, and the store agrees; else None.

        A `dead` node still "runs" what it had (it cannot hear that its pods moved): it is not looked at.
        """
        running = self.running()
        names = {p for n in on for p in running[n]}
        stray = {p for n in NODES if n not in on and n != dead for p in running[n]}
        stored = {f"{p['metadata']['namespace']}/{p['metadata']['name']}" for p in self.pods()}
        return running if len(names) == count and not stray and stored == names else None

    def rc(self, name: str) -> dict[str, Any]:
        return self.call(verb=Verb.GET, kind="ReplicationController", name=name).object or {}

    def spread(self) -> list[int]:
        return sorted(len(s) for s in self.running().values())

    def events(self, reason: str) -> list[dict[str, Any]]:
        return [e for e in self.call(verb=Verb.LIST, kind="Event").items or [] if e["reason"] == reason]

    def history(self) -> list[tuple[str, str, str]]:
        """(reason, involved object's name, message) of every event, in the order the master recorded them."""
        events = self.call(verb=Verb.LIST, kind="Event").items or []
        events.sort(key=lambda e: int(e["metadata"]["resourceVersion"]))
        return [(e["reason"], e["involvedObject"]["name"], e["message"]) for e in events]

    def node_ready(self, name: str) -> bool:
        node = self.client.call(ApiRequest(verb=Verb.GET, kind="Node", name=name)).object or {}  # None: not yet
        ready = [c for c in node.get("status", {}).get("conditions", []) if c["type"] == "Ready"]
        return bool(ready and ready[0]["status"] == "True")


def start_master(broker: AnyBroker, data_dir: Path) -> Master:
    config = MasterConfig(mqtt_port=broker.port, data_dir=data_dir, node_timeout=2.0, resync_interval=0.5)
    return build_master(config).start(wait=10)


@pytest.fixture
def env(broker: AnyBroker, tmp_path: Path) -> Iterator[Env]:
    master = start_master(broker, tmp_path / "master")
    sims = SimNodes(broker.port, list(NODES), start_delay=0.05, heartbeat_interval=0.5).start()
    client = ApiClient(broker.port)
    e = Env(broker, tmp_path / "master", master, sims, client)
    try:
        wait_for("3 ready nodes", lambda: all(e.node_ready(n) for n in NODES), timeout=10)
        wait_for("the master's grace after connecting", e.master.judging, timeout=10)
        yield e
    finally:
        client.close()
        e.master.stop()  # first: the sims saying goodbye would otherwise look like a mass outage
        sims.close()


def with_web(env: Env, replicas: int = 6) -> dict[str, set[str]]:
    env.call(verb=Verb.APPLY, manifest=RC % replicas)
    return wait_for(f"{replicas} web pods running", lambda: env.all_running(replicas), timeout=10)  # type: ignore[no-any-return]


def test_an_rc_spreads_six_replicas_two_per_node(env: Env) -> None:
    with_web(env)
    assert env.spread() == [2, 2, 2]

    def ready_status() -> dict[str, Any] | None:
        status: dict[str, Any] = env.rc("web").get("status") or {}
        return status if status.get("readyReplicas") == 6 else None

    status = wait_for("readyReplicas 6", ready_status, timeout=5)
    assert status == {
        "replicas": 6,
        "fullyLabeledReplicas": 6,
        "readyReplicas": 6,
        "availableReplicas": 6,
        "observedGeneration": 1,
    }
    scheduled = env.events("Scheduled")
    assert len(scheduled) == 6 and scheduled[0]["message"].startswith("Successfully assigned default/web-")


def test_a_relabelled_pod_is_orphaned_and_replaced(env: Env) -> None:
    with_web(env)
    victim = env.pods()[0]["metadata"]["name"]
    env.call(verb=Verb.LABEL, kind="Pod", name=victim, labels={"app": "debug"}, overwrite=True)
    wait_for("6 web pods besides the debug one", lambda: env.all_running(7), timeout=10)
    debug = env.call(verb=Verb.GET, kind="Pod", name=victim).object or {}
    assert debug["metadata"]["labels"] == {"app": "debug"}
    assert "ownerReferences" not in debug["metadata"]
    assert len(env.pods("app=web")) == 6
    assert any(f"default/{victim}" in s for s in env.running().values())  # still running: not restarted


def test_delete_orphan_keeps_pods_and_a_new_controller_adopts_them(env: Env) -> None:
    before = with_web(env)
    uids = {n: env.sims.uids(n) for n in NODES}
    env.call(verb=Verb.DELETE, kind="ReplicationController", name="web", cascade="orphan")
    time.sleep(1.0)
    assert env.running() == before
    assert all("ownerReferences" not in p["metadata"] for p in env.pods())
    rs = """
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web-rs}
spec:
  replicas: 6
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: busybox:1.36}]}
"""
    env.call(verb=Verb.APPLY, manifest=rs)
    wait_for(
        "adoption by the ReplicaSet",
        lambda: all((p["metadata"].get("ownerReferences") or [{}])[0].get("name") == "web-rs" for p in env.pods()),
        timeout=5,
    )
    time.sleep(0.5)
    assert env.running() == before  # the same pods: nothing created, nothing deleted
    assert {n: env.sims.uids(n) for n in NODES} == uids
    assert env.events("SuccessfulCreate") == [e for e in env.events("SuccessfulCreate") if "web-rs" not in str(e)]


def test_delete_cascades_to_the_pods_by_default(env: Env) -> None:
    with_web(env, 3)
    env.call(verb=Verb.DELETE, kind="ReplicationController", name="web")
    wait_for("no pods left", lambda: env.all_running(0), timeout=10)


def test_scale_up_and_down(env: Env) -> None:
    with_web(env)
    env.call(verb=Verb.SCALE, kind="ReplicationController", name="web", replicas=9)
    wait_for("9 running", lambda: env.all_running(9), timeout=10)
    assert env.spread() == [3, 3, 3]
    env.call(verb=Verb.SCALE, kind="ReplicationController", name="web", replicas=2)
    wait_for("2 running", lambda: env.all_running(2), timeout=10)
    rc = env.call(verb=Verb.GET, kind="ReplicationController", name="web").object or {}
    assert rc["metadata"]["generation"] == 3
    wait_for(
        "status observed",
        lambda: (
            (env.call(verb=Verb.GET, kind="ReplicationController", name="web").object or {})["status"]
            == {
                "replicas": 2,
                "fullyLabeledReplicas": 2,
                "readyReplicas": 2,
                "availableReplicas": 2,
                "observedGeneration": 3,
            }
        ),
        timeout=5,
    )


def test_cordon_keeps_new_pods_away_and_drain_moves_them(env: Env) -> None:
    before = with_web(env)
    env.call(verb=Verb.CORDON, kind="Node", name="node-1")
    env.call(verb=Verb.SCALE, kind="ReplicationController", name="web", replicas=8)
    running = wait_for("8 running", lambda: env.all_running(8), timeout=10)
    assert running["node-1"] == before["node-1"]  # cordon moves nothing, takes nothing new
    drained = env.call(verb=Verb.DRAIN, kind="Node", name="node-1")
    assert sorted(f"{o.namespace}/{o.name}" for o in drained.outcomes or []) == sorted(before["node-1"])
    assert {o.action for o in drained.outcomes or []} == {"deleted"}
    wait_for("8 running off node-1", lambda: env.all_running(8, on=("node-2", "node-3")), timeout=10)
    assert env.spread() == [0, 4, 4]
    env.call(verb=Verb.UNCORDON, kind="Node", name="node-1")
    time.sleep(1.0)
    assert env.spread() == [0, 4, 4]  # no rebalancing: pods stay where they run


def after_node_lost(history: list[tuple[str, str, str]], node: str, evicted: set[str]) -> list[str]:
    """The reasons, in order, from `node` going NotReady on: its pods' evictions must come after, never before."""
    reasons = [(reason, name) for reason, name, _ in history]
    not_ready = reasons.index(("NodeNotReady", node))
    early = [name for reason, name in reasons[:not_ready] if reason == "TaintManagerEviction"]
    assert not early, f"pods evicted before {node} went NotReady: {early}"
    late = {name for reason, name in reasons[not_ready:] if reason == "TaintManagerEviction"}
    assert late == evicted, f"evicted after {node} went NotReady: {sorted(late)}, its pods: {sorted(evicted)}"
    return [reason for reason, _ in reasons[not_ready:]]


@on_every_broker
def test_a_killed_node_is_marked_not_ready_then_its_pods_evicted_and_replaced_and_it_rejoins_without_churn(
    env: Env,
) -> None:
    before = with_web(env)
    survivors = {n: env.sims.uids(n) for n in ("node-1", "node-2")}
    env.sims.kill("node-3")  # the broker publishes its Last Will
    wait_for("6 running on node-1/2", lambda: env.all_running(6, on=("node-1", "node-2"), dead="node-3"), timeout=10)
    for node in ("node-1", "node-2"):
        assert survivors[node] <= env.sims.uids(node)  # the pods that did not move were not touched
        assert before[node] <= env.running()[node]
    history = env.history()
    order = after_node_lost(history, "node-3", {name.split("/")[1] for name in before["node-3"]})
    [message] = [m for reason, name, m in history if (reason, name) == ("NodeNotReady", "node-3")]
    assert message.endswith("(Offline)"), message  # judged by its Last Will
    first_create = order.index("SuccessfulCreate")
    assert order[:first_create].count("TaintManagerEviction") >= 1, "a replacement only after an eviction"
    lost = len(before["node-3"])
    assert order.count("SuccessfulCreate") == lost and order.count("TaintManagerEviction") == lost
    moved = {n: env.sims.uids(n) for n in NODES}
    env.sims.revive("node-3")
    wait_for("node-3 Ready again", lambda: env.node_ready("node-3"), timeout=10)
    wait_for(
        "node-3 untainted",
        lambda: (env.call(verb=Verb.GET, kind="Node", name="node-3").object or {})["spec"]["taints"] == [],
        timeout=5,
    )
    time.sleep(1.0)
    assert {n: env.sims.uids(n) for n in ("node-1", "node-2")} == {n: moved[n] for n in ("node-1", "node-2")}
    assert env.sims.desired("node-3") == set()  # fenced: its old copies were dropped from its desired state


def test_a_silent_node_stays_ready_until_its_heartbeats_time_out_then_its_pods_are_replaced(env: Env) -> None:
    before = with_web(env)
    env.sims.kill("node-2", will=False)  # a cut cable: no Will, heartbeats just stop
    # Silence alone proves nothing yet: the master still counts node-2 Ready until the node timeout (2 s) ends.
    assert env.node_ready("node-2"), "a node that just went quiet must not be judged before the node timeout"
    wait_for("6 running on node-1/3", lambda: env.all_running(6, on=("node-1", "node-3"), dead="node-2"), timeout=10)
    history = env.history()
    after_node_lost(history, "node-2", {name.split("/")[1] for name in before["node-2"]})
    [message] = [m for reason, name, m in history if (reason, name) == ("NodeNotReady", "node-2")]
    assert message.endswith("(Unreachable)"), message  # judged by its silence, not by a Last Will
    taints = (env.call(verb=Verb.GET, kind="Node", name="node-2").object or {})["spec"]["taints"]
    assert [t["key"] for t in taints] == ["node.kubernetes.io/unreachable"]


@on_every_broker
def test_a_master_restart_evicts_nothing_and_creates_nothing(env: Env) -> None:
    before = with_web(env)
    uids = {n: env.sims.uids(n) for n in NODES}
    env.master.stop()
    env.master = start_master(env.broker, env.data_dir)
    time.sleep(4.0)  # the grace and a full node timeout after it
    assert env.running() == before
    assert {n: env.sims.uids(n) for n in NODES} == uids
    assert env.events("TaintManagerEviction") == [] and env.events("SuccessfulCreate") == []
    assert all(env.node_ready(n) for n in NODES)


def test_a_replicaset_with_match_expressions_adopts_and_spreads(env: Env) -> None:
    bare = """
apiVersion: v1
kind: Pod
metadata: {name: api-bare, labels: {app: api, env: prod}}
spec: {containers: [{name: api, image: busybox:1.36}]}
"""
    env.call(verb=Verb.APPLY, manifest=bare)
    wait_for("the bare pod running", lambda: env.all_running(1), timeout=10)
    rs = """
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: api}
spec:
  replicas: 3
  selector:
    matchLabels: {app: api}
    matchExpressions:
      - {key: env, operator: In, values: [prod, staging]}
      - {key: canary, operator: DoesNotExist}
  template:
    metadata: {labels: {app: api, env: staging}}
    spec: {containers: [{name: api, image: busybox:1.36}]}
"""
    env.call(verb=Verb.APPLY, manifest=rs)
    wait_for("3 api pods running", lambda: env.all_running(3), timeout=10)
    assert env.spread() == [1, 1, 1]
    bare_pod = env.call(verb=Verb.GET, kind="Pod", name="api-bare").object or {}
    assert bare_pod["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    assert len(env.events("SuccessfulCreate")) == 2


def test_events_from_agents_arrive_over_mqtt(env: Env) -> None:
    event = {
        "metadata": {"name": "web.17", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
        "reason": "BackOff",
        "message": "Back-off restarting failed container web",
        "type": "Warning",
        "source": {"component": "edgekube-agent"},
        "count": 3,
    }
    env.sims.publish_events("node-2", [event])
    found = wait_for("the agent's event", lambda: env.events("BackOff"), timeout=5)
    assert (found[0]["count"], found[0]["source"]["host"]) == (3, "node-2")
