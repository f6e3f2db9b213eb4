"""The endpoints controller: each Service's `v1 Endpoints` from its selector and its pods' readiness; in registry.

A port of Kubernetes' endpoints controller (pkg/controller/endpoint): a pod is an endpoint when it is in the
Service's namespace, matches its selector, has a podIP, is not terminal (Succeeded/Failed) and is not being deleted;
Ready pods go to `addresses`, the others to `notReadyAddresses` (all to `addresses` with
publishNotReadyAddresses). A targetPort given by name is resolved per pod from its containers' ports; a pod without
that port is no endpoint of that port. Subsets group addresses with the same ports (endpoints.RepackSubsets).
A Service without a selector gets no Endpoints from here. `plan` is pure; it writes only what changed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgekube.master.cache import CachedStore
from edgekube.master.controllers.base import Action, Effects, Setup, Snapshot
from edgekube.master.controllers.replication.plan import is_ready
from edgekube.master.liveness import Health
from edgekube.model.labels import Selector
from edgekube.model.service import resolve_target_port
from edgekube.model.types import Obj

_Key = tuple[str, str]


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """A Service's selector (a label map) selects these labels: every pair is there."""
    return all(labels.get(k) == v for k, v in selector.items())


def _serves(pod: Mapping[str, Any]) -> bool:
    """ShouldPodBeInEndpoints: an address, not terminal, not being deleted."""
    status = pod.get("status") or {}
    if not status.get("podIP") or status.get("phase") in ("Succeeded", "Failed"):
        return False
    return not pod["metadata"].get("deletionTimestamp")


def _address(pod: Mapping[str, Any]) -> Obj:
    meta = pod["metadata"]
    address: Obj = {"ip": pod["status"]["podIP"]}
    if pod.get("spec", {}).get("nodeName"):
        address["nodeName"] = pod["spec"]["nodeName"]
    address["targetRef"] = {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"]}
    return address


NodeReady = Callable[[str], bool]


def _any_node(node: str) -> bool:
    return True


def subsets(
    service: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], node_ready: NodeReady = _any_node
) -> list[Obj]:
    """The Endpoints subsets of a Service over the pods its selector matched (in any order).

    A pod on a node that is not Ready counts as not ready, as Kubernetes' node lifecycle controller marks such
    pods (MarkPodsNotReady): traffic leaves a node the master cannot hear before its pods are evicted.
    """
    spec = service.get("spec") or {}
    ports = spec.get("ports") or []
    publish = bool(spec.get("publishNotReadyAddresses"))
    groups: dict[tuple[tuple[str, int, str], ...], tuple[list[Obj], list[Obj]]] = {}
    for pod in pods:
        if not _serves(pod):
            continue
        resolved = []
        for port in ports:
            number = resolve_target_port(port, pod)
            if number is not None:
                resolved.append((str(port.get("name") or ""), number, str(port.get("protocol") or "TCP")))
        if ports and not resolved:
            continue
        ready, not_ready = groups.setdefault(tuple(sorted(resolved)), ([], []))
        serving = is_ready(pod) and node_ready(str((pod.get("spec") or {}).get("nodeName") or ""))
        (ready if publish or serving else not_ready).append(_address(pod))
    result: list[Obj] = []
    for key in sorted(groups):
        ready, not_ready = groups[key]
        subset: Obj = {}
        if ready:
            subset["addresses"] = sorted(ready, key=lambda a: a["ip"])
        if not_ready:
            subset["notReadyAddresses"] = sorted(not_ready, key=lambda a: a["ip"])
        if key:
            subset["ports"] = [
                {"name": name, "port": port, "protocol": protocol} if name else {"port": port, "protocol": protocol}
                for name, port, protocol in key
            ]
        result.append(subset)
    return result


def endpoints_for(
    service: Mapping[str, Any], pods: Sequence[Mapping[str, Any]], node_ready: NodeReady = _any_node
) -> Obj:
    """The Endpoints object of a Service (named as it, its labels), without server fields."""
    meta = service["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": dict(meta.get("labels") or {})},
        "subsets": subsets(service, pods, node_ready),
    }


@dataclass(frozen=True)
class WriteEndpoints:
    """Create or update one Endpoints object (an update carries the resourceVersion the plan saw)."""

    endpoints: Obj
    create: bool

    def apply(self, effects: Effects) -> None:
        (effects.store.create if self.create else effects.store.update)(self.endpoints)


@dataclass(frozen=True)
class DeleteEndpoints:
    namespace: str
    name: str

    def apply(self, effects: Effects) -> None:
        effects.store.delete("Endpoints", self.namespace, self.name)


