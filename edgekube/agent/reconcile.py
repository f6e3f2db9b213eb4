"""Pure reconciliation for the agent: plan(desired, observed) -> actions, and pod status from what Podman shows."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgekube.agent.runtime.protocol import ContainerRunState, ObservedContainer, ObservedPod
from edgekube.model.names import PodUID
from edgekube.model.pod import Pod, RestartPolicy


@dataclass(frozen=True)
class DesiredPod:
    uid: PodUID
    pod: Pod
    spec_hash: str


def spec_hash(uid: str, spec: Mapping[str, Any]) -> str:
    """Identity of what runs: same uid + same spec → same hash → the running pod is kept (no churn)."""
    blob = json.dumps({"uid": uid, "spec": spec}, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class Create:
    desired: DesiredPod


@dataclass(frozen=True)
class Remove:
    uid: PodUID
    reason: str
    grace_seconds: int = 10


Action = Create | Remove


def plan(
    desired: Sequence[DesiredPod],
    observed: Sequence[ObservedPod],
    blocked: frozenset[PodUID] = frozenset(),
) -> list[Action]:
    """Removals first (free ports and memory), then creations; `blocked` pods are in back-off, not retried yet."""
    want = {d.uid: d for d in desired}
    actions: list[Action] = []
    have: set[PodUID] = set()
    for obs in observed:
        target = want.get(obs.uid)
        if target is None:
            actions.append(Remove(obs.uid, "not in the node's desired state"))
        elif target.spec_hash != obs.spec_hash:
            grace = target.pod.spec.termination_grace_period_seconds
            actions.append(Remove(obs.uid, "spec changed", grace))
        else:
            have.add(obs.uid)
    actions.extend(Create(d) for d in desired if d.uid not in have and d.uid not in blocked)
    return actions


@dataclass(frozen=True)
class Failure:
    """Why the last attempt to create a pod failed (e.g. ErrImagePull), shown as the pod's reason."""

    reason: str
    message: str


def _container_status(spec_image: str, name: str, obs: ObservedContainer | None) -> dict[str, Any]:
    status: dict[str, Any] = {"name": name, "image": spec_image, "ready": False, "restartCount": 0}
    if obs is None:
        status["state"] = {"waiting": {"reason": "ContainerCreating"}}
        return status
    status["containerID"] = f"podman://{obs.container_id}"
    if obs.state is ContainerRunState.RUNNING:
        status["state"] = {"running": {"startedAt": obs.started_at}} if obs.started_at else {"running": {}}
        status["ready"] = True
    elif obs.state is ContainerRunState.EXITED:
        code = obs.exit_code if obs.exit_code is not None else -1
        term: dict[str, Any] = {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}
        if obs.started_at:
            term["startedAt"] = obs.started_at
        if obs.finished_at:
            term["finishedAt"] = obs.finished_at
        if obs.error:
            term["message"] = obs.error
        status["state"] = {"terminated": term}
    else:
        status["state"] = {"waiting": {"reason": "ContainerCreating"}}
    return status


def pod_status(desired: DesiredPod, observed: ObservedPod | None, failure: Failure | None) -> dict[str, Any]:
    """Kubernetes-shaped status: phase, per-container state, Ready condition; a create failure wins."""
    pod = desired.pod
    by_name = {c.name: c for c in observed.containers} if observed else {}
    containers = [_container_status(c.image, c.name, by_name.get(c.name)) for c in pod.spec.containers]
    status: dict[str, Any] = {"containerStatuses": containers}
    if failure is not None and observed is None:
        for c in containers:
            c["state"] = {"waiting": {"reason": failure.reason, "message": failure.message}}
        status.update(phase="Failed", reason=failure.reason, message=failure.message)
        status["conditions"] = [{"type": "Ready", "status": "False", "reason": failure.reason}]
        return status
    states = [next(iter(c["state"])) for c in containers]
    if observed is None or ("waiting" in states and "running" not in states):
        phase = "Pending"
    elif "running" in states:
        phase = "Running"
    else:
        codes = [c["state"]["terminated"]["exitCode"] for c in containers]
        if pod.spec.restart_policy is RestartPolicy.ALWAYS:
            phase = "Running"  # Always restarts: a terminated container is about to come back
        else:
            phase = "Succeeded" if all(code == 0 for code in codes) else "Failed"
    status["phase"] = phase
    ready = phase == "Running" and all(c["ready"] for c in containers)
    status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    started = [c["state"]["running"].get("startedAt") for c in containers if "running" in c["state"]]
    if started and all(started):
        status["startTime"] = min(s for s in started if s)
    return status
