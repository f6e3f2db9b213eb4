"""Pure reconciliation for the agent: plan(desired, observed, memory) -> actions, and pod status; used by Agent."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgekube.agent.initplan import (
    InitAction,
    init_failure,
    is_sidecar,
    plan_init,
    progress,
    sidecars_to_stop,
)
from edgekube.agent.restarts import Decision, Verdict, decide
from edgekube.agent.runtime.protocol import (
    ERR_IMAGE_NEVER_PULL,
    ERR_IMAGE_PULL,
    IMAGE_PULL_BACK_OFF,
    ContainerRunState,
    ObservedContainer,
    ObservedPod,
)
from edgekube.agent.runtime.volumes import FAILED_MOUNT
from edgekube.model.config import WAIT_ENV, ResolvedConfig
from edgekube.model.names import PodUID
from edgekube.model.pod import Pod
from edgekube.model.storage import ResolvedVolume


@dataclass(frozen=True)
class DesiredPod:
    uid: PodUID
    pod: Pod
    spec_hash: str
    #: The sources of its persistentVolumeClaim volumes, by volume name (what the master resolved the claims to).
    volumes: Mapping[str, ResolvedVolume] = field(default_factory=dict)
    #: Its ConfigMap/Secret/downward API files and env as the master resolved them (not part of the spec hash:
    #: new values update the files of the running pod, they do not re-create it).
    config: ResolvedConfig | None = None


def spec_hash(uid: str, spec: Mapping[str, Any], volumes: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """Identity of what runs: same uid + same spec (+ same claim sources) → same hash → the running pod is kept.

    A claim bound to another volume changes the hash, so the pod is re-created on the new source; a pod without
    claims hashes as it always did (an upgraded agent keeps its pods).
    """
    identity: dict[str, Any] = {"uid": uid, "spec": spec}
    if volumes:
        identity["volumeSources"] = volumes
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class Create:
    desired: DesiredPod


#: The grace of a pod removed after it left the desired state when the runtime did not record its own
#: (Kubernetes' default terminationGracePeriodSeconds).
DEFAULT_GRACE_SECONDS = 30


@dataclass(frozen=True)
class Remove:
    uid: PodUID
    reason: str
    grace_seconds: int = DEFAULT_GRACE_SECONDS


@dataclass(frozen=True)
class Stop:
    """Shared fate: stop what still runs of the pod; then restart it (after back-off) or mark it finished."""

    uid: PodUID
    decision: Decision
    grace_seconds: int = 10


@dataclass(frozen=True)
class Restart:
    """Start the stopped pod again, as a unit, once its back-off has passed."""

    uid: PodUID
    grace_seconds: int = 10


Action = Create | Remove | Stop | Restart | InitAction


@dataclass(frozen=True)
class PodMemory:
    """What the agent knows about a pod beyond what Podman shows; the default is "nothing happened yet"."""

    finished: str | None = None  # "Succeeded"/"Failed": ended for good, never restarted
    restart_pending: bool = False  # stopped by shared fate, waiting for its back-off
    restart_due: bool = False  # ... and the back-off is over
    back_off: str | None = None  # while waiting: the CrashLoopBackOff message
    unhealthy: frozenset[str] = frozenset()  # containers whose liveness probe failed
    hook_failed: frozenset[str] = frozenset()  # containers whose postStart hook failed
    not_ready: frozenset[str] = frozenset()  # running containers whose readiness probe has not passed
    restart_count: Mapping[str, int] = field(default_factory=dict)
    last_state: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Init containers and sidecars waiting for their own restart back-off: the CrashLoopBackOff message of each.
    container_back_off: Mapping[str, str] = field(default_factory=dict)


NOTHING = PodMemory()


def heal(desired: DesiredPod, observed: ObservedPod, memory: PodMemory = NOTHING) -> Stop | Restart | None:
    """What to do about a running pod whose spec matches: nothing, stop it (shared fate), or restart it."""
    grace = desired.pod.spec.termination_grace_period_seconds
    if memory.finished:
        return None
    if memory.restart_pending:
        return Restart(desired.uid, grace) if memory.restart_due else None
    decision = decide(
        desired.pod.spec.restart_policy,
        observed.containers,
        unhealthy=memory.unhealthy,
        sandbox_running=observed.infra_running,
        hook_failed=memory.hook_failed,
    )
    if decision.verdict is Verdict.KEEP:
        return None
    return Stop(desired.uid, decision, grace)


def look_after(desired: DesiredPod, observed: ObservedPod, memory: PodMemory = NOTHING) -> list[Action]:
    """heal(), after the init sequence of a pod with init containers (initplan), whose sidecars stop at its end.

    Sidecars are kept running while the pod runs and stopped once it ended for good. A pod restarted as a unit
    (shared fate, or its sandbox stopped once initialized) goes through heal(): the runtime's restart_pod starts
    its stopped sidecars before its app containers, and never re-runs init containers that completed. A sandbox
    that stopped during the init sequence is started again with the current init container.
    """
    spec = desired.pod.spec
    if not spec.init_containers:
        action = heal(desired, observed, memory)
        return [] if action is None else [action]
    grace = spec.termination_grace_period_seconds
    if memory.finished:
        stop = sidecars_to_stop(spec, observed, grace)
        return [] if stop is None else [stop]
    if memory.restart_pending or (not observed.infra_running and progress(spec, observed).initialized):
        action = heal(desired, observed, memory)
        return [] if action is None else [action]
    failure = init_failure(spec, observed)
    if failure is not None:
        return [Stop(desired.uid, failure, grace)]
    step = plan_init(desired.uid, spec, observed, memory.container_back_off.keys(), memory.unhealthy)
    if step == "wait":
        return []
    if step != "done":
        return [step]  # one operation at a time per pod: a sidecar restart waits for the pod's own, and vice versa
    action = heal(desired, observed, memory)
    return [] if action is None else [action]


def plan(
    desired: Sequence[DesiredPod],
    observed: Sequence[ObservedPod],
    blocked: frozenset[PodUID] = frozenset(),
    memory: Mapping[PodUID, PodMemory] | None = None,
) -> list[Action]:
    """Removals first (free ports and memory), then creations, then stops and restarts of running pods.

    `blocked` pods are busy or in back-off: not created, stopped or restarted now (an old version of one
    is still removed).
    """
    memory = memory or {}
    want = {d.uid: d for d in desired}
    actions: list[Action] = []
    have: set[PodUID] = set()
    kept: list[tuple[DesiredPod, ObservedPod]] = []
    for obs in observed:
        target = want.get(obs.uid)
        if target is None:
            grace = DEFAULT_GRACE_SECONDS if obs.grace_seconds is None else obs.grace_seconds
            actions.append(Remove(obs.uid, "not in the node's desired state", grace))
        elif target.spec_hash != obs.spec_hash:
            grace = target.pod.spec.termination_grace_period_seconds
            actions.append(Remove(obs.uid, "spec changed", grace))
        else:
            have.add(obs.uid)
            kept.append((target, obs))
    actions.extend(Create(d) for d in desired if d.uid not in have and d.uid not in blocked)
    for target, obs in kept:
        if target.uid not in blocked:
            actions.extend(look_after(target, obs, memory.get(target.uid, NOTHING)))
    return actions


@dataclass(frozen=True)
class Failure:
    """Why the last attempt to create a pod failed (e.g. ErrImagePull), shown as the pod's reason.

    Two reasons read differently: `FailedMount` (a volume could not be set up; the pod waits in ContainerCreating
    and is retried) and `Evicted` (the agent ended the pod, e.g. an emptyDir over its sizeLimit: Failed for good).
    The image reasons (`IMAGE_WAITS`) keep the pod Pending too, retried with the image back-off; `image` names
    the image that could not be had (its containers wait with the reason, the others in ContainerCreating).
    """

    reason: str
    message: str
    image: str = ""


#: Create failures of an image that cannot be had: the pod stays Pending (kubelet: not a container failure).
IMAGE_WAITS = frozenset({ERR_IMAGE_PULL, IMAGE_PULL_BACK_OFF, ERR_IMAGE_NEVER_PULL})


#: Failure reason of a pod the agent ended to protect the node (the kubelet's eviction).
EVICTED = "Evicted"


def terminated(obs: ObservedContainer) -> dict[str, Any]:
    """A container's `terminated` state as Kubernetes shows it (also what lastState keeps)."""
    code = obs.exit_code if obs.exit_code is not None else -1
    term: dict[str, Any] = {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}
    if obs.error == "OOMKilled":
        term["reason"] = "OOMKilled"
    if obs.started_at:
        term["startedAt"] = obs.started_at
    if obs.finished_at:
        term["finishedAt"] = obs.finished_at
    if obs.error:
        term["message"] = obs.error
    return term


