"""Desired state per node: grouping bound pods, and resending a node's set only when it really changed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edgekube.master.dispatch import Dispatcher, desired_pod, desired_sets
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


def test_desired_sets_group_bound_pods_by_node_and_list_every_known_node() -> None:
    pods = [
        stored_pod("b", "pi-1"),
        stored_pod("a", "pi-1", namespace="zeta"),
        stored_pod("a", "pi-1"),
        stored_pod("c", "pi-2"),
        stored_pod("pending", None),
    ]
    sets = desired_sets(["pi-1", "pi-2", "pi-3"], pods)
    assert sorted(sets) == ["pi-1", "pi-2", "pi-3"]
    assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in sets["pi-1"]] == [
        ("default", "a"),
        ("default", "b"),
        ("zeta", "a"),
    ]
    assert [p["metadata"]["name"] for p in sets["pi-2"]] == ["c"]
    assert sets["pi-3"] == []  # an empty list tells the node to run nothing


def test_desired_sets_strip_status_and_server_fields() -> None:
    [pod] = desired_sets(["pi-1"], [stored_pod("web", "pi-1")])["pi-1"]
    assert "status" not in pod
    assert not {"resourceVersion", "creationTimestamp", "generation"} & set(pod["metadata"])


def test_a_pod_bound_to_an_unknown_node_still_gets_a_set() -> None:
    assert list(desired_sets([], [stored_pod("web", "gone")])) == ["gone"]


@pytest.mark.parametrize("node", [None, ""])
def test_unbound_pods_are_in_no_set(node: str | None) -> None:
    pod = stored_pod("web", None)
    if node is not None:
        pod["spec"]["nodeName"] = node
    assert desired_sets(["pi-1"], [pod]) == {"pi-1": []}


def summary(messages: list[NodeDesired]) -> list[tuple[str, int, int]]:
    return [(m.node, m.generation, len(m.pods)) for m in messages]


def test_the_first_round_sends_every_node_in_name_order_with_increasing_generations() -> None:
    d = Dispatcher(epoch="e1")
    sets = desired_sets(["pi-2", "pi-1"], [stored_pod("web", "pi-1")])
    out = d.changes(sets)
    assert summary(out) == [("pi-1", 1, 1), ("pi-2", 2, 0)]
    assert {m.epoch for m in out} == {"e1"}
    assert out[0].pods == sets["pi-1"]


def test_only_changed_nodes_are_resent() -> None:
    d = Dispatcher(epoch="e1")
    d.changes({"pi-1": [], "pi-2": []})
    assert d.changes({"pi-1": [], "pi-2": []}) == []
    out = d.changes({"pi-1": [desired_pod(stored_pod("web", "pi-1"))], "pi-2": []})
    assert summary(out) == [("pi-1", 3, 1)]
    assert d.generation == 3


def test_a_status_write_does_not_look_like_a_new_desired_state() -> None:
    d = Dispatcher()
    before = stored_pod("web", "pi-1")
    after = stored_pod("web", "pi-1", resourceVersion="43")
    after["status"] = {"phase": "Failed"}
    d.changes(desired_sets(["pi-1"], [before]))
    assert d.changes(desired_sets(["pi-1"], [after])) == []


def test_a_label_change_is_a_new_desired_state() -> None:
    d = Dispatcher()
    d.changes(desired_sets(["pi-1"], [stored_pod("web", "pi-1")]))
    relabelled = stored_pod("web", "pi-1", labels={"app": "web", "v": "2"})
    assert summary(d.changes(desired_sets(["pi-1"], [relabelled]))) == [("pi-1", 2, 1)]


def test_forget_forces_a_resend_with_a_newer_generation_in_the_same_epoch() -> None:
    d = Dispatcher()
    sets = {"pi-1": [desired_pod(stored_pod("web", "pi-1"))], "pi-2": []}
    first = d.changes(sets)
    d.forget("pi-1")
    d.forget("never-seen")  # harmless
    again = d.changes(sets)
    assert summary(again) == [("pi-1", 3, 1)]
    assert again[0].pods == first[0].pods
    assert again[0].epoch == first[0].epoch == d.epoch


def test_each_dispatcher_has_its_own_epoch() -> None:
    a, b = Dispatcher(), Dispatcher()
    assert a.epoch != b.epoch
    assert len(a.epoch) == 32
    assert (a.generation, b.generation) == (0, 0)


def test_the_messages_round_trip_on_the_wire() -> None:
    [message] = Dispatcher(epoch="e").changes(desired_sets(["pi-1"], [stored_pod("web", "pi-1")]))
    assert NodeDesired.decode(message.encode()) == message


# -- changes_from: the same answers without re-serialising unchanged pods -------------------------------------------


def test_changes_from_sends_what_changes_of_desired_sets_would() -> None:
    pods = [stored_pod("b", "pi-1"), stored_pod("a", "pi-1"), stored_pod("c", "pi-2"), stored_pod("p", None)]
    fast, slow = Dispatcher(epoch="e"), Dispatcher(epoch="e")
    assert fast.changes_from(["pi-1", "pi-2", "pi-3"], pods) == slow.changes(
        desired_sets(["pi-1", "pi-2", "pi-3"], pods)
    )
    assert fast.changes_from(["pi-1", "pi-2", "pi-3"], pods) == []


def test_changes_from_ignores_status_writes_and_sees_label_changes() -> None:
    d = Dispatcher()
    d.changes_from(["pi-1"], [stored_pod("web", "pi-1")])
    status_only = stored_pod("web", "pi-1", resourceVersion="43")
    status_only["status"] = {"phase": "Failed"}
    assert d.changes_from(["pi-1"], [status_only]) == []
    relabelled = stored_pod("web", "pi-1", resourceVersion="44", labels={"app": "web", "v": "2"})
    [message] = d.changes_from(["pi-1"], [relabelled])
    assert message.pods[0]["metadata"]["labels"] == {"app": "web", "v": "2"}


def test_changes_from_notices_a_pod_moving_between_nodes() -> None:
    d = Dispatcher()
    d.changes_from(["pi-1", "pi-2"], [stored_pod("web", "pi-1")])
    moved = stored_pod("web", "pi-2", resourceVersion="50")
    assert summary(d.changes_from(["pi-1", "pi-2"], [moved])) == [("pi-1", 3, 0), ("pi-2", 4, 1)]


def test_changes_from_forgets_pods_that_are_gone() -> None:
    d = Dispatcher()
    d.changes_from(["pi-1"], [stored_pod("a", "pi-1"), stored_pod("b", "pi-1")])
    d.changes_from(["pi-1"], [stored_pod("a", "pi-1")])
    assert set(d._entries) == {("default", "a")}


def test_forget_all_resends_every_node() -> None:
    d = Dispatcher()
    pods = [stored_pod("a", "pi-1")]
    d.changes_from(["pi-1", "pi-2"], pods)
    d.forget_all()
    assert [m.node for m in d.changes_from(["pi-1", "pi-2"], pods)] == ["pi-1", "pi-2"]


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
    [message] = Dispatcher(epoch="e").changes(desired_sets(["pi-1"], pods))
    slow = NodeDesired(node=message.node, generation=message.generation, epoch=message.epoch, pods=message.pods)
    assert NodeDesired.decode(message.encode()) == slow
    assert json.loads(message.encode()) == json.loads(slow.encode())
