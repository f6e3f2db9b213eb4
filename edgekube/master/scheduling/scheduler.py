"""Pure scheduler: filter nodes that can run a pod, score the rest, pick one; called by scheduling.placer.

Filters (first failure wins, kube-scheduler wording): ready, unschedulable (cordon), nodeSelector and required
node affinity, NoSchedule and NoExecute taints, ReadWriteOnce claims in use on another node, unreachable NFS
servers, pod count, cpu, memory, host ports, extended resources (edgekube.io/serial, ...) and ephemeral-storage,
then, from scheduling.topology, topology spread constraints and inter-pod (anti-)affinity. Score, higher is
better: spread replicas of the same controller (dominates), avoid untolerated PreferNoSchedule taints, preferred
node affinity, then least allocated; plus topology's preferred pod (anti-)affinity and ScheduleAnyway spreading.
Ties go to the alphabetically first node, so every decision is deterministic.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from edgekube.master.scheduling.topology import NO_PODS, BoundPod, Topology, TopologyState, kinds_of
from edgekube.model.affinity import Affinity, NodeSelector, PreferredSchedulingTerm, TopologySpreadConstraint
from edgekube.model.lenient import decode_stored
from edgekube.model.names import NodeName
from edgekube.model.node import DEFAULT_MAX_PODS
from edgekube.model.pod import PodSpec
from edgekube.model.podresources import pod_requests
from edgekube.model.taints import TAINT_UNSCHEDULABLE, Taint, TaintEffect, Toleration, untolerated

#: Score lost per pod of the same controller already on the node. Least-allocated scores lie in [0, 1], so one
#: replica more always outweighs any difference in load (kube-scheduler's SelectorSpread/PodTopologySpread idea).
SPREAD_WEIGHT = 2.0
#: Score lost per untolerated PreferNoSchedule taint: such a node is used when spreading would otherwise put
#: two more replicas on one node, or when nothing else fits.
PREFER_NO_SCHEDULE_WEIGHT = 3.0
#: Score for matching every preferred node affinity term (a share of it for some): kube-scheduler weighs its
#: NodeAffinity score twice the resource score, and so does edgekube (least allocated lies in [0, 1]).
NODE_AFFINITY_WEIGHT = 2.0

_UNSCHEDULABLE_TAINT = Taint(key=TAINT_UNSCHEDULABLE, effect=TaintEffect.NO_SCHEDULE)
_HARD_EFFECTS = {TaintEffect.NO_SCHEDULE, TaintEffect.NO_EXECUTE}
_SOFT_EFFECTS = {TaintEffect.PREFER_NO_SCHEDULE}


@dataclass(frozen=True)
class NodeView:
    """What the scheduler knows of a node: readiness, labels, taints, allocatable and what is bound to it."""

    name: NodeName
    ready: bool
    labels: Mapping[str, str]
    cpu_millis: int
    memory_bytes: int
    max_pods: int = DEFAULT_MAX_PODS
    unschedulable: bool = False
    used_cpu_millis: int = 0
    used_memory_bytes: int = 0
    pod_count: int = 0
    host_ports: frozenset[tuple[int, str]] = field(default_factory=frozenset)
    taints: tuple[Taint, ...] = ()
    #: Pods per controller uid already bound here (for spreading).
    owner_pods: Mapping[str, int] = field(default_factory=dict)
    #: NFS servers (server, port) the node reports it cannot reach (status.nfsServers); unprobed ones are not here.
    unreachable_nfs: frozenset[tuple[str, int]] = frozenset()
    #: Extended resources (edgekube.io/serial, ...) and ephemeral-storage bytes: allocatable, and what bound pods
    #: requested (model.podresources.counted_allocatable and PodRequests.counted).
    extended: Mapping[str, int] = field(default_factory=dict)
    used_extended: Mapping[str, int] = field(default_factory=dict)
    #: The pods bound here (namespace, labels, required anti-affinity) for inter-pod affinity and spreading:
    #: the usage index's own mapping (not copied each pass), plus the pods bound to it in this pass.
    pods: Mapping[Any, BoundPod] = field(default_factory=lambda: NO_PODS)
    added: tuple[BoundPod, ...] = ()
    #: How many of the bound pods have required anti-affinity terms (0: no pod here can refuse a newcomer).
    anti_pods: int = 0

    def bound_pods(self) -> Iterable[BoundPod]:
        yield from self.pods.values()
        yield from self.added

    @cached_property
    def kinds(self) -> dict[Hashable, tuple[BoundPod, int]]:
        """The bound pods by kind (scheduling.topology), worked out once per view: binding makes a new view."""
        return kinds_of(self.bound_pods())


@dataclass(frozen=True)
class Request:
    """A pod's total demand (model.podresources.pod_requests), with what else placement depends on."""

    cpu_millis: int
    memory_bytes: int
    host_ports: frozenset[tuple[int, str]]
    node_selector: Mapping[str, str]
    tolerations: tuple[Toleration, ...] = ()
    #: uid of the controller owning the pod (None for a bare pod): its replicas are spread over nodes.
    owner: str | None = None
    #: NFS servers (server, port) the pod's volumes live on (scheduling.volumes fills these in each pass).
    nfs_servers: frozenset[tuple[str, int]] = frozenset()
    #: (node, claim): the pod must go to that node, where its ReadWriteOnce claim is already in use.
    volume_pin: tuple[str, str] | None = None
    #: Extended resources and ephemeral-storage bytes the pod requests, sorted by name: (("edgekube.io/serial", 1),).
    extended: tuple[tuple[str, int], ...] = ()
    #: The pod's namespace and labels (what other pods' affinity terms and spread constraints select).
    namespace: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    #: Required node affinity (ORed terms), and the preferred terms with their weights.
    node_affinity: NodeSelector | None = None
    preferred_nodes: tuple[PreferredSchedulingTerm, ...] = ()
    #: Pod (anti-)affinity and topology spread constraints: None for most pods, which then take the fast path.
    topology: Topology | None = None
    #: The affinity and spread constraints as stored (canonical JSON), so equal ones share a class key.
    affinity_key: str = ""

    @classmethod
    def of(
        cls, spec: PodSpec, owner: str | None = None, namespace: str = "", labels: Mapping[str, str] | None = None
    ) -> Request:
        affinity = _affinity_fields(spec.affinity, spec.topology_spread_constraints)
        requested = pod_requests(spec)
        return cls(
            cpu_millis=requested.cpu_millis,
            memory_bytes=requested.memory_bytes,
            host_ports=frozenset(
                (p.host_port, p.protocol.value) for c in spec.containers for p in c.ports if p.host_port
            ),
            node_selector=dict(spec.node_selector),
            tolerations=tuple(spec.tolerations),
            owner=owner,
            extended=requested.counted(),
            namespace=namespace,
            labels=dict(labels or {}),
            **affinity,
        )

    @classmethod
    def of_stored(
        cls, spec: Mapping[str, Any], owner: str | None = None, meta: Mapping[str, Any] | None = None
    ) -> Request:
        """As `of`, straight from a stored (already validated) pod spec: no full model parse on the hot path."""
        requested = pod_requests(spec)
        ports = set()
        for container in spec["containers"]:
            for port in container.get("ports") or ():
                if port.get("hostPort"):
                    ports.add((int(port["hostPort"]), str(port.get("protocol") or "TCP")))
        tolerations = tuple(decode_stored(Toleration, t) for t in spec.get("tolerations") or ())
        selector = dict(spec.get("nodeSelector") or {})
        affinity: dict[str, Any] = {}
        if spec.get("affinity") or spec.get("topologySpreadConstraints"):
            affinity = _affinity_fields(
                decode_stored(Affinity, spec["affinity"]) if spec.get("affinity") else None,
                [decode_stored(TopologySpreadConstraint, c) for c in spec.get("topologySpreadConstraints") or ()],
            )
        meta = meta or {}
        return cls(
            requested.cpu_millis,
            requested.memory_bytes,
            frozenset(ports),
            selector,
            tolerations,
            owner,
            extended=requested.counted(),
            namespace=str(meta.get("namespace") or ""),
            labels=meta.get("labels") or {},
            **affinity,
        )

    def class_key(self) -> Hashable:
        """Requests with equal keys are placed alike (scheduling equivalence class)."""
        return (
            self.cpu_millis,
            self.memory_bytes,
            self.host_ports,
            tuple(sorted(self.node_selector.items())),
            tuple((t.key, t.operator, t.value, t.effect, t.toleration_seconds) for t in self.tolerations),
            self.owner,
            self.nfs_servers,
            self.volume_pin,
            self.extended,
            self.affinity_key,
        )

    def bound(self) -> BoundPod:
        """What this pod looks like to the pods scheduled after it."""
        anti = self.topology.anti if self.topology is not None else ()
        return BoundPod(self.namespace, self.labels, anti, self.affinity_key)


