"""The pure scheduler: filter reasons worded like kube-scheduler, least-allocated scoring, deterministic ties."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from edgekube.master.scheduling.scheduler import (
    SPREAD_WEIGHT,
    NodeView,
    Placement,
    Request,
    bind,
    filter_reason,
    schedule,
    schedule_all,
    score,
)
from edgekube.model.names import NodeName
from edgekube.model.pod import PodSpec
from edgekube.model.taints import Taint

MI = 2**20
SSD = {"disk": "ssd"}


def spec(*containers: dict[str, Any], **fields: Any) -> PodSpec:
    """A PodSpec of the given containers (one small default container if none)."""
    given = list(containers) or [{"resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]
    return PodSpec.model_validate(
        {
            "containers": [{"name": f"c{i}", "image": "busybox", **c} for i, c in enumerate(given)],
            **fields,
        }
    )


def node(name: str = "pi-1", **fields: Any) -> NodeView:
    """A ready 4-core / 4 GiB node, with fields overridden."""
    defaults: dict[str, Any] = {"ready": True, "labels": {}, "cpu_millis": 4000, "memory_bytes": 4096 * MI}
    return NodeView(name=NodeName(name), **{**defaults, **fields})


# -- Request --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resources", "cpu", "memory"),
    [
        ({}, 0, 0),
        ({"requests": {"cpu": "250m", "memory": "64Mi"}}, 250, 64 * MI),
        ({"limits": {"cpu": "500m", "memory": "128Mi"}}, 500, 128 * MI),  # a limit alone is the request
        ({"requests": {"cpu": "100m"}, "limits": {"cpu": "1", "memory": "1Gi"}}, 100, 1024 * MI),
        ({"requests": {"cpu": 1, "memory": 1000}}, 1000, 1000),
    ],
)
def test_a_request_sums_each_containers_request_or_limit(resources: dict[str, Any], cpu: int, memory: int) -> None:
    req = Request.of(spec({"resources": resources}, {"resources": resources}))
    assert (req.cpu_millis, req.memory_bytes) == (2 * cpu, 2 * memory)


@pytest.mark.parametrize(
    "pod",
    [
        spec(),
        spec({"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}, {"resources": {"requests": {"cpu": 2}}}),
        spec(
            {
                "ports": [
                    {"containerPort": 80, "hostPort": 8080},
                    {"containerPort": 53, "hostPort": 53, "protocol": "UDP"},
                ]
            }
        ),
        spec(nodeSelector={"disk": "ssd"}, tolerations=[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]),
    ],
)
def test_a_request_from_the_stored_spec_equals_one_from_the_model(pod: PodSpec) -> None:
    assert Request.of_stored(pod.to_dict(), owner="rc") == Request.of(pod, owner="rc")


def test_a_request_collects_host_ports_and_the_node_selector() -> None:
    req = Request.of(
        spec(
            {"ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81}]},
            {"ports": [{"containerPort": 53, "hostPort": 5353, "protocol": "UDP"}]},
            nodeSelector={"disk": "ssd"},
        )
    )
    assert req.host_ports == frozenset({(8080, "TCP"), (5353, "UDP")})
    assert req.node_selector == {"disk": "ssd"}


# -- filter ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("view", "pod", "reason"),
    [
        (node(), spec(), None),
        (node(ready=False), spec(), "node(s) were not ready"),
        (node(unschedulable=True), spec(), "node(s) were unschedulable"),
        (
            node(labels={"disk": "hdd"}),
            spec(nodeSelector={"disk": "ssd"}),
            "node(s) didn't match Pod's node affinity/selector",
        ),
        (node(labels={}), spec(nodeSelector={"disk": "ssd"}), "node(s) didn't match Pod's node affinity/selector"),
        (node(labels={"disk": "ssd", "zone": "a"}), spec(nodeSelector={"disk": "ssd"}), None),
        (node(max_pods=3, pod_count=3), spec(), "Too many pods"),
        (node(max_pods=3, pod_count=2), spec(), None),
        (node(cpu_millis=1000, used_cpu_millis=950), spec(), "Insufficient cpu"),
        (node(cpu_millis=1000, used_cpu_millis=900), spec(), None),  # exactly full fits
        (node(memory_bytes=128 * MI, used_memory_bytes=65 * MI), spec(), "Insufficient memory"),
        (node(memory_bytes=128 * MI, used_memory_bytes=64 * MI), spec(), None),
        (
            node(host_ports=frozenset({(8080, "TCP")})),
            spec({"ports": [{"containerPort": 80, "hostPort": 8080}]}),
            "node(s) didn't have free ports for the requested pod ports",
        ),
        (
            node(host_ports=frozenset({(8080, "UDP")})),
            spec({"ports": [{"containerPort": 80, "hostPort": 8080}]}),
            None,  # same number, other protocol
        ),
        # The first failing check wins, in kube-scheduler's order.
        (node(ready=False, unschedulable=True, cpu_millis=0), spec(), "node(s) were not ready"),
        (node(unschedulable=True, cpu_millis=0), spec(), "node(s) were unschedulable"),
        (node(cpu_millis=0, memory_bytes=0), spec(), "Insufficient cpu"),
    ],
)
def test_filter_reason(view: NodeView, pod: PodSpec, reason: str | None) -> None:
    assert filter_reason(view, Request.of(pod)) == reason


# -- schedule -------------------------------------------------------------------------------------------------


def test_scoring_prefers_the_least_allocated_node() -> None:
    nodes = [
        node("busy", used_cpu_millis=3000, used_memory_bytes=3000 * MI),
        node("idle"),
        node("half", used_cpu_millis=2000, used_memory_bytes=2048 * MI),
    ]
    assert schedule(spec(), nodes) == Placement(NodeName("idle"), "")
    req = Request.of(spec())
    assert score(nodes[1], req) > score(nodes[2], req) > score(nodes[0], req)


def test_scoring_counts_free_pod_slots_too() -> None:
    assert schedule(spec(), [node("crowded", pod_count=100), node("empty")]).node == "empty"


def test_a_bigger_node_with_the_same_usage_wins() -> None:
    small = node("small", cpu_millis=2000, used_cpu_millis=1000)
    big = node("big", cpu_millis=8000, used_cpu_millis=1000)
    assert schedule(spec(), [small, big]).node == "big"


@pytest.mark.parametrize(
    "names",
    [
        ["pi-b", "pi-a", "pi-c"],
        ["pi-c", "pi-b", "pi-a"],
        ["pi-10", "pi-1"],  # a name that is a prefix of another sorts first
        ["pi-1", "pi-10"],
        ["node1", "node10", "node2"],
    ],
)
def test_a_tie_goes_to_the_alphabetically_first_node_whatever_the_order(names: list[str]) -> None:
    placement = schedule(spec(), [node(n) for n in names])
    assert placement.node == min(names)


def test_a_placement_has_no_message() -> None:
    assert schedule(spec(), [node()]).message == ""


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ([], "0/0 nodes are available."),
        ([node("a", ready=False)], "0/1 nodes are available: 1 node(s) were not ready."),
        (
            [node("a", cpu_millis=10), node("b", ready=False), node("c", ready=False)],
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) were not ready.",
        ),
        (
            # kube-scheduler sorts the "<count> <reason>" strings, so the count comes first.
            [node("a", cpu_millis=10), node("b", cpu_millis=10), node("c", ready=False)],
            "0/3 nodes are available: 1 node(s) were not ready, 2 Insufficient cpu.",
        ),
        (
            [
                node("a", memory_bytes=1, labels=SSD),
                node("b", unschedulable=True, labels=SSD),
                node("c", max_pods=0, labels=SSD),
                node("d", labels={"disk": "hdd"}),
                node("e", labels=SSD, host_ports=frozenset({(8080, "TCP")})),
            ],
            "0/5 nodes are available: 1 Insufficient memory, 1 Too many pods, "
            "1 node(s) didn't have free ports for the requested pod ports, "
            "1 node(s) didn't match Pod's node affinity/selector, 1 node(s) were unschedulable.",
        ),
    ],
)
def test_an_unschedulable_pod_is_explained_like_kube_scheduler(nodes: list[NodeView], message: str) -> None:
    pod = spec(
        {
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
            "ports": [{"containerPort": 80, "hostPort": 8080}],
        },
        nodeSelector=SSD,
    )
    labelled = [NodeView(**{**n.__dict__, "labels": n.labels or SSD}) for n in nodes]
    assert schedule(pod, labelled) == Placement(None, message)


def test_only_feasible_nodes_are_scored() -> None:
    nodes = [node("idle-but-down", ready=False), node("busy", used_cpu_millis=3500)]
    assert schedule(spec(), nodes).node == "busy"


# -- bind -----------------------------------------------------------------------------------------------------


def test_bind_accumulates_usage_pods_and_ports() -> None:
    pod = spec(
        {
            "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}},
            "ports": [{"containerPort": 80, "hostPort": 80}],
        }
    )
    once = bind(node(), pod)
    twice = bind(once, spec())
    assert (once.used_cpu_millis, once.used_memory_bytes, once.pod_count) == (500, 256 * MI, 1)
    assert once.host_ports == frozenset({(80, "TCP")})
    assert (twice.used_cpu_millis, twice.used_memory_bytes, twice.pod_count) == (600, 320 * MI, 2)
    assert twice.host_ports == frozenset({(80, "TCP")})
    assert (twice.name, twice.cpu_millis, twice.memory_bytes, twice.ready) == ("pi-1", 4000, 4096 * MI, True)
    assert filter_reason(once, Request.of(pod)) == "node(s) didn't have free ports for the requested pod ports"


def test_scheduling_many_pods_in_one_pass_spreads_them() -> None:
    views = {n.name: n for n in [node("a"), node("b"), node("c")]}
    placed = []
    for _ in range(6):
        placement = schedule(spec(), list(views.values()))
        assert placement.node is not None
        placed.append(placement.node)
        views[placement.node] = bind(views[placement.node], spec())
    assert placed == ["a", "b", "c", "a", "b", "c"]


def test_bind_fills_a_node_until_it_is_full() -> None:
    pod = spec({"resources": {"limits": {"cpu": "1"}}})  # limit only: counts as a 1-core request
    view = node(cpu_millis=2000)
    view = bind(bind(view, pod), pod)
    assert schedule(pod, [view]) == Placement(None, "0/1 nodes are available: 1 Insufficient cpu.")


# -- taints and tolerations ------------------------------------------------------------------------------------


def taint(key: str, effect: str, value: str = "") -> Taint:
    return Taint(key=key, value=value, effect=effect)


GPU = taint("dedicated", "NoSchedule", "gpu")


@pytest.mark.parametrize(
    ("taints", "tolerations", "reason"),
    [
        ((GPU,), [], "node(s) had untolerated taint {dedicated: gpu}"),
        ((taint("maintenance", "NoExecute"),), [], "node(s) had untolerated taint {maintenance: }"),
        ((taint("slow", "PreferNoSchedule"),), [], None),  # only a score penalty
        ((GPU,), [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}], None),
        ((GPU,), [{"key": "dedicated", "operator": "Exists"}], None),
        ((GPU,), [{"operator": "Exists"}], None),  # tolerates everything
        ((GPU,), [{"key": "dedicated", "value": "tpu"}], "node(s) had untolerated taint {dedicated: gpu}"),
        (
            (GPU,),
            [{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}],
            "node(s) had untolerated taint {dedicated: gpu}",
        ),
        (
            (taint("a", "PreferNoSchedule"), taint("b", "NoExecute", "1"), GPU),
            [{"key": "dedicated", "operator": "Exists"}],
            "node(s) had untolerated taint {b: 1}",
        ),
    ],
)
def test_taints_filter_unless_tolerated(
    taints: tuple[Taint, ...], tolerations: list[dict[str, Any]], reason: str | None
) -> None:
    assert filter_reason(node(taints=taints), Request.of(spec(tolerations=tolerations))) == reason


def test_a_cordoned_node_takes_pods_that_tolerate_the_unschedulable_taint() -> None:
    tolerant = spec(tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}])
    assert filter_reason(node(unschedulable=True), Request.of(tolerant)) is None
    assert filter_reason(node(unschedulable=True), Request.of(spec())) == "node(s) were unschedulable"


def test_taints_come_after_readiness_cordon_and_selector_in_the_order() -> None:
    assert filter_reason(node(taints=(GPU,), unschedulable=True), Request.of(spec())) == "node(s) were unschedulable"
    pod = Request.of(spec(nodeSelector={"disk": "ssd"}))
    assert filter_reason(node(taints=(GPU,)), pod) == "node(s) didn't match Pod's node affinity/selector"
    assert filter_reason(node(taints=(GPU,), cpu_millis=0), Request.of(spec())).startswith("node(s) had untolerated")  # type: ignore[union-attr]


def test_prefer_no_schedule_is_avoided_but_used_when_nothing_else_fits() -> None:
    soft = taint("slow", "PreferNoSchedule")
    assert schedule(spec(), [node("a", taints=(soft,)), node("b", used_cpu_millis=3000)]).node == "b"
    assert schedule(spec(), [node("a", taints=(soft,)), node("b", ready=False)]).node == "a"
    tolerant = spec(tolerations=[{"key": "slow", "operator": "Exists", "effect": "PreferNoSchedule"}])
    assert schedule(tolerant, [node("a", taints=(soft,)), node("b", used_cpu_millis=3000)]).node == "a"


def test_an_untolerated_taint_is_explained_like_kube_scheduler() -> None:
    nodes = [node("a", taints=(GPU,)), node("b", taints=(GPU,)), node("c", ready=False)]
    assert schedule(spec(), nodes) == Placement(
        None, "0/3 nodes are available: 1 node(s) were not ready, 2 node(s) had untolerated taint {dedicated: gpu}."
    )


# -- spreading ---------------------------------------------------------------------------------------------------


def owned(owner: str | None, **fields: Any) -> Request:
    return Request.of(spec(**fields), owner=owner)


def test_replicas_of_one_controller_spread_even_onto_a_busier_node() -> None:
    idle_with_replica = bind(node("idle"), owned("rc-1"))
    busy_without = node("busy", used_cpu_millis=3500, used_memory_bytes=3500 * MI, pod_count=50)
    assert schedule(owned("rc-1"), [idle_with_replica, busy_without]).node == "busy"
    # Another controller's pods, or bare pods, do not count against it.
    assert schedule(owned("rc-2"), [idle_with_replica, busy_without]).node == "idle"
    assert schedule(owned(None), [idle_with_replica, busy_without]).node == "idle"


def test_the_spread_weight_dominates_any_load_difference() -> None:
    req = owned("rc-1")
    empty = node("empty")
    full = node("full", used_cpu_millis=3900, used_memory_bytes=4000 * MI, pod_count=109)
    assert score(empty, req) - score(full, req) < SPREAD_WEIGHT
    assert score(full, req) > score(bind(empty, req), req)


def test_six_replicas_on_three_unequal_nodes_go_two_two_two() -> None:
    nodes = [node("a", cpu_millis=8000), node("b", used_cpu_millis=2000), node("c", memory_bytes=1024 * MI)]
    placements = schedule_all([owned("rc-1")] * 6, nodes)
    placed = [str(d.node) for d in placements]
    assert sorted(placed) == ["a", "a", "b", "b", "c", "c"]


# -- schedule_all: the fast path must decide exactly as schedule + bind in a loop ---------------------------------


def sequential(requests: list[Request], nodes: list[NodeView]) -> list[Placement]:
    views = {n.name: n for n in nodes}
    out = []
    for req in requests:
        placement = schedule(req, list(views.values()))
        if placement.node is not None:
            views[placement.node] = bind(views[placement.node], req)
        out.append(placement)
    return out


def random_case(rng: random.Random) -> tuple[list[Request], list[NodeView]]:
    soft, hard = taint("slow", "PreferNoSchedule"), taint("gpu", "NoSchedule")
    nodes = [
        node(
            f"n{i}",
            ready=rng.random() > 0.1,
            cpu_millis=rng.choice([500, 1000, 2000, 4000]),
            memory_bytes=rng.choice([256, 1024, 4096]) * MI,
            max_pods=rng.choice([3, 10, 110]),
            labels={"disk": rng.choice(["ssd", "hdd"])},
            taints=tuple(t for t in (soft, hard) if rng.random() < 0.2),
            unschedulable=rng.random() < 0.1,
        )
        for i in range(rng.randint(0, 12))
    ]
    kinds = [
        owned("rc-a"),
        owned("rc-b", nodeSelector={"disk": "ssd"}),
        owned(None, tolerations=[{"key": "gpu", "operator": "Exists"}]),
        owned(
            "rc-c", **{"containers": [{"name": "c", "image": "b", "ports": [{"containerPort": 80, "hostPort": 80}]}]}
        ),
        Request.of(spec({"resources": {"requests": {"cpu": "700m", "memory": "300Mi"}}}), owner="rc-d"),
        Request.of(spec({"resources": {"limits": {"edgekube.io/serial": 1}}}), owner="rc-e"),
    ]
    nodes = [dataclasses.replace(n, extended={"edgekube.io/serial": rng.choice([0, 1, 2])}) for n in nodes]
    requests = [rng.choice(kinds) for _ in range(rng.randint(0, 60))]
    return requests, nodes


@pytest.mark.parametrize("seed", range(60))
def test_schedule_all_decides_exactly_like_one_pod_at_a_time(seed: int) -> None:
    requests, nodes = random_case(random.Random(seed))
    assert schedule_all(requests, nodes) == sequential(requests, nodes)


def test_schedule_all_explains_every_pod_it_cannot_place() -> None:
    small = node("small", cpu_millis=1000)
    pod = Request.of(spec({"resources": {"requests": {"cpu": "600m"}}}))
    assert schedule_all([pod, pod, pod], [small, node("down", ready=False)]) == [
        Placement(NodeName("small")),
        Placement(None, "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) were not ready."),
        Placement(None, "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) were not ready."),
    ]


def test_schedule_all_with_no_nodes_or_no_pods() -> None:
    assert schedule_all([], [node()]) == []
    assert schedule_all([owned("x")], []) == [Placement(None, "0/0 nodes are available.")]
