"""The node lifecycle controller's inputs: each node's health and taints, and the pods on nodes it may act on.

Built from a pass's Snapshot (the store, the master's liveness, the pods' tolerations) by controllers.nodelifecycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edgekube.master.controllers.base import Snapshot
from edgekube.master.liveness import Health
from edgekube.model.lenient import decode_stored
from edgekube.model.taints import Taint, TaintEffect, Toleration


@dataclass(frozen=True)
class NodeState:
    name: str
    health: Health
    taints: tuple[Taint, ...] = ()
    #: The types of the node's conditions that are True as its agent last reported them (MemoryPressure, ...).
    conditions: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PodState:
    namespace: str
    name: str
    uid: str
    node: str
    tolerations: tuple[Toleration, ...] = ()


def node_taints(node: Mapping[str, Any]) -> tuple[Taint, ...]:
    raw = (node.get("spec") or {}).get("taints") or ()
    return tuple(decode_stored(Taint, t) for t in raw)


def true_conditions(node: Mapping[str, Any]) -> frozenset[str]:
    raw = (node.get("status") or {}).get("conditions") or ()
    return frozenset(c.get("type", "") for c in raw if c.get("status") == "True")


def lifecycle_inputs(snapshot: Snapshot) -> tuple[list[NodeState], dict[str, list[PodState]]]:
    """Every stored node's state, and the pods of the nodes that are NotReady or carry a NoExecute taint.

    Pods elsewhere cannot be evicted this pass, so a healthy cluster costs O(nodes), not O(pods).
    """
    states: list[NodeState] = []
    watched: set[str] = set()
    for node in snapshot.store.objects("Node").values():
        name = node["metadata"]["name"]
        state = NodeState(name, snapshot.health(name), node_taints(node), true_conditions(node))
        states.append(state)
        if state.health is not Health.READY or any(t.effect is TaintEffect.NO_EXECUTE for t in state.taints):
            watched.add(name)
    pods_by_node: dict[str, list[PodState]] = {}
    if watched:
        for pod in snapshot.store.objects("Pod").values():
            node_name = pod["spec"].get("nodeName")
            if node_name in watched:
                meta = pod["metadata"]
                pods_by_node.setdefault(node_name, []).append(
                    PodState(meta["namespace"], meta["name"], meta["uid"], node_name, snapshot.tolerations(pod))
                )
    return states, pods_by_node
