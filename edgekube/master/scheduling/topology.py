"""Inter-pod affinity and topology spreading (kube-scheduler's plugins of those names); called by the scheduler.

Pure, like scheduling.scheduler, which calls it only for the pods that need it.
A topology domain is a (topologyKey, node label value) pair: with `kubernetes.io/hostname` every node is its own
domain, with a zone label the nodes of a zone share one. `TopologyState` is built once per pod to place, from
every node's bound pods (O(pods)), and then answers per node in O(terms): kube-scheduler's PreFilter/Filter split.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from edgekube.model.affinity import Affinity, PodAffinityTerm, TopologySpreadConstraint, WeightedPodAffinityTerm
from edgekube.model.labels import Selector

if TYPE_CHECKING:
    from edgekube.master.scheduling.scheduler import NodeView, Request

#: Score of the most preferred node by preferred pod (anti-)affinity; the least preferred gets 0 (kube-scheduler
#: normalizes the same way, and weighs InterPodAffinity twice the resource score).
POD_AFFINITY_WEIGHT = 2.0
#: Score lost per matching pod more than the emptiest domain has, for ScheduleAnyway constraints.
SOFT_SPREAD_WEIGHT = 2.0

NOT_AFFINITY = "node(s) didn't match pod affinity rules"
NOT_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
NOT_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"
NOT_SPREAD = "node(s) didn't match pod topology spread constraints"
NOT_SPREAD_LABEL = NOT_SPREAD + " (missing required label)"

NO_PODS: Mapping[Any, BoundPod] = MappingProxyType({})
_Pair = tuple[str, str]


class BoundPod:
    """What placement needs of a pod already on a node: its namespace, labels and required anti-affinity.

    `ident` is equal for pods that look alike to affinity (replicas of one template): TopologyState judges each
    such group once per node. It is computed on first use, so clusters without affinity never pay for it.
    """

    __slots__ = ("_ident", "anti", "anti_key", "labels", "namespace")

    def __init__(
        self, namespace: str, labels: Mapping[str, str], anti: tuple[PodAffinityTerm, ...] = (), anti_key: str = ""
    ) -> None:
        self.namespace = namespace
        self.labels = labels
        self.anti = anti
        #: Equal for equal anti-affinity terms (the pod's stored affinity as canonical JSON); computed if not given.
        self.anti_key = anti_key
        self._ident: Hashable | None = None

    @property
    def ident(self) -> Hashable:
        if self._ident is None:
            key = self.anti_key
            if self.anti and not key:
                key = json.dumps([t.to_dict() for t in self.anti], sort_keys=True)
            self._ident = (self.namespace, frozenset(self.labels.items()), key)
        return self._ident


@dataclass(frozen=True)
class _Verdict:
    """How one kind of bound pod bears on the pod being placed (computed once per kind)."""

    all_affinity: bool
    anti: tuple[bool, ...]
    existing_anti_keys: tuple[str, ...]
    preferred: tuple[tuple[str, int], ...]
    hard: tuple[bool, ...]
    soft: tuple[bool, ...]
    #: False when the kind bears on nothing (most pods, for most constraints): then it is skipped at once.
    relevant: bool = field(init=False)

    def __post_init__(self) -> None:
        relevant = self.all_affinity or self.existing_anti_keys or self.preferred
        object.__setattr__(self, "relevant", bool(relevant or any(self.anti) or any(self.hard) or any(self.soft)))


def kinds_of(pods: Iterable[BoundPod]) -> dict[Hashable, tuple[BoundPod, int]]:
    """Bound pods grouped by `ident`: one sample of each kind and how many there are."""
    counts: Counter[Hashable] = Counter()
    sample: dict[Hashable, BoundPod] = {}
    for pod in pods:
        ident = pod.ident
        counts[ident] += 1
        sample.setdefault(ident, pod)
    return {ident: (sample[ident], n) for ident, n in counts.items()}


@dataclass(frozen=True)
class Topology:
    """A pod's pod-affinity terms and spread constraints, the parts of placement that depend on other pods."""

    affinity: tuple[PodAffinityTerm, ...] = ()
    anti: tuple[PodAffinityTerm, ...] = ()
    preferred: tuple[WeightedPodAffinityTerm, ...] = ()
    preferred_anti: tuple[WeightedPodAffinityTerm, ...] = ()
    spread: tuple[TopologySpreadConstraint, ...] = ()

    @classmethod
    def of(cls, affinity: Affinity | None, spread: Iterable[TopologySpreadConstraint]) -> Topology | None:
        pod, anti = (affinity.pod_affinity, affinity.pod_anti_affinity) if affinity else (None, None)
        topology = cls(
            affinity=tuple(pod.required_during_scheduling_ignored_during_execution) if pod else (),
            anti=tuple(anti.required_during_scheduling_ignored_during_execution) if anti else (),
            preferred=tuple(pod.preferred_during_scheduling_ignored_during_execution) if pod else (),
            preferred_anti=tuple(anti.preferred_during_scheduling_ignored_during_execution) if anti else (),
            spread=tuple(spread),
        )
        return topology if topology != cls() else None


