"""`ekctl describe pv|pvc|sc`: kubectl's views of a volume, a claim (with the pods using it) and a class."""

from __future__ import annotations

from datetime import datetime

from edgekube.cli.describe import Writer
from edgekube.cli.describe_container import volume_source
from edgekube.cli.status import NONE, section
from edgekube.cli.storage import (
    access_modes,
    claim_capacity,
    claim_class,
    claim_of,
    claim_users,
    is_default_class,
    phase,
    storage,
    volume_class,
)
from edgekube.cli.timefmt import age
from edgekube.model.types import Obj

#: kubectl's printBoolPtr of a nil pointer.
UNSET_BOOL = "<unset>"


def _finalizers(meta: Obj) -> str:
    """Go's %v of a []string, as kubectl prints Finalizers: `[a b]`, `[]`."""
    found = meta.get("finalizers")
    return "[" + " ".join(str(f) for f in found) + "]" if isinstance(found, list) else "[]"


def _status(obj: Obj, now: datetime | None) -> str:
    """The Status line: the phase, or `Terminating (lasts 5m)` counted from the deletion's start."""
    deleted = section(obj, "metadata").get("deletionTimestamp")
    return f"Terminating (lasts {age(deleted, now)})" if deleted else phase(obj)


def _flat(values: Obj) -> str:
    """As kubectl's labels.FormatLabels: `a=1,b=2` sorted by key, <none> when empty."""
    return ",".join(f"{key}={values[key]}" for key in sorted(values)) or NONE


def describe_pv(volume: Obj, events: list[Obj] | None = None, now: datetime | None = None) -> str:
    """Port of kubectl's describePersistentVolume (no node affinity or other sources in edgekube)."""
    meta, spec, status = section(volume, "metadata"), section(volume, "spec"), section(volume, "status")
    w = Writer()
    w.field(0, "Name", meta.get("name", ""))
    w.mapping(0, "Labels", section(meta, "labels"))
    w.mapping(0, "Annotations", section(meta, "annotations"), sep=": ")
    w.field(0, "Finalizers", _finalizers(meta))
    w.field(0, "StorageClass", volume_class(volume))
    w.field(0, "Status", _status(volume, now))
    w.field(0, "Claim", claim_of(volume))
    w.field(0, "Reclaim Policy", spec.get("persistentVolumeReclaimPolicy") or "Retain")
    w.field(0, "Access Modes", access_modes(spec.get("accessModes")))
    w.field(0, "VolumeMode", spec.get("volumeMode") or "Filesystem")
    w.field(0, "Capacity", storage(section(spec, "capacity")))
    w.field(0, "Node Affinity", NONE)
    w.field(0, "Message", status.get("message") or "")
    w.line(0, "Source:")
    volume_source(w, spec)
    w.events(events, now)
    return w.text()


def describe_pvc(claim: Obj, pods: list[Obj], events: list[Obj] | None = None, now: datetime | None = None) -> str:
    """Port of kubectl's describePersistentVolumeClaim; `pods` may be any pods, those using the claim are listed."""
    meta, spec = section(claim, "metadata"), section(claim, "spec")
    capacity, modes = claim_capacity(claim)
    w = Writer()
    w.field(0, "Name", meta.get("name", ""))
    w.field(0, "Namespace", meta.get("namespace", ""))
    w.field(0, "StorageClass", claim_class(claim))
    w.field(0, "Status", _status(claim, now))
    w.field(0, "Volume", spec.get("volumeName") or "")
    w.mapping(0, "Labels", section(meta, "labels"))
    w.mapping(0, "Annotations", section(meta, "annotations"), sep=": ")
    w.field(0, "Finalizers", _finalizers(meta))
    w.field(0, "Capacity", capacity)
    w.field(0, "Access Modes", modes)
    w.field(0, "VolumeMode", spec.get("volumeMode") or "Filesystem")
    users = [str(section(p, "metadata").get("name", "")) for p in claim_users(claim, pods)]
    w.multiline(0, "Used By", users)
    w.events(events, now)
    return w.text()


def describe_sc(sc: Obj, events: list[Obj] | None = None, now: datetime | None = None) -> str:
    """Port of kubectl's describeStorageClass."""
    meta = section(sc, "metadata")
    w = Writer()
    w.field(0, "Name", meta.get("name", ""))
    w.field(0, "IsDefaultClass", "Yes" if is_default_class(sc) else "No")
    w.field(0, "Annotations", _flat(section(meta, "annotations")))
    w.field(0, "Provisioner", sc.get("provisioner") or "")
    w.field(0, "Parameters", _flat(section(sc, "parameters")))
    expansion = sc.get("allowVolumeExpansion")
    w.field(0, "AllowVolumeExpansion", UNSET_BOOL if expansion is None else str(bool(expansion)))
    options = sc.get("mountOptions")
    if isinstance(options, list) and options:
        w.line(0, "MountOptions:")
        for option in options:
            w.line(1, str(option))
    else:
        w.field(0, "MountOptions", NONE)
    w.field(0, "ReclaimPolicy", sc.get("reclaimPolicy") or "Delete")
    w.field(0, "VolumeBindingMode", sc.get("volumeBindingMode") or "Immediate")
    w.events(events, now)
    return w.text()
