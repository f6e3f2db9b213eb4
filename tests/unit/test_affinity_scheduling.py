"""The scheduler's NodeAffinity, InterPodAffinity and PodTopologySpread filters and scores, as kube-scheduler has them.

Tables of pods (spec fields, labels) against nodes (labels, bound pods); messages are kube-scheduler's
"0/N nodes are available: ..." with its per-plugin reasons.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from edgekube.master.scheduling.scheduler import NodeView, Request, bind, schedule, schedule_all
from edgekube.master.scheduling.topology import BoundPod
from edgekube.model.names import NodeName
from edgekube.model.pod import PodSpec

MI = 2**20
HOST = "kubernetes.io/hostname"


def req(
    labels: dict[str, str] | None = None, namespace: str = "default", owner: str | None = None, **spec: Any
) -> Request:
    """A small pod with these spec fields (affinity, topologySpreadConstraints, ...)."""
    pod = PodSpec.model_validate(
        {
            "containers": [
                {"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}
            ],
            **spec,
        }
    )
    return Request.of(pod, owner=owner, namespace=namespace, labels=labels or {})


def node(
    name: str, labels: dict[str, str] | None = None, pods: list[BoundPod] | None = None, **fields: Any
) -> NodeView:
    """A ready 4-core / 4 GiB node labelled with its hostname (as the agent does) plus `labels`."""
    bound = {(p.namespace, f"{name}-{i}"): p for i, p in enumerate(pods or [])}
    fields.setdefault("ready", True)
    return NodeView(
        name=NodeName(name),
        labels={HOST: name, **(labels or {})},
        cpu_millis=4000,
        memory_bytes=4096 * MI,
        pods=bound,
        pod_count=len(bound),
        anti_pods=sum(1 for p in bound.values() if p.anti),
        **fields,
    )


def required_nodes(*terms: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": exprs} for exprs in terms]
            }
        }
    }


def term(labels: dict[str, str], key: str = HOST, **more: Any) -> dict[str, Any]:
    return {"labelSelector": {"matchLabels": labels}, "topologyKey": key, **more}


def pod_affinity(
    kind: str, *terms: dict[str, Any], preferred: tuple[tuple[int, dict[str, Any]], ...] = ()
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if terms:
        body["requiredDuringSchedulingIgnoredDuringExecution"] = list(terms)
    if preferred:
        body["preferredDuringSchedulingIgnoredDuringExecution"] = [
            {"weight": w, "podAffinityTerm": t} for w, t in preferred
        ]
    return {kind: body}


# -- NodeAffinity ------------------------------------------------------------------------------------------------
RAM = "edgekube.io/ram-gb"
NODES = [node("pi-2g", {RAM: "2", "zone": "a"}), node("pi-4g", {RAM: "4", "zone": "b"}), node("pi-8g", {RAM: "8"})]


@pytest.mark.parametrize(
    ("expression", "fits"),
    [
        ({"key": RAM, "operator": "Gt", "values": ["3"]}, ["pi-4g", "pi-8g"]),
        ({"key": RAM, "operator": "Lt", "values": ["4"]}, ["pi-2g"]),
        ({"key": RAM, "operator": "Gt", "values": ["8"]}, []),  # strictly greater
        ({"key": RAM, "operator": "Gt", "values": ["three"]}, []),  # a value that is not an integer matches nothing
        ({"key": "zone", "operator": "Gt", "values": ["0"]}, []),  # nor does a label that is not one
        ({"key": "zone", "operator": "In", "values": ["a", "b"]}, ["pi-2g", "pi-4g"]),
        ({"key": "zone", "operator": "NotIn", "values": ["a"]}, ["pi-4g", "pi-8g"]),  # a missing key is "not in"
        ({"key": "zone", "operator": "Exists"}, ["pi-2g", "pi-4g"]),
        ({"key": "zone", "operator": "DoesNotExist"}, ["pi-8g"]),
    ],
)
def test_node_affinity_operators(expression: dict[str, Any], fits: list[str]) -> None:
    pod = req(affinity=required_nodes([expression]))
    placed = {n.name for n in NODES if schedule(pod, [n]).node is not None}
    assert placed == set(fits)


def test_node_affinity_terms_are_ored_and_expressions_anded() -> None:
    either = required_nodes(
        [{"key": "zone", "operator": "In", "values": ["a"]}, {"key": RAM, "operator": "Gt", "values": ["2"]}],
        [{"key": RAM, "operator": "Gt", "values": ["6"]}],
    )
    placed = {n.name for n in NODES if schedule(req(affinity=either), [n]).node is not None}
    assert placed == {"pi-8g"}  # pi-2g is in zone a but has 2 GiB: its term's second expression fails


def test_match_fields_select_a_node_by_name() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["pi-4g"]}]}
                ]
            }
        }
    }
    assert schedule(req(affinity=affinity), NODES).node == "pi-4g"


def test_nodes_failing_node_affinity_are_explained_like_kube_scheduler() -> None:
    pod = req(affinity=required_nodes([{"key": RAM, "operator": "Gt", "values": ["16"]}]))
    assert (
        schedule(pod, NODES).message == "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
    )


def test_preferred_node_affinity_outweighs_a_lighter_load() -> None:
    busy_8g = node("pi-8g", {RAM: "8"}, used_cpu_millis=2000, used_memory_bytes=2048 * MI)
    preferred = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 80, "preference": {"matchExpressions": [{"key": RAM, "operator": "Gt", "values": ["6"]}]}},
                {
                    "weight": 20,
                    "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                },
            ]
        }
    }
    nodes = [NODES[0], NODES[1], busy_8g]
    assert schedule(req(), nodes).node == "pi-2g"  # without preferences: the least allocated (ties by name)
    assert schedule(req(affinity=preferred), nodes).node == "pi-8g"  # weight 80 beats 20 and the load


# -- InterPodAffinity --------------------------------------------------------------------------------------------
WEB = {"app": "web"}
DB = {"app": "db"}


def test_anti_affinity_on_hostname_puts_replicas_on_different_nodes_and_explains_the_third() -> None:
    anti = pod_affinity("podAntiAffinity", term(WEB))
    replicas = [req(WEB, owner="rc", affinity=anti) for _ in range(3)]
    placements = schedule_all(replicas, [node("pi-1"), node("pi-2")])
    assert sorted(p.node or "" for p in placements[:2]) == ["pi-1", "pi-2"]
    assert placements[2].node is None
    assert placements[2].message == "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules."


def test_existing_pods_anti_affinity_refuses_a_matching_newcomer() -> None:
    topology = req(affinity=pod_affinity("podAntiAffinity", term(WEB))).topology
    assert topology is not None
    loner = BoundPod("default", {"app": "loner"}, topology.anti)
    nodes = [node("pi-1", pods=[loner]), node("pi-2", {"disk": "hdd"})]
    assert schedule(req(WEB), nodes).node == "pi-2"
    assert schedule(req(DB), nodes[:1]).node == "pi-1"  # the loner's term does not select db pods
    only = schedule(req(WEB, nodeSelector={HOST: "pi-1"}), nodes)
    assert only.message == (
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) didn't satisfy existing pods anti-affinity rules."
    )


def test_required_affinity_follows_the_selected_pods_topology_domain() -> None:
    nodes = [
        node("pi-1", {"zone": "a"}),
        node("pi-2", {"zone": "b"}, pods=[BoundPod("default", DB)]),
        node("pi-3", {"zone": "b"}),
        node("pi-4"),  # no zone label: never in the domain
    ]
    same_host = req(WEB, affinity=pod_affinity("podAffinity", term(DB)))
    same_zone = req(WEB, affinity=pod_affinity("podAffinity", term(DB, key="zone")))
    assert schedule(same_host, nodes).node == "pi-2"
    assert {n.name for n in nodes if schedule(same_zone, [*nodes[1:2], n]).node == n.name} == {"pi-2", "pi-3"}
    assert schedule(same_zone, [nodes[0], nodes[3]]).message == (
        "0/2 nodes are available: 2 node(s) didn't match pod affinity rules."
    )


def test_the_first_pod_of_a_self_affine_group_may_go_anywhere() -> None:
    """kube-scheduler's special case: no pod matches yet, and the pod matches its own terms."""
    together = pod_affinity("podAffinity", term(WEB, key="zone"))
    nodes = [node("pi-1", {"zone": "a"}), node("pi-2", {"zone": "b"})]
    assert schedule(req(WEB, affinity=together), nodes).node == "pi-1"
    # Not the case when the pod does not match its own term, or when a node lacks the topology key.
    assert schedule(req(DB, affinity=together), nodes).node is None
    assert schedule(req(WEB, affinity=together), [node("pi-9")]).message == (
        "0/1 nodes are available: 1 node(s) didn't match pod affinity rules."
    )
    # Once one is placed, the group follows it.
    placements = schedule_all([req(WEB, affinity=together) for _ in range(3)], nodes)
    assert [p.node for p in placements] == ["pi-1", "pi-1", "pi-1"]