PodsFor = Callable[[str, Selector], Sequence[Obj]]


def plan(
    services: Mapping[_Key, Obj],
    pods_for: PodsFor,
    stored: Mapping[_Key, Obj],
    only: Collection[_Key] | None = None,
    node_ready: NodeReady = _any_node,
) -> list[Action]:
    """What to write so every selector Service has its Endpoints and no other Endpoints stay (pure).

    `pods_for(namespace, selector)` lists the pods a selector matches; `only` limits the plan to the Services whose
    spec, pods or Endpoints changed (None: all).
    """
    actions: list[Action] = []
    wanted: set[_Key] = set()
    for key, service in sorted(services.items()):
        selector = (service.get("spec") or {}).get("selector")
        if not selector:
            continue
        wanted.add(key)
        if only is not None and key not in only:
            continue
        desired = endpoints_for(service, pods_for(key[0], Selector.from_set(selector)), node_ready)
        current = stored.get(key)
        if current is None:
            actions.append(WriteEndpoints(desired, create=True))
            continue
        labels = desired["metadata"]["labels"]
        if (current.get("subsets") or []) != desired["subsets"] or current["metadata"].get("labels") != labels:
            desired["metadata"] = {**current["metadata"], "labels": labels}
            actions.append(WriteEndpoints(desired, create=False))
    actions += [DeleteEndpoints(ns, name) for (ns, name) in sorted(stored) if (ns, name) not in wanted]
    return actions


def _matching(pods: Mapping[_Key, Obj]) -> PodsFor:
    """pods_for over a plain map of pods (tests; the controller selects through the cache's label index)."""

    def pods_for(namespace: str, selector: Selector) -> list[Obj]:
        return [
            p for (ns, _), p in pods.items() if ns == namespace and selector.matches(p["metadata"].get("labels") or {})
        ]

    return pods_for


class EndpointsController:
    """Keeps every selector Service's Endpoints (controllers.base.Controller).

    Only the Services whose object or Endpoints changed, or that select (or selected) a pod that changed, since
    the last pass are planned (the cache tells it every write; it keeps each pod's labels to know what a pod was
    selected by), and all of them every `resync` seconds.
    """

    name = "endpoints"

    def __init__(self, store: CachedStore, *, resync: float) -> None:
        self.store = store
        self.resync = resync
        self._dirty: set[_Key] = set()
        self._everything_at = -math.inf
        self._labels: dict[_Key, Mapping[str, str]] = {}
        store.listen("Service", self._service_or_endpoints)
        store.listen("Endpoints", self._service_or_endpoints)
        store.listen("Pod", self._pod)
        #: A Node write (the lifecycle controller's NotReady taint, or its removal): every Service is planned again.
        self._nodes_changed = True
        store.listen("Node", self._node)

    @classmethod
    def build(cls, setup: Setup) -> EndpointsController:
        return cls(setup.store, resync=setup.config.controller_resync)

    def _service_or_endpoints(self, key: _Key, obj: Mapping[str, Any] | None) -> None:
        self._dirty.add(key)

    def _pod(self, key: _Key, pod: Mapping[str, Any] | None) -> None:
        """Mark the Services that select the pod now or selected it before this write."""
        before = self._labels.pop(key, None)
        now = (pod["metadata"].get("labels") or {}) if pod is not None else None
        if now is not None:
            self._labels[key] = now
        for skey, service in self.store.objects("Service").items():
            if skey[0] != key[0] or skey in self._dirty:
                continue
            selector = (service.get("spec") or {}).get("selector")
            if not selector:
                continue
            if any(labels is not None and _selects(selector, labels) for labels in (before, now)):
                self._dirty.add(skey)

    def _node(self, key: _Key, node: Mapping[str, Any] | None) -> None:
        self._nodes_changed = True

    def plan(self, snapshot: Snapshot) -> Sequence[Action]:
        only: set[_Key] | None = self._dirty
        if self._nodes_changed or snapshot.now >= self._everything_at + self.resync:
            only, self._everything_at, self._nodes_changed = None, snapshot.now, False
        self._dirty = set()
        store = snapshot.store
        # Node health counts only while the master may judge nodes (not in its grace after (re)connecting).
        node_ready = (lambda node: snapshot.health(node) is Health.READY) if snapshot.judging else _any_node
        return plan(store.objects("Service"), self._select, store.objects("Endpoints"), only, node_ready)

    def _select(self, namespace: str, selector: Selector) -> list[Obj]:
        return self.store.select("Pod", namespace, selector)
