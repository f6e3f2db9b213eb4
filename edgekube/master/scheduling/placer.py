"""Puts the scheduler's placements into the store: binds new pods as they are created, and pending ones each pass.

Binding a pod in the same write that creates it (API applies, replication controllers) halves the store
writes of a new pod; whatever cannot be placed then is created pending, and every pass of the master's loop
tries the pending pods again, oldest first, explaining the ones that still do not fit (FailedScheduling).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from edgekube.master.cache import CachedStore
from edgekube.master.controllers.nodeinputs import node_taints
from edgekube.master.eventlog import EventLog
from edgekube.master.scheduling.scheduler import NodeView, Request, schedule_all
from edgekube.master.scheduling.specs import SpecCache, owner_of
from edgekube.master.scheduling.usage import NodeUsage
from edgekube.master.scheduling.volumes import VolumeCheck, VolumeGate
from edgekube.model.errors import ConflictError, NotFoundError
from edgekube.model.names import NodeName
from edgekube.model.node import DEFAULT_MAX_PODS
from edgekube.model.podresources import counted_allocatable
from edgekube.model.quantity import cpu_millis, memory_bytes
from edgekube.model.taints import Taint
from edgekube.model.types import Obj

log = logging.getLogger(__name__)

COMPONENT = "default-scheduler"
#: A node's parsed allocatable, labels and taints, kept until its resourceVersion moves.
_Static = tuple[
    str, Mapping[str, str], int, int, int, bool, tuple[Taint, ...], frozenset[tuple[str, int]], Mapping[str, int]
]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def scheduled_status() -> Obj:
    return {
        "phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": _now()}],
    }


@dataclass
class _Gated:
    """One batch's volume bookkeeping: the exclusive claims taken so far, why the last pod was held back."""

    claims: set[tuple[str, str]] = field(default_factory=set)
    blocked: VolumeCheck | None = None


