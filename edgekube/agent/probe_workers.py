"""Runs liveness/readiness probes off the reconcile loop on a bounded worker pool; owned by Agent."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from edgekube.agent.probe_checks import ProbeResult, ProbeTarget, check
from edgekube.agent.probe_timing import ProbeKind, ProbeState
from edgekube.agent.runtime.protocol import PodRuntime
from edgekube.model.names import PodUID

log = logging.getLogger(__name__)

#: Called on a worker thread after each probe: (target, result, whether the probe's outcome flipped).
ResultHook = Callable[[ProbeTarget, ProbeResult, bool], None]


@dataclass
class _Entry:
    target: ProbeTarget
    state: ProbeState
    running: bool = False


class Prober:
    """Schedules every registered probe on its period; at most one run per probe and `workers` at once.

    exec probes run in the container through the runtime (Podman's exec API); httpGet and tcpSocket probes
    connect from the host to the pod's IP (Podman's default bridge network is routed on the host).
    """

    def __init__(
        self,
        runtime: PodRuntime,
        *,
        workers: int = 4,
        on_result: ResultHook | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runtime = runtime
        self.workers = max(workers, 1)
        self.on_result = on_result
        self.clock = clock
        self._entries: dict[tuple[PodUID, str, ProbeKind], _Entry] = {}
        self._lock = threading.Lock()
        self._kick = threading.Event()
        self._stopped = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None

    # -- what the agent asks --------------------------------------------------------------------------------
    def sync(self, targets: Iterable[ProbeTarget]) -> None:
        """Probe exactly `targets` from now on; a target seen before keeps its counts and result."""
        wanted = {t.key: t for t in targets}
        with self._lock:
            for key in [k for k in self._entries if k not in wanted]:
                del self._entries[key]
            for key, target in wanted.items():
                entry = self._entries.get(key)
                if entry is not None and entry.target.instance == target.instance:
                    entry.target = target  # e.g. a new pod IP
                    continue
                self._entries[key] = _Entry(target, ProbeState(target.probe, target.kind, target.since))
            start = bool(self._entries) and self._thread is None and not self._stopped.is_set()
            if start:
                self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="probe")
                self._thread = threading.Thread(target=self._schedule, name="prober", daemon=True)
                self._thread.start()
        self._kick.set()

    def ready(self, uid: PodUID, container: str) -> bool:
        """The readiness result of a container (False until its probe passed, or if it has no probe here)."""
        with self._lock:
            entry = self._entries.get((uid, container, ProbeKind.READINESS))
            return entry is not None and entry.state.result

    def unhealthy(self, uid: PodUID) -> frozenset[str]:
        """Containers of the pod whose liveness probe failed (they must be killed and the pod restarted)."""
        with self._lock:
            return frozenset(
                name
                for (pod, name, kind), entry in self._entries.items()
                if pod == uid and kind is ProbeKind.LIVENESS and not entry.state.result
            )

    def stop(self) -> None:
        self._stopped.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    # -- scheduling -------------------------------------------------------------------------------------------
    def _schedule(self) -> None:
        while not self._stopped.is_set():
            now = self.clock()
            with self._lock:
                due = [e for e in self._entries.values() if not e.running and e.state.due(now)]
                for entry in due:
                    entry.running = True
                    entry.state.begin(now)
                idle = [e for e in self._entries.values() if not e.running and not e.state.finished]
                waits = [e.state.next_at - now for e in idle]
            for entry in due:
                assert self._pool is not None
                try:
                    self._pool.submit(self._run, entry)
                except RuntimeError:  # the pool was shut down: the agent is stopping
                    return
            self._kick.wait(min(max(min(waits, default=1.0), 0.01), 1.0))
            self._kick.clear()

    def _run(self, entry: _Entry) -> None:
        target = entry.target
        try:
            result = check(target, self.runtime)
        except Exception as exc:  # a probe bug must not kill the worker; it counts as a failed probe
            log.exception("probe of %s/%s failed unexpectedly", target.pod, target.container.name)
            result = ProbeResult(False, f"{type(exc).__name__}: {exc}")
        with self._lock:
            current = self._entries.get(target.key) is entry
            flipped = entry.state.record(result.ok, result.message) if current else False
            entry.running = False
        self._kick.set()
        if current and self.on_result is not None:
            try:
                self.on_result(target, result, flipped)
            except Exception:
                log.exception("probe result hook failed")
