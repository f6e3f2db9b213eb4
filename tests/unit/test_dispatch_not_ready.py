"""The master tells a node when it sees it NotReady (`notReady` in the node's desired state, from the lifecycle taint),
so the node's LEDs can show it; a taint change resends that node's message, and only that node's."""

from __future__ import annotations

from typing import Any

from edgekube.master.dispatch import Dispatcher
from edgekube.model.taints import TAINT_UNREACHABLE
from edgekube.model.wire import NodeDesired


def node(name: str, *taints: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "spec": {"taints": [{"key": k, "effect": "NoExecute"} for k in taints]},
    }


def test_a_lifecycle_taint_is_told_to_its_node_and_its_removal_too() -> None:
    d = Dispatcher()
    d.node_changed(("", "pi-1"), node("pi-1"))
    d.node_changed(("", "pi-2"), node("pi-2"))
    first = d.flush(["pi-1", "pi-2"])
    assert [m.not_ready for m in first] == [None, None]
    assert b"notReady" not in first[0].encode()  # absent while Ready: older agents read it as before

    d.node_changed(("", "pi-1"), node("pi-1", "node.kubernetes.io/cordoned", TAINT_UNREACHABLE))
    [told] = d.flush(["pi-1", "pi-2"])
    assert (told.node, told.not_ready) == ("pi-1", TAINT_UNREACHABLE)
    assert NodeDesired.decode(told.encode()) == told

    d.node_changed(("", "pi-1"), node("pi-1", TAINT_UNREACHABLE))  # the same taint again: nothing to tell
    assert d.flush(["pi-1", "pi-2"]) == []

    d.node_changed(("", "pi-1"), node("pi-1"))
    [ready] = d.flush(["pi-1", "pi-2"])
    assert (ready.node, ready.not_ready, ready.generation > told.generation) == ("pi-1", None, True)


def test_a_deleted_node_is_no_longer_not_ready() -> None:
    d = Dispatcher()
    d.node_changed(("", "pi-1"), node("pi-1", TAINT_UNREACHABLE))
    d.flush(["pi-1"])
    d.node_changed(("", "pi-1"), None)
    [message] = d.flush(["pi-1"])
    assert message.not_ready is None