@dataclass
class _Spread:
    """One constraint's matching pods per domain, over the nodes that count (kube-scheduler's PreFilter state)."""

    constraint: TopologySpreadConstraint
    selector: Selector | None
    counts: Counter[str]
    self_match: int

    def minimum(self) -> int:
        lowest = min(self.counts.values(), default=0)
        min_domains = self.constraint.min_domains
        return 0 if min_domains is not None and len(self.counts) < min_domains else lowest


class TopologyState:
    """Everything one pod's inter-pod affinity and spreading checks need, gathered from all nodes at once.

    `eligible(node)` says whether a node counts for spreading: it matches the pod's nodeSelector and required
    node affinity (Kubernetes' default nodeAffinityPolicy Honor; taints are ignored, nodeTaintsPolicy Ignore).
    """

    def __init__(self, req: Request, nodes: Sequence[NodeView], eligible: Callable[[NodeView], bool]) -> None:
        self.req = req
        topo = req.topology
        self.affinity: tuple[PodAffinityTerm, ...] = topo.affinity if topo else ()
        self.anti: tuple[PodAffinityTerm, ...] = topo.anti if topo else ()
        self.affinity_counts: Counter[_Pair] = Counter()
        self.anti_counts: Counter[_Pair] = Counter()
        #: topologyKey → the values (domains) where an existing pod's required anti-affinity refuses this pod.
        self.existing_anti: dict[str, set[str]] = {}
        self.preferred: Counter[_Pair] = Counter()
        hard = [c for c in topo.spread if c.when_unsatisfiable == "DoNotSchedule"] if topo else []
        soft = [c for c in topo.spread if c.when_unsatisfiable == "ScheduleAnyway"] if topo else []
        self.hard = [self._spread(c) for c in hard]
        self.soft = [self._spread(c) for c in soft]
        hard_keys = [c.topology_key for c in hard]
        soft_keys = [c.topology_key for c in soft]
        preferred = [(t.weight, t.pod_affinity_term) for t in (topo.preferred if topo else ())]
        preferred += [(-t.weight, t.pod_affinity_term) for t in (topo.preferred_anti if topo else ())]
        self._preferred_terms = preferred
        ns = req.namespace
        verdicts: dict[Hashable, _Verdict] = {}
        for node in nodes:
            labels = node.labels
            counts_hard = bool(self.hard) and eligible(node) and all(k in labels for k in hard_keys)
            counts_soft = bool(self.soft) and eligible(node) and all(k in labels for k in soft_keys)
            if counts_hard:
                for s in self.hard:
                    s.counts[labels[s.constraint.topology_key]] += 0
            if counts_soft:
                for s in self.soft:
                    s.counts[labels[s.constraint.topology_key]] += 0
            # Pods that look alike (replicas) are judged once, and counted per node by kind.
            for ident, (pod, count) in node.kinds.items():
                verdict = verdicts.get(ident)
                if verdict is None:
                    verdict = verdicts[ident] = self._judge(pod)
                if verdict.relevant:
                    self._apply(verdict, count, labels, counts_hard, counts_soft)
        # The first pod of a group whose affinity selects itself may go anywhere (kube-scheduler's special case).
        self.first_of_group = not self.affinity_counts and all(t.matches(ns, req.labels, ns) for t in self.affinity)

    def _spread(self, constraint: TopologySpreadConstraint) -> _Spread:
        selector = constraint.selector_for(self.req.labels)
        own = int(selector is not None and selector.matches(self.req.labels))
        return _Spread(constraint, selector, Counter(), own)

    def _judge(self, pod: BoundPod) -> _Verdict:
        ns, req = self.req.namespace, self.req

        def counted(s: _Spread) -> bool:
            return s.selector is not None and pod.namespace == ns and s.selector.matches(pod.labels)

        return _Verdict(
            all_affinity=bool(self.affinity) and all(t.matches(pod.namespace, pod.labels, ns) for t in self.affinity),
            anti=tuple(t.matches(pod.namespace, pod.labels, ns) for t in self.anti),
            existing_anti_keys=tuple(t.topology_key for t in pod.anti if t.matches(ns, req.labels, pod.namespace)),
            preferred=tuple(
                (t.topology_key, weight)
                for weight, t in self._preferred_terms
                if t.matches(pod.namespace, pod.labels, ns)
            ),
            hard=tuple(counted(s) for s in self.hard),
            soft=tuple(counted(s) for s in self.soft),
        )

    def _apply(self, v: _Verdict, count: int, labels: Mapping[str, str], hard: bool, soft: bool) -> None:
        if v.all_affinity:
            for t in self.affinity:
                if t.topology_key in labels:
                    self.affinity_counts[t.topology_key, labels[t.topology_key]] += count
        for t, hit in zip(self.anti, v.anti, strict=True):
            if hit and t.topology_key in labels:
                self.anti_counts[t.topology_key, labels[t.topology_key]] += count
        for key in v.existing_anti_keys:
            if key in labels:
                self.existing_anti.setdefault(key, set()).add(labels[key])
        for key, weight in v.preferred:
            if key in labels:
                self.preferred[key, labels[key]] += weight * count
        for spreads, hits, counting in ((self.hard, v.hard, hard), (self.soft, v.soft, soft)):
            if counting:
                for s, hit in zip(spreads, hits, strict=True):
                    if hit:
                        s.counts[labels[s.constraint.topology_key]] += count

    def reason(self, node: NodeView) -> str | None:
        """PodTopologySpread's then InterPodAffinity's filter: None when the node passes both."""
        labels = node.labels
        for s in self.hard:
            if s.constraint.topology_key not in labels:
                return NOT_SPREAD_LABEL
        for s in self.hard:
            skew = s.counts[labels[s.constraint.topology_key]] + s.self_match - s.minimum()
            if skew > s.constraint.max_skew:
                return NOT_SPREAD
        if self.affinity:
            if not all(t.topology_key in labels for t in self.affinity):
                return NOT_AFFINITY
            found = all(self.affinity_counts[t.topology_key, labels[t.topology_key]] > 0 for t in self.affinity)
            if not found and not self.first_of_group:
                return NOT_AFFINITY
        for t in self.anti:
            if t.topology_key in labels and self.anti_counts[t.topology_key, labels[t.topology_key]] > 0:
                return NOT_ANTI_AFFINITY
        if any(labels.get(key) in values for key, values in self.existing_anti.items()):
            return NOT_EXISTING_ANTI_AFFINITY
        return None

    def scores(self, feasible: Sequence[NodeView]) -> dict[str, float]:
        """Preferred pod (anti-)affinity, scaled to [0, POD_AFFINITY_WEIGHT], minus ScheduleAnyway skew."""
        out: dict[str, float] = dict.fromkeys((n.name for n in feasible), 0.0)
        if self.preferred:
            keys = {key for key, _ in self.preferred}
            raw = {n.name: sum(self.preferred[k, n.labels[k]] for k in keys if k in n.labels) for n in feasible}
            low, high = min(raw.values()), max(raw.values())
            if high > low:
                for name, value in raw.items():
                    out[name] += POD_AFFINITY_WEIGHT * (value - low) / (high - low)
        for s in self.soft:
            key = s.constraint.topology_key
            lowest = s.minimum()
            worst = max(s.counts.values(), default=0) - lowest + 1
            for n in feasible:
                excess = s.counts[n.labels[key]] - lowest if key in n.labels else worst
                out[n.name] -= SOFT_SPREAD_WEIGHT * excess
        return out
