"""What `ekctl get` shows of storage: kubectl's PersistentVolume, PersistentVolumeClaim and StorageClass rows."""

from __future__ import annotations

from datetime import datetime

from edgekube.cli.status import items, section
from edgekube.cli.timefmt import age
from edgekube.model.types import Obj

#: kubectl's GetAccessModesAsString: this order whatever the object's, each mode once.
_ACCESS_MODES = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)
#: The annotation that named a claim's class before spec.storageClassName, still read first by kubectl.
_BETA_CLASS = "volume.beta.kubernetes.io/storage-class"
_DEFAULT_CLASS = ("storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class")
UNSET = "<unset>"
PV_HEADER = [
    "NAME",
    "CAPACITY",
    "ACCESS MODES",
    "RECLAIM POLICY",
    "STATUS",
    "CLAIM",
    "STORAGECLASS",
    "VOLUMEATTRIBUTESCLASS",
    "REASON",
    "AGE",
]
PVC_HEADER = ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "AGE"]
SC_HEADER = ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION", "AGE"]


def access_modes(modes: object) -> str:
    """`RWO,RWX` as kubectl prints access modes."""
    given = set(modes) if isinstance(modes, list) else set()
    return ",".join(short for mode, short in _ACCESS_MODES if mode in given)


def storage(resources: Obj) -> str:
    """The `storage` quantity of a capacity or requests mapping, as stored; "" when absent."""
    value = resources.get("storage")
    return "" if value is None else str(value)


def phase(obj: Obj) -> str:
    """A volume's or claim's phase, or Terminating once its deletion started (it waits on a finalizer)."""
    if section(obj, "metadata").get("deletionTimestamp"):
        return "Terminating"
    return str(section(obj, "status").get("phase") or "Pending")


def claim_of(volume: Obj) -> str:
    """The CLAIM column: `namespace/name` of spec.claimRef, "" for a volume not bound or reserved."""
    ref = section(section(volume, "spec"), "claimRef")
    return f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref else ""


def volume_class(volume: Obj) -> str:
    return str(section(volume, "spec").get("storageClassName") or "")


def claim_class(claim: Obj) -> str:
    """As kubectl's GetPersistentVolumeClaimClass: the beta annotation, else spec.storageClassName, else ""."""
    annotations = section(section(claim, "metadata"), "annotations")
    if _BETA_CLASS in annotations:
        return str(annotations[_BETA_CLASS])
    return str(section(claim, "spec").get("storageClassName") or "")


def attributes_class(obj: Obj) -> str:
    """VOLUMEATTRIBUTESCLASS: edgekube has no VolumeAttributesClass, so it is <unset> unless the object names one."""
    return str(section(obj, "spec").get("volumeAttributesClassName") or UNSET)


def volume_mode(obj: Obj) -> str:
    return str(section(obj, "spec").get("volumeMode") or UNSET)


def is_default_class(sc: Obj) -> bool:
    """As kubectl's IsDefaultAnnotation: either annotation (GA or beta) set to "true"."""
    annotations = section(section(sc, "metadata"), "annotations")
    return any(str(annotations.get(key, "")).lower() == "true" for key in _DEFAULT_CLASS)


def claim_capacity(claim: Obj) -> tuple[str, str]:
    """(CAPACITY, ACCESS MODES) of a claim: the bound volume's, from status, and both empty until it is bound."""
    if not section(claim, "spec").get("volumeName"):
        return "", ""
    status = section(claim, "status")
    return storage(section(status, "capacity")), access_modes(status.get("accessModes"))


def claim_users(claim: Obj, pods: list[Obj]) -> list[Obj]:
    """The pods among `pods` (any namespace) whose volumes name this claim, by name."""
    meta = section(claim, "metadata")
    name, namespace = meta.get("name"), meta.get("namespace") or "default"
    found = []
    for pod in pods:
        pod_meta = section(pod, "metadata")
        if (pod_meta.get("namespace") or "default") != namespace:
            continue
        volumes = items(section(pod, "spec"), "volumes")
        if any(section(v, "persistentVolumeClaim").get("claimName") == name for v in volumes):
            found.append(pod)
    return sorted(found, key=lambda p: str(section(p, "metadata").get("name", "")))


def pv_row(volume: Obj, *, wide: bool, now: datetime | None = None) -> list[str]:
    """Port of kubectl's printPersistentVolume; -o wide adds VOLUMEMODE."""
    meta, spec, status = section(volume, "metadata"), section(volume, "spec"), section(volume, "status")
    row = [
        str(meta.get("name", "")),
        storage(section(spec, "capacity")),
        access_modes(spec.get("accessModes")),
        str(spec.get("persistentVolumeReclaimPolicy") or "Retain"),
        phase(volume),
        claim_of(volume),
        volume_class(volume),
        attributes_class(volume),
        str(status.get("reason") or ""),
        age(meta.get("creationTimestamp"), now),
    ]
    return [*row, volume_mode(volume)] if wide else row


def pvc_row(claim: Obj, *, wide: bool, now: datetime | None = None) -> list[str]:
    """Port of kubectl's printPersistentVolumeClaim; -o wide adds VOLUMEMODE."""
    meta, spec = section(claim, "metadata"), section(claim, "spec")
    capacity, modes = claim_capacity(claim)
    row = [
        str(meta.get("name", "")),
        phase(claim),
        str(spec.get("volumeName") or ""),
        capacity,
        modes,
        claim_class(claim),
        attributes_class(claim),
        age(meta.get("creationTimestamp"), now),
    ]
    return [*row, volume_mode(claim)] if wide else row


def sc_row(sc: Obj, *, wide: bool, now: datetime | None = None) -> list[str]:
    """Port of kubectl's printStorageClass: `(default)` after the default class's name; no -o wide extras."""
    meta = section(sc, "metadata")
    name = str(meta.get("name", ""))
    expansion = sc.get("allowVolumeExpansion")
    return [
        f"{name} (default)" if is_default_class(sc) else name,
        str(sc.get("provisioner") or ""),
        str(sc.get("reclaimPolicy") or "Delete"),
        str(sc.get("volumeBindingMode") or "Immediate"),
        "true" if expansion is True else "false",
        age(meta.get("creationTimestamp"), now),
    ]
