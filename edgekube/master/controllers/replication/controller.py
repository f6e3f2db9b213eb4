"""The replication controller as the master runs it: which RC/RS a pass plans, and the garbage collector's deletes.

Registered in controllers.registry; its `plan` returns actions for controllers.base.apply.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from edgekube.master.cache import CachedStore
from edgekube.master.controllers.base import Setup, Snapshot
from edgekube.master.controllers.owners import CONTROLLER_KINDS
from edgekube.master.controllers.replication import plan as rc_plan
from edgekube.master.controllers.replication.actions import ReplicaAction
from edgekube.master.controllers.replication.ownerindex import OwnerIndex
from edgekube.model.labels import Selector


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

    name = "replication"

    def __init__(self, store: CachedStore, rng: random.Random | None = None, *, resync: float = 5.0) -> None:
        self.rng = rng or random.Random()
        self.resync = resync
        self.index = OwnerIndex()
        self._selectors: dict[tuple[str, str], Selector] = {}
        #: controller uid -> the resourceVersion it was last planned at (absent: plan it next pass).
        self._planned: dict[str, str] = {}
        self._dirty_owners: set[str] = set()
        self._dirty_namespaces: set[str] = set()
        self._next_resync = -math.inf
        store.listen("Pod", self._observe)

    @classmethod
    def build(cls, setup: Setup) -> ReplicationManager:
        return cls(setup.store, resync=setup.config.controller_resync)

    def _observe(self, key: tuple[str, str], pod: Mapping[str, Any] | None) -> None:
        before = self.index.where(key)
        self.index.observe(key, pod)
        for where in (before, self.index.where(key)):
            if where is not None:
                (self._dirty_owners if where[0] else self._dirty_namespaces).add(where[1])

    def plan(self, snapshot: Snapshot) -> list[ReplicaAction]:
        """The plans of the controllers that need one this pass, then the garbage collector's deletes."""
        store, now = snapshot.store, snapshot.now
        controllers = [c for kind in CONTROLLER_KINDS for c in store.objects(kind).values()]
        full = now >= self._next_resync or now < self._next_resync - 2 * self.resync  # (a wall clock set back)
        if full:
            self._next_resync = now + self.resync
        owners, self._dirty_owners = self._dirty_owners, set()
        namespaces, self._dirty_namespaces = self._dirty_namespaces, set()
        actions: list[ReplicaAction] = []
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
            actions += rc_plan.plan(controller, selector, pods, now, rng=self.rng, taken=names)
            if not rc_plan.waiting_on_clock(controller, pods, now):
                planned[uid] = version
        self._selectors = selectors
        self._planned = planned
        uids = {c["metadata"]["uid"] for c in controllers}
        gone = [p for uid, pods in self.index.owned.items() if uid not in uids for p in pods.values()]
        actions += rc_plan.dangling(gone, uids)
        return actions
