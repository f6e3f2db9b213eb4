"""The deployment controller's pure `plan`: a Deployment's ReplicaSets, their replicas, its status; run by controller.

A port of kubernetes/kubernetes pkg/controller/deployment (sync.go, rolling.go, recreate.go, progress.go and
util/deployment_util.go), one sync per call, with one difference: availability is counted from the pods in the
snapshot (ready for minReadySeconds at `now`), not from the ReplicaSets' status, so a decision never rests on a
status the replication controller has not written yet. Rules:

- The new ReplicaSet is the one whose template equals the Deployment's, the `pod-template-hash` label aside
  (EqualIgnoreHash); it is created as `<deployment>-<hash>` with that label added to its selector and template.
  The hash is the first 32 bits of SHA-256 over the template's canonical JSON (and collisionCount), its decimal
  digits spelled in Kubernetes' SafeEncodeString alphabet: stable across restarts, not ComputeHash's FNV value.
- RollingUpdate (rolling.go): the new ReplicaSet grows while the ReplicaSets' pods stay within
  replicas + maxSurge; old ones shrink, unhealthy replicas first, while available pods stay at or above
  replicas - maxUnavailable. One direction per pass, as Kubernetes (scale up, else scale down).
- Recreate: every old ReplicaSet to 0, then, once none of their pods is left, the new one to replicas.
- Paused, or a scaling event (an active ReplicaSet's desired-replicas is not spec.replicas): no new ReplicaSet;
  sync.go scale(): the only active one (or the newest) follows spec.replicas, else replicas + maxSurge is shared
  in proportion (GetProportion).
- revisionHistoryLimit: once the rollout is complete, the oldest old ReplicaSets beyond the limit that have no
  replicas and no pods are deleted. Revisions are `deployment.kubernetes.io/revision` annotations, the new
  ReplicaSet's being max(old) + 1 (so a rollback to an old template makes it the newest revision again).
- Conditions: Available (MinimumReplicasAvailable) and Progressing (NewReplicaSetCreated, FoundNewReplicaSet,
  ReplicaSetUpdated, NewReplicaSetAvailable, ProgressDeadlineExceeded, DeploymentPaused, DeploymentResumed), with
  progress.go's rules for lastUpdateTime and the deadline.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edgekube.master.controllers.deployment.actions import (
    AdoptReplicaSet,
    AnnotateDeployment,
    CreateReplicaSet,
    DeleteReplicaSet,
    DeploymentAction,
    SetDeploymentStatus,
    UpdateReplicaSet,
)
from edgekube.master.controllers.owners import owner_ref
from edgekube.master.controllers.replication.plan import is_available, is_ready, is_terminal
from edgekube.model.deployment import (
    RECREATE,
    REVISION_ANNOTATION,
    TEMPLATE_HASH_LABEL,
    fenceposts,
)
from edgekube.model.labels import Selector
from edgekube.model.types import Obj

DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
#: Deployment annotations never copied to its ReplicaSets (deployment_util annotationsToSkip).
_NOT_COPIED = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION_ANNOTATION,
        "deployment.kubernetes.io/revision-history",
        DESIRED_REPLICAS_ANNOTATION,
        MAX_REPLICAS_ANNOTATION,
    }
)
_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand SafeEncodeString's alphabet
MAX_INT32 = 2**31 - 1

# Condition reasons (deployment_util.go).
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"


# -- small facts ------------------------------------------------------------------------------------------------------
def rfc3339(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _epoch(timestamp: str | None) -> float:
    try:
        return datetime.fromisoformat(str(timestamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def revision_of(obj: Mapping[str, Any]) -> int:
    text = (obj["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION, "")
    return int(text) if str(text).isdigit() else 0


def template_hash(template: Mapping[str, Any], collision_count: int = 0) -> str:
    """A stable short hash of a pod template (see the module docstring); `pod-template-hash`'s value."""
    text = json.dumps(template, sort_keys=True, separators=(",", ":"))
    if collision_count:
        text += f"/{collision_count}"
    number = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")
    return "".join(_SAFE[ord(digit) % len(_SAFE)] for digit in str(number))


def without_hash(template: Mapping[str, Any]) -> Obj:
    """The template with the `pod-template-hash` label removed (what EqualIgnoreHash compares)."""
    meta = dict(template.get("metadata") or {})
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != TEMPLATE_HASH_LABEL}
    return {**template, "metadata": {**meta, "labels": labels}}