@pytest.mark.parametrize(
    ("extra", "fits"),
    [
        ({}, False),  # default: the pod's own namespace only
        ({"namespaces": ["shop"]}, True),
        ({"namespaceSelector": {}}, True),  # empty selector: every namespace
        ({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shop"}}}, True),
        ({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "other"}}}, False),
    ],
)
def test_affinity_terms_select_pods_by_namespace(extra: dict[str, Any], fits: bool) -> None:
    nodes = [node("pi-1", pods=[BoundPod("shop", DB)])]
    pod = req(WEB, namespace="default", affinity=pod_affinity("podAffinity", term(DB, **extra)))
    assert (schedule(pod, nodes).node == "pi-1") is fits


def test_preferred_anti_affinity_avoids_but_does_not_refuse() -> None:
    avoid = pod_affinity("podAntiAffinity", preferred=((100, term(WEB)),))
    nodes = [node("pi-1", pods=[BoundPod("default", WEB)]), node("pi-2", pods=[BoundPod("default", WEB)] * 2)]
    assert schedule(req(WEB, affinity=avoid), nodes).node == "pi-1"
    assert schedule(req(WEB, affinity=avoid), nodes[1:]).node == "pi-2"


def test_preferred_affinity_draws_to_the_node_with_most_matching_pods() -> None:
    near = pod_affinity("podAffinity", preferred=((50, term(DB)),))
    nodes = [node("pi-1", pods=[BoundPod("default", DB)]), node("pi-2", pods=[BoundPod("default", DB)] * 3)]
    assert schedule(req(WEB, affinity=near), nodes).node == "pi-2"


