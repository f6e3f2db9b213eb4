"""What the replication plan asks for (besides controllers.base.CreatePod), each carried out by its `apply`.

Every apply checks that the pod is still the incarnation the plan saw (its uid): a pod deleted and recreated
under the same name meanwhile is left alone, and the next pass plans again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgekube.master.controllers.base import CreatePod, Effects, planned_pod
from edgekube.master.controllers.owners import controller_ref, without_owner
from edgekube.master.eventlog import ObjectRef
from edgekube.model.types import Obj

log = logging.getLogger(__name__)

#: The event source of each controller kind, as Kubernetes names its controllers.
COMPONENT = {"ReplicationController": "replication-controller", "ReplicaSet": "replicaset-controller"}
GARBAGE_COLLECTOR = "garbage-collector"


@dataclass(frozen=True)
class DeletePod:
    namespace: str
    name: str
    uid: str
    why: str  # "scale down" | "terminal" | "owner gone"
    #: The controller deleting it (the event is about it); None: the garbage collector (the event is the pod's).
    by: Mapping[str, Any] | None = field(default=None, compare=False)

    def apply(self, effects: Effects) -> None:
        pod = planned_pod(effects, self.namespace, self.name, self.uid)
        if pod is None:
            return
        effects.store.delete("Pod", self.namespace, self.name, pod["metadata"]["resourceVersion"])
        target = self.by if self.by is not None else ObjectRef.of(pod)
        component = COMPONENT.get(self.by["kind"], "") if self.by is not None else GARBAGE_COLLECTOR
        effects.events.record(target, "SuccessfulDelete", f"Deleted pod: {self.name}", component=component)


@dataclass(frozen=True)
class AdoptPod:
    namespace: str
    name: str
    uid: str
    ref: Obj

    def apply(self, effects: Effects) -> None:
        pod = planned_pod(effects, self.namespace, self.name, self.uid)
        if pod is None or controller_ref(pod) is not None:
            return
        refs = [*(pod["metadata"].get("ownerReferences") or ()), self.ref]
        effects.store.update({**pod, "metadata": {**pod["metadata"], "ownerReferences": refs}})
        log.info("%s %s adopted pod %s", self.ref["kind"], self.ref["name"], self.name)


@dataclass(frozen=True)
class ReleasePod:
    namespace: str
    name: str
    uid: str
    owner_uid: str

    def apply(self, effects: Effects) -> None:
        pod = planned_pod(effects, self.namespace, self.name, self.uid)
        if pod is None:
            return
        effects.store.update(without_owner(pod, self.owner_uid))
        log.info("released pod %s/%s from its controller", self.namespace, self.name)


@dataclass(frozen=True)
class SetStatus:
    status: Obj
    #: The controller whose status it is (written only while it is the same incarnation).
    of: Mapping[str, Any] = field(compare=False)

    def apply(self, effects: Effects) -> None:
        meta = self.of["metadata"]
        current = effects.store.peek(self.of["kind"], meta["namespace"], meta["name"])
        if current["metadata"]["uid"] == meta["uid"]:
            effects.store.update({**current, "status": self.status})


ReplicaAction = CreatePod | DeletePod | AdoptPod | ReleasePod | SetStatus
