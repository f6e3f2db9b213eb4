"""The PersistentVolume controller: binds claims to volumes, keeps both phases, reclaims released volumes; pure `plan`.

Kubernetes' rules (pkg/controller/volume/persistentvolume): a claim binds to the volume it names (spec.volumeName),
else to a volume reserved for it (claimRef), else to the smallest Available volume of its class that has every
access mode it asks for, at least its size and the labels its selector wants. A claim whose class waits for its
first consumer binds only once a pod uses it. Claims nothing fits wait, Pending, with an event saying why (the
NFS provisioner, next in the pass, makes volumes for claims of its classes). A volume whose claim is gone is
Released; Retain keeps it so, Delete removes it (provisioned volumes: see provisioner; others cannot be deleted:
Failed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from edgekube.master.controllers.base import Setup, Snapshot
from edgekube.master.controllers.volumes import facts
from edgekube.master.controllers.volumes.actions import BindClaim, BindVolume, Say, SetStatus
from edgekube.master.controllers.volumes.facts import ClaimKey, Obj
from edgekube.master.controllers.volumes.said import Said
from edgekube.master.controllers.volumes.users import ClaimUsers
from edgekube.master.eventlog import ObjectRef
from edgekube.model.labels import Selector
from edgekube.model.storage import NO_PROVISIONER

Action = BindVolume | BindClaim | SetStatus | Say

NO_CLASS = "no persistent volumes available for this claim and no storage class is set"
WAITING = "waiting for first consumer to be created before binding"
LOST = "Bound claim has lost its PersistentVolume. Data on the volume is lost!"
CANNOT_DELETE = 'error getting deleter volume plugin for volume "{}": no deletable volume plugin matched'


def external_provisioning(provisioner: str) -> str:
    return (
        f"Waiting for a volume to be created either by the external provisioner '{provisioner}' or manually by the "
        "system administrator. If volume creation is delayed, please verify that the provisioner is running and "
        "correctly registered."
    )


def _selector(claim: Obj) -> Selector | None:
    raw = claim["spec"].get("selector")
    if not raw:
        return None
    return Selector.from_match_labels(raw.get("matchLabels"), raw.get("matchExpressions"))


def _phase(obj: Obj) -> str:
    return str((obj.get("status") or {}).get("phase") or "Pending")


def _with_phase(obj: Obj, phase: str, message: str | None = None) -> dict[str, Any]:
    status = {k: v for k, v in (obj.get("status") or {}).items() if k not in ("phase", "message")}
    status["phase"] = phase
    if message:
        status["message"] = message
    return status


def fits(volume: Obj, claim: Obj) -> bool:
    """Whether this unreserved volume could serve this claim (class, access modes, size, selector)."""
    if facts.deleting(volume) or str(volume["spec"].get("storageClassName") or "") != facts.claim_class(claim):
        return False
    if not facts.access_modes(claim) <= facts.access_modes(volume) or facts.capacity(volume) < facts.request(claim):
        return False
    selector = _selector(claim)
    return selector is None or selector.matches(volume["metadata"].get("labels") or {})


def reserved_for(volume: Obj, claim: Obj) -> bool:
    """Whether the volume's claimRef is this claim (by namespace and name, and uid when the ref has one)."""
    meta = claim["metadata"]
    ref_uid = facts.claim_ref_uid(volume)
    return facts.claim_ref_key(volume) == (meta["namespace"], meta["name"]) and ref_uid in ("", facts.uid(claim))


def best_match(claim: Obj, volumes: Sequence[Obj], taken: set[str]) -> Obj | None:
    """The smallest fitting volume (ties: by name), reserved for this claim first; None when nothing fits."""
    reserved = [v for v in volumes if v["metadata"]["name"] not in taken and reserved_for(v, claim)]
    if reserved:
        return min(reserved, key=lambda v: v["metadata"]["name"])
    free = [
        v
        for v in volumes
        if v["metadata"]["name"] not in taken
        and not v["spec"].get("claimRef")
        and _phase(v) in ("Pending", "Available")
        and fits(v, claim)
    ]
    if not free:
        return None
    return min(free, key=lambda v: (facts.capacity(v), v["metadata"]["name"]))


def plan(
    claims: Mapping[ClaimKey, Obj],
    volumes: Mapping[Any, Obj],
    classes: Mapping[Any, Obj],
    users: ClaimUsers,
) -> list[Action]:
    """Every binding and phase change for this moment; events for claims that wait."""
    actions: list[Action] = []
    by_name = {v["metadata"]["name"]: v for v in volumes.values()}
    taken: set[str] = set()  # volumes bound (or being bound) this pass
    for claim in sorted(claims.values(), key=lambda c: (c["metadata"].get("creationTimestamp") or "", _key(c))):
        actions += _claim(claim, by_name, classes, users, taken)
    for volume in by_name.values():
        if volume["metadata"]["name"] not in taken:
            actions += _volume(volume, claims)
    return actions


def _key(obj: Obj) -> ClaimKey:
    return (obj["metadata"].get("namespace") or "", obj["metadata"]["name"])