#: The kubelet's waiting reason of every container of a pod with init containers until it starts.
POD_INITIALIZING = "PodInitializing"


def _state(
    name: str, obs: ObservedContainer, memory: PodMemory, back_off: str | None, creating: str
) -> tuple[dict[str, Any], bool]:
    """A seen container's Kubernetes state and whether it is ready."""
    if back_off is not None:
        return {"waiting": {"reason": "CrashLoopBackOff", "message": back_off}}, False
    if obs.state is ContainerRunState.RUNNING:
        running = {"startedAt": obs.started_at} if obs.started_at else {}
        ready = name not in memory.not_ready and name not in memory.unhealthy and name not in memory.hook_failed
        return {"running": running}, ready
    if obs.state is ContainerRunState.EXITED:
        return {"terminated": terminated(obs)}, False
    return {"waiting": {"reason": creating}}, False


def _container_status(
    spec_image: str,
    name: str,
    obs: ObservedContainer | None,
    memory: PodMemory,
    *,
    creating: str = "ContainerCreating",
    init: bool = False,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "name": name,
        "image": spec_image,
        "ready": False,
        "restartCount": memory.restart_count.get(name, 0),
    }
    last = memory.last_state.get(name)
    if last:
        status["lastState"] = dict(last)
    if obs is None:
        status["state"] = {"waiting": {"reason": creating}}
        return status
    status["containerID"] = f"podman://{obs.container_id}"
    back_off = memory.container_back_off.get(name) if init else memory.back_off
    status["state"], status["ready"] = _state(name, obs, memory, back_off, creating)
    return status