class Placer:
    """The scheduling step; `ready` says which nodes are Ready (the master's liveness)."""

    def __init__(
        self,
        store: CachedStore,
        usage: NodeUsage,
        specs: SpecCache,
        events: EventLog,
        ready: Callable[[str], bool],
        *,
        volumes: VolumeGate | None = None,
    ) -> None:
        self.store = store
        self.usage = usage
        self.specs = specs
        self.events = events
        self.ready = ready
        self.volumes = volumes
        self._static: dict[str, tuple[str | None, _Static]] = {}

    def views(self) -> list[NodeView]:
        """The scheduler's picture of every stored node: O(nodes), usage comes from the index."""
        out = []
        for node in self.store.objects("Node").values():
            name, labels, cpu, memory, max_pods, unschedulable, taints, unreachable, extended = self._node_static(node)
            used = self.usage.usage(name)
            out.append(
                NodeView(
                    name=NodeName(name),
                    ready=self.ready(name),
                    labels=labels,
                    cpu_millis=cpu,
                    memory_bytes=memory,
                    max_pods=max_pods,
                    unschedulable=unschedulable,
                    used_cpu_millis=used.cpu_millis,
                    used_memory_bytes=used.memory_bytes,
                    pod_count=used.pods,
                    host_ports=frozenset(used.ports),
                    taints=taints,
                    owner_pods=dict(used.owners),
                    unreachable_nfs=unreachable,
                    extended=extended,
                    used_extended=used.extended,
                    pods=used.members,
                    anti_pods=used.anti,
                )
            )
        return out

    def _node_static(self, node: Mapping[str, Any]) -> _Static:
        meta = node["metadata"]
        cached = self._static.get(meta["name"])
        if cached is not None and cached[0] == meta.get("resourceVersion"):
            return cached[1]
        status = node.get("status") or {}
        allocatable = status.get("allocatable") or {}
        unreachable = frozenset(
            (str(s["server"]), int(s.get("port") or 2049))
            for s in status.get("nfsServers") or ()
            if s.get("reachable") is False
        )
        static: _Static = (
            meta["name"],
            dict(meta.get("labels") or {}),
            cpu_millis(allocatable.get("cpu", 0)),
            memory_bytes(allocatable.get("memory", 0)),
            int(allocatable.get("pods", DEFAULT_MAX_PODS)),
            bool((node.get("spec") or {}).get("unschedulable")),
            node_taints(node),
            unreachable,
            counted_allocatable(allocatable),
        )
        self._static[meta["name"]] = (meta.get("resourceVersion"), static)
        return static

    # -- new pods --------------------------------------------------------------------------------------
    def bind_new(self, pods: list[Obj]) -> list[Obj]:
        """Bind pods about to be created, in place (spec.nodeName, PodScheduled); returns those it bound.

        Pods that fit nowhere are left as they are: created pending, the pass explains them.
        """
        todo = [p for p in pods if not p["spec"].get("nodeName")]
        if not todo:
            return []
        shared: dict[tuple[int, str | None], Request] = {}  # replicas share their template's spec object
        requests = []
        gated = _Gated()
        placeable = []
        for pod in todo:
            owner = owner_of(pod)
            key = (id(pod["spec"]), owner)
            req = shared.get(key)
            if req is None:
                req = shared[key] = Request.of_stored(pod["spec"], owner, pod["metadata"])
            req = self._with_volumes(pod, req, gated)
            if req is not None:  # else created pending: the pass explains it
                placeable.append(pod)
                requests.append(req)
        todo = placeable
        bound = []
        for pod, placement in zip(todo, schedule_all(requests, self.views()), strict=True):
            if placement.node is not None:
                pod["spec"] = {**pod["spec"], "nodeName": placement.node}
                pod["status"] = scheduled_status()
                bound.append(pod)
        return bound

    def scheduled(self, pod: Mapping[str, Any]) -> None:
        """Record the Scheduled event of a pod that was created bound."""
        meta = pod["metadata"]
        message = f"Successfully assigned {meta['namespace']}/{meta['name']} to {pod['spec']['nodeName']}"
        self.events.record(pod, "Scheduled", message, component=COMPONENT)

    # -- pending pods ----------------------------------------------------------------------------------
    def place_pending(self) -> int:
        """Bind every pending pod it can, oldest first; explain the others. Returns how many were bound."""
        if not self.usage.pending:
            return 0
        pending = sorted(
            self.usage.pending.values(),
            key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]),
        )
        views = self.views()
        gated = _Gated()
        requests, placeable = [], []
        for pod in pending:
            req = self._with_volumes(pod, self.specs.request(pod), gated)
            if req is not None:
                requests.append(req)
                placeable.append(pod)
            elif gated.blocked is not None:
                self._explain_blocked(pod, gated.blocked, len(views))
        placements = schedule_all(requests, views)
        bound = 0
        for pod, placement in zip(placeable, placements, strict=True):
            try:
                if placement.node is None:
                    self._unschedulable(pod, placement.message)
                else:
                    self._bind(pod, placement.node)
                    bound += 1
            except (NotFoundError, ConflictError) as exc:
                log.info("scheduling skipped %s: %s", pod["metadata"]["name"], exc)
        return bound

    def _with_volumes(self, pod: Mapping[str, Any], req: Request, gated: _Gated) -> Request | None:
        """The request with what the pod's volumes need; None when it cannot be placed in this batch.

        Then `gated.blocked` says why (a missing, unbound or deleted claim), or is None: another pod of the batch
        takes the same ReadWriteOnce claim first, and this one waits for the next pass to follow it, or its
        WaitForFirstConsumer claim is being provisioned.
        """
        gated.blocked = None
        if self.volumes is None or not pod["spec"].get("volumes"):
            return req
        check = self.volumes.check(pod)
        if check.blocked is not None:
            gated.blocked = check
            return None
        if check.waiting:  # its WaitForFirstConsumer claim is being provisioned: placed once it is Bound
            return None
        if any(claim in gated.claims for claim in check.exclusive):
            return None
        gated.claims.update(check.exclusive)
        if not check.servers and check.pin is None:
            return req
        return dataclasses.replace(req, nfs_servers=check.servers, volume_pin=check.pin)

    def _explain_blocked(self, pod: Mapping[str, Any], check: VolumeCheck, nodes: int) -> None:
        detail = f"{nodes} {check.blocked}" if check.per_node else str(check.blocked)
        try:
            self._unschedulable(pod, f"0/{nodes} nodes are available: {detail}.")
        except (NotFoundError, ConflictError) as exc:
            log.info("scheduling skipped %s: %s", pod["metadata"]["name"], exc)

    def _bind(self, pod: Mapping[str, Any], node: str) -> None:
        status = {k: v for k, v in (pod.get("status") or {}).items() if k not in ("reason", "message")}
        status.update(scheduled_status())
        stored = self.store.update({**pod, "spec": {**pod["spec"], "nodeName": node}, "status": status})
        self.scheduled(stored)

    def _unschedulable(self, pod: Mapping[str, Any], message: str) -> None:
        status = pod.get("status") or {}
        if status.get("reason") == "Unschedulable" and status.get("message") == message:
            return  # already said; the event is not repeated on every pass
        self.store.update(
            {
                **pod,
                "status": {
                    "phase": "Pending",
                    "reason": "Unschedulable",
                    "message": message,
                    "conditions": [
                        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
                    ],
                },
            }
        )
        self.events.record(pod, "FailedScheduling", message, component=COMPONENT, type="Warning")
        log.info("pod %s/%s unschedulable: %s", pod["metadata"]["namespace"], pod["metadata"]["name"], message)
