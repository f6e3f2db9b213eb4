"""Runs the replication plan for every RC/RS in one master pass and carries the actions out (the thin apply)."""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Iterable, Mapping
from typing import Any

from edgekube.master.api import Binder
from edgekube.master.cache import CachedStore
from edgekube.master.controllers import replication
from edgekube.master.controllers.owners import CONTROLLER_KINDS, controller_ref, without_owner
from edgekube.master.controllers.replication import Action, AdoptPod, CreatePod, DeletePod, ReleasePod
from edgekube.master.eventlog import EventLog, ObjectRef
from edgekube.master.ownerindex import OwnerIndex
from edgekube.model.errors import ConflictError, NotFoundError
from edgekube.model.labels import Selector

log = logging.getLogger(__name__)

_COMPONENT = {"ReplicationController": "replication-controller", "ReplicaSet": "replicaset-controller"}


def selector_of(controller: Mapping[str, Any]) -> Selector:
    """An RC's equality selector or an RS's matchLabels + matchExpressions, from the stored (validated) spec."""
    raw = controller["spec"].get("selector") or {}
    if controller["kind"] == "ReplicaSet":
        return Selector.from_match_labels(raw.get("matchLabels"), raw.get("matchExpressions"))
    return Selector.from_set(raw)


class _Names:
    """The pod names in use in one namespace, looked up in the store's cache (no copy of thousands of names)."""

    def __init__(self, pods: Mapping[tuple[str, str], Any], namespace: str) -> None:
        self._pods, self._namespace = pods, namespace

    def __contains__(self, name: object) -> bool:
        return (self._namespace, name) in self._pods


class ReplicationManager:
    """Holds what is worth keeping between passes: the pods-by-owner index, parsed selectors, randomness.

    A pass plans only the controllers whose inputs changed since they were last planned: the controller
    itself (its resourceVersion), one of its pods, or a pod nobody controls in its namespace (one it may
    adopt); and those waiting on the clock (a terminal pod's grace, minReadySeconds). Every `resync` seconds
    a pass plans them all anyway, so a missed change costs seconds, never correctness (level-triggered).
    """

    def __init__(
        self,
        store: CachedStore,
        rng: random.Random | None = None,
        binder: Binder | None = None,
        *,
        resync: float = 5.0,
    ) -> None:
        self.rng = rng or random.Random()
        self.binder = binder
        self.resync = resync
        self.index = OwnerIndex()
        self._selectors: dict[tuple[str, str], Selector] = {}
        #: controller uid -> the resourceVersion it was last planned at (absent: plan it next pass).
        self._planned: dict[str, str] = {}
        self._dirty_owners: set[str] = set()
        self._dirty_namespaces: set[str] = set()
        self._next_resync = -math.inf
        store.listen("Pod", self._observe)

    def _observe(self, key: tuple[str, str], pod: Mapping[str, Any] | None) -> None:
        before = self.index.where(key)
        self.index.observe(key, pod)
        for where in (before, self.index.where(key)):
            if where is not None:
                (self._dirty_owners if where[0] else self._dirty_namespaces).add(where[1])

    def run(self, store: CachedStore, events: EventLog, now: float) -> int:
        """One pass over the controllers that need it, then the garbage collector; returns the actions taken."""
        controllers = [c for kind in CONTROLLER_KINDS for c in store.objects(kind).values()]
        full = now >= self._next_resync or now < self._next_resync - 2 * self.resync  # (a wall clock set back)
        if full:
            self._next_resync = now + self.resync
        owners, self._dirty_owners = self._dirty_owners, set()
        namespaces, self._dirty_namespaces = self._dirty_namespaces, set()
        taken = 0
        selectors: dict[tuple[str, str], Selector] = {}
        planned: dict[str, str] = {}
        for controller in controllers:
            meta = controller["metadata"]
            uid, version = meta["uid"], meta["resourceVersion"]
            key = (uid, version)
            selector = self._selectors.get(key) or selector_of(controller)
            selectors[key] = selector
            if not (full or uid in owners or meta["namespace"] in namespaces or self._planned.get(uid) != version):
                planned[uid] = version
                continue
            pods = self.index.candidates(uid, meta["namespace"])
            names = _Names(store.objects("Pod"), meta["namespace"])
            actions = replication.plan(controller, selector, pods, now, rng=self.rng, taken=names)
            if actions:
                apply(controller, actions, store, events, self.binder)
                taken += len(actions)
            if not replication.waiting_on_clock(controller, pods, now):
                planned[uid] = version
        self._selectors = selectors
        self._planned = planned
        uids = {c["metadata"]["uid"] for c in controllers}
        gone = [p for uid, pods in self.index.owned.items() if uid not in uids for p in pods.values()]
        orphans = replication.dangling(gone, uids)
        if orphans:
            apply(None, orphans, store, events)
            taken += len(orphans)
        return taken


