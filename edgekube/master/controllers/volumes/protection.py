"""Claim protection (kubernetes.io/pvc-protection): a claim in use is not deleted until no pod uses it; pure `plan`.

Every claim carries the finalizer (the API adds it at create, this controller to older ones); deleting a claim
only sets metadata.deletionTimestamp (it shows Terminating), and once no unfinished pod uses it and no node
still holds its volume (status.volumesInUse, see inuse) the finalizer goes and with it the claim. Pods using a
Terminating claim are not scheduled (scheduling.volumes).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from edgekube.master.controllers.base import Setup, Snapshot
from edgekube.master.controllers.volumes import facts, inuse
from edgekube.master.controllers.volumes.actions import SetFinalizers
from edgekube.master.controllers.volumes.facts import Obj
from edgekube.master.controllers.volumes.users import ClaimUsers
from edgekube.model.storage import PVC_PROTECTION


def plan(claims: Mapping[Any, Obj], users: ClaimUsers, held: Collection[str] = ()) -> list[SetFinalizers]:
    """The finalizer on every claim; off a deleted one once no pod uses it and no node holds its volume (`held`)."""
    actions = []
    for claim in claims.values():
        meta = claim["metadata"]
        finalizers = tuple(meta.get("finalizers") or ())
        if facts.deleting(claim):
            if PVC_PROTECTION in finalizers and not in_use(claim, users, held):
                actions.append(SetFinalizers(claim, tuple(f for f in finalizers if f != PVC_PROTECTION)))
        elif PVC_PROTECTION not in finalizers:
            actions.append(SetFinalizers(claim, (*finalizers, PVC_PROTECTION)))
    return actions


def in_use(claim: Obj, users: ClaimUsers, held: Collection[str]) -> bool:
    """A pod in the store uses the claim (pending ones too), or a node still holds the volume it is bound to."""
    meta = claim["metadata"]
    return users.in_use(meta["namespace"], meta["name"]) or claim["spec"].get("volumeName") in held


class ClaimProtection:
    name = "pvc-protection"

    def __init__(self, users: ClaimUsers) -> None:
        self.users = users

    @classmethod
    def build(cls, setup: Setup) -> ClaimProtection:
        return cls(setup.volumes.users)

    def plan(self, snapshot: Snapshot) -> list[SetFinalizers]:
        store = snapshot.store
        return plan(store.objects("PersistentVolumeClaim"), self.users, inuse.held(store.objects("Node").values()))
