"""Node lifecycle controller: NotReady nodes get NoExecute taints, their pods are evicted; pure `plan`, its actions.

Registered first in controllers.registry, so it runs first in every pass of the master's loop. A node the agent's
Last Will marked offline gets `node.kubernetes.io/not-ready:NoExecute`, one whose heartbeats stopped
`node.kubernetes.io/unreachable:NoExecute`; both go when it is Ready again. A pod on a node with a NoExecute taint
it does not tolerate forever is evicted (deleted; its controller makes a replacement elsewhere) once its
tolerationSeconds have passed since the taint was added, or `pod_eviction_timeout` for the lifecycle taints when
no toleration matches. Like Kubernetes' TaintNodesByCondition, a Ready node whose agent reports MemoryPressure,
DiskPressure, PIDPressure, ThermalThrottling or UnderVoltage True carries that condition's NoSchedule taint
(model.node.CONDITION_TAINTS), removed when it is False again. Safety valves: nothing is judged while the master
itself cannot hear the nodes (`judging` False), and no lifecycle eviction happens while more than 55% of the nodes
(at least 2) are NotReady at once: then the master's own network is the likelier fault.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from edgekube.master.controllers.base import Effects, Setup, Snapshot, planned_pod
from edgekube.master.controllers.nodeinputs import NodeState, PodState, lifecycle_inputs
from edgekube.master.eventlog import ObjectRef
from edgekube.master.liveness import Health
from edgekube.model.node import CONDITION_TAINTS
from edgekube.model.taints import (
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    Taint,
    TaintEffect,
    Toleration,
    toleration_seconds,
)

log = logging.getLogger(__name__)

LIFECYCLE_TAINTS = (TAINT_NOT_READY, TAINT_UNREACHABLE)
#: The NoSchedule taints that follow node conditions, by condition type.
_CONDITION_TAINT = {str(kind): key for kind, key in CONDITION_TAINTS.items()}
COMPONENT = "node-controller"


@dataclass(frozen=True)
class Settings:
    #: Seconds a pod without a matching toleration stays on a NotReady node (Kubernetes' old 5 minutes is 300).
    pod_eviction_timeout: float = 0.0
    #: Above this fraction of NotReady nodes (and at least `unhealthy_min_nodes`), evictions stop.
    unhealthy_threshold: float = 0.55
    unhealthy_min_nodes: int = 2


@dataclass(frozen=True)
class SetTaints:
    """Replace the node's taints (only the lifecycle keys differ from what is stored)."""

    node: str
    taints: tuple[Taint, ...]
    health: Health
    #: False when only condition taints changed: the node's readiness did not, so there is nothing to announce.
    announce: bool = True

    def apply(self, effects: Effects) -> None:
        node = effects.store.peek("Node", "", self.node)
        spec = {**(node.get("spec") or {}), "taints": [t.to_dict() for t in self.taints]}
        effects.store.update({**node, "spec": spec})
        if not self.announce:
            log.info("node %s taints: %s", self.node, ", ".join(f"{t.key}:{t.effect.value}" for t in self.taints))
        elif self.health is Health.READY:
            log.info("node %s is Ready again", self.node)
            message = f"Node {self.node} status is now: NodeReady"
            effects.events.record(node, "NodeReady", message, component=COMPONENT)
        else:
            log.warning("node %s is NotReady (%s)", self.node, self.health.value)
            message = f"Node {self.node} status is now: NodeNotReady ({self.health.value})"
            effects.events.record(node, "NodeNotReady", message, component=COMPONENT, type="Warning")