def _init_statuses(pod: Pod, observed: ObservedPod | None, memory: PodMemory) -> list[dict[str, Any]]:
    """The initContainerStatuses as the kubelet reports them: one done is ready (a sidecar: while it runs)."""
    by_name = {c.name: c for c in observed.init_containers} if observed else {}
    out = []
    for c in pod.spec.init_containers or []:
        status = _container_status(c.image, c.name, by_name.get(c.name), memory, creating=POD_INITIALIZING, init=True)
        status["started"] = "running" in status["state"]
        if not is_sidecar(c):
            status["ready"] = status["state"].get("terminated", {}).get("exitCode") == 0
        out.append(status)
    return out


def _initialized(pod: Pod, observed: ObservedPod | None) -> dict[str, Any]:
    """The Initialized condition: True once every init container is done (kubelet: ContainersNotInitialized)."""
    step = progress(pod.spec, observed)
    started = observed is not None and any(c.state in _STARTED for c in observed.containers)
    if step.initialized or started:
        return {"type": "Initialized", "status": "True"}
    incomplete = [c.name for c in (pod.spec.init_containers or [])[step.done :]]
    return {
        "type": "Initialized",
        "status": "False",
        "reason": "ContainersNotInitialized",
        "message": f"containers with incomplete status: [{' '.join(incomplete)}]",
    }


def _waiting_for_volumes(containers: list[dict[str, Any]], failure: Failure) -> dict[str, Any]:
    """A pod whose volumes cannot be set up yet: Pending, every container ContainerCreating with the reason why."""
    for c in containers:
        c["state"] = {"waiting": {"reason": "ContainerCreating", "message": failure.message}}
    return {
        "containerStatuses": containers,
        "phase": "Pending",
        "conditions": [{"type": "Ready", "status": "False", "reason": failure.reason, "message": failure.message}],
    }


def _waiting_for_config(containers: list[dict[str, Any]], failure: Failure) -> dict[str, Any]:
    """A pod whose env names a ConfigMap, Secret or key not there yet: Pending, CreateContainerConfigError (kubelet)."""
    for c in containers:
        c["state"] = {"waiting": {"reason": failure.reason, "message": failure.message}}
    return {
        "containerStatuses": containers,
        "phase": "Pending",
        "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
    }


def _waiting_for_image(containers: list[dict[str, Any]], failure: Failure, spec_images: list[str]) -> dict[str, Any]:
    """A pod whose image cannot be had: Pending, its containers waiting with ErrImagePull, ImagePullBackOff, ..."""
    for c, image in zip(containers, spec_images, strict=True):
        if not failure.image or image == failure.image:
            c["state"] = {"waiting": {"reason": failure.reason, "message": failure.message}}
    return {
        "containerStatuses": containers,
        "phase": "Pending",
        "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
    }


def _failed(containers: list[dict[str, Any]], failure: Failure) -> dict[str, Any]:
    """The status of a pod whose create failed: every container waits with the failure's reason."""
    for c in containers:
        c["state"] = {"waiting": {"reason": failure.reason, "message": failure.message}}
    return {
        "containerStatuses": containers,
        "phase": "Failed",
        "reason": failure.reason,
        "message": failure.message,
        "conditions": [{"type": "Ready", "status": "False", "reason": failure.reason}],
    }


#: States a container reaches only once it has been started.
_STARTED = (ContainerRunState.RUNNING, ContainerRunState.EXITED)


