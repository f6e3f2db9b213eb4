"""Node lifecycle controller: taints follow node health, evictions follow tolerations, with the safety valves.

Time is injected: `now` is unix seconds; taints carry timeAdded at one-second resolution as in Kubernetes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from edgekube.master.cache import CachedStore
from edgekube.master.controllers.base import Effects, Snapshot, apply
from edgekube.master.controllers.nodeinputs import NodeState, PodState, lifecycle_inputs, node_taints
from edgekube.master.controllers.nodelifecycle import (
    Evict,
    NodeLifecycle,
    SetTaints,
    Settings,
    eviction_time,
    plan,
    rfc3339,
)
from edgekube.master.eventlog import EventLog
from edgekube.master.liveness import Health
from edgekube.model.taints import TAINT_NOT_READY, TAINT_UNREACHABLE, Taint, TaintEffect, Toleration
from edgekube.store.state import TinyStateStore

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
READY, OFFLINE, UNREACHABLE = Health.READY, Health.OFFLINE, Health.UNREACHABLE


def noexec(key: str, added: float | None = T0, value: str = "") -> Taint:
    return Taint(key=key, value=value, effect=TaintEffect.NO_EXECUTE, time_added=rfc3339(added) if added else None)


def tol(**fields: Any) -> Toleration:
    """Kubernetes allows tolerationSeconds only with effect NoExecute (ValidateTolerations): implied here."""
    if "tolerationSeconds" in fields:
        fields.setdefault("effect", "NoExecute")
    return Toleration.model_validate(fields)


def node(name: str, health: Health, *taints: Taint) -> NodeState:
    return NodeState(name, health, taints)


def pods_on(node_name: str, *names: str, tolerations: tuple[Toleration, ...] = ()) -> dict[str, list[PodState]]:
    return {node_name: [PodState("default", n, f"uid-{n}", node_name, tolerations) for n in names]}


def evicted(actions: list[Any]) -> list[str]:
    return [a.name for a in actions if isinstance(a, Evict)]


def taint_changes(actions: list[Any]) -> dict[str, list[tuple[str, str | None]]]:
    return {a.node: [(t.key, t.time_added) for t in a.taints] for a in actions if isinstance(a, SetTaints)}


HEALTHY = [node(f"ok-{i}", READY) for i in range(4)]  # keeps the share of NotReady nodes low


# -- taints follow health ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (node("n", OFFLINE), [(TAINT_NOT_READY, "2027-01-15T08:00:00Z")]),
        (node("n", UNREACHABLE), [(TAINT_UNREACHABLE, "2027-01-15T08:00:00Z")]),
        (node("n", READY, noexec(TAINT_UNREACHABLE)), []),
        (node("n", READY, noexec(TAINT_NOT_READY), noexec("user")), [("user", "2027-01-15T08:00:00Z")]),
        # Switching between the two keeps the time the node first went NotReady.
        (node("n", UNREACHABLE, noexec(TAINT_NOT_READY, T0 - 60)), [(TAINT_UNREACHABLE, "2027-01-15T07:59:00Z")]),
        (node("n", OFFLINE, noexec(TAINT_UNREACHABLE, T0 - 60)), [(TAINT_NOT_READY, "2027-01-15T07:59:00Z")]),
    ],
    ids=[
        "will-fired",
        "heartbeats-stopped",
        "ready-again",
        "ready-keeps-user-taints",
        "offline-to-unreachable",
        "back",
    ],
)
def test_the_lifecycle_taint_matches_the_nodes_health(state: NodeState, expected: list[tuple[str, str | None]]) -> None:
    assert taint_changes(plan([state, *HEALTHY], {}, T0 + 0.4, judging=True).actions) == {"n": expected}


@pytest.mark.parametrize(
    "state",
    [
        node("n", READY),
        node("n", READY, noexec("user")),
        node("n", OFFLINE, noexec(TAINT_NOT_READY)),
        node("n", UNREACHABLE, noexec(TAINT_UNREACHABLE), noexec("user")),
    ],
)
def test_taints_that_already_match_are_not_rewritten(state: NodeState) -> None:
    assert taint_changes(plan([state, *HEALTHY], {}, T0, judging=True).actions) == {}


# -- evictions -----------------------------------------------------------------------------------------------------


def test_pods_on_a_dead_node_are_evicted_at_once_by_default() -> None:
    result = plan([node("n", OFFLINE), *HEALTHY], pods_on("n", "a", "b"), T0, judging=True)
    assert evicted(result.actions) == ["a", "b"]
    assert all(a.taint.key == TAINT_NOT_READY for a in result.actions if isinstance(a, Evict))


def test_pods_on_healthy_nodes_stay() -> None:
    assert evicted(plan(HEALTHY, pods_on("ok-1", "a"), T0, judging=True).actions) == []


@pytest.mark.parametrize(
    ("timeout", "tolerations", "stay_until"),
    [
        (30.0, (), 30),  # no toleration matches: pod_eviction_timeout
        (0.0, (tol(key=TAINT_UNREACHABLE, operator="Exists", effect="NoExecute", tolerationSeconds=10),), 10),
        (
            300.0,
            (tol(key=TAINT_UNREACHABLE, operator="Exists", effect="NoExecute", tolerationSeconds=5),),
            5,
        ),  # a match beats the default
        (0.0, (tol(operator="Exists", effect="NoExecute", tolerationSeconds=20),), 20),
        (
            0.0,
            (tol(key="other", operator="Exists", effect="NoExecute", tolerationSeconds=99),),
            0,
        ),  # not matching: default
        (
            0.0,
            (
                tol(key=TAINT_UNREACHABLE, operator="Exists", effect="NoExecute", tolerationSeconds=40),
                tol(operator="Exists", tolerationSeconds=15),
            ),
            15,  # the smallest of the matching ones
        ),
    ],
)
def test_eviction_waits_for_the_matching_toleration_seconds(
    timeout: float, tolerations: tuple[Toleration, ...], stay_until: int
) -> None:
    settings = Settings(pod_eviction_timeout=timeout)
    nodes = [node("n", UNREACHABLE, noexec(TAINT_UNREACHABLE, T0)), *HEALTHY]
    pods = pods_on("n", "a", tolerations=tolerations)
    if stay_until:
        assert evicted(plan(nodes, pods, T0 + stay_until - 1, judging=True, settings=settings).actions) == []
    assert evicted(plan(nodes, pods, T0 + stay_until, judging=True, settings=settings).actions) == ["a"]


def test_a_toleration_without_seconds_keeps_the_pod_forever() -> None:
    forever = (tol(key=TAINT_NOT_READY, operator="Exists", effect="NoExecute"),)
    nodes = [node("n", OFFLINE, noexec(TAINT_NOT_READY, T0 - 86400)), *HEALTHY]
    assert evicted(plan(nodes, pods_on("n", "a", tolerations=forever), T0, judging=True).actions) == []


def test_a_users_untolerated_no_execute_taint_evicts_from_a_ready_node() -> None:
    nodes = [node("n", READY, noexec("maintenance", T0)), *HEALTHY]
    pods = {
        "n": [
            *pods_on("n", "a")["n"],
            *pods_on("n", "b", tolerations=(tol(key="maintenance", operator="Exists"),))["n"],
        ]
    }
    assert evicted(plan(nodes, pods, T0, judging=True).actions) == ["a"]


def test_a_no_execute_taint_without_time_added_counts_from_now() -> None:
    nodes = [node("n", READY, noexec("maintenance", None)), *HEALTHY]
    waiting = (tol(key="maintenance", operator="Exists", tolerationSeconds=5),)
    assert evicted(plan(nodes, pods_on("n", "a", tolerations=waiting), T0, judging=True).actions) == []
    assert evicted(plan(nodes, pods_on("n", "a"), T0, judging=True).actions) == ["a"]


def test_eviction_time_takes_the_earliest_taint() -> None:
    taints = [noexec(TAINT_UNREACHABLE, T0), noexec("maint", T0 + 100), Taint(key="x", effect=TaintEffect.NO_SCHEDULE)]
    tols = [
        tol(key=TAINT_UNREACHABLE, operator="Exists", tolerationSeconds=300),
        tol(key="maint", operator="Exists", tolerationSeconds=10),
    ]
    due = eviction_time(taints, tols, T0, Settings())
    assert due is not None and (due[0], due[1].key) == (T0 + 110, "maint")
    assert eviction_time([Taint(key="x", effect=TaintEffect.NO_SCHEDULE)], [], T0, Settings()) is None


# -- safety valves ----------------------------------------------------------------------------------------------------


def test_nothing_is_judged_while_the_master_is_cut_off_or_in_its_grace() -> None:
    nodes = [node("dead", OFFLINE), node("stale", UNREACHABLE, noexec(TAINT_UNREACHABLE)), *HEALTHY]
    result = plan(nodes, {**pods_on("dead", "a"), **pods_on("stale", "b")}, T0 + 3600, judging=False)
    assert result.actions == []


def test_while_not_judging_ready_nodes_still_lose_lifecycle_taints_and_user_taints_still_evict() -> None:
    nodes = [node("back", READY, noexec(TAINT_UNREACHABLE)), node("maint", READY, noexec("maintenance")), *HEALTHY]
    result = plan(nodes, {**pods_on("back", "a"), **pods_on("maint", "b")}, T0, judging=False)
    assert taint_changes(result.actions) == {"back": []}
    assert evicted(result.actions) == ["b"]


@pytest.mark.parametrize(
    ("not_ready", "ready", "disrupted"),
    [
        (1, 0, False),  # a single node: fewer than 2 NotReady
        (1, 1, False),  # 50%
        (2, 0, True),
        (2, 1, True),  # 67%
        (2, 2, False),  # 50%
        (3, 2, True),  # 60%
        (5, 5, False),
        (6, 4, True),
    ],
)
def test_more_than_55_percent_not_ready_stops_evictions_but_not_taints(
    not_ready: int, ready: int, disrupted: bool
) -> None:
    nodes = [node(f"down-{i}", UNREACHABLE) for i in range(not_ready)] + [node(f"up-{i}", READY) for i in range(ready)]
    pods = {f"down-{i}": pods_on(f"down-{i}", f"p{i}")[f"down-{i}"] for i in range(not_ready)}
    result = plan(nodes, pods, T0, judging=True)
    assert (result.disrupted, result.not_ready, result.total) == (disrupted, not_ready, not_ready + ready)
    assert len(taint_changes(result.actions)) == not_ready
    assert evicted(result.actions) == ([] if disrupted else [f"p{i}" for i in range(not_ready)])


def test_a_disruption_still_lets_user_taints_evict() -> None:
    nodes = [node("a", UNREACHABLE), node("b", UNREACHABLE), node("c", READY, noexec("maintenance"))]
    result = plan(nodes, {**pods_on("a", "x"), **pods_on("c", "y")}, T0, judging=True)
    assert result.disrupted and evicted(result.actions) == ["y"]


# -- apply, over a real (in-memory) store ---------------------------------------------------------------------------


@pytest.fixture
def store() -> Iterator[CachedStore]:
    with TinyStateStore(None) as backend:
        cached = CachedStore(backend)
        for name in ("n1", "n2", "n3"):
            cached.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "namespace": ""}, "spec": {}})
        yield cached


def stored_pod(store: CachedStore, name: str, node_name: str) -> dict[str, Any]:
    return store.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node_name, "containers": [{"name": "c", "image": "i"}]},
        }
    )


def snapshot(store: CachedStore, health: dict[str, Health], now: float = T0, *, judging: bool = True) -> Snapshot:
    """A pass's view: the store, and every node Ready unless `health` says otherwise."""
    return Snapshot(store, now, judging, lambda name: health.get(name, READY))


