"""Placing pods: the usage index stays equal to a recount, new pods are bound in the write that creates them,
pending pods are retried every pass and explained once, and the Api/replication paths use the binder."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from edgekube.master.api import Api
from edgekube.master.cache import CachedStore
from edgekube.master.controllers.base import Effects, Snapshot, apply
from edgekube.master.controllers.replication.controller import ReplicationManager
from edgekube.master.controllers.replication.ownerindex import OwnerIndex
from edgekube.master.eventlog import EventLog
from edgekube.master.scheduling.placer import Placer
from edgekube.master.scheduling.specs import SpecCache
from edgekube.master.scheduling.usage import NodeUsage
from edgekube.model.node import DEFAULT_MAX_PODS
from edgekube.model.taints import Taint, TaintEffect
from edgekube.store.state import TinyStateStore

READY = {"n1", "n2"}


@pytest.fixture
def store() -> Iterator[CachedStore]:
    with TinyStateStore(None) as backend:
        cache = CachedStore(backend)
        for name in ("n1", "n2", "n3"):
            cache.create(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": name, "namespace": ""},
                    "spec": {},
                    "status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": 110}},
                }
            )
        yield cache


@pytest.fixture
def events() -> EventLog:
    return EventLog()


@pytest.fixture
def placer(store: CachedStore, events: EventLog) -> Placer:
    specs = SpecCache()
    usage = NodeUsage(specs)
    store.listen("Pod", usage.observe)
    return Placer(store, usage, specs, events, lambda name: name in READY)


def pod(
    name: str, cpu: str = "100m", node: str | None = None, owner: str | None = None, **status: Any
) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": cpu}}}]}
    if node:
        spec["nodeName"] = node
    meta: dict[str, Any] = {"name": name, "namespace": "default", "labels": {"app": "web"}}
    if owner:
        meta["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "ReplicationController", "name": "w", "uid": owner, "controller": True}
        ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": status or {"phase": "Pending"}}


def recount(store: CachedStore) -> dict[str, tuple[int, int]]:
    """Per node: (pods, cpu millis) of the non-terminal pods bound there, counted from scratch."""
    out: dict[str, tuple[int, int]] = {}
    for p in store.objects("Pod").values():
        node = p["spec"].get("nodeName")
        if node and p["status"].get("phase") not in ("Succeeded", "Failed"):
            count, cpu = out.get(node, (0, 0))
            out[node] = (count + 1, cpu + int(p["spec"]["containers"][0]["resources"]["requests"]["cpu"].rstrip("m")))
    return out


def test_the_usage_index_follows_every_write(store: CachedStore, placer: Placer) -> None:
    a = store.create(pod("a", "200m", node="n1", owner="rc"))
    b = store.create(pod("b", "300m", node="n1"))
    store.create(pod("c", "100m"))
    store.update({**a, "spec": {**a["spec"], "nodeName": "n2"}})  # moved (as if rescheduled)
    store.update({**b, "status": {"phase": "Succeeded"}})  # finished: frees what it held
    store.delete("Pod", "default", "c")
    usage = placer.usage
    assert {n: (u.pods, u.cpu_millis) for n, u in usage.nodes.items() if u.pods} == recount(store) == {"n2": (1, 200)}
    assert dict(usage.usage("n2").owners) == {"rc": 1}
    assert usage.usage("n1").owners == {} and usage.pending == {}


def test_new_pods_are_bound_before_they_are_written(store: CachedStore, placer: Placer, events: EventLog) -> None:
    new = [pod("a", owner="rc"), pod("b", owner="rc"), pod("huge", "5")]
    bound = placer.bind_new(new)
    assert [p["metadata"]["name"] for p in bound] == ["a", "b"]
    assert sorted(p["spec"]["nodeName"] for p in bound) == ["n1", "n2"]  # spread, never the NotReady n3
    assert bound[0]["status"]["conditions"][0]["type"] == "PodScheduled"
    assert "nodeName" not in new[2]["spec"]  # fits nowhere: created pending, the pass explains it
    for p in new:
        stored = store.create(p)
        if p in bound:
            placer.scheduled(stored)
    assert [e["reason"] for e in events.list()] == ["Scheduled", "Scheduled"]
    assert list(placer.usage.pending) == [("default", "huge")]


def test_pending_pods_are_placed_oldest_first_and_explained_once(
    store: CachedStore, placer: Placer, events: EventLog
) -> None:
    store.create(pod("first", "600m"))
    store.create(pod("second", "600m"))
    store.create(pod("third", "600m"))
    assert placer.place_pending() == 2
    assert {p["metadata"]["name"]: p["spec"].get("nodeName") for p in store.objects("Pod").values()} == {
        "first": "n1",
        "second": "n2",
        "third": None,
    }
    third = store.peek("Pod", "default", "third")
    message = "0/3 nodes are available: 1 node(s) were not ready, 2 Insufficient cpu."
    assert (third["status"]["reason"], third["status"]["message"]) == ("Unschedulable", message)
    writes = store.writes
    assert placer.place_pending() == 0
    assert store.writes == writes  # the same explanation is not written (nor recorded) again
    assert [e["reason"] for e in events.list()].count("FailedScheduling") == 1


def test_views_take_node_changes_into_account(store: CachedStore, placer: Placer) -> None:
    n1 = store.peek("Node", "", "n1")
    store.update({**n1, "spec": {"unschedulable": True}})
    views = {str(v.name): v for v in placer.views()}
    assert views["n1"].unschedulable and not views["n2"].unschedulable
    assert (views["n2"].cpu_millis, views["n3"].ready) == (1000, False)


def add_node(store: CachedStore, name: str, allocatable: dict[str, Any], **spec: Any) -> None:
    meta = {"name": name, "namespace": "", "labels": {"kubernetes.io/arch": "arm64"}}
    store.create(
        {"apiVersion": "v1", "kind": "Node", "metadata": meta, "spec": spec, "status": {"allocatable": allocatable}}
    )


def test_a_view_reads_allocatable_and_counts_the_pods_bound_there(store: CachedStore, placer: Placer) -> None:
    add_node(store, "pi-1", {"cpu": "4", "memory": "3882Mi", "pods": "20"})
    store.create(pod("small", "100m", node="pi-1"))
    limits_only = pod("big", node="pi-1")
    limits_only["spec"]["containers"][0]["resources"] = {"limits": {"cpu": "1", "memory": "1Gi"}}
    store.create(limits_only)
    view = next(v for v in placer.views() if v.name == "pi-1")
    assert (view.cpu_millis, view.memory_bytes, view.max_pods) == (4000, 3882 * 2**20, 20)
    assert (view.used_cpu_millis, view.used_memory_bytes, view.pod_count) == (1100, 2**30, 2)
    assert view.labels == {"kubernetes.io/arch": "arm64"}


def test_a_view_of_a_node_without_allocatable_takes_the_defaults(store: CachedStore, placer: Placer) -> None:
    add_node(store, "pi-1", {}, unschedulable=True)
    view = next(v for v in placer.views() if v.name == "pi-1")
    assert (view.cpu_millis, view.memory_bytes, view.max_pods, view.ready, view.unschedulable) == (
        0,
        0,
        DEFAULT_MAX_PODS,
        False,
        True,
    )


def test_a_view_counts_bound_pods_per_owner_and_keeps_taints(store: CachedStore, placer: Placer) -> None:
    gpu = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    add_node(store, "pi-1", {"cpu": "4", "memory": "4Gi"}, taints=[gpu])
    for name, owner in (("a", "rc-1"), ("b", "rc-1"), ("c", "rc-2"), ("d", None), ("e", None)):
        store.create(pod(name, node="pi-1", owner=owner))
    view = next(v for v in placer.views() if v.name == "pi-1")
    assert view.owner_pods == {"rc-1": 2, "rc-2": 1}
    assert view.pod_count == 5
    assert view.taints == (Taint(key="dedicated", value="gpu", effect=TaintEffect.NO_SCHEDULE),)


def test_api_apply_creates_pods_bound_in_one_write(store: CachedStore, placer: Placer, events: EventLog) -> None:
    api = Api(store, lambda n: n, events, binder=placer)
    manifest = (
        '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},"spec":{"containers":[{"name":"c","image":"i"}]}}'
    )
    writes = store.writes
    api.apply(manifest)
    assert store.writes == writes + 1
    assert store.peek("Pod", "default", "web")["spec"]["nodeName"] in READY
    assert [e["reason"] for e in events.list()] == ["Scheduled"]


def test_replication_creates_pods_bound(store: CachedStore, placer: Placer, events: EventLog) -> None:
    store.create(
        {
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "metadata": {"name": "web", "namespace": "default", "generation": 1},
            "spec": {
                "replicas": 4,
                "selector": {"app": "web"},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": pod("x")["spec"]},
            },
        }
    )
    apply(ReplicationManager(store, random.Random(1)).plan(Snapshot(store, 0.0)), Effects(store, events, placer))
    nodes = sorted(p["spec"].get("nodeName") for p in store.objects("Pod").values())
    assert nodes == ["n1", "n1", "n2", "n2"]
    reasons = [e["reason"] for e in events.list()]
    assert reasons.count("SuccessfulCreate") == reasons.count("Scheduled") == 4


def test_the_owner_index_groups_pods_by_controller_and_orphans_by_namespace() -> None:
    index = OwnerIndex()
    index.observe(("default", "a"), pod("a", owner="rc-1"))
    index.observe(("default", "b"), pod("b"))
    index.observe(("prod", "c"), {**pod("c"), "metadata": {"name": "c", "namespace": "prod"}})
    assert [p["metadata"]["name"] for p in index.candidates("rc-1", "default")] == ["a", "b"]
    assert [p["metadata"]["name"] for p in index.candidates("rc-2", "default")] == ["b"]
    index.observe(("default", "b"), pod("b", owner="rc-2"))  # adopted by rc-2
    index.observe(("default", "a"), None)  # deleted
    assert index.candidates("rc-1", "default") == []
    assert [p["metadata"]["name"] for p in index.candidates("rc-2", "default")] == ["b"]
    assert set(index.owned) == {"rc-2"} and set(index.orphans) == {"prod"}
