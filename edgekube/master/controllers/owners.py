"""Owner references between controllers and their pods (Kubernetes' controllerRef); used by controllers and API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgekube.model.types import Obj

CONTROLLER_KINDS = ("ReplicationController", "ReplicaSet")


def owner_ref(controller: Mapping[str, Any]) -> Obj:
    """The ownerReference a controller puts on its pods."""
    meta = controller["metadata"]
    return {
        "apiVersion": controller["apiVersion"],
        "kind": controller["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
    }


def controller_ref(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod's managing controller's reference (the ownerReference with controller: true), if any."""
    for ref in pod["metadata"].get("ownerReferences") or ():
        if ref.get("controller"):
            return ref  # type: ignore[no-any-return]
    return None


def without_owner(pod: Mapping[str, Any], owner_uid: str) -> Obj:
    """A copy of the pod with every ownerReference to `owner_uid` removed (orphaning, releasing)."""
    meta = dict(pod["metadata"])
    refs = [r for r in meta.get("ownerReferences") or () if r.get("uid") != owner_uid]
    if refs:
        meta["ownerReferences"] = refs
    else:
        meta.pop("ownerReferences", None)
    return {**pod, "metadata": meta}