def run_pass(controller: NodeLifecycle, store: CachedStore, events: EventLog, health: dict[str, Health]) -> None:
    apply(controller.plan(snapshot(store, health)), Effects(store, events))


def test_the_inputs_are_every_nodes_health_and_the_pods_on_nodes_that_may_lose_them(store: CachedStore) -> None:
    stored_pod(store, "on-dead", "n1")
    stored_pod(store, "on-healthy", "n2")
    tolerant = store.peek("Pod", "default", "on-dead")
    tolerations = [{"key": "x", "operator": "Exists"}]
    store.update({**tolerant, "spec": {**tolerant["spec"], "tolerations": tolerations}})
    nodes, pods = lifecycle_inputs(snapshot(store, {"n1": OFFLINE}))
    assert [(n.name, n.health) for n in nodes] == [("n1", OFFLINE), ("n2", READY), ("n3", READY)]
    assert list(pods) == ["n1"]  # a Ready node without NoExecute taints cannot lose its pods: not read
    [state] = pods["n1"]
    assert (state.name, state.uid, state.tolerations) == (
        "on-dead",
        tolerant["metadata"]["uid"],
        (tol(key="x", operator="Exists"),),
    )


def test_the_controller_taints_evicts_and_untaints_through_the_store(store: CachedStore) -> None:
    events = EventLog()
    controller = NodeLifecycle()
    stored_pod(store, "doomed", "n1")
    stored_pod(store, "safe", "n2")
    run_pass(controller, store, events, {"n1": OFFLINE})
    assert node_taints(store.peek("Node", "", "n1")) == (noexec(TAINT_NOT_READY, T0),)
    assert sorted(name for _, name in store.objects("Pod")) == ["safe"]
    assert [(e["reason"], e["involvedObject"]["name"]) for e in events.list()] == [
        ("NodeNotReady", "n1"),
        ("TaintManagerEviction", "doomed"),
    ]
    apply(controller.plan(snapshot(store, {}, T0 + 5)), Effects(store, events))
    assert node_taints(store.peek("Node", "", "n1")) == ()
    assert events.list()[-1]["reason"] == "NodeReady"
    writes = store.writes
    assert controller.plan(snapshot(store, {}, T0 + 6)) == []
    assert store.writes == writes