def same_template(rs: Mapping[str, Any], template: Mapping[str, Any]) -> bool:
    return without_hash(rs["spec"]["template"]) == without_hash(template)


@dataclass
class _Set:
    """One ReplicaSet as the plan sees it; `replicas` follows the plan's own scaling within the pass."""

    rs: Mapping[str, Any]
    replicas: int
    pods: int  # its pods in the store, terminal ones too (see _view)
    ready: int
    available: int

    @property
    def name(self) -> str:
        return str(self.rs["metadata"]["name"])

    @property
    def uid(self) -> str:
        return str(self.rs["metadata"]["uid"])

    @property
    def revision(self) -> int:
        return revision_of(self.rs)

    @property
    def size(self) -> int:
        """Pods it holds or will: its replicas, or more while a scale-down has not removed them."""
        return max(self.replicas, self.pods)


def _view(rs: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], min_ready: int, now: float) -> _Set:
    """One ReplicaSet's counts; its terminal pods count as pods (not as ready or available).

    The replication controller lets a pod that failed young (e.g. a command that exits at once; an image that
    cannot be pulled keeps its pod Pending) hold its replica's place until it replaces it in one pass; counting it keeps
    updatedReplicas steady instead of a dip and rise that would read as progress.
    """
    pods = list(pods)
    active = [p for p in pods if not is_terminal(p)]
    return _Set(
        rs,
        int(rs["spec"].get("replicas", 1)),
        len(pods),
        sum(1 for p in active if is_ready(p)),
        sum(1 for p in active if is_available(p, min_ready, now)),
    )


class _Conditions:
    """status.conditions with SetDeploymentCondition's rules (same status and reason: left as it is)."""

    def __init__(self, conditions: Iterable[Mapping[str, Any]], now: str) -> None:
        self.items: list[Obj] = [dict(c) for c in conditions]
        self.now = now

    def get(self, kind: str) -> Obj | None:
        return next((c for c in self.items if c.get("type") == kind), None)

    def set(self, kind: str, status: str, reason: str, message: str, *, force: bool = False) -> None:
        current = self.get(kind)
        if current is not None and current["status"] == status and current["reason"] == reason and not force:
            return
        new = {
            "type": kind,
            "status": status,
            "lastUpdateTime": self.now,
            "lastTransitionTime": self.now,
            "reason": reason,
            "message": message,
        }
        if current is not None and current["status"] == status:
            new["lastTransitionTime"] = current["lastTransitionTime"]
        self.items = [c for c in self.items if c.get("type") != kind] + [new]


