"""The pure scheduler: filter reasons worded like kube-scheduler, least-allocated scoring, deterministic ties."""

from __future__ import annotations

from typing import Any

import pytest

from edgekube.master.scheduler import Decision, NodeView, Request, bind, filter_reason, node_view, schedule, score
from edgekube.model.names import NodeName
from edgekube.model.pod import PodSpec

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
    assert schedule(spec(), nodes) == Decision(NodeName("idle"), "")
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
    decision = schedule(spec(), [node(n) for n in names])
    assert decision.node == min(names)


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
    assert schedule(pod, labelled) == Decision(None, message)


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
        decision = schedule(spec(), list(views.values()))
        assert decision.node is not None
        placed.append(decision.node)
        views[decision.node] = bind(views[decision.node], spec())
    assert placed == ["a", "b", "c", "a", "b", "c"]


def test_bind_fills_a_node_until_it_is_full() -> None:
    pod = spec({"resources": {"limits": {"cpu": "1"}}})  # limit only: counts as a 1-core request
    view = node(cpu_millis=2000)
    view = bind(bind(view, pod), pod)
    assert schedule(pod, [view]) == Decision(None, "0/1 nodes are available: 1 Insufficient cpu.")


# -- node_view ------------------------------------------------------------------------------------------------


def test_node_view_reads_allocatable_and_binds_existing_pods() -> None:
    bound = [spec(), spec({"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}})]
    view = node_view(
        NodeName("pi-1"),
        ready=True,
        labels={"kubernetes.io/arch": "arm64"},
        allocatable={"cpu": "4", "memory": "3882Mi", "pods": "20"},
        unschedulable=False,
        bound=bound,
    )
    assert (view.cpu_millis, view.memory_bytes, view.max_pods) == (4000, 3882 * MI, 20)
    assert (view.used_cpu_millis, view.used_memory_bytes, view.pod_count) == (1100, 1088 * MI, 2)
    assert view.labels == {"kubernetes.io/arch": "arm64"}


def test_node_view_defaults_when_allocatable_is_empty() -> None:
    view = node_view(NodeName("pi-1"), ready=False, labels={}, allocatable={}, unschedulable=True, bound=[])
    assert (view.cpu_millis, view.memory_bytes, view.max_pods, view.ready, view.unschedulable) == (
        0,
        0,
        110,
        False,
        True,
    )