def _affinity_fields(affinity: Affinity | None, spread: list[TopologySpreadConstraint]) -> dict[str, Any]:
    """Request fields for a pod's affinity and spread constraints (none when it has neither)."""
    out: dict[str, Any] = {}
    node = affinity.node_affinity if affinity is not None else None
    if node is not None:
        out["node_affinity"] = node.required_during_scheduling_ignored_during_execution
        out["preferred_nodes"] = tuple(node.preferred_during_scheduling_ignored_during_execution)
    topology = Topology.of(affinity, spread)
    if topology is not None:
        out["topology"] = topology
    if out:
        source = {"affinity": affinity.to_dict() if affinity else None, "spread": [c.to_dict() for c in spread]}
        out["affinity_key"] = json.dumps(source, sort_keys=True)
    return out


@dataclass(frozen=True)
class Placement:
    """Where one pod goes (`node`), or, with `node` None, why it fits nowhere."""

    node: NodeName | None
    #: Why nodes were filtered out, Kubernetes-style: "0/3 nodes are available: 2 Insufficient cpu, ...".
    message: str = ""


def matches_node_affinity(node: NodeView, req: Request) -> bool:
    """Match the pod's nodeSelector and required node affinity (its terms ORed, each term's expressions ANDed)."""
    if any(node.labels.get(k) != v for k, v in req.node_selector.items()):
        return False
    return req.node_affinity is None or req.node_affinity.matches(node.labels, node.name)


