"""Desired state per node, as the master runs it (`observe` every pod write, `flush` once a pass): grouping bound
pods, and resending a node's set only when it really changed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edgekube.master.dispatch import Dispatcher, desired_pod
from edgekube.model.wire import NodeDesired


def stored_pod(name: str, node: str | None, namespace: str = "default", **meta: Any) -> dict[str, Any]:
    """A pod as the store holds it: server fields and a status included."""
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "busybox"}]}
    if node is not None:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "labels": {"app": name},
            "annotations": {"note": "x"},
            "resourceVersion": "42",
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "generation": 3,
            **meta,
        },
        "spec": spec,
        "status": {"phase": "Running", "podIP": "10.0.0.1"},
    }


def test_desired_pod_keeps_identity_labels_and_spec_only() -> None:
    pod = stored_pod("web", "pi-1")
    assert desired_pod(pod) == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "uid-web",
            "labels": {"app": "web"},
            "annotations": {"note": "x"},
        },
        "spec": pod["spec"],
    }


def test_desired_pod_leaves_out_metadata_that_is_absent() -> None:
    pod = {"metadata": {"name": "web", "namespace": "default", "uid": "u"}, "spec": {"nodeName": "pi-1"}}
    assert desired_pod(pod)["metadata"] == {"name": "web", "namespace": "default", "uid": "u"}


def observed(d: Dispatcher, *pods: dict[str, Any]) -> Dispatcher:
    """Tell the dispatcher about these pod writes, as the master's cache does."""
    for pod in pods:
        d.observe((pod["metadata"]["namespace"], pod["metadata"]["name"]), pod)
    return d


def names(message: NodeDesired) -> list[tuple[str, str]]:
    return [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in message.pods]


def summary(messages: list[NodeDesired]) -> list[tuple[str, int, int]]:
    return [(m.node, m.generation, len(m.pods)) for m in messages]


def test_bound_pods_are_grouped_by_node_in_name_order_and_every_known_node_gets_a_set() -> None:
    d = observed(
        Dispatcher(),
        stored_pod("b", "pi-1"),
        stored_pod("a", "pi-1", namespace="zeta"),
        stored_pod("a", "pi-1"),
        stored_pod("c", "pi-2"),
        stored_pod("pending", None),
    )
    out = {m.node: m for m in d.flush(["pi-1", "pi-2", "pi-3"])}
    assert sorted(out) == ["pi-1", "pi-2", "pi-3"]
    assert names(out["pi-1"]) == [("default", "a"), ("default", "b"), ("zeta", "a")]
    assert names(out["pi-2"]) == [("default", "c")]
    assert out["pi-3"].pods == []  # an empty list tells the node to run nothing


def test_a_node_is_told_identity_labels_and_spec_never_status_or_server_fields() -> None:
    [message] = observed(Dispatcher(), stored_pod("web", "pi-1")).flush(["pi-1"])
    [pod] = message.pods
    assert pod == desired_pod(stored_pod("web", "pi-1"))
    assert "status" not in pod
    assert not {"resourceVersion", "creationTimestamp", "generation"} & set(pod["metadata"])


def test_a_pod_bound_to_an_unknown_node_still_gets_a_set() -> None:
    assert [m.node for m in observed(Dispatcher(), stored_pod("web", "gone")).flush([])] == ["gone"]


@pytest.mark.parametrize("node", [None, ""])
def test_unbound_pods_are_in_no_set(node: str | None) -> None:
    pod = stored_pod("web", None)
    if node is not None:
        pod["spec"]["nodeName"] = node
    [message] = observed(Dispatcher(), pod).flush(["pi-1"])
    assert (message.node, message.pods) == ("pi-1", [])


def test_the_first_round_sends_every_node_in_name_order_with_increasing_generations() -> None:
    d = observed(Dispatcher(epoch="e1"), stored_pod("web", "pi-1"))
    out = d.flush(["pi-2", "pi-1"])
    assert summary(out) == [("pi-1", 1, 1), ("pi-2", 2, 0)]
    assert {m.epoch for m in out} == {"e1"}
    assert out[0].pods == [desired_pod(stored_pod("web", "pi-1"))]


def test_only_changed_nodes_are_resent() -> None:
    d = Dispatcher(epoch="e1")
    d.flush(["pi-1", "pi-2"])
    assert d.flush(["pi-1", "pi-2"]) == []
    out = observed(d, stored_pod("web", "pi-1")).flush(["pi-1", "pi-2"])
    assert summary(out) == [("pi-1", 3, 1)]
    assert d.generation == 3


def test_a_status_write_does_not_look_like_a_new_desired_state() -> None:
    d = observed(Dispatcher(), stored_pod("web", "pi-1"))
    d.flush(["pi-1"])
    after = stored_pod("web", "pi-1", resourceVersion="43")
    after["status"] = {"phase": "Failed"}
    assert observed(d, after).flush(["pi-1"]) == []