def test_an_eviction_of_a_pod_that_changed_meanwhile_is_skipped(store: CachedStore) -> None:
    old = stored_pod(store, "p", "n1")
    actions = NodeLifecycle().plan(snapshot(store, {"n1": OFFLINE}))
    assert [a.uid for a in actions if isinstance(a, Evict)] == [old["metadata"]["uid"]]
    store.delete("Pod", "default", "p")
    stored_pod(store, "p", "n1")  # a new incarnation under the same name, between the plan and its apply
    apply(actions, Effects(store, EventLog()))
    assert store.peek("Pod", "default", "p")["metadata"]["uid"] != old["metadata"]["uid"]


def test_entering_and_leaving_a_disruption_is_reported_once(store: CachedStore) -> None:
    events = EventLog()
    controller = NodeLifecycle()
    for _ in range(3):
        run_pass(controller, store, events, {"n1": UNREACHABLE, "n2": UNREACHABLE})
    suspended = [e for e in events.list() if e["reason"] == "EvictionsSuspended"]
    assert [e["involvedObject"]["name"] for e in suspended] == ["n1", "n2"]
    assert suspended[0]["message"].startswith("2/3 nodes are NotReady (more than 55%): pod evictions stop")
    assert all(e["count"] == 1 for e in suspended)
    run_pass(controller, store, events, {"n1": UNREACHABLE})
    assert [e["involvedObject"]["name"] for e in events.list() if e["reason"] == "EvictionsResumed"] == ["n1"]
    assert not controller.disrupted


def test_the_controller_plans_nothing_while_the_master_is_not_judging(store: CachedStore) -> None:
    stored_pod(store, "p", "n1")
    assert NodeLifecycle().plan(snapshot(store, {"n1": OFFLINE}, judging=False)) == []
