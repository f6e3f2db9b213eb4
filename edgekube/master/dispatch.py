"""Desired state per node: which pods a node must run, published retained only when the set really changed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from edgekube.model.wire import NodeDesired

#: Metadata the agent needs; resourceVersion is left out so a status write does not look like a new desired state.
_META_KEYS = ("name", "namespace", "uid", "labels", "annotations")


def desired_pod(pod: dict[str, Any]) -> dict[str, Any]:
    """The part of a stored pod an agent acts on: identity, labels and spec (never status)."""
    meta = pod["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {k: meta[k] for k in _META_KEYS if k in meta},
        "spec": pod["spec"],
    }


def desired_sets(nodes: Iterable[str], pods: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Group bound pods by node; every known node gets an entry (an empty list tells it to run nothing)."""
    sets: dict[str, list[dict[str, Any]]] = {n: [] for n in nodes}
    for pod in pods:
        node = pod["spec"].get("nodeName")
        if node:
            sets.setdefault(node, []).append(desired_pod(pod))
    for items in sets.values():
        items.sort(key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]))
    return sets


@dataclass
class Dispatcher:
    """Remembers what each node was last sent; `changes` yields only nodes whose set differs.

    `epoch` is new per master process: agents accept any generation from a new epoch, and within an epoch
    only newer generations, so stale or duplicated retained messages cannot roll a node back.
    """

    epoch: str = field(default_factory=lambda: uuid.uuid4().hex)
    generation: int = 0
    _sent: dict[str, str] = field(default_factory=dict)

    def changes(self, sets: dict[str, list[dict[str, Any]]]) -> list[NodeDesired]:
        out = []
        for node, pods in sorted(sets.items()):
            digest = json.dumps(pods, sort_keys=True, separators=(",", ":"))
            if self._sent.get(node) == digest:
                continue
            self.generation += 1
            self._sent[node] = digest
            out.append(NodeDesired(node=node, generation=self.generation, epoch=self.epoch, pods=pods))
        return out

    def forget(self, node: str) -> None:
        """Force the next `changes` to resend this node's set (e.g. after the agent reconnects)."""
        self._sent.pop(node, None)
