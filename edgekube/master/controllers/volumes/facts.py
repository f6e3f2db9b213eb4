"""Facts of stored claims, volumes, classes and pods' volumes; read by the volume controllers, scheduling, dispatch."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from typing import Any

from edgekube.model.quantity import memory_bytes
from edgekube.model.storage import (
    ANN_PROVISIONED_BY,
    DEFAULT_CLASS_ANNOTATION,
    NFS_PROVISIONERS,
    NfsServer,
    mount_port,
)

Obj = Mapping[str, Any]
ClaimKey = tuple[str, str]
#: The annotation on a provisioned volume that says what its deletion does to the directory (delete/archive/retain).
ANN_ON_DELETE = "nfs.edgekube.io/on-delete"
ARCHIVED_PREFIX = "archived-"


def pod_claims(pod: Obj) -> list[tuple[str, str, bool]]:
    """(volume name, claim name, readOnly) of each persistentVolumeClaim volume of a pod."""
    out = []
    for volume in pod["spec"].get("volumes") or ():
        source = volume.get("persistentVolumeClaim")
        if source:
            out.append((str(volume["name"]), str(source["claimName"]), bool(source.get("readOnly"))))
    return out


def inline_servers(pod: Obj) -> list[NfsServer]:
    """The servers of a pod's inline `nfs` volumes (always port 2049: an inline source has no mount options)."""
    return [NfsServer(server=v["nfs"]["server"]) for v in pod["spec"].get("volumes") or () if v.get("nfs")]


def deleting(obj: Obj) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def uid(obj: Obj) -> str:
    return str(obj["metadata"].get("uid") or "")


def access_modes(obj: Obj) -> frozenset[str]:
    return frozenset(obj["spec"].get("accessModes") or ())


def capacity(volume: Obj) -> int:
    return memory_bytes((volume["spec"].get("capacity") or {}).get("storage", 0))


def request(claim: Obj) -> int:
    return memory_bytes(((claim["spec"].get("resources") or {}).get("requests") or {}).get("storage", 0))


def claim_class(claim: Obj) -> str:
    """The class a claim asks for; "" (no class) when it names none (admission wrote the default, if any)."""
    return str(claim["spec"].get("storageClassName") or "")


def binding_mode(storage_class: Obj | None) -> str:
    return str((storage_class or {}).get("volumeBindingMode") or "Immediate")


def default_class(classes: Iterable[Obj]) -> Obj | None:
    """The default StorageClass; with several, the newest (as Kubernetes' admission chooses), then by name."""
    defaults = [
        c
        for c in classes
        if str((c["metadata"].get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION, "")).lower() == "true"
    ]
    if not defaults:
        return None
    return max(defaults, key=lambda c: (c["metadata"].get("creationTimestamp") or "", c["metadata"]["name"]))


def is_nfs_class(storage_class: Obj) -> bool:
    return storage_class.get("provisioner") in NFS_PROVISIONERS


def class_server(storage_class: Obj) -> NfsServer | None:
    """The NFS server an NFS class provisions on (None for other provisioners)."""
    if not is_nfs_class(storage_class):
        return None
    params = storage_class.get("parameters") or {}
    return NfsServer(server=params["server"], port=int(params.get("port") or 2049))


def on_delete(storage_class: Obj) -> str:
    """What deleting a provisioned volume does to its directory: `delete`, `archive` or `retain`."""
    params = storage_class.get("parameters") or {}
    if params.get("onDelete"):
        return str(params["onDelete"])
    return "archive" if str(params.get("archiveOnDelete", "")).lower() == "true" else "delete"


def volume_server(volume: Obj) -> NfsServer | None:
    """The NFS server a volume lives on, port from its mount options (None: not an NFS volume)."""
    nfs = volume["spec"].get("nfs")
    if not nfs:
        return None
    return NfsServer(server=nfs["server"], port=mount_port(list(volume["spec"].get("mountOptions") or ())))


def provisioned(volume: Obj) -> bool:
    """Made by edgekube's NFS provisioner (its directory is ours to remove)."""
    return (volume["metadata"].get("annotations") or {}).get(ANN_PROVISIONED_BY) in NFS_PROVISIONERS


def split_dir(volume: Obj) -> tuple[str, str]:
    """(share, directory) of a provisioned volume: its nfs path is `<share>/<directory>`."""
    share, directory = posixpath.split(volume["spec"]["nfs"]["path"].rstrip("/"))
    return share or "/", directory


def claim_ref_key(volume: Obj) -> ClaimKey | None:
    ref = volume["spec"].get("claimRef")
    if not ref:
        return None
    return (str(ref.get("namespace") or "default"), str(ref["name"]))


def claim_ref_uid(volume: Obj) -> str:
    return str((volume["spec"].get("claimRef") or {}).get("uid") or "")


def cluster_servers(volumes: Iterable[Obj], classes: Iterable[Obj]) -> set[tuple[str, int]]:
    """(server, port) of every stored volume and NFS StorageClass (pods' inline volumes are counted elsewhere)."""
    found = [volume_server(v) for v in volumes] + [class_server(c) for c in classes]
    return {(s.server, s.port) for s in found if s is not None}
