"""Pure scheduler: filter nodes that can run a pod, score the rest, pick one; called by the master's reconcile loop."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from edgekube.model.names import NodeName
from edgekube.model.pod import PodSpec
from edgekube.model.quantity import cpu_millis, memory_bytes


@dataclass(frozen=True)
class NodeView:
    """What the scheduler knows of a node: readiness, labels, allocatable and what is already bound to it."""

    name: NodeName
    ready: bool
    labels: Mapping[str, str]
    cpu_millis: int
    memory_bytes: int
    max_pods: int = 110
    unschedulable: bool = False
    used_cpu_millis: int = 0
    used_memory_bytes: int = 0
    pod_count: int = 0
    host_ports: frozenset[tuple[int, str]] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Request:
    """A pod's total demand, summed over its containers."""

    cpu_millis: int
    memory_bytes: int
    host_ports: frozenset[tuple[int, str]]
    node_selector: Mapping[str, str]

    @classmethod
    def of(cls, spec: PodSpec) -> Request:
        return cls(
            cpu_millis=sum(c.resources.request_cpu_millis() for c in spec.containers),
            memory_bytes=sum(c.resources.request_memory_bytes() for c in spec.containers),
            host_ports=frozenset(
                (p.host_port, p.protocol.value) for c in spec.containers for p in c.ports if p.host_port
            ),
            node_selector=dict(spec.node_selector),
        )


@dataclass(frozen=True)
class Decision:
    node: NodeName | None
    #: Why nodes were filtered out, Kubernetes-style: "0/3 nodes are available: 2 Insufficient cpu, ...".
    message: str = ""


def filter_reason(node: NodeView, req: Request) -> str | None:
    """None when the node can take the pod, otherwise the (kube-scheduler-worded) reason it cannot."""
    if not node.ready:
        return "node(s) were not ready"
    if node.unschedulable:
        return "node(s) were unschedulable"
    if any(node.labels.get(k) != v for k, v in req.node_selector.items()):
        return "node(s) didn't match Pod's node affinity/selector"
    if node.pod_count + 1 > node.max_pods:
        return "Too many pods"
    if node.used_cpu_millis + req.cpu_millis > node.cpu_millis:
        return "Insufficient cpu"
    if node.used_memory_bytes + req.memory_bytes > node.memory_bytes:
        return "Insufficient memory"
    if node.host_ports & req.host_ports:
        return "node(s) didn't have free ports for the requested pod ports"
    return None


def score(node: NodeView, req: Request) -> float:
    """Least-allocated: higher is better; the mean free fraction of cpu and memory after placing the pod."""
    cpu_free = 1 - (node.used_cpu_millis + req.cpu_millis) / max(node.cpu_millis, 1)
    mem_free = 1 - (node.used_memory_bytes + req.memory_bytes) / max(node.memory_bytes, 1)
    pods_free = 1 - (node.pod_count + 1) / max(node.max_pods, 1)
    return (cpu_free + mem_free + pods_free) / 3


def schedule(spec: PodSpec, nodes: Sequence[NodeView]) -> Decision:
    """Pick the best node for a pod, or explain why none fits. Ties break on node name, so it is deterministic."""
    req = Request.of(spec)
    reasons: Counter[str] = Counter()
    feasible: list[NodeView] = []
    for node in nodes:
        reason = filter_reason(node, req)
        if reason is None:
            feasible.append(node)
        else:
            reasons[reason] += 1
    if not feasible:
        # kube-scheduler sorts the "<count> <reason>" strings themselves.
        detail = ", ".join(sorted(f"{n} {r}" for r, n in reasons.items()))
        return Decision(None, f"0/{len(nodes)} nodes are available" + (f": {detail}." if detail else "."))
    # Highest score first; among equal scores the alphabetically first node wins.
    best = min(feasible, key=lambda n: (-score(n, req), n.name))
    return Decision(best.name)


def bind(node: NodeView, spec: PodSpec) -> NodeView:
    """The node's view after placing the pod on it (so one pass can schedule many pods)."""
    req = Request.of(spec)
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
        host_ports=node.host_ports | req.host_ports,
    )


def node_view(
    name: NodeName,
    *,
    ready: bool,
    labels: Mapping[str, str],
    allocatable: Mapping[str, str | int | float],
    unschedulable: bool,
    bound: Iterable[PodSpec],
) -> NodeView:
    """Build a NodeView from a Node's allocatable and the specs of pods already bound to it."""
    view = NodeView(
        name=name,
        ready=ready,
        labels=dict(labels),
        cpu_millis=cpu_millis(allocatable.get("cpu", 0)),
        memory_bytes=memory_bytes(allocatable.get("memory", 0)),
        max_pods=int(allocatable.get("pods", 110)),
        unschedulable=unschedulable,
    )
    for spec in bound:
        view = bind(view, spec)
    return view
