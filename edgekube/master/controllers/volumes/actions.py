"""What the volume controllers ask for, each carried out by controllers.base.apply against the store and event log.

Every action re-reads the object and checks it is the incarnation the plan saw (its uid); a changed world makes
it a no-op (or NotFound/Conflict, which apply skips) and the next pass plans again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgekube.master.controllers.base import Effects
from edgekube.master.controllers.volumes.facts import Obj, uid
from edgekube.master.controllers.volumes.nfsio import Job
from edgekube.master.controllers.volumes.worker import VolumeWorker
from edgekube.master.eventlog import ObjectRef
from edgekube.model.errors import ConflictError
from edgekube.model.storage import ANN_BOUND_BY_CONTROLLER

log = logging.getLogger(__name__)

BINDER = "persistentvolume-controller"
PROTECTION = "pvc-protection-controller"
ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"


def _current(effects: Effects, obj: Obj) -> dict[str, Any] | None:
    meta = obj["metadata"]
    stored = effects.store.peek(obj["kind"], meta.get("namespace") or "", meta["name"])
    return stored if uid(stored) == uid(obj) else None


@dataclass(frozen=True)
class Say:
    """An event about an object (the controller drops repeats of what it last said about it)."""

    about: ObjectRef
    reason: str
    message: str
    component: str = BINDER
    warning: bool = False
    #: Tells apart repeats that are news (another failed attempt) from the same situation seen again.
    instance: str = ""

    def apply(self, effects: Effects) -> None:
        kind = "Warning" if self.warning else "Normal"
        effects.events.record(self.about, self.reason, self.message, component=self.component, type=kind)


@dataclass(frozen=True)
class SetStatus:
    """Replace an object's status (phase, message, ...)."""

    of: Obj = field(compare=False)
    status: Mapping[str, Any]

    def apply(self, effects: Effects) -> None:
        current = _current(effects, self.of)
        if current is not None and current.get("status") != self.status:
            effects.store.update({**current, "status": dict(self.status)})


@dataclass(frozen=True)
class BindVolume:
    """Point a volume's claimRef at a claim (with its uid) and mark it Bound."""

    volume: Obj = field(compare=False)
    claim: Obj = field(compare=False)
    by_controller: bool = True

    def apply(self, effects: Effects) -> None:
        volume = _current(effects, self.volume)
        if volume is None:
            return
        ref = volume["spec"].get("claimRef")
        meta = self.claim["metadata"]
        if ref and (ref.get("namespace"), ref.get("name")) != (meta["namespace"], meta["name"]):
            raise ConflictError(f"PersistentVolume {volume['metadata']['name']} is bound to another claim")
        spec = {
            **volume["spec"],
            "claimRef": {
                "kind": "PersistentVolumeClaim",
                "apiVersion": "v1",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
        }
        annotations = dict(volume["metadata"].get("annotations") or {})
        if self.by_controller:
            annotations[ANN_BOUND_BY_CONTROLLER] = "yes"
        status = {**(volume.get("status") or {}), "phase": "Bound"}
        status.pop("message", None)
        effects.store.update(
            {**volume, "metadata": {**volume["metadata"], "annotations": annotations}, "spec": spec, "status": status}
        )
        log.info("volume %s bound to claim %s/%s", volume["metadata"]["name"], meta["namespace"], meta["name"])


@dataclass(frozen=True)
class BindClaim:
    """Write the volume's name into the claim (spec.volumeName) and its status: Bound, the volume's modes and size."""

    claim: Obj = field(compare=False)
    volume: Obj = field(compare=False)
    by_controller: bool = True

    def apply(self, effects: Effects) -> None:
        claim = _current(effects, self.claim)
        if claim is None:
            return
        name = self.volume["metadata"]["name"]
        annotations = {**(claim["metadata"].get("annotations") or {}), ANN_BIND_COMPLETED: "yes"}
        if self.by_controller:
            annotations[ANN_BOUND_BY_CONTROLLER] = "yes"
        status = {
            "phase": "Bound",
            "accessModes": list(self.volume["spec"].get("accessModes") or ()),
            "capacity": dict(self.volume["spec"].get("capacity") or {}),
        }
        effects.store.update(
            {
                **claim,
                "metadata": {**claim["metadata"], "annotations": annotations},
                "spec": {**claim["spec"], "volumeName": name},
                "status": status,
            }
        )


@dataclass(frozen=True)
class Annotate:
    """Add annotations to an object (e.g. the provisioner's name on a claim)."""

    of: Obj = field(compare=False)
    annotations: Mapping[str, str]

    def apply(self, effects: Effects) -> None:
        current = _current(effects, self.of)
        if current is None:
            return
        before = current["metadata"].get("annotations") or {}
        after = {**before, **self.annotations}
        if after != before:
            effects.store.update({**current, "metadata": {**current["metadata"], "annotations": after}})


@dataclass(frozen=True)
class CreateVolume:
    """Create a (provisioned) PersistentVolume; one that exists already is left as it is."""

    volume: Obj

    def apply(self, effects: Effects) -> None:
        try:
            effects.store.create(dict(self.volume))
        except ConflictError:
            return
        log.info("provisioned volume %s", self.volume["metadata"]["name"])


@dataclass(frozen=True)
class DeleteObject:
    """Delete an object (a reclaimed volume), if it is still the incarnation the plan saw."""

    of: Obj = field(compare=False)

    def apply(self, effects: Effects) -> None:
        current = _current(effects, self.of)
        if current is None:
            return
        meta = current["metadata"]
        effects.store.delete(current["kind"], meta.get("namespace") or "", meta["name"], meta["resourceVersion"])
        log.info("deleted %s %s", current["kind"], meta["name"])


@dataclass(frozen=True)
class SetFinalizers:
    """Replace an object's finalizers; an object being deleted that is left with none is deleted (as Kubernetes)."""

    of: Obj = field(compare=False)
    finalizers: tuple[str, ...]

    def apply(self, effects: Effects) -> None:
        current = _current(effects, self.of)
        if current is None:
            return
        meta = dict(current["metadata"])
        if self.finalizers:
            meta["finalizers"] = list(self.finalizers)
        else:
            meta.pop("finalizers", None)
        if not self.finalizers and meta.get("deletionTimestamp"):
            effects.store.delete(current["kind"], meta.get("namespace") or "", meta["name"], meta["resourceVersion"])
            log.info("deleted %s %s/%s: no finalizer left", current["kind"], meta.get("namespace"), meta["name"])
            return
        if meta != current["metadata"]:
            effects.store.update({**current, "metadata": meta})


@dataclass(frozen=True)
class Submit:
    """Hand a job to the NFS worker (a no-op while a job with its key is queued or running)."""

    job: Job
    worker: VolumeWorker = field(compare=False)

    def apply(self, effects: Effects) -> None:
        self.worker.submit(self.job)