def _claim(
    claim: Obj, volumes: Mapping[str, Obj], classes: Mapping[Any, Obj], users: ClaimUsers, taken: set[str]
) -> list[Action]:
    ref = ObjectRef.of(claim)
    name = claim["spec"].get("volumeName")
    if name:
        volume = volumes.get(name)
        if volume is not None and (not volume["spec"].get("claimRef") or reserved_for(volume, claim)):
            taken.add(name)
            out: list[Action] = []
            if facts.claim_ref_uid(volume) != facts.uid(claim) or _phase(volume) != "Bound":
                out.append(BindVolume(volume, claim, by_controller=False))
            if _phase(claim) != "Bound":
                out.append(BindClaim(claim, volume, by_controller=False))
            return out
        if _phase(claim) in ("Bound", "Lost"):
            lost: list[Action] = [Say(ref, "ClaimLost", LOST, warning=True)]
            return lost + ([SetStatus(claim, _with_phase(claim, "Lost"))] if _phase(claim) != "Lost" else [])
        if volume is not None:
            return [Say(ref, "FailedBinding", f'volume "{name}" already bound to a different claim.', warning=True)]
        return []  # the named volume does not exist yet: Pending, as in Kubernetes
    if facts.deleting(claim):
        return []
    class_name = facts.claim_class(claim)
    storage_class = classes.get(("", class_name)) if class_name else None
    meta = claim["metadata"]
    if facts.binding_mode(storage_class) == "WaitForFirstConsumer" and not users.in_use(
        meta["namespace"], meta["name"]
    ):
        return [Say(ref, "WaitForFirstConsumer", WAITING)]
    volume = best_match(claim, list(volumes.values()), taken)
    if volume is not None:
        taken.add(volume["metadata"]["name"])
        return [BindVolume(volume, claim), BindClaim(claim, volume)]
    if not class_name:
        return [Say(ref, "FailedBinding", NO_CLASS, warning=True)]
    if storage_class is None:
        message = f'storageclass.storage.k8s.io "{class_name}" not found'
        return [Say(ref, "ProvisioningFailed", message, warning=True)]
    if storage_class.get("provisioner") == NO_PROVISIONER:
        message = (
            f'no persistent volumes available for this claim and storage class "{class_name}" provisions none '
            f"({NO_PROVISIONER})"
        )
        return [Say(ref, "FailedBinding", message, warning=True)]
    return [Say(ref, "ExternalProvisioning", external_provisioning(str(storage_class["provisioner"])))]


def _volume(volume: Obj, claims: Mapping[ClaimKey, Obj]) -> list[Action]:
    """The phase of a volume not bound this pass: Available, Bound, Released (then reclaimed) or Failed."""
    key = facts.claim_ref_key(volume)
    phase = _phase(volume)
    if key is None:
        return [] if phase == "Available" else [SetStatus(volume, _with_phase(volume, "Available"))]
    claim = claims.get(key)
    ref_uid = facts.claim_ref_uid(volume)
    if claim is not None and ref_uid and facts.uid(claim) != ref_uid:
        claim = None  # a new claim of the same name: the volume's claim is gone
    name = volume["metadata"]["name"]
    if claim is None or (ref_uid and claim["spec"].get("volumeName") not in ("", None, name)):
        if not ref_uid:
            return [] if phase == "Available" else [SetStatus(volume, _with_phase(volume, "Available"))]
        if phase == "Failed":
            return []
        policy = volume["spec"].get("persistentVolumeReclaimPolicy") or "Retain"
        if policy == "Delete" and not facts.provisioned(volume):
            message = CANNOT_DELETE.format(name)
            return [
                Say(ObjectRef.of(volume), "VolumeFailedDelete", message, warning=True),
                SetStatus(volume, _with_phase(volume, "Failed", message)),
            ]
        return [] if phase == "Released" else [SetStatus(volume, _with_phase(volume, "Released"))]
    if claim["spec"].get("volumeName") == name:
        return [] if phase == "Bound" else [SetStatus(volume, _with_phase(volume, "Bound"))]
    return [] if phase == "Available" else [SetStatus(volume, _with_phase(volume, "Available"))]


class VolumeBinder:
    """The controller: `plan` over the snapshot, with its memory of the events it already raised."""

    name = "persistentvolume-binder"

    def __init__(self, users: ClaimUsers) -> None:
        self.users = users
        self.said = Said()

    @classmethod
    def build(cls, setup: Setup) -> VolumeBinder:
        return cls(setup.volumes.users)

    def plan(self, snapshot: Snapshot) -> list[Action]:
        store = snapshot.store
        claims = store.objects("PersistentVolumeClaim")
        actions = plan(claims, store.objects("PersistentVolume"), store.objects("StorageClass"), self.users)
        uids = {facts.uid(c) for c in claims.values()} | {
            facts.uid(v) for v in store.objects("PersistentVolume").values()
        }
        self.said.forget_except(uids)
        return self.said.filter(actions)