@dataclass(frozen=True)
class Evict:
    namespace: str
    name: str
    uid: str
    node: str
    taint: Taint

    def apply(self, effects: Effects) -> None:
        pod = planned_pod(effects, self.namespace, self.name, self.uid)
        if pod is None:
            return
        effects.store.delete("Pod", self.namespace, self.name, pod["metadata"]["resourceVersion"])
        log.warning(
            "evicted pod %s/%s from node %s (taint %s:%s)",
            self.namespace,
            self.name,
            self.node,
            self.taint.key,
            self.taint.effect.value,
        )
        message = f"Marking for deletion Pod {self.namespace}/{self.name}"
        effects.events.record(ObjectRef.of(pod), "TaintManagerEviction", message, component="taint-eviction-controller")


@dataclass(frozen=True)
class ReportDisruption:
    """Evictions stop (or resume): said once in the log, and as an event on every NotReady node."""

    reason: str  # "EvictionsSuspended" | "EvictionsResumed"
    message: str
    nodes: tuple[str, ...]

    def apply(self, effects: Effects) -> None:
        suspended = self.reason == "EvictionsSuspended"
        log.log(logging.ERROR if suspended else logging.WARNING, "%s", self.message)
        kind = "Warning" if suspended else "Normal"
        for node in self.nodes:
            effects.events.record(ObjectRef("Node", node), self.reason, self.message, component=COMPONENT, type=kind)


Action = SetTaints | Evict


@dataclass(frozen=True)
class Plan:
    actions: list[Action] = field(default_factory=list)
    #: More than the threshold of nodes NotReady: lifecycle evictions are held back.
    disrupted: bool = False
    not_ready: int = 0
    total: int = 0


def rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(timestamp: str | None, default: float) -> float:
    if not timestamp:
        return default
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return default


def wanted_taint(health: Health) -> str | None:
    return {Health.OFFLINE: TAINT_NOT_READY, Health.UNREACHABLE: TAINT_UNREACHABLE}.get(health)


def _retaint(node: NodeState, now: float) -> tuple[Taint, ...] | None:
    """The node's taints with the lifecycle taint matching its health, or None when they already are right."""
    want = wanted_taint(node.health)
    current = [t for t in node.taints if t.key in LIFECYCLE_TAINTS and t.effect is TaintEffect.NO_EXECUTE]
    if [t.key for t in current] == ([want] if want else []):
        return None
    others = tuple(t for t in node.taints if t not in current)
    if want is None:
        return others
    # Switching not-ready <-> unreachable keeps the time the node first went NotReady: the clock keeps running.
    since = min((t.time_added for t in current if t.time_added), default=None) or rfc3339(now)
    return (*others, Taint(key=want, effect=TaintEffect.NO_EXECUTE, time_added=since))


def condition_taints(node: NodeState, taints: tuple[Taint, ...]) -> tuple[Taint, ...] | None:
    """`taints` with exactly the NoSchedule taints of the node's True conditions, or None when already so.

    Only a Ready node's conditions are current; a NotReady node keeps what it has (the lifecycle taint rules it).
    """
    if node.health is not Health.READY:
        return None
    keys = set(_CONDITION_TAINT.values())
    want = [key for kind, key in _CONDITION_TAINT.items() if kind in node.conditions]
    have = [t.key for t in taints if t.key in keys and t.effect is TaintEffect.NO_SCHEDULE]
    if sorted(have) == sorted(want):
        return None
    others = tuple(t for t in taints if not (t.key in keys and t.effect is TaintEffect.NO_SCHEDULE))
    return (*others, *(Taint(key=key, effect=TaintEffect.NO_SCHEDULE) for key in want))


def eviction_time(
    taints: Iterable[Taint], tolerations: Sequence[Toleration], now: float, settings: Settings
) -> tuple[float, Taint] | None:
    """When a pod on a node with these taints must go, and because of which taint; None = it may stay."""
    best: tuple[float, Taint] | None = None
    for taint in taints:
        if taint.effect is not TaintEffect.NO_EXECUTE:
            continue
        seconds = toleration_seconds(taint, tolerations)
        if seconds is None:
            continue  # tolerated forever
        if taint.key in LIFECYCLE_TAINTS and not any(t.tolerates(taint) for t in tolerations):
            seconds = settings.pod_eviction_timeout
        at = _epoch(taint.time_added, now) + seconds
        if best is None or at < best[0]:
            best = (at, taint)
    return best