def static_reason(node: NodeView, req: Request) -> str | None:
    """The filters that binding pods cannot change: readiness, cordon, nodeSelector, taints."""
    if not node.ready:
        return "node(s) were not ready"
    if node.unschedulable and not any(t.tolerates(_UNSCHEDULABLE_TAINT) for t in req.tolerations):
        return "node(s) were unschedulable"
    if not matches_node_affinity(node, req):
        return "node(s) didn't match Pod's node affinity/selector"
    if node.taints:
        hard = untolerated(node.taints, req.tolerations, _HARD_EFFECTS)
        if hard:
            return f"node(s) had untolerated taint {{{hard[0].key}: {hard[0].value}}}"
    if req.volume_pin is not None and req.volume_pin[0] != node.name:
        where, claim = req.volume_pin
        return (
            f'node(s) had volume node affinity conflict (ReadWriteOnce persistentvolumeclaim "{claim}" is in use '
            f"on node {where})"
        )
    if node.unreachable_nfs and req.nfs_servers:
        for server, port in sorted(req.nfs_servers & node.unreachable_nfs):
            return f"cannot reach nfs server {server if port == 2049 else f'{server}:{port}'}"
    return None


def capacity_reason(node: NodeView, req: Request) -> str | None:
    """The filters that binding pods can only make worse: pod count, cpu, memory, host ports."""
    if node.pod_count + 1 > node.max_pods:
        return "Too many pods"
    if node.used_cpu_millis + req.cpu_millis > node.cpu_millis:
        return "Insufficient cpu"
    if node.used_memory_bytes + req.memory_bytes > node.memory_bytes:
        return "Insufficient memory"
    if node.host_ports & req.host_ports:
        return "node(s) didn't have free ports for the requested pod ports"
    for name, count in req.extended:
        if node.used_extended.get(name, 0) + count > node.extended.get(name, 0):
            return f"Insufficient {name}"
    return None