def _phase(pod: Pod, observed: ObservedPod | None, containers: list[dict[str, Any]], memory: PodMemory) -> str:
    if memory.finished:
        return memory.finished
    if observed is None:
        return "Pending"
    if pod.spec.init_containers and observed.infra_running and not memory.restart_pending:
        if init_failure(pod.spec, observed) is not None:
            return "Failed"  # about to be stopped and marked finished
        if not progress(pod.spec, observed).initialized:
            return "Pending"  # as in Kubernetes, for the whole init sequence (its back-offs too)
    if memory.back_off is not None:
        return "Running"  # as in Kubernetes: a pod in CrashLoopBackOff is Running, with nothing ready
    if not any(c.state in _STARTED for c in observed.containers):
        # Seen mid-create (sandbox not started yet, containers created or not there yet): not a stopped sandbox.
        return "Pending"
    decision = decide(
        pod.spec.restart_policy, observed.containers, unhealthy=memory.unhealthy,
        sandbox_running=observed.infra_running, hook_failed=memory.hook_failed,
    )  # fmt: skip
    if decision.verdict in (Verdict.SUCCEEDED, Verdict.FAILED):
        return decision.verdict.value  # about to be stopped and marked finished
    if decision.verdict is Verdict.RESTART or any("running" in c["state"] for c in containers):
        return "Running"
    return "Pending"


def _start_time(containers: list[dict[str, Any]]) -> str | None:
    """The earliest start of the running containers, once every running one has a start time."""
    started = [c["state"]["running"].get("startedAt") for c in containers if "running" in c["state"]]
    if not started or not all(started):
        return None
    return str(min(started))


def pod_status(
    desired: DesiredPod,
    observed: ObservedPod | None,
    failure: Failure | None,
    memory: PodMemory = NOTHING,
) -> dict[str, Any]:
    """Kubernetes-shaped status: phase, per-container state, restarts, Ready condition; a create failure wins.

    A pod with init containers also has initContainerStatuses and the Initialized condition; its containers wait
    as PodInitializing (not ContainerCreating) until they start, and its sidecars count for Ready.
    """
    if not desired.pod.spec.init_containers:
        return _pod_status(desired, observed, failure, memory)
    status = _pod_status(desired, observed, failure, memory, creating=POD_INITIALIZING)
    inits = _init_statuses(desired.pod, observed, memory)
    if observed is None and failure is not None and failure.reason in IMAGE_WAITS:
        _waiting_for_image(inits, failure, [c.image for c in desired.pod.spec.init_containers])
    elif observed is None and failure is not None and status["containerStatuses"]:
        for c in inits:  # a create that failed: every container waits with its reason
            c["state"] = dict(status["containerStatuses"][0]["state"])
    status["initContainerStatuses"] = inits
    sidecars = [c for c, spec in zip(inits, desired.pod.spec.init_containers, strict=True) if is_sidecar(spec)]
    conditions = status.get("conditions", [])
    for condition in conditions:
        if condition["type"] == "Ready" and condition["status"] == "True" and not all(c["ready"] for c in sidecars):
            condition.clear()
            condition.update(type="Ready", status="False")  # kubelet: a sidecar's readiness counts too
    status["conditions"] = [_initialized(desired.pod, observed), *conditions]
    return status


def _pod_status(
    desired: DesiredPod,
    observed: ObservedPod | None,
    failure: Failure | None,
    memory: PodMemory,
    *,
    creating: str = "ContainerCreating",
) -> dict[str, Any]:
    pod = desired.pod
    by_name = {c.name: c for c in observed.containers} if observed else {}
    containers = [
        _container_status(c.image, c.name, by_name.get(c.name), memory, creating=creating) for c in pod.spec.containers
    ]
    if failure is not None and observed is None and failure.reason == FAILED_MOUNT:
        return _waiting_for_volumes(containers, failure)
    if failure is not None and observed is None and failure.reason == WAIT_ENV:
        return _waiting_for_config(containers, failure)
    if failure is not None and observed is None and failure.reason in IMAGE_WAITS:
        return _waiting_for_image(containers, failure, [c.image for c in pod.spec.containers])
    if failure is not None and observed is None and failure.reason != EVICTED:
        return _failed(containers, failure)
    status: dict[str, Any] = {"containerStatuses": containers}
    if failure is not None and failure.reason == EVICTED:
        status.update(phase="Failed", reason=EVICTED, message=failure.message)
        status["conditions"] = [{"type": "Ready", "status": "False", "reason": EVICTED}]
        if observed is not None and observed.ip:
            status["podIP"] = observed.ip
        return status
    if observed is not None and observed.ip:
        status["podIP"] = observed.ip
    phase = _phase(pod, observed, containers, memory)
    status["phase"] = phase
    ready = phase == "Running" and all(c["ready"] for c in containers)
    status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    start = _start_time(containers)
    if start is not None:
        status["startTime"] = start
    return status
