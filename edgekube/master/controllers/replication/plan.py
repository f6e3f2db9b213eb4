"""ReplicationController / ReplicaSet controller's pure `plan` (adopt, release, scale); run by replication.controller.

Loosely coupled as in Kubernetes: a controller finds its pods only through its selector, in its namespace.
A matching pod with no controller is adopted, an owned pod that stopped matching is released (and replaced),
pods of another controller are never touched. Level-triggered: every pass recomputes from what is stored.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Container, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from edgekube.master.controllers.base import CreatePod
from edgekube.master.controllers.owners import CONTROLLER_KINDS, controller_ref, owner_ref
from edgekube.master.controllers.replication.actions import (
    COMPONENT,
    AdoptPod,
    DeletePod,
    ReleasePod,
    ReplicaAction,
    SetStatus,
)
from edgekube.model.generatename import ALPHABET, MAX_GENERATED_PREFIX
from edgekube.model.labels import Selector
from edgekube.model.types import Obj

#: At most this many creates (and deletes) per controller per pass, as Kubernetes' burstReplicas: a big scale-up
#: never holds the master's loop (and its lock) for long.
BURST = 500
_GENERATED_BASE_MAX = MAX_GENERATED_PREFIX
_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}
_TERMINAL = ("Succeeded", "Failed")
#: A pod that ends this soon after its creation (an image that cannot be pulled, a command that exits at once)
#: holds its replica's place until it is this old, then it is deleted and replaced: one new pod per replica
#: every few seconds, not a hot loop of creates and deletes on the SD card.
TERMINAL_GRACE = 5.0


# -- pod facts -----------------------------------------------------------------------------------------------------
def _phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def _ready_condition(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            return condition  # type: ignore[no-any-return]
    return None


def is_ready(pod: Mapping[str, Any]) -> bool:
    condition = _ready_condition(pod)
    return bool(condition and condition.get("status") == "True")


def _available(pod: Mapping[str, Any], min_ready_seconds: int, now: float) -> bool:
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    condition = _ready_condition(pod) or {}
    since = condition.get("lastTransitionTime") or (pod.get("status") or {}).get("startTime")
    return since is not None and _epoch(since) + min_ready_seconds <= now


def is_available(pod: Mapping[str, Any], min_ready_seconds: int, now: float) -> bool:
    """Ready for at least `min_ready_seconds` at `now` (podutil.IsPodAvailable); the deployment plan counts with it."""
    return _available(pod, min_ready_seconds, now)


def is_terminal(pod: Mapping[str, Any]) -> bool:
    return _phase(pod) in _TERMINAL


def _restarts(pod: Mapping[str, Any]) -> int:
    statuses = (pod.get("status") or {}).get("containerStatuses") or ()
    return max((int(c.get("restartCount", 0)) for c in statuses), default=0)


def _epoch(timestamp: str) -> float:
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def deletion_order(pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Kubernetes' ActivePods ordering: the pods to delete first on a scale-down come first.

    Unscheduled before scheduled, Pending < Unknown < Running, not ready before ready, more restarts before
    fewer, newer before older; the name breaks remaining ties so the choice is deterministic.
    """

    def key(pod: Mapping[str, Any]) -> tuple[bool, int, bool, int, float, str]:
        return (
            bool(pod["spec"].get("nodeName")),
            _PHASE_RANK.get(_phase(pod), 1),
            is_ready(pod),
            -_restarts(pod),
            -_epoch(pod["metadata"].get("creationTimestamp") or ""),
            pod["metadata"]["name"],
        )

    return sorted(pods, key=key)


class _InUse:
    """Names taken in the namespace (a view on the store, never copied) or by this plan's own pods."""

    def __init__(self, taken: Container[str], planned: set[str]) -> None:
        self._taken, self._planned = taken, planned

    def __contains__(self, name: object) -> bool:
        return name in self._planned or name in self._taken


def generate_name(base: str, taken: Container[str], rng: random.Random) -> str:
    """`<base>-<5 random characters>`, as Kubernetes' generateName does, avoiding names in use."""
    prefix = f"{base}-"[:_GENERATED_BASE_MAX]
    while True:
        name = prefix + "".join(rng.choice(ALPHABET) for _ in range(5))
        if name not in taken:
            return name


def new_pod(controller: Mapping[str, Any], name: str) -> Obj:
    """A pod from the controller's template: its labels, annotations and spec, owned by the controller."""
    template = controller["spec"]["template"]
    meta = template.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": controller["metadata"]["namespace"],
            "labels": dict(meta.get("labels") or {}),
            "annotations": dict(meta.get("annotations") or {}),
            "ownerReferences": [owner_ref(controller)],
        },
        "spec": template["spec"],
        "status": {"phase": "Pending"},
    }