def filter_reason(node: NodeView, req: Request) -> str | None:
    """None when the node can take the pod, otherwise the (kube-scheduler-worded) reason it cannot."""
    return static_reason(node, req) or capacity_reason(node, req)


def score(node: NodeView, req: Request) -> float:
    """Higher is better: minus spreading and taint penalties, plus the mean free fraction after placing the pod."""
    cpu_free = 1 - (node.used_cpu_millis + req.cpu_millis) / max(node.cpu_millis, 1)
    mem_free = 1 - (node.used_memory_bytes + req.memory_bytes) / max(node.memory_bytes, 1)
    pods_free = 1 - (node.pod_count + 1) / max(node.max_pods, 1)
    value = (cpu_free + mem_free + pods_free) / 3
    if req.owner is not None:
        value -= SPREAD_WEIGHT * node.owner_pods.get(req.owner, 0)
    if node.taints:
        value -= PREFER_NO_SCHEDULE_WEIGHT * len(untolerated(node.taints, req.tolerations, _SOFT_EFFECTS))
    if req.preferred_nodes:
        total = sum(term.weight for term in req.preferred_nodes)
        matched = sum(term.weight for term in req.preferred_nodes if term.preference.matches(node.labels, node.name))
        value += NODE_AFFINITY_WEIGHT * matched / total
    return value


def _explain(reasons: Counter[str], total: int) -> str:
    # kube-scheduler sorts the "<count> <reason>" strings themselves.
    detail = ", ".join(sorted(f"{n} {r}" for r, n in reasons.items()))
    return f"0/{total} nodes are available" + (f": {detail}." if detail else ".")


def schedule(spec: PodSpec | Request, nodes: Sequence[NodeView]) -> Placement:
    """Pick the best node for one pod, or explain why none fits (the reference for `schedule_all`)."""
    req = spec if isinstance(spec, Request) else Request.of(spec)
    topology = None
    if req.topology is not None or any(n.anti_pods for n in nodes):
        topology = TopologyState(req, nodes, lambda n: matches_node_affinity(n, req))
    reasons: Counter[str] = Counter()
    feasible: list[NodeView] = []
    for node in nodes:
        reason = filter_reason(node, req)
        if reason is None and topology is not None:
            reason = topology.reason(node)
        if reason is None:
            feasible.append(node)
        else:
            reasons[reason] += 1
    if not feasible:
        return Placement(None, _explain(reasons, len(nodes)))
    extra = topology.scores(feasible) if topology is not None else {}
    # Highest score first; among equal scores the alphabetically first node wins.
    best = min(feasible, key=lambda n: (-(score(n, req) + extra.get(n.name, 0.0)), n.name))
    return Placement(best.name)


