"""The API's rules for PersistentVolume, PersistentVolumeClaim and StorageClass: admission, updates, deletes.

As Kubernetes' API server and admission plugins: a new claim without storageClassName gets the default class
(written into the stored claim), a class that exists nowhere is refused, a claim pre-bound to a volume that
cannot serve it is refused; a class's provisioner, parameters, reclaimPolicy and volumeBindingMode never change,
nor a claim's spec (bar a larger resources.requests) or a volume's source; status and the controllers'
annotations stay the server's. Deleting a claim sets deletionTimestamp (the pvc-protection finalizer holds it
while pods use it); deleting a volume bound to a claim is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from edgekube.master.controllers.volumes import facts
from edgekube.model.errors import ConflictError, NotFoundError, ValidationError
from edgekube.model.quantity import memory_bytes
from edgekube.model.storage import PVC_PROTECTION
from edgekube.model.types import Obj

#: Metadata a manifest cannot set: the server's (finalizers and deletionTimestamp are the controllers').
SERVER_META = ("uid", "resourceVersion", "creationTimestamp", "generation", "deletionTimestamp", "finalizers")
#: Annotations the controllers write; an apply that does not name them keeps them.
_CONTROLLER_ANNOTATIONS = ("pv.kubernetes.io/", "volume.kubernetes.io/", "nfs.edgekube.io/")
_IMMUTABLE_CLASS_FIELDS = {
    "provisioner": "updates to provisioner are forbidden.",
    "parameters": "updates to parameters are forbidden.",
    "reclaimPolicy": "updates to reclaimPolicy are forbidden.",
    "volumeBindingMode": "field is immutable",
}
_SOURCES = ("nfs", "hostPath")


class Reader(Protocol):
    def list(self, kind: str, namespace: str | None = None) -> list[Obj]: ...

    def get(self, kind: str, namespace: str, name: str) -> Obj: ...


@dataclass(frozen=True)
class Context:
    """The StorageClasses and PersistentVolumes an apply sees: those stored, replaced by those in its manifest."""

    classes: Mapping[str, Mapping[str, Any]]
    volumes: Mapping[str, Mapping[str, Any]]

    @classmethod
    def of(cls, store: Reader, manifest: Iterable[Mapping[str, Any]]) -> Context:
        given = list(manifest)
        if not any(o["kind"] == "PersistentVolumeClaim" for o in given):
            return cls({}, {})
        classes: dict[str, Mapping[str, Any]] = {o["metadata"]["name"]: o for o in store.list("StorageClass")}
        volumes: dict[str, Mapping[str, Any]] = {o["metadata"]["name"]: o for o in store.list("PersistentVolume")}
        for obj in given:
            if obj["kind"] == "StorageClass":
                classes[obj["metadata"]["name"]] = obj
            elif obj["kind"] == "PersistentVolume":
                volumes[obj["metadata"]["name"]] = obj
        return cls(classes, volumes)


def _title(obj: Mapping[str, Any]) -> str:
    return f'{obj["kind"]} "{obj["metadata"]["name"]}"'


def admit_new(obj: Obj, context: Context) -> Obj:
    """A new storage object as it is stored: status Pending, and a claim defaulted, checked and protected."""
    if obj["kind"] == "StorageClass":
        return obj
    obj["status"] = {"phase": "Pending"}
    if obj["kind"] == "PersistentVolumeClaim":
        _admit_claim(obj, context)
    return obj


def _admit_claim(claim: Obj, context: Context) -> None:
    spec = claim["spec"]
    if spec.get("storageClassName") is None:
        default = facts.default_class(context.classes.values())
        if default is not None:
            spec["storageClassName"] = default["metadata"]["name"]
    class_name = spec.get("storageClassName")
    if class_name and class_name not in context.classes:
        known = ", ".join(sorted(context.classes)) or "none exists"
        raise ValidationError(
            f'{_title(claim)}: spec.storageClassName: Not found: "{class_name}" (StorageClasses: {known})',
            hint="apply the StorageClass first (or in the same manifest), or name one that exists",
        )
    volume_name = spec.get("volumeName")
    volume = context.volumes.get(volume_name) if volume_name else None
    if volume is not None:
        missing = sorted(facts.access_modes(claim) - facts.access_modes(volume))
        if missing:
            offered = json.dumps(sorted(facts.access_modes(volume)))
            raise ValidationError(
                f"{_title(claim)}: spec.accessModes: Invalid value: {json.dumps(missing)}: "
                f'PersistentVolume "{volume_name}" (spec.volumeName) offers only {offered}'
            )
        if facts.capacity(volume) < facts.request(claim):
            wanted = spec["resources"]["requests"]["storage"]
            has = volume["spec"]["capacity"]["storage"]
            raise ValidationError(
                f'{_title(claim)}: spec.resources.requests.storage: Invalid value: "{wanted}": '
                f'PersistentVolume "{volume_name}" (spec.volumeName) has a capacity of only {has}'
            )
    claim["metadata"]["finalizers"] = [PVC_PROTECTION]


def merge(current: Obj, new: Obj, merged: Obj) -> Obj:
    """An update of a stored storage object; `merged` is the current one with the new labels and annotations."""
    annotations = dict(merged["metadata"].get("annotations") or {})
    for key, value in (current["metadata"].get("annotations") or {}).items():
        if key.startswith(_CONTROLLER_ANNOTATIONS) and key not in annotations:
            annotations[key] = value
    merged["metadata"]["annotations"] = annotations
    kind = current["kind"]
    if kind == "StorageClass":
        for field, rule in _IMMUTABLE_CLASS_FIELDS.items():
            if new.get(field) != current.get(field):
                raise ValidationError(f"{_title(current)}: {field}: Forbidden: {rule}")
        top = {k: v for k, v in new.items() if k not in ("metadata", "status")}
        return {**top, "metadata": merged["metadata"]}
    spec = dict(new["spec"])
    if kind == "PersistentVolumeClaim":
        spec = _claim_update(current, spec)
    else:
        if not spec.get("claimRef") and current["spec"].get("claimRef"):
            spec["claimRef"] = current["spec"]["claimRef"]
        if any(spec.get(s) != current["spec"].get(s) for s in _SOURCES):
            raise ValidationError(
                f"{_title(current)}: spec.persistentvolumesource: Forbidden: "
                "spec.persistentvolumesource is immutable after creation",
                hint="delete the volume (once no claim is bound to it) and apply it again",
            )
    merged["spec"] = spec
    return merged


def _claim_update(current: Obj, spec: Obj) -> Obj:
    for field in ("storageClassName", "volumeName"):
        if not spec.get(field) and current["spec"].get(field):
            spec[field] = current["spec"][field]
    if {**spec, "resources": None} != {**current["spec"], "resources": None}:
        raise ValidationError(
            f"{_title(current)}: spec: Forbidden: spec is immutable after creation except resources.requests",
            hint="delete the claim and apply it again (a new claim gets a new volume)",
        )
    before = current["spec"]["resources"]["requests"]["storage"]
    after = spec["resources"]["requests"]["storage"]
    if memory_bytes(after) < memory_bytes(before):
        raise ValidationError(
            f"{_title(current)}: spec.resources.requests.storage: Forbidden: field can not be less than previous "
            f"value ({before})"
        )
    return spec


class Writer(Reader, Protocol):
    def update(self, obj: Mapping[str, Any]) -> Obj: ...

    def delete(self, kind: str, namespace: str, name: str, resource_version: str | None = None) -> Obj: ...


def delete(store: Writer, kind: str, namespace: str, name: str, *, now: str) -> None:
    """Delete a storage object: a claim with finalizers only gets its deletionTimestamp; a bound volume stays."""
    current = store.get(kind, namespace, name)
    meta = current["metadata"]
    if kind == "PersistentVolumeClaim" and meta.get("finalizers"):
        if not meta.get("deletionTimestamp"):
            store.update({**current, "metadata": {**meta, "deletionTimestamp": now}})
        return
    if kind == "PersistentVolume":
        claim = _bound_claim(store, current)
        if claim is not None:
            raise ConflictError(
                f'PersistentVolume "{name}" is bound to PersistentVolumeClaim {claim}: deleting it would take the '
                "claim's data away from its pods",
                hint=f"delete the claim first (ekctl delete pvc {claim.split('/')[1]} -n {claim.split('/')[0]})",
            )
    store.delete(kind, namespace, name)


def _bound_claim(store: Reader, volume: Obj) -> str | None:
    """`namespace/name` of the claim the volume is bound to, if that claim exists."""
    key = facts.claim_ref_key(volume)
    if key is None:
        return None
    try:
        claim = store.get("PersistentVolumeClaim", *key)
    except NotFoundError:
        return None
    ref_uid = facts.claim_ref_uid(volume)
    if ref_uid and ref_uid != facts.uid(claim):
        return None
    if not ref_uid and claim["spec"].get("volumeName") != volume["metadata"]["name"]:
        return None
    return f"{key[0]}/{key[1]}"
