"""The deployment controller as the master runs it (registered in controllers.registry): every Deployment, each pass.

It keeps one thing between passes: the pods by controlling ReplicaSet (replication.ownerindex.OwnerIndex, fed by
the cache), so a pass reads each ReplicaSet's pods once. Deployments are few and their plans cheap, so every pass
plans all of them: minReadySeconds and progressDeadlineSeconds are then honoured within a resync interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgekube.master.cache import CachedStore
from edgekube.master.controllers.base import Setup, Snapshot
from edgekube.master.controllers.deployment import plan as rollout
from edgekube.master.controllers.deployment.actions import DeploymentAction
from edgekube.master.controllers.owners import controller_ref
from edgekube.master.controllers.replication.ownerindex import OwnerIndex

_Key = tuple[str, str]


class DeploymentController:
    name = "deployment"

    def __init__(self, store: CachedStore) -> None:
        self.pods = OwnerIndex()
        store.listen("Pod", self.pods.observe)

    @classmethod
    def build(cls, setup: Setup) -> DeploymentController:
        return cls(setup.store)

    def _pods_of(self, uid: str) -> list[Mapping[str, Any]]:
        return list(self.pods.owned.get(uid, {}).values())

    def plan(self, snapshot: Snapshot) -> list[DeploymentAction]:
        store = snapshot.store
        deployments = store.objects("Deployment")
        replica_sets = store.objects("ReplicaSet")
        owned: dict[str, list[Mapping[str, Any]]] = {}
        orphans: list[Mapping[str, Any]] = []
        for rs in replica_sets.values():
            ref = controller_ref(rs)
            if ref is None:
                orphans.append(rs)
            elif ref.get("kind") == "Deployment":
                owned.setdefault(str(ref.get("uid")), []).append(rs)
        actions: list[DeploymentAction] = []
        uids = set()
        for (namespace, _), deployment in sorted(deployments.items()):
            uid = deployment["metadata"]["uid"]
            uids.add(uid)
            taken = _Names(replica_sets, namespace)
            adoptions, adopted = rollout.adopt(deployment, orphans) if orphans else ([], [])
            if adopted:
                claimed = {rs["metadata"]["uid"] for rs in adopted}
                orphans = [rs for rs in orphans if rs["metadata"]["uid"] not in claimed]
            actions += adoptions
            sets = [*owned.get(uid, []), *adopted]
            actions += rollout.plan(deployment, sets, self._pods_of, snapshot.now, taken=taken)
        actions += rollout.dangling((rs for group in owned.values() for rs in group), uids)
        return actions


class _Names:
    """ReplicaSet names in use in one namespace, looked up in the cache (never copied)."""

    def __init__(self, objects: Mapping[_Key, Any], namespace: str) -> None:
        self._objects, self._namespace = objects, namespace

    def __contains__(self, name: object) -> bool:
        return (self._namespace, name) in self._objects