def bind(node: NodeView, pod: PodSpec | Request) -> NodeView:
    """The node's view after placing the pod on it (so one pass can schedule many pods)."""
    req = pod if isinstance(pod, Request) else Request.of(pod)
    owners = node.owner_pods
    if req.owner is not None:
        owners = {**owners, req.owner: owners.get(req.owner, 0) + 1}
    return NodeView(
        name=node.name,
        ready=node.ready,
        labels=node.labels,
        cpu_millis=node.cpu_millis,
        memory_bytes=node.memory_bytes,
        max_pods=node.max_pods,
        unschedulable=node.unschedulable,
        used_cpu_millis=node.used_cpu_millis + req.cpu_millis,
        used_memory_bytes=node.used_memory_bytes + req.memory_bytes,
        pod_count=node.pod_count + 1,
        host_ports=node.host_ports | req.host_ports if req.host_ports else node.host_ports,
        taints=node.taints,
        owner_pods=owners,
        unreachable_nfs=node.unreachable_nfs,
        extended=node.extended,
        used_extended=_plus(node.used_extended, req.extended) if req.extended else node.used_extended,
        pods=node.pods,
        added=(*node.added, req.bound()),
        anti_pods=node.anti_pods + (1 if req.topology is not None and req.topology.anti else 0),
    )


def _plus(used: Mapping[str, int], more: Iterable[tuple[str, int]]) -> dict[str, int]:
    out = dict(used)
    for name, count in more:
        out[name] = out.get(name, 0) + count
    return out


class _Class:
    """Per equivalence class: a max-heap of candidate nodes whose scores may be stale (upper bounds).

    Binding a pod only ever lowers a node's score and never makes a full node fit again, so a stale entry
    overestimates; an entry popped with the node's current version is the true best.
    """

    def __init__(self, req: Request, views: dict[NodeName, NodeView], versions: dict[NodeName, int]) -> None:
        self.static: Counter[str] = Counter()
        self.full: set[NodeName] = set()
        self.heap: list[tuple[float, NodeName, int]] = []
        self.message: tuple[int, str] | None = None
        for name, view in views.items():
            reason = static_reason(view, req)
            if reason is not None:
                self.static[reason] += 1
            elif capacity_reason(view, req) is not None:
                self.full.add(name)
            else:
                self.heap.append((-score(view, req), name, versions[name]))
        heapq.heapify(self.heap)


def schedule_all(requests: Sequence[Request], nodes: Sequence[NodeView]) -> list[Placement]:
    """Place pods one after another, exactly as `schedule` + `bind` in a loop would, in O(log nodes) per pod.

    Pods with pod (anti-)affinity or spread constraints, and every pod once some bound pod has required
    anti-affinity, take `schedule`'s full scan instead: binding a pod can make a node fit them again.
    """
    views = {n.name: n for n in nodes}
    versions = dict.fromkeys(views, 0)
    binds = 0
    classes: dict[Hashable, _Class] = {}
    placements: list[Placement] = []
    anti = any(n.anti_pods for n in nodes)
    for req in requests:
        if req.topology is not None or anti:
            placement = schedule(req, list(views.values()))
            if placement.node is not None:
                views[placement.node] = bind(views[placement.node], req)
                versions[placement.node] += 1
                binds += 1
                anti = anti or bool(req.topology is not None and req.topology.anti)
            placements.append(placement)
            continue
        key = req.class_key()
        cls = classes.get(key)
        if cls is None:
            cls = classes[key] = _Class(req, views, versions)
        chosen = _pick(cls, req, views, versions)
        if chosen is None:
            if cls.message is None or cls.message[0] != binds:
                reasons = cls.static.copy()
                for name in cls.full:
                    reasons[capacity_reason(views[name], req) or ""] += 1
                cls.message = (binds, _explain(reasons, len(views)))
            placements.append(Placement(None, cls.message[1]))
            continue
        views[chosen] = bind(views[chosen], req)
        versions[chosen] += 1
        binds += 1
        placements.append(Placement(chosen))
    return placements


def _pick(cls: _Class, req: Request, views: dict[NodeName, NodeView], versions: dict[NodeName, int]) -> NodeName | None:
    heap = cls.heap
    while heap:
        _, name, version = heap[0]
        if version == versions[name]:
            return name
        heapq.heappop(heap)
        view = views[name]
        if capacity_reason(view, req) is not None:
            cls.full.add(name)
        else:
            heapq.heappush(heap, (-score(view, req), name, versions[name]))
    return None