# -- PodTopologySpread -------------------------------------------------------------------------------------------
def spread(when: str = "DoNotSchedule", key: str = "zone", skew: int = 1, **more: Any) -> dict[str, Any]:
    return {
        "maxSkew": skew,
        "topologyKey": key,
        "whenUnsatisfiable": when,
        "labelSelector": {"matchLabels": WEB},
        **more,
    }


def test_do_not_schedule_keeps_the_skew_within_max_skew() -> None:
    nodes = [
        node("pi-1", {"zone": "a"}, pods=[BoundPod("default", WEB)]),
        node("pi-2", {"zone": "a"}),
        node("pi-3", {"zone": "b"}),
    ]
    pod = req(WEB, topologySpreadConstraints=[spread()])
    assert schedule(pod, nodes).node == "pi-3"
    assert schedule(pod, nodes[:1]).node == "pi-1"  # one domain: no skew to speak of
    crowded = [nodes[0], node("pi-3", {"zone": "b"}, pods=[BoundPod("default", {"app": "other"})])]
    assert schedule(pod, crowded).node == "pi-3"  # only pods the selector matches count
    a_only = [nodes[0], nodes[1], node("pi-3", {"zone": "b"}, ready=False)]
    assert schedule(pod, a_only).message == (
        "0/3 nodes are available: 1 node(s) were not ready, 2 node(s) didn't match pod topology spread constraints."
    )