# -- the plan ---------------------------------------------------------------------------------------------------------
class _Sync:
    """One sync of one Deployment: collects actions while it decides."""

    def __init__(self, deployment: Mapping[str, Any], sets: list[_Set], now: float) -> None:
        self.d = deployment
        self.spec = deployment["spec"]
        self.replicas = int(self.spec.get("replicas", 1))
        self.surge, self.unavailable = fenceposts(self.spec)
        self.sets = sets
        self.now = now
        self.actions: list[DeploymentAction] = []
        self.conditions = _Conditions((deployment.get("status") or {}).get("conditions") or (), rfc3339(now))
        self.collision_count = int((deployment.get("status") or {}).get("collisionCount") or 0)

    # ReplicaSet changes
    def scale(self, target: _Set, replicas: int, *, annotate: bool = False) -> None:
        """Set a ReplicaSet's replicas (with the desired/max-replicas annotations); `annotate`: those even alone."""
        meta = target.rs["metadata"]
        annotations = {
            DESIRED_REPLICAS_ANNOTATION: str(self.replicas),
            MAX_REPLICAS_ANNOTATION: str(self.replicas + self.surge),
        }
        current = meta.get("annotations") or {}
        stale = annotate and any(current.get(k) != v for k, v in annotations.items())
        if replicas == target.replicas and not stale:
            return
        size = replicas if replicas != target.replicas else None
        self.actions.append(UpdateReplicaSet(meta["namespace"], meta["name"], meta["uid"], size, annotations, self.d))
        target.replicas = replicas
        target.rs = {**target.rs, "metadata": {**meta, "annotations": {**current, **annotations}}}

    def new_replica_set(self, replicas: int, revision: int, taken: Container[str]) -> _Set | None:
        """The new ReplicaSet (created by an action), or None after a name collision (collisionCount + 1)."""
        meta = self.d["metadata"]
        template = self.spec["template"]
        pod_hash = template_hash(template, self.collision_count)
        name = f"{meta['name']}-{pod_hash}"
        if name in taken or any(s.name == name for s in self.sets):
            self.collision_count += 1  # the next pass hashes again (sync.go getNewReplicaSet)
            return None
        labels = {**((template.get("metadata") or {}).get("labels") or {}), TEMPLATE_HASH_LABEL: pod_hash}
        rs_template = copy.deepcopy(dict(template))
        rs_template["metadata"] = {**(rs_template.get("metadata") or {}), "labels": labels}
        selector = copy.deepcopy(dict(self.spec["selector"]))
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), TEMPLATE_HASH_LABEL: pod_hash}
        annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in _NOT_COPIED}
        annotations |= {
            REVISION_ANNOTATION: str(revision),
            DESIRED_REPLICAS_ANNOTATION: str(self.replicas),
            MAX_REPLICAS_ANNOTATION: str(self.replicas + self.surge),
        }
        rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": dict(labels),
                "annotations": annotations,
                "ownerReferences": [owner_ref(self.d)],
                "generation": 1,
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": int(self.spec.get("minReadySeconds", 0)),
                "selector": selector,
                "template": rs_template,
            },
        }
        self.actions.append(CreateReplicaSet(rs, self.d))
        if self.spec.get("progressDeadlineSeconds") is not None:
            self.conditions.set("Progressing", "True", NEW_RS_CREATED, f'Created new replica set "{name}"', force=True)
        # A placeholder uid: nothing in this pass acts on the new ReplicaSet by uid after creating it.
        return _Set({**rs, "metadata": {**rs["metadata"], "uid": ""}}, replicas, 0, 0, 0)

    # strategies
    def rolling(self, new: _Set, old: list[_Set]) -> None:
        """rolling.go rolloutRolling: scale up if we can, else scale down if we can."""
        if self._reconcile_new(new):
            return
        self._reconcile_old(new, old)

    def new_replicas(self, new: _Set | None) -> int:
        """NewRSNewReplicas: how far the new ReplicaSet may grow now."""
        current = new.replicas if new is not None else 0
        if self.spec["strategy"].get("type") == RECREATE:
            return self.replicas
        total = sum(s.size for s in self.sets)  # a new ReplicaSet not created yet is not among them
        if total >= self.replicas + self.surge:
            return current
        return current + min(self.replicas + self.surge - total, self.replicas - current)

    def _reconcile_new(self, new: _Set) -> bool:
        if new.replicas == self.replicas:
            return False
        if new.replicas > self.replicas:
            self.scale(new, self.replicas)
            return True
        before = new.replicas
        self.scale(new, self.new_replicas(new))
        return new.replicas != before

    def _reconcile_old(self, new: _Set, old: list[_Set]) -> bool:
        if sum(s.size for s in old) == 0:
            return False
        all_pods = sum(s.size for s in [*old, new])
        min_available = self.replicas - self.unavailable
        new_unavailable = max(new.replicas - new.available, 0)
        max_scaled_down = all_pods - min_available - new_unavailable
        if max_scaled_down <= 0:
            return False
        by_age = sorted(old, key=_age_key)
        cleaned = 0
        for target in by_age:  # cleanupUnhealthyReplicas: unhealthy old replicas go first
            if cleaned >= max_scaled_down:
                break
            if target.replicas == 0 or target.replicas <= target.available:
                continue
            count = min(max_scaled_down - cleaned, target.replicas - target.available)
            self.scale(target, target.replicas - count)
            cleaned += count
        # scaleDownOldReplicaSetsForRollingUpdate: only while available pods stay above the minimum
        available = sum(min(s.available, s.replicas) for s in [*old, new])
        if available <= min_available:
            return cleaned > 0
        budget, done = available - min_available, 0
        for target in by_age:
            if done >= budget:
                break
            if target.replicas == 0:
                continue
            count = min(target.replicas, budget - done)
            self.scale(target, target.replicas - count)
            done += count
        return cleaned + done > 0

    def recreate(self, new: _Set | None, old: list[_Set], revision: int, taken: Container[str]) -> None:
        """recreate.go: old ReplicaSets to 0, wait until their pods are gone, then the new one to replicas."""
        active = [s for s in old if s.replicas > 0]
        for target in active:
            self.scale(target, 0)
        if active or any(s.pods for s in old):
            return
        if new is None:
            created = self.new_replica_set(self.replicas, revision, taken)
            if created is not None:
                self.sets.append(created)
        elif new.replicas != self.replicas:
            self.scale(new, self.replicas)

    def scaling_event(self, new: _Set | None, old: list[_Set]) -> bool:
        """IsScalingEvent: an active ReplicaSet was sized for another spec.replicas (its desired-replicas)."""
        for s in [*([new] if new else []), *old]:
            desired = str((s.rs["metadata"].get("annotations") or {}).get(DESIRED_REPLICAS_ANNOTATION, ""))
            if s.replicas > 0 and desired.isdigit() and int(desired) != self.replicas:
                return True
        return False

    def resize(self, new: _Set | None, old: list[_Set]) -> None:
        """sync.go scale(), while paused or on a scaling event: no new ReplicaSet, the sizes follow spec.replicas.

        The only active ReplicaSet (or the newest) takes spec.replicas; a saturated new one lets the old ones go
        to 0; otherwise (RollingUpdate) replicas + maxSurge is shared out in proportion to the sizes the
        ReplicaSets had for the Deployment's previous size (GetProportion), leftovers to the largest.
        """
        active = [s for s in [*([new] if new else []), *old] if s.replicas > 0]
        target: _Set | None = None
        if not active:
            target = new or (max(old, key=_age_key) if old else None)
        elif len(active) == 1:
            target = active[0]
        if target is not None:
            self.scale(target, self.replicas, annotate=True)
            return
        if new is not None and new.replicas == self.replicas and new.available >= self.replicas:  # IsSaturated
            for stale in old:
                self.scale(stale, 0, annotate=True)
            return
        if self.spec["strategy"].get("type") == RECREATE:
            return
        allowed = self.replicas + self.surge if self.replicas > 0 else 0
        to_add = allowed - sum(s.replicas for s in active)
        if to_add > 0:  # ReplicaSetsBySizeNewer: larger first, the newer of two the same size
            active.sort(key=lambda s: (-s.replicas, -_age_key(s)[0], -_age_key(s)[1]))
        elif to_add < 0:  # ReplicaSetsBySizeOlder
            active.sort(key=lambda s: (-s.replicas, _age_key(s)))
        added, sizes = 0, []
        for s in active:
            share = self._proportion(s, to_add, added)
            sizes.append(s.replicas + share)
            added += share
        if active and to_add:
            sizes[0] = max(sizes[0] + to_add - added, 0)  # leftovers to the largest
        for s, size in zip(active, sizes, strict=True):
            self.scale(s, size, annotate=True)

    def _proportion(self, s: _Set, to_add: int, added: int) -> int:
        """GetProportion / getReplicaSetFraction, rounding half away from zero as Go's math.Round."""
        if s.replicas == 0 or to_add in (0, added):
            return 0
        if self.replicas == 0:
            fraction = -s.replicas
        else:
            before_text = str((s.rs["metadata"].get("annotations") or {}).get(MAX_REPLICAS_ANNOTATION, ""))
            before = int(before_text) if before_text.isdigit() else 0
            before = before or int((self.d.get("status") or {}).get("replicas") or 0)
            if before == 0:
                return 0
            fraction = math.floor(s.replicas * (self.replicas + self.surge) / before + 0.5) - s.replicas
        allowed = to_add - added
        return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)

    # status
    def status(self, new: _Set | None, *, progress: bool) -> Obj:
        """calculateStatus, then syncRolloutStatus' Progressing rules (when not paused)."""
        available = sum(s.available for s in self.sets)
        spec_total = sum(s.replicas for s in self.sets)
        old_status = self.d.get("status") or {}
        status: Obj = {
            "observedGeneration": int(self.d["metadata"].get("generation") or 1),
            "replicas": sum(s.pods for s in self.sets),
            "updatedReplicas": new.pods if new is not None else 0,
            "readyReplicas": sum(s.ready for s in self.sets),
            "availableReplicas": available,
            "unavailableReplicas": max(spec_total - available, 0),
        }
        if self.collision_count:
            status["collisionCount"] = self.collision_count
        if available >= self.replicas - self.unavailable:
            self.conditions.set("Available", "True", MIN_AVAILABLE, "Deployment has minimum availability.")
        else:
            self.conditions.set("Available", "False", MIN_UNAVAILABLE, "Deployment does not have minimum availability.")
        if progress:
            self._progress(status, old_status, new)
        status["conditions"] = self.conditions.items
        return status

    def complete(self, status: Mapping[str, Any]) -> bool:
        """DeploymentComplete: every replica updated and available, none left over."""
        return bool(
            status["updatedReplicas"] == self.replicas
            and status["replicas"] == self.replicas
            and status["availableReplicas"] == self.replicas
        )

    def _progress(self, status: Obj, old: Mapping[str, Any], new: _Set | None) -> None:
        deadline = self.spec.get("progressDeadlineSeconds")
        if deadline is None or deadline == MAX_INT32:
            self.conditions.items = [c for c in self.conditions.items if c.get("type") != "Progressing"]
            return
        current = self.conditions.get("Progressing")
        if status["replicas"] == status["updatedReplicas"] and current and current["reason"] == NEW_RS_AVAILABLE:
            return
        name = new.name if new is not None else ""
        if self.complete(status):
            self.conditions.set(
                "Progressing", "True", NEW_RS_AVAILABLE, f'ReplicaSet "{name}" has successfully progressed.'
            )
        elif _progressing(old, status):
            message = (
                f'ReplicaSet "{name}" is progressing.'
                if new
                else f'Deployment "{self.d["metadata"]["name"]}" is progressing.'
            )
            self.conditions.set("Progressing", "True", RS_UPDATED, message, force=True)
        elif (
            current is not None
            and current["reason"] != NEW_RS_AVAILABLE
            and (current["reason"] == TIMED_OUT or _epoch(current.get("lastUpdateTime")) + int(deadline) < self.now)
        ):
            self.conditions.set("Progressing", "False", TIMED_OUT, f'ReplicaSet "{name}" has timed out progressing.')

    def cleanup(self, old: list[_Set]) -> None:
        """cleanupDeployment: old ReplicaSets beyond revisionHistoryLimit, oldest revision first, if empty."""
        limit = self.spec.get("revisionHistoryLimit")
        if limit is None:
            return
        excess = len(old) - int(limit)
        for target in sorted(old, key=lambda s: (s.revision, _age_key(s)))[: max(excess, 0)]:
            if target.replicas == 0 and target.pods == 0:
                meta = target.rs["metadata"]
                self.actions.append(DeleteReplicaSet(meta["namespace"], meta["name"], meta["uid"], "history"))


