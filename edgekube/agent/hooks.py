"""Container lifecycle hooks as the kubelet runs them: postStart after a start, preStop before a stop; for PodActions.

- postStart (model.lifecycle) runs right after the pod's containers started (create or restart), one thread per
  container. A failed hook gives the kubelet's event, FailedPostStartHook "PostStartHook failed" (the details only in
  the agent's log: a hook's output may hold secrets), and the container counts as failed: the pod is stopped and
  restarted per its restartPolicy (restarts.decide), as the kubelet kills the container and restarts it.
- preStop runs before the stop signal, for every running container that has one, side by side; the pod's
  terminationGracePeriodSeconds counts the hooks' time: the signal gets what is left, at least 2 s
  (the kubelet's minimumGracePeriodInSeconds). A failed hook: FailedPreStopHook "PreStopHook failed"; the stop goes
  on. The hooks come from the containers (ObservedContainer.pre_stop, recorded at create), so a pod deleted from
  the spec still runs them. A grace of 0 (eviction) runs none, as in the kubelet.

Handlers: `exec` in the container (the runtime's exec), `httpGet` from the node to the pod's IP (any HTTP answer
is a success, only a failed request is not: the kubelet's runHTTPHandler), `sleep`; `tcpSocket` fails, as in the
kubelet ("invalid handler").
"""

from __future__ import annotations

import http.client
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from edgekube.agent.events import EventRecorder, PodRef
from edgekube.agent.probe_checks import describe, http_get
from edgekube.agent.runtime.protocol import ContainerRunState, ObservedPod, PodRuntime
from edgekube.model.errors import EdgekubeError
from edgekube.model.lifecycle import LifecycleHandler
from edgekube.model.names import PodUID
from edgekube.model.pod import Container

log = logging.getLogger(__name__)

#: The kubelet waits for a postStart hook without limit; edgekube bounds it, so a hung hook cannot hold a pod busy.
POST_START_TIMEOUT = 120.0
#: The least time the stop signal gets after preStop hooks (the kubelet's minimumGracePeriodInSeconds).
MIN_GRACE_SECONDS = 2
_USER_AGENT = "edgekube-lifecycle/1"

FAILED_POST_START = "FailedPostStartHook"
FAILED_PRE_STOP = "FailedPreStopHook"


@dataclass(frozen=True)
class HookCall:
    """One hook to run now: which container of which pod, where it is reached, for how long at most."""

    ref: PodRef
    container: str
    handler: LifecycleHandler
    ip: str | None
    timeout: float
    ports: dict[str, int]

    @property
    def pod(self) -> str:
        """The pod as the kubelet's messages name it (format.Pod): `name_namespace(uid)`."""
        return f"{self.ref.name}_{self.ref.namespace}({self.ref.uid})"


def run(call: HookCall, runtime: PodRuntime, sleep: Callable[[float], None] = time.sleep) -> str | None:
    """Run one hook; None if it succeeded, else the kubelet's message saying why. Never raises for the app's doing."""
    handler = call.handler
    try:
        if handler.exec is not None:
            code, output = runtime.exec(PodUID(call.ref.uid), call.container, list(handler.exec.command), call.timeout)
            if code == 0:
                return None
            error = f"command '{' '.join(handler.exec.command)}' exited with {code}"
            return f"Exec lifecycle hook ({handler.exec.command}) for Container {call.container!r} in Pod " \
                   f"{call.pod!r} failed - error: {error}, message: {output!r}"  # fmt: skip
        if handler.http_get is not None:
            action = handler.http_get
            host = action.host or call.ip
            if not host:
                raise EdgekubeError(f"pod {call.pod} has no IP address")
            port = _port(action.port, call)
            try:
                http_get(action, host, port, call.timeout, _USER_AGENT)
            except (OSError, http.client.HTTPException) as exc:
                scheme = action.scheme.lower()
                raise EdgekubeError(f'Get "{scheme}://{host}:{port}{action.path}": {describe(exc)}') from exc
            return None
        if handler.sleep is not None:
            sleep(min(float(handler.sleep.seconds), call.timeout))
            return None
    except EdgekubeError as exc:
        if handler.http_get is not None:
            return f"HTTP lifecycle hook ({handler.http_get.path}) for Container {call.container!r} in Pod " \
                   f"{call.pod!r} failed - error: {exc}"  # fmt: skip
        return f"{handler.kind()} lifecycle hook for Container {call.container!r} in Pod {call.pod!r} failed - " \
               f"error: {exc}"  # fmt: skip
    return f"Cannot run handler: invalid handler: {handler.kind()} is not supported as a lifecycle handler"


