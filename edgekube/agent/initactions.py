"""Carries out initplan's container actions (start, run again after back-off, stop sidecars); used by PodActions."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from edgekube.agent.backoff import Backoff, BackoffPolicy
from edgekube.agent.events import EventRecorder, PodRef
from edgekube.agent.initplan import InitAction, RestartContainer, StartContainers, StopSidecars
from edgekube.agent.ledger import RestartLedger
from edgekube.agent.reconcile import DesiredPod, terminated
from edgekube.agent.runtime.protocol import ContainerRunState, ObservedPod, PodRuntime
from edgekube.model.errors import NotFoundError, RuntimeFailure
from edgekube.model.names import PodUID

log = logging.getLogger(__name__)

#: Runs work off the loop with the pod marked busy (PodActions._in_background): (uid, what, work).
Background = Callable[[PodUID, str, Callable[[], None]], None]
#: Told which containers of the pod were just started, and the pod as the start left it (postStart hooks).
AfterStart = Callable[[DesiredPod, Sequence[str], ObservedPod], None]
#: Runs the preStop hooks of the named containers before they are stopped; returns the grace left for the signal.
BeforeStop = Callable[[DesiredPod, ObservedPod, Sequence[str], int], int]
Key = tuple[PodUID, str]


@dataclass
class _Waiting:
    """A container that exited and waits for its back-off before it runs again."""

    exit: str | None  # the exit being answered (finished_at): the same exit seen again is not a new failure
    retry_at: float
    delay: float


def _ref(d: DesiredPod) -> PodRef:
    return PodRef(d.pod.metadata.namespace, d.pod.metadata.name, d.uid)


class InitActions:
    """Starts, restarts (each container with its own back-off, as the kubelet does) and stops single containers.

    What it remembers (the back-offs) is in memory only: a restarted agent runs a failed init container again at
    once, which the kubelet would do after its own restart too.
    """

    def __init__(
        self,
        runtime: PodRuntime,
        events: EventRecorder,
        ledger: RestartLedger,
        policy: BackoffPolicy,
        *,
        clock: Callable[[], float],
        background: Background,
        after_start: AfterStart | None = None,
        before_stop: BeforeStop | None = None,
    ) -> None:
        self.runtime = runtime
        self._after_start = after_start
        self._before_stop = before_stop
        self.events = events
        self.ledger = ledger
        self.clock = clock
        self._background = background
        self._backoff: Backoff[Key] = Backoff(policy)
        self._lock = threading.Lock()  # guards _waiting
        self._waiting: dict[Key, _Waiting] = {}

    # -- what the loop reads ------------------------------------------------------------------------------
    def back_off(self, d: DesiredPod, now: float) -> dict[str, str]:
        """The pod's containers still in their back-off, with the kubelet's CrashLoopBackOff message."""
        with self._lock:
            waiting = {name: w for (uid, name), w in self._waiting.items() if uid == d.uid and now < w.retry_at}
        where = f"{d.pod.metadata.namespace}/{d.pod.metadata.name}"
        return {
            name: f"back-off {w.delay:g}s restarting failed container={name} pod={where}" for name, w in waiting.items()
        }

    def next_due(self) -> list[float]:
        with self._lock:
            return [w.retry_at for w in self._waiting.values()]

    def forget(self, wanted: Collection[PodUID]) -> None:
        with self._lock:
            for key in [k for k in self._waiting if k[0] not in wanted]:
                del self._waiting[key]
        for key in self._backoff.tracked():
            if key[0] not in wanted:
                self._backoff.forget(key)

    # -- actions ------------------------------------------------------------------------------------------
    def apply(self, action: InitAction, d: DesiredPod, observed: ObservedPod, now: float) -> None:
        if isinstance(action, StartContainers):
            self._background(d.uid, "start", lambda: self._start(d, action.names))
        elif isinstance(action, RestartContainer):
            self._restart(action, d, observed, now)
        else:
            self._stop_sidecars(action, d, observed)

    def _start(self, d: DesiredPod, names: tuple[str, ...]) -> None:
        try:
            started = self.runtime.start_containers(d.uid, names)
        except NotFoundError:
            return
        except RuntimeFailure as exc:
            self.events.record(_ref(d), "Failed", f"Error: {exc.failure}: {exc}", "Warning")
            return
        for name in names:
            self.events.record(_ref(d), "Started", f"Started container {name}")
        if self._after_start is not None:
            self._after_start(d, names, started)

    def _restart(self, action: RestartContainer, d: DesiredPod, observed: ObservedPod, now: float) -> None:
        """Count the exit once (one back-off step), then run the container again once its back-off is over."""
        key = (d.uid, action.name)
        with self._lock:
            waiting = self._waiting.get(key)
        if waiting is None or waiting.exit != action.exit:
            delay = self._backoff.failed(key, now)
            waiting = _Waiting(action.exit, now + delay, delay)
            with self._lock:
                self._waiting[key] = waiting
            if delay > 0:
                where = f"{d.pod.metadata.namespace}/{d.pod.metadata.name}"
                message = f"Back-off restarting failed container {action.name} in pod {where}"
                self.events.record(_ref(d), "BackOff", message, "Warning")
        if now < waiting.retry_at:
            return
        seen = next((c for c in observed.init_containers if c.name == action.name), None)
        alive = seen is not None and seen.state is ContainerRunState.RUNNING  # its liveness probe failed
        last: dict[str, dict[str, Any]] = {}
        if seen is not None and not alive:
            last[action.name] = {"terminated": terminated(seen)}
        pod_id, grace = observed.pod_id, d.pod.spec.termination_grace_period_seconds
        if alive:
            message = f"Container {action.name} failed liveness probe, will be restarted"
            self.events.record(_ref(d), "Killing", message)

        def work() -> None:
            try:
                if alive:
                    self.runtime.stop_containers(
                        d.uid, (action.name,), self._hooks_before(d, observed, grace, (action.name,))
                    )
                    last.update(self._terminated(d.uid, action.name))
                started = self.runtime.start_containers(d.uid, (action.name,))
            except NotFoundError:
                return
            except RuntimeFailure as exc:
                self.events.record(_ref(d), "Failed", f"Error: {exc.failure}: {exc}", "Warning")
                with self._lock:
                    self._waiting.pop(key, None)  # still exited: the next pass counts a new failure (longer back-off)
                return
            self.ledger.restarted(d.uid, pod_id, [action.name], last)
            self._backoff.retried(key, self.clock())
            with self._lock:
                self._waiting.pop(key, None)
            self.events.record(_ref(d), "Started", f"Started container {action.name}")
            if self._after_start is not None:
                self._after_start(d, (action.name,), started)
            log.info("pod %s/%s: restarted container %s", d.pod.metadata.namespace, d.pod.metadata.name, action.name)

        self._background(d.uid, "restart-container", work)

    def _terminated(self, uid: PodUID, name: str) -> dict[str, dict[str, Any]]:
        """The lastState of an init container just stopped, as Podman now shows it ({} if it is not exited)."""
        pod = next((p for p in self.runtime.list_pods() if p.uid == uid), None)
        seen = next((c for c in pod.init_containers if c.name == name), None) if pod is not None else None
        if seen is None or seen.state is not ContainerRunState.EXITED:
            return {}
        return {name: {"terminated": terminated(seen)}}

    def _stop_sidecars(self, action: StopSidecars, d: DesiredPod, observed: ObservedPod) -> None:
        for name in action.names:
            self.events.record(_ref(d), "Killing", f"Stopping container {name}: the pod's app containers ended")

        def work() -> None:
            try:
                self.runtime.stop_containers(
                    d.uid, action.names, self._hooks_before(d, observed, action.grace_seconds, action.names)
                )
            except NotFoundError:
                return

        self._background(d.uid, "stop-sidecars", work)

    def _hooks_before(self, d: DesiredPod, observed: ObservedPod, grace: int, names: Sequence[str]) -> int:
        """The preStop hooks of the named init containers that run; the grace left for the stop signal."""
        if self._before_stop is None:
            return grace
        return self._before_stop(d, observed, names, grace)