def test_a_label_change_is_a_new_desired_state() -> None:
    d = observed(Dispatcher(), stored_pod("web", "pi-1"))
    d.flush(["pi-1"])
    relabelled = stored_pod("web", "pi-1", resourceVersion="44", labels={"app": "web", "v": "2"})
    [message] = observed(d, relabelled).flush(["pi-1"])
    assert (message.generation, message.pods[0]["metadata"]["labels"]) == (2, {"app": "web", "v": "2"})


def test_a_pod_moving_between_nodes_changes_both_sets() -> None:
    d = observed(Dispatcher(), stored_pod("web", "pi-1"))
    d.flush(["pi-1", "pi-2"])
    moved = stored_pod("web", "pi-2", resourceVersion="50")
    assert summary(observed(d, moved).flush(["pi-1", "pi-2"])) == [("pi-1", 3, 0), ("pi-2", 4, 1)]


def test_a_deleted_pod_leaves_its_nodes_set() -> None:
    d = observed(Dispatcher(), stored_pod("a", "pi-1"), stored_pod("b", "pi-1"))
    d.flush(["pi-1"])
    d.observe(("default", "b"), None)
    [message] = d.flush(["pi-1"])
    assert names(message) == [("default", "a")]


def test_forget_forces_a_resend_with_a_newer_generation_in_the_same_epoch() -> None:
    d = observed(Dispatcher(), stored_pod("web", "pi-1"))
    first = d.flush(["pi-1", "pi-2"])
    d.forget("pi-1")
    d.forget("never-seen")  # harmless: a node with no pods gets its empty set
    again = d.flush(["pi-1", "pi-2"])
    assert summary(again) == [("never-seen", 3, 0), ("pi-1", 4, 1)]
    assert again[1].pods == first[0].pods
    assert again[1].epoch == first[0].epoch == d.epoch


def test_forget_all_resends_every_node() -> None:
    d = observed(Dispatcher(), stored_pod("a", "pi-1"))
    d.flush(["pi-1", "pi-2"])
    d.forget_all()
    assert [m.node for m in d.flush(["pi-1", "pi-2"])] == ["pi-1", "pi-2"]


def test_each_dispatcher_has_its_own_epoch() -> None:
    a, b = Dispatcher(), Dispatcher()
    assert a.epoch != b.epoch
    assert len(a.epoch) == 32
    assert (a.generation, b.generation) == (0, 0)


def test_the_messages_round_trip_on_the_wire() -> None:
    [message] = observed(Dispatcher(epoch="e"), stored_pod("web", "pi-1")).flush(["pi-1"])
    assert NodeDesired.decode(message.encode()) == message


def test_observe_then_flush_sends_only_nodes_whose_set_changed() -> None:
    d = Dispatcher(epoch="e")
    d.observe(("default", "a"), stored_pod("a", "pi-1"))
    assert summary(d.flush(["pi-1", "pi-2"])) == [("pi-1", 1, 1), ("pi-2", 2, 0)]
    assert d.flush(["pi-1", "pi-2"]) == []
    status_only = stored_pod("a", "pi-1", resourceVersion="43")
    status_only["status"] = {"phase": "Running"}
    d.observe(("default", "a"), status_only)
    assert d.flush(["pi-1", "pi-2"]) == []
    d.observe(("default", "b"), stored_pod("b", None))  # pending: no node hears of it
    assert d.flush(["pi-1", "pi-2"]) == []
    d.observe(("default", "b"), stored_pod("b", "pi-2", resourceVersion="44"))
    d.observe(("default", "a"), None)
    assert summary(d.flush(["pi-1", "pi-2"])) == [("pi-1", 3, 0), ("pi-2", 4, 1)]


def test_a_node_registered_later_gets_its_empty_set() -> None:
    d = Dispatcher()
    d.flush(["pi-1"])
    assert [m.node for m in d.flush(["pi-1", "pi-2"])] == ["pi-2"]


def test_a_recreated_pod_with_the_same_name_is_a_change() -> None:
    d = Dispatcher()
    d.observe(("default", "a"), stored_pod("a", "pi-1"))
    d.flush(["pi-1"])
    d.observe(("default", "a"), stored_pod("a", "pi-1", uid="uid-new", resourceVersion="99"))
    [message] = d.flush(["pi-1"])
    assert message.pods[0]["metadata"]["uid"] == "uid-new"


def test_a_prepared_message_encodes_as_the_model_would() -> None:
    pods = [stored_pod("web", "pi-1"), stored_pod("db", "pi-1")]
    [message] = observed(Dispatcher(epoch="e"), *pods).flush(["pi-1"])
    slow = NodeDesired(node=message.node, generation=message.generation, epoch=message.epoch, pods=message.pods)
    assert NodeDesired.decode(message.encode()) == slow
    assert json.loads(message.encode()) == json.loads(slow.encode())