def _port(port: int | str, call: HookCall) -> int:
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    if port in call.ports:
        return call.ports[port]
    raise EdgekubeError(f"port {port!r} is not a named port of container {call.container}")


class Hooks:
    """Runs a pod's postStart or preStop hooks side by side and records the kubelet's events for failures."""

    def __init__(
        self,
        runtime: PodRuntime,
        events: EventRecorder,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.runtime = runtime
        self.events = events
        self.clock = clock
        self.sleep = sleep

    def post_start(self, ref: PodRef, containers: Iterable[Container], observed: ObservedPod) -> frozenset[str]:
        """Run the postStart hooks of `containers` that run in `observed`; the names of those whose hook failed."""
        running = {c.name for c in observed.containers if c.state is ContainerRunState.RUNNING}
        calls = [
            HookCall(ref, c.name, c.lifecycle.post_start, observed.ip, POST_START_TIMEOUT, _named(c))
            for c in containers
            if c.lifecycle is not None and c.lifecycle.post_start is not None and c.name in running
        ]
        failed = frozenset(call.container for call, error in self._run_all(calls) if error is not None)
        for _name in sorted(failed):
            self.events.record(ref, FAILED_POST_START, "PostStartHook failed", "Warning")
        return failed

    def pre_stop(self, ref: PodRef, observed: ObservedPod | None, grace_seconds: int) -> int:
        """Run the preStop hooks of the running containers within the grace; the grace left for the stop signal.

        With no hook to run, the grace is returned as it is.
        """
        if observed is None or grace_seconds <= 0:
            return grace_seconds
        calls = [
            HookCall(ref, c.name, c.pre_stop, observed.ip, float(grace_seconds), {})
            for c in observed.containers
            if c.pre_stop is not None and c.state is ContainerRunState.RUNNING
        ]
        if not calls:
            return grace_seconds
        start = self.clock()
        for _call, error in self._run_all(calls, deadline=float(grace_seconds)):
            if error is not None:
                self.events.record(ref, FAILED_PRE_STOP, "PreStopHook failed", "Warning")
        spent = int(self.clock() - start)
        return max(grace_seconds - spent, MIN_GRACE_SECONDS)

    def _run_all(self, calls: list[HookCall], deadline: float | None = None) -> list[tuple[HookCall, str | None]]:
        """Each call on its own thread; with a `deadline` (seconds), hooks still running then are left behind."""
        if not calls:
            return []
        results: dict[int, str | None] = {}
        done = threading.Event()
        lock = threading.Lock()

        def one(index: int, call: HookCall) -> None:
            try:
                error = run(call, self.runtime, self.sleep)
            except Exception as exc:  # a bug in a hook's run must not stop the pod's stop or start
                log.exception("lifecycle hook of %s/%s failed unexpectedly", call.pod, call.container)
                error = f"{type(exc).__name__}: {exc}"
            if error is not None:
                log.warning("%s", error)
            with lock:
                results[index] = error
                if len(results) == len(calls):
                    done.set()

        pool = ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="hook")
        for index, call in enumerate(calls):
            pool.submit(one, index, call)
        pool.shutdown(wait=False)
        if not done.wait(deadline):
            log.info("preStop hooks still running after the grace period; stopping the containers anyway")
        with lock:
            return [(call, results[i]) for i, call in enumerate(calls) if i in results]


def _named(container: Container) -> dict[str, int]:
    return {p.name: p.container_port for p in container.ports if p.name}
