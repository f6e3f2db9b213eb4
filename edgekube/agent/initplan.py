"""Pure plan of a pod's init containers and sidecars: what to start, run again or stop next; used by reconcile."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from edgekube.agent.restarts import Decision, Verdict
from edgekube.agent.runtime.protocol import ContainerRunState, ObservedContainer, ObservedPod
from edgekube.model.names import PodUID
from edgekube.model.pod import Container, PodSpec, RestartPolicy


@dataclass(frozen=True)
class StartContainers:
    """Start containers of a created pod for the first time: the next init container, or the app containers."""

    uid: PodUID
    names: tuple[str, ...]


@dataclass(frozen=True)
class RestartContainer:
    """Run one container again: a failed init container (pod restartPolicy OnFailure/Always) or an exited sidecar.

    `exit` names the exit it answers (the container's finished_at), so one exit is one back-off step however
    many passes see it.
    """

    uid: PodUID
    name: str
    exit: str | None


@dataclass(frozen=True)
class StopSidecars:
    """Stop the running sidecars of a pod that ended for good, the last one first (the kubelet's order)."""

    uid: PodUID
    names: tuple[str, ...]
    grace_seconds: int


InitAction = StartContainers | RestartContainer | StopSidecars


def is_sidecar(container: Container) -> bool:
    """An init container with restartPolicy Always: started in order, then kept running for the pod's life."""
    return container.restart_policy == "Always"


@dataclass(frozen=True)
class Progress:
    """How far a pod's init sequence got: `done` of the init containers count as done, in spec order.

    A regular init container is done once it exited 0; a sidecar once it has been started (running, or exited
    and due for a restart). `current` is the first one not done (None when all are).
    """

    done: int
    total: int
    current: Container | None = None
    seen: ObservedContainer | None = None

    @property
    def initialized(self) -> bool:
        return self.current is None


def progress(spec: PodSpec, observed: ObservedPod | None) -> Progress:
    """Walk the init containers in order and stop at the first that is not done (see Progress).

    Completion is read from Podman, never recorded by the agent: a completed init container stays in its pod,
    exited with code 0, until the pod is removed. So an agent that restarts, or a node that reboots, sees it done
    and does not run it again; nothing is written to the SD card, and nothing can disagree with what really ran.
    A re-created pod (a new spec hash) has new containers that never ran, so its init sequence runs again, as a new
    pod's does in Kubernetes. (An init container stopped from outside that exits 0 on SIGTERM counts as done.)
    """
    inits = spec.init_containers or []
    by_name = {c.name: c for c in observed.init_containers} if observed is not None else {}
    for i, container in enumerate(inits):
        seen = by_name.get(container.name)
        state = seen.state if seen is not None else ContainerRunState.CREATED
        if is_sidecar(container) and state in (ContainerRunState.RUNNING, ContainerRunState.EXITED):
            continue
        if state is ContainerRunState.EXITED and seen is not None and seen.exit_code == 0:
            continue
        return Progress(i, len(inits), container, seen)
    return Progress(len(inits), len(inits))


def init_failure(spec: PodSpec, observed: ObservedPod) -> Decision | None:
    """Failed for good: the current init container exited non-zero and the pod's restartPolicy is Never."""
    step = progress(spec, observed)
    seen = step.seen
    if step.current is None or seen is None or seen.state is not ContainerRunState.EXITED:
        return None
    if spec.restart_policy is not RestartPolicy.NEVER:
        return None
    code = seen.exit_code if seen.exit_code is not None else -1
    return Decision(Verdict.FAILED, (seen.name,), f"init container {seen.name} exited with code {code}")


def plan_init(
    uid: PodUID,
    spec: PodSpec,
    observed: ObservedPod,
    backing_off: Collection[str] = (),
    unhealthy: Collection[str] = (),
) -> InitAction | Literal["wait", "done"]:
    """The init sequence's next step for a running sandbox: an action, "wait", or "done" (the apps started).

    One step per pass, as PodActions runs one operation at a time per pod. In order: an exited sidecar before the
    current point runs again (restartPolicy Always on the container, whatever the pod's), unless `backing_off`
    names it, and so does a running one whose liveness probe failed (`unhealthy`; the exit it answers is
    "liveness:<started_at>"); else the current init container is started, waited for (None), or, if it failed and
    the pod may restart, run again after its back-off — never the whole sequence from the start, as the kubelet
    runs only the failed one again. Once every init container is done, the app containers never started are
    started together; after that ("done") the caller goes on with the pod's shared-fate decision, heal().
    A failure under restartPolicy Never is init_failure's, checked by the caller first.
    """
    step = progress(spec, observed)
    by_name = {c.name: c for c in observed.init_containers}
    for container in (spec.init_containers or [])[: step.done]:
        seen = by_name.get(container.name)
        if not is_sidecar(container) or seen is None or container.name in backing_off:
            continue
        if seen.state is ContainerRunState.EXITED:
            return RestartContainer(uid, container.name, seen.finished_at)
        if seen.state is ContainerRunState.RUNNING and container.name in unhealthy:
            return RestartContainer(uid, container.name, f"liveness:{seen.started_at}")
    if step.current is not None:
        seen = step.seen
        if seen is None or seen.state is ContainerRunState.CREATED:
            return StartContainers(uid, (step.current.name,))
        if seen.state is ContainerRunState.EXITED and step.current.name not in backing_off:
            return RestartContainer(uid, step.current.name, seen.finished_at)
        return "wait"  # running (or unknown): wait for it to exit; or waiting for its back-off
    never_started = tuple(c.name for c in observed.containers if c.state is ContainerRunState.CREATED)
    if never_started:
        return StartContainers(uid, never_started)
    return "done"


def sidecars_to_stop(spec: PodSpec, observed: ObservedPod, grace_seconds: int) -> StopSidecars | None:
    """A finished pod's sidecars (and any init container) still running, last one first; None if none runs."""
    running = [c.name for c in observed.init_containers if c.state is ContainerRunState.RUNNING]
    if not running:
        return None
    order = [c.name for c in reversed(spec.init_containers or []) if c.name in running]
    return StopSidecars(observed.uid, tuple(order), grace_seconds)