def test_a_node_without_the_topology_key_is_refused_with_the_missing_label_reason() -> None:
    pod = req(WEB, topologySpreadConstraints=[spread()])
    assert schedule(pod, [node("pi-9")]).message == (
        "0/1 nodes are available: 1 node(s) didn't match pod topology spread constraints (missing required label)."
    )


def test_spreading_over_hostnames_places_replicas_round_robin() -> None:
    replicas = [req(WEB, topologySpreadConstraints=[spread(key=HOST)]) for _ in range(6)]
    placements = schedule_all(replicas, [node("pi-1"), node("pi-2"), node("pi-3")])
    assert [p.node for p in placements] == ["pi-1", "pi-2", "pi-3", "pi-1", "pi-2", "pi-3"]


def test_min_domains_counts_missing_domains_as_empty() -> None:
    """With fewer domains than minDomains the global minimum is 0: each domain takes at most maxSkew pods."""
    nodes = [
        node("pi-1", {"zone": "a"}, pods=[BoundPod("default", WEB)]),
        node("pi-2", {"zone": "b"}, pods=[BoundPod("default", WEB)]),
    ]
    assert schedule(req(WEB, topologySpreadConstraints=[spread()]), nodes).node == "pi-1"
    assert schedule(req(WEB, topologySpreadConstraints=[spread(minDomains=3)]), nodes).node is None


def test_match_label_keys_count_only_pods_with_the_same_value() -> None:
    v1, v2 = {**WEB, "version": "1"}, {**WEB, "version": "2"}
    nodes = [node("pi-1", {"zone": "a"}, pods=[BoundPod("default", v1)] * 2), node("pi-2", {"zone": "b"})]
    by_version = req(v2, topologySpreadConstraints=[spread(matchLabelKeys=["version"])])
    other_version_there = [nodes[0], node("pi-2", {"zone": "b"}, pods=[BoundPod("default", v2)])]
    assert schedule(by_version, other_version_there).node == "pi-1"  # pi-2's v2 pod counts, pi-1's v1 pods do not
    assert schedule(req(v2, topologySpreadConstraints=[spread()]), nodes).node == "pi-2"


def test_schedule_anyway_prefers_the_emptier_domain_but_never_refuses() -> None:
    nodes = [
        node("pi-1", {"zone": "a"}, pods=[BoundPod("default", WEB)] * 3),
        node("pi-2", {"zone": "b"}, used_cpu_millis=3000),
    ]
    pod = req(WEB, topologySpreadConstraints=[spread(when="ScheduleAnyway")])
    assert schedule(pod, nodes).node == "pi-2"
    assert schedule(pod, nodes[:1]).node == "pi-1"


# -- one pass ----------------------------------------------------------------------------------------------------
def test_schedule_all_equals_schedule_and_bind_in_a_loop_with_affinity_in_the_mix() -> None:
    """The O(log nodes) pass and the reference loop agree, affinity pods and plain pods interleaved."""
    rng = random.Random(7)
    kinds = [
        lambda: req({"app": "plain"}, owner="rc-plain"),
        lambda: req(WEB, owner="rc-web", affinity=pod_affinity("podAntiAffinity", term(WEB))),
        lambda: req(DB, affinity=pod_affinity("podAffinity", term(DB, key="zone"))),
        lambda: req({"app": "s"}, topologySpreadConstraints=[spread(key="zone")]),
        lambda: req(affinity=required_nodes([{"key": RAM, "operator": "Gt", "values": ["3"]}])),
    ]
    requests = [rng.choice(kinds)() for _ in range(60)]
    nodes = [node(f"pi-{i}", {"zone": "ab"[i % 2], RAM: str(2 * i)}) for i in range(6)]
    expected, views = [], {n.name: n for n in nodes}
    for r in requests:
        placement = schedule(r, list(views.values()))
        if placement.node is not None:
            views[placement.node] = bind(views[placement.node], r)
        expected.append(placement)
    assert schedule_all(requests, nodes) == expected