def plan(
    nodes: Sequence[NodeState],
    pods_by_node: Mapping[str, Sequence[PodState]],
    now: float,
    *,
    judging: bool,
    settings: Settings = Settings(),
) -> Plan:
    """Taint changes and evictions for this moment (`now` in unix seconds).

    With `judging` False (the master is cut off from the broker, or still in its grace period after
    connecting), only Ready nodes lose their lifecycle taints; nothing is tainted and nobody is evicted.
    """
    actions: list[Action] = []
    not_ready = sum(1 for n in nodes if n.health is not Health.READY)
    total = len(nodes)
    disrupted = not_ready >= settings.unhealthy_min_nodes and not_ready > settings.unhealthy_threshold * total
    for node in nodes:
        taints = node.taints
        if judging or node.health is Health.READY:
            retainted = _retaint(node, now)
            if retainted is not None:
                taints = retainted
            by_condition = condition_taints(node, taints)
            if by_condition is not None:
                taints = by_condition
            if retainted is not None or by_condition is not None:
                actions.append(SetTaints(node.name, taints, node.health, announce=retainted is not None))
        if not any(t.effect is TaintEffect.NO_EXECUTE for t in taints):
            continue
        if not judging or disrupted:
            # Cut off, or most nodes down at once: only taints the lifecycle does not own may still evict.
            taints = tuple(t for t in taints if t.key not in LIFECYCLE_TAINTS)
        for pod in pods_by_node.get(node.name, ()):
            due = eviction_time(taints, pod.tolerations, now, settings)
            if due is not None and due[0] <= now:
                actions.append(Evict(pod.namespace, pod.name, pod.uid, node.name, due[1]))
    return Plan(actions, disrupted, not_ready, total)


class NodeLifecycle:
    """The controller with its one piece of memory: whether evictions are held back (to report changes once)."""

    name = "node-lifecycle"

    def __init__(self, settings: Settings = Settings()) -> None:
        self.settings = settings
        self.disrupted = False

    @classmethod
    def build(cls, setup: Setup) -> NodeLifecycle:
        config = setup.config
        return cls(
            Settings(
                pod_eviction_timeout=config.pod_eviction_timeout, unhealthy_threshold=config.unhealthy_zone_threshold
            )
        )

    def plan(self, snapshot: Snapshot) -> list[Action | ReportDisruption]:
        nodes, pods_by_node = lifecycle_inputs(snapshot)
        return self.decide(nodes, pods_by_node, snapshot.now, judging=snapshot.judging)

    def decide(
        self,
        nodes: Sequence[NodeState],
        pods_by_node: Mapping[str, Sequence[PodState]],
        now: float,
        *,
        judging: bool,
    ) -> list[Action | ReportDisruption]:
        """`plan` on inputs already gathered; a change of disruption is reported first, then taints and evictions."""
        result = plan(nodes, pods_by_node, now, judging=judging, settings=self.settings)
        if result.disrupted == self.disrupted:
            return list(result.actions)
        self.disrupted = result.disrupted
        return [self._report(result, nodes), *result.actions]

    def _report(self, result: Plan, nodes: Sequence[NodeState]) -> ReportDisruption:
        share = f"{result.not_ready}/{result.total} nodes are NotReady"
        if result.disrupted:
            message = (
                f"{share} (more than {self.settings.unhealthy_threshold:.0%}): pod evictions stop until fewer are; "
                "the master's own network is the likelier fault"
            )
            reason = "EvictionsSuspended"
        else:
            message, reason = f"{share}: pod evictions resume", "EvictionsResumed"
        not_ready = tuple(n.name for n in nodes if n.health is not Health.READY)
        return ReportDisruption(reason, message, not_ready)