def apply(
    controller: Mapping[str, Any] | None,
    actions: Iterable[Action],
    store: CachedStore,
    events: EventLog,
    binder: Binder | None = None,
) -> None:
    """Carry out a plan (`controller` None: the garbage collector's deletes); a pod changed meanwhile is skipped.

    With a `binder`, new pods are placed before they are written: one write creates them bound.
    """
    actions = list(actions)
    component = _COMPONENT.get(controller["kind"], "") if controller else "garbage-collector"
    new_pods = [a.pod for a in actions if isinstance(a, CreatePod)]
    bound = {id(p) for p in binder.bind_new(new_pods)} if binder is not None and new_pods else set()
    for action in actions:
        try:
            _apply_one(controller, action, store, events, component)
        except (NotFoundError, ConflictError) as exc:
            log.info("skipped %s: %s", type(action).__name__, exc)
            continue
        if binder is not None and isinstance(action, CreatePod) and id(action.pod) in bound:
            meta = action.pod["metadata"]
            binder.scheduled(store.peek("Pod", meta["namespace"], meta["name"]))


def _apply_one(
    controller: Mapping[str, Any] | None,
    action: Action,
    store: CachedStore,
    events: EventLog,
    component: str,
) -> None:
    if isinstance(action, CreatePod):
        store.create(action.pod)
        if controller is not None:
            name = action.pod["metadata"]["name"]
            events.record(controller, "SuccessfulCreate", f"Created pod: {name}", component=component)
    elif isinstance(action, DeletePod):
        pod = store.peek("Pod", action.namespace, action.name)
        if pod["metadata"].get("uid") != action.uid:
            return
        store.delete("Pod", action.namespace, action.name, pod["metadata"]["resourceVersion"])
        target = controller if controller is not None else ObjectRef.of(pod)
        events.record(target, "SuccessfulDelete", f"Deleted pod: {action.name}", component=component)
    elif isinstance(action, AdoptPod):
        pod = store.peek("Pod", action.namespace, action.name)
        if pod["metadata"].get("uid") != action.uid or controller_ref(pod) is not None:
            return
        refs = [*(pod["metadata"].get("ownerReferences") or ()), action.ref]
        store.update({**pod, "metadata": {**pod["metadata"], "ownerReferences": refs}})
        log.info("%s %s adopted pod %s", action.ref["kind"], action.ref["name"], action.name)
    elif isinstance(action, ReleasePod):
        pod = store.peek("Pod", action.namespace, action.name)
        if pod["metadata"].get("uid") != action.uid:
            return
        store.update(without_owner(pod, action.owner_uid))
        log.info("released pod %s/%s from its controller", action.namespace, action.name)
    elif controller is not None:
        meta = controller["metadata"]
        current = store.peek(controller["kind"], meta["namespace"], meta["name"])
        if current["metadata"]["uid"] == meta["uid"]:
            store.update({**current, "status": action.status})