def _age_key(s: _Set) -> tuple[float, int, str]:
    """ReplicaSetsByCreationTimestamp; the revision orders ReplicaSets created within the same second."""
    return (_epoch(s.rs["metadata"].get("creationTimestamp")), s.revision, s.name)


def _progressing(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """DeploymentProgressing: more updated, fewer old, more ready or more available replicas than last time."""
    old_old = int(old.get("replicas", 0)) - int(old.get("updatedReplicas", 0))
    new_old = new["replicas"] - new["updatedReplicas"]
    return bool(
        new["updatedReplicas"] > int(old.get("updatedReplicas", 0))
        or new_old < old_old
        or new["readyReplicas"] > int(old.get("readyReplicas", 0))
        or new["availableReplicas"] > int(old.get("availableReplicas", 0))
    )


def plan(
    deployment: Mapping[str, Any],
    replica_sets: Sequence[Mapping[str, Any]],
    pods_of: Callable[[str], Iterable[Mapping[str, Any]]],
    now: float,
    *,
    taken: Container[str] = (),
) -> list[DeploymentAction]:
    """One sync of `deployment`: `replica_sets` are those it controls, `pods_of(uid)` a ReplicaSet's pods.

    `taken` holds the ReplicaSet names in use in the namespace (a new ReplicaSet's name must be free).
    """
    spec, meta = deployment["spec"], deployment["metadata"]
    min_ready = int(spec.get("minReadySeconds", 0))
    ordered = sorted(
        replica_sets, key=lambda rs: (_epoch(rs["metadata"].get("creationTimestamp")), rs["metadata"]["name"])
    )
    sync = _Sync(deployment, [_view(rs, pods_of(rs["metadata"]["uid"]), min_ready, now) for rs in ordered], now)
    new = next((s for s in sync.sets if same_template(s.rs, spec["template"])), None)
    old = [s for s in sync.sets if s is not new]
    revision = max((s.revision for s in old), default=0) + 1
    paused = bool(spec.get("paused"))
    _paused_condition(sync, paused)
    if new is not None:
        _sync_new(sync, new, revision)
    scaling = not paused and sync.scaling_event(new, old)
    if paused or scaling:
        sync.resize(new, old)
    elif spec["strategy"].get("type") == RECREATE:
        sync.recreate(new, old, revision, taken)
        new = next((s for s in sync.sets if same_template(s.rs, spec["template"])), None)
    else:
        if new is None:
            new = sync.new_replica_set(sync.new_replicas(None), revision, taken)
            if new is not None:
                sync.sets.append(new)
        if new is not None:
            sync.rolling(new, old)
    status = sync.status(new, progress=not (paused or scaling))
    if paused or sync.complete(status):
        sync.cleanup(old)
    if new is not None and (meta.get("annotations") or {}).get(REVISION_ANNOTATION) != str(new.revision):
        annotation = {REVISION_ANNOTATION: str(new.revision)}
        sync.actions.append(AnnotateDeployment(meta["namespace"], meta["name"], meta["uid"], annotation))
    if status != deployment.get("status"):
        sync.actions.append(SetDeploymentStatus(status, deployment))
    return sync.actions


def _paused_condition(sync: _Sync, paused: bool) -> None:
    """checkPausedConditions: Progressing Unknown while paused (unless it already timed out), Resumed after."""
    if sync.spec.get("progressDeadlineSeconds") in (None, MAX_INT32):
        return
    current = sync.conditions.get("Progressing")
    if current is not None and current["reason"] == TIMED_OUT:
        return
    paused_now = current is not None and current["reason"] == PAUSED
    if paused and not paused_now:
        sync.conditions.set("Progressing", "Unknown", PAUSED, "Deployment is paused")
    elif not paused and paused_now:
        sync.conditions.set("Progressing", "Unknown", RESUMED, "Deployment is resumed")


def _sync_new(sync: _Sync, new: _Set, revision: int) -> None:
    """As getNewReplicaSet on an existing one: it takes the newest revision; a first Progressing condition."""
    meta = new.rs["metadata"]
    wanted: dict[str, str] = {}
    if new.revision < revision:
        wanted[REVISION_ANNOTATION] = str(revision)
    cause = (sync.d["metadata"].get("annotations") or {}).get("kubernetes.io/change-cause")
    if cause is not None and (meta.get("annotations") or {}).get("kubernetes.io/change-cause") != cause:
        wanted["kubernetes.io/change-cause"] = cause
    if wanted:
        sync.actions.append(UpdateReplicaSet(meta["namespace"], meta["name"], meta["uid"], annotations=wanted))
        new.rs = {**new.rs, "metadata": {**meta, "annotations": {**(meta.get("annotations") or {}), **wanted}}}
    if sync.spec.get("progressDeadlineSeconds") not in (None, MAX_INT32) and sync.conditions.get("Progressing") is None:
        sync.conditions.set("Progressing", "True", FOUND_NEW_RS, f'Found new replica set "{new.name}"')


def adopt(
    deployment: Mapping[str, Any], orphans: Iterable[Mapping[str, Any]]
) -> tuple[list[AdoptReplicaSet], list[Mapping[str, Any]]]:
    """ClaimReplicaSets' adoption: the ReplicaSets of its namespace nobody controls that its selector matches.

    Returns the actions and the ReplicaSets as they will be (owned), for this pass's plan to count them already
    (a Deployment deleted with --cascade=orphan and applied again takes its old ReplicaSets back, pods and all).
    """
    raw = deployment["spec"].get("selector") or {}
    selector = Selector.from_match_labels(raw.get("matchLabels"), raw.get("matchExpressions"))
    if selector.is_empty():
        return [], []
    ref = owner_ref(deployment)
    actions: list[AdoptReplicaSet] = []
    adopted: list[Mapping[str, Any]] = []
    for rs in orphans:
        meta = rs["metadata"]
        if meta.get("namespace") == deployment["metadata"]["namespace"] and selector.matches(meta.get("labels") or {}):
            actions.append(AdoptReplicaSet(meta["namespace"], meta["name"], meta["uid"], ref))
            refs = [*(meta.get("ownerReferences") or ()), ref]
            adopted.append({**rs, "metadata": {**meta, "ownerReferences": refs}})
    return actions, adopted


def dangling(replica_sets: Iterable[Mapping[str, Any]], deployment_uids: Container[str]) -> list[DeleteReplicaSet]:
    """ReplicaSets whose controlling Deployment no longer exists: deleted, as Kubernetes' garbage collector does."""
    out = []
    for rs in replica_sets:
        for ref in rs["metadata"].get("ownerReferences") or ():
            if ref.get("controller") and ref.get("kind") == "Deployment" and ref.get("uid") not in deployment_uids:
                meta = rs["metadata"]
                out.append(DeleteReplicaSet(meta["namespace"], meta["name"], meta["uid"], "owner gone"))
    return out
