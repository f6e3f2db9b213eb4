"""What the deployment plan asks for, each carried out by its `apply` (controllers.base.apply); from deployment.plan.

ReplicaSet changes are made only while the ReplicaSet is the incarnation the plan saw (same uid); events are
recorded on the Deployment as Kubernetes' deployment controller does (ScalingReplicaSet).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgekube.master.controllers.base import Effects
from edgekube.model.types import Obj

COMPONENT = "deployment-controller"


def _scaled_message(name: str, before: int, after: int) -> str:
    way = "up" if after > before else "down"
    return f"Scaled {way} replica set {name} from {before} to {after}"


@dataclass(frozen=True)
class CreateReplicaSet:
    rs: Obj
    by: Mapping[str, Any] = field(compare=False)

    def apply(self, effects: Effects) -> None:
        effects.store.create(self.rs)
        name, replicas = self.rs["metadata"]["name"], int(self.rs["spec"]["replicas"])
        effects.events.record(self.by, "ScalingReplicaSet", _scaled_message(name, 0, replicas), component=COMPONENT)


@dataclass(frozen=True)
class UpdateReplicaSet:
    """Set a ReplicaSet's replicas (its generation counts the change) and/or merge annotations into it."""

    namespace: str
    name: str
    uid: str
    replicas: int | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)
    by: Mapping[str, Any] | None = field(default=None, compare=False)

    def apply(self, effects: Effects) -> None:
        rs = effects.store.peek("ReplicaSet", self.namespace, self.name)
        meta, spec = rs["metadata"], rs["spec"]
        if meta.get("uid") != self.uid:
            return
        before = int(spec.get("replicas", 1))
        new_meta = {**meta, "annotations": {**(meta.get("annotations") or {}), **self.annotations}}
        new_spec = spec
        if self.replicas is not None and self.replicas != before:
            new_spec = {**spec, "replicas": self.replicas}
            new_meta["generation"] = int(meta.get("generation") or 1) + 1
        effects.store.update({**rs, "metadata": new_meta, "spec": new_spec})
        if new_spec is not spec and self.by is not None and self.replicas is not None:
            message = _scaled_message(self.name, before, self.replicas)
            effects.events.record(self.by, "ScalingReplicaSet", message, component=COMPONENT)


@dataclass(frozen=True)
class DeleteReplicaSet:
    """A ReplicaSet beyond revisionHistoryLimit (with no replicas), or one whose Deployment is gone."""

    namespace: str
    name: str
    uid: str
    why: str  # "history" | "owner gone"

    def apply(self, effects: Effects) -> None:
        rs = effects.store.peek("ReplicaSet", self.namespace, self.name)
        if rs["metadata"].get("uid") == self.uid:
            effects.store.delete("ReplicaSet", self.namespace, self.name, rs["metadata"]["resourceVersion"])


@dataclass(frozen=True)
class AdoptReplicaSet:
    """Make the Deployment the controller of a ReplicaSet nobody controls that its selector matches."""

    namespace: str
    name: str
    uid: str
    ref: Obj

    def apply(self, effects: Effects) -> None:
        rs = effects.store.peek("ReplicaSet", self.namespace, self.name)
        meta = rs["metadata"]
        refs = list(meta.get("ownerReferences") or ())
        if meta.get("uid") != self.uid or any(r.get("controller") for r in refs):
            return
        effects.store.update({**rs, "metadata": {**meta, "ownerReferences": [*refs, self.ref]}})


@dataclass(frozen=True)
class AnnotateDeployment:
    """Merge annotations (the revision) into the Deployment; its spec and generation are untouched."""

    namespace: str
    name: str
    uid: str
    annotations: Mapping[str, str]

    def apply(self, effects: Effects) -> None:
        current = effects.store.peek("Deployment", self.namespace, self.name)
        meta = current["metadata"]
        if meta.get("uid") != self.uid:
            return
        merged = {**(meta.get("annotations") or {}), **self.annotations}
        effects.store.update({**current, "metadata": {**meta, "annotations": merged}})


@dataclass(frozen=True)
class SetDeploymentStatus:
    status: Obj
    of: Mapping[str, Any] = field(compare=False)

    def apply(self, effects: Effects) -> None:
        meta = self.of["metadata"]
        current = effects.store.peek("Deployment", meta["namespace"], meta["name"])
        if current["metadata"]["uid"] == meta["uid"]:
            effects.store.update({**current, "status": self.status})


DeploymentAction = (
    CreateReplicaSet | UpdateReplicaSet | DeleteReplicaSet | AdoptReplicaSet | AnnotateDeployment | SetDeploymentStatus
)
