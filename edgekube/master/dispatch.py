"""Desired state per node: which pods a node must run, published retained only when the set really changed."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edgekube.model import jsoncodec
from edgekube.model.types import Obj
from edgekube.model.wire import NodeDesired

#: Metadata the agent needs; resourceVersion is left out so a status write does not look like a new desired state.
_META_KEYS = ("name", "namespace", "uid", "labels", "annotations")


def desired_pod(pod: Mapping[str, Any]) -> Obj:
    """The part of a stored pod an agent acts on: identity, labels and spec (never status)."""
    meta = pod["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {k: meta[k] for k in _META_KEYS if k in meta},
        "spec": pod["spec"],
    }


def _fragment(desired: Obj) -> str:
    return jsoncodec.dumps(desired, sort_keys=True)


@dataclass
class _Entry:
    """One bound pod as its node is told about it."""

    node: str
    key: tuple[str, str]  # (namespace, name)
    resource_version: str | None
    fragment: str  # its JSON in the node's message: what "changed" is judged by
    desired: Obj


@dataclass
class Dispatcher:
    """Keeps every node's desired set up to date as pods change; yields messages only for sets that changed.

    Incremental: `observe` is called for every pod write (the master's cache does it), so a pass costs
    O(changes), not O(pods). `epoch` is new per master process: agents accept any generation from a new
    epoch, and within an epoch only newer generations, so stale or duplicated retained messages cannot roll
    a node back.
    """

    epoch: str = field(default_factory=lambda: uuid.uuid4().hex)
    generation: int = 0
    _sent: dict[str, frozenset[str]] = field(default_factory=dict)
    _entries: dict[tuple[str, str], _Entry] = field(default_factory=dict)
    _nodes: dict[str, dict[tuple[str, str], _Entry]] = field(default_factory=dict)
    _dirty: set[str] = field(default_factory=set)

    def observe(self, key: tuple[str, str], pod: Mapping[str, Any] | None) -> None:
        """A pod was written (or deleted: None). Status-only writes change nothing a node is told."""
        old = self._entries.get(key)
        node = pod["spec"].get("nodeName") if pod is not None else None
        if pod is None or not node:
            if old is not None:
                self._drop(old)
            return
        version = pod["metadata"].get("resourceVersion")
        if old is not None and old.resource_version == version and old.node == node:
            return
        desired = desired_pod(pod)
        if old is not None and old.node == node and old.desired == desired:
            old.resource_version = version  # a status write: nothing the node is told changed
            return
        fragment = _fragment(desired)
        if old is not None:
            if old.node == node and old.fragment == fragment:
                old.resource_version = version
                return
            self._drop(old)
        entry = _Entry(node, key, version, fragment, desired)
        self._entries[key] = entry
        self._nodes.setdefault(node, {})[key] = entry
        self._dirty.add(node)

    def _drop(self, entry: _Entry) -> None:
        del self._entries[entry.key]
        self._nodes[entry.node].pop(entry.key, None)
        self._dirty.add(entry.node)

    def flush(self, nodes: Iterable[str]) -> list[NodeDesired]:
        """Messages for every node whose set changed, and for known nodes never sent one (an empty set too)."""
        candidates = self._dirty | {n for n in nodes if n not in self._sent}
        self._dirty = set()
        out = []
        for node in sorted(candidates):
            entries = self._nodes.get(node, {})
            digest = frozenset(e.fragment for e in entries.values())
            if self._sent.get(node) == digest:
                continue
            items = sorted(entries.values(), key=lambda e: e.key)
            out.append(self._message(node, [e.desired for e in items], digest, [e.fragment for e in items]))
        return out

    def _message(self, node: str, pods: list[Obj], digest: frozenset[str], fragments: list[str]) -> NodeDesired:
        self.generation += 1
        self._sent[node] = digest
        return NodeDesired.prepared(node, self.generation, self.epoch, pods, fragments)

    def forget(self, node: str) -> None:
        """Force the next flush to resend this node's set (e.g. after the agent reconnects)."""
        self._sent.pop(node, None)
        self._dirty.add(node)

    def forget_all(self) -> None:
        """Resend every node's set (e.g. after a broker restart lost the retained messages)."""
        self._dirty |= set(self._sent) | set(self._nodes)
        self._sent.clear()