# -- the plan -------------------------------------------------------------------------------------------------------
def plan(
    controller: Mapping[str, Any],
    selector: Selector,
    pods: Iterable[Mapping[str, Any]],
    now: float,
    *,
    rng: random.Random | None = None,
    taken: Container[str] | None = None,
    burst: int = BURST,
) -> list[ReplicaAction]:
    """What to do so `controller` has spec.replicas active pods; `pods` are the pods of its namespace.

    `now` (unix seconds) only matters for availableReplicas with minReadySeconds; `taken` are the pod names
    in use in the namespace (generated names avoid them); `rng` makes names reproducible in tests.
    """
    meta, spec = controller["metadata"], controller["spec"]
    uid, namespace = meta["uid"], meta["namespace"]
    actions: list[ReplicaAction] = []
    owned: list[Mapping[str, Any]] = []
    ending: list[Mapping[str, Any]] = []  # terminal, too young to be replaced yet
    names: set[str] = set()
    for pod in pods:
        pod_meta = pod["metadata"]
        if pod_meta.get("namespace", "default") != namespace:
            continue
        names.add(pod_meta["name"])
        ref = controller_ref(pod)
        if ref is not None and ref.get("uid") != uid:
            continue  # another controller's pod: never touched
        matches = selector.matches(pod_meta.get("labels") or {})
        terminal = _phase(pod) in _TERMINAL
        if ref is None:
            if matches and not terminal:
                actions.append(AdoptPod(namespace, pod_meta["name"], pod_meta["uid"], owner_ref(controller)))
                owned.append(pod)
        elif not matches:
            actions.append(ReleasePod(namespace, pod_meta["name"], pod_meta["uid"], uid))
        elif not terminal:
            owned.append(pod)
        elif now - _epoch(pod_meta.get("creationTimestamp") or "") < TERMINAL_GRACE:
            ending.append(pod)
        else:
            actions.append(DeletePod(namespace, pod_meta["name"], pod_meta["uid"], "terminal", controller))
    diff = len(owned) + len(ending) - int(spec.get("replicas", 1))
    if diff < 0:
        rng = rng or random.Random()
        in_use = _InUse(taken or (), names)
        for _ in range(min(-diff, burst)):
            name = generate_name(meta["name"], in_use, rng)
            names.add(name)
            actions.append(CreatePod(new_pod(controller, name), controller, COMPONENT.get(controller["kind"], "")))
    elif diff > 0:
        for pod in [*ending, *deletion_order(owned)][: min(diff, burst)]:
            actions.append(
                DeletePod(namespace, pod["metadata"]["name"], pod["metadata"]["uid"], "scale down", controller)
            )
    status = replica_status(controller, owned, now)
    if status != controller.get("status"):
        actions.append(SetStatus(status, controller))
    return actions


def replica_status(controller: Mapping[str, Any], active: Sequence[Mapping[str, Any]], now: float) -> Obj:
    """Status from the controller's active pods, counted before this pass's creates and deletes (as Kubernetes)."""
    template_labels = ((controller["spec"]["template"].get("metadata") or {}).get("labels") or {}).items()
    min_ready = int(controller["spec"].get("minReadySeconds", 0))
    return {
        "replicas": len(active),
        "fullyLabeledReplicas": sum(
            1 for p in active if template_labels <= (p["metadata"].get("labels") or {}).items()
        ),
        "readyReplicas": sum(1 for p in active if is_ready(p)),
        "availableReplicas": sum(1 for p in active if _available(p, min_ready, now)),
        "observedGeneration": int(controller["metadata"].get("generation") or 1),
    }


def waiting_on_clock(controller: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], now: float) -> bool:
    """Whether a later pass would decide differently with nothing changed but the time.

    It would while one of the controller's pods is terminal (its grace runs out) or ready but not yet available
    for minReadySeconds.
    """
    uid = controller["metadata"]["uid"]
    min_ready = int(controller["spec"].get("minReadySeconds", 0))
    for pod in pods:
        ref = controller_ref(pod)
        if ref is None or ref.get("uid") != uid:
            continue
        if _phase(pod) in _TERMINAL or (min_ready > 0 and is_ready(pod) and not _available(pod, min_ready, now)):
            return True
    return False


def dangling(pods: Iterable[Mapping[str, Any]], controller_uids: Collection[str]) -> list[DeletePod]:
    """Pods whose controlling RC/RS no longer exists: deleted, as Kubernetes' garbage collector does."""
    out = []
    for pod in pods:
        ref = controller_ref(pod)
        if ref is not None and ref.get("kind") in CONTROLLER_KINDS and ref.get("uid") not in controller_uids:
            meta = pod["metadata"]
            out.append(DeletePod(meta.get("namespace", "default"), meta["name"], meta["uid"], "owner gone"))
    return out
