"""Runs NFS jobs (nfsio.Job) on its own thread, so a slow or dead NFS server never holds the master's loop.

The volume controllers plan from what is stored plus `result(key)`: a job is submitted at most once at a time per
key, its result (success, or the error's text) is kept until the controllers no longer ask for it, and a failed
key may be retried after a back-off that doubles with each failure. Level-triggered: were a result lost, the
controllers would plan the job again (jobs are idempotent).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from edgekube.master.controllers.volumes.nfsio import Job, ShareFs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    """How the last run of a key's job ended: `error` None is success; `failures` counts failures in a row."""

    job: Job
    error: str | None
    finished: float
    failures: int = 0


class VolumeWorker:
    """A queue and one thread (started by the master); `run_pending` runs queued jobs on the caller's thread (tests)."""

    def __init__(
        self,
        fs: ShareFs,
        *,
        clock: Callable[[], float] = time.time,
        on_done: Callable[[], None] = lambda: None,
        retry_base: float = 2.0,
        retry_max: float = 60.0,
    ) -> None:
        self.fs = fs
        self.clock = clock
        self.on_done = on_done
        self.retry_base = retry_base
        self.retry_max = retry_max
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._busy: set[str] = set()
        self._results: dict[str, Result] = {}
        self._thread: threading.Thread | None = None

    # -- the controllers' side (the master's loop) -----------------------------------------------------------
    def submit(self, job: Job) -> bool:
        """Queue the job unless one with its key is queued or running; True if queued."""
        with self._lock:
            if job.key in self._busy:
                return False
            self._busy.add(job.key)
        self._queue.put(job)
        return True

    def busy(self, key: str) -> bool:
        with self._lock:
            return key in self._busy

    def result(self, key: str) -> Result | None:
        with self._lock:
            return self._results.get(key)

    def due(self, result: Result, now: float) -> bool:
        """May a failed job be tried again at `now`? After retry_base * 2^(failures-1) seconds, at most retry_max."""
        delay = min(self.retry_base * 2.0 ** max(result.failures - 1, 0), self.retry_max)
        return now >= result.finished + delay

    def keep(self, keys: Collection[str]) -> None:
        """Forget the results of every key not in `keys` (nothing plans with them any more)."""
        with self._lock:
            for key in [k for k in self._results if k not in keys and k not in self._busy]:
                del self._results[key]

    # -- the worker's side ---------------------------------------------------------------------------------
    def start(self) -> VolumeWorker:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="master-volumes", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the job in hand (an NFS call gives up after its client's timeout)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def run_pending(self) -> int:
        """Run every queued job now, on this thread; returns how many ran (for tests without the thread)."""
        ran = 0
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return ran
            if job is not None:
                self._execute(job)
                ran += 1

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            self._execute(job)

    def _execute(self, job: Job) -> None:
        error: str | None = None
        try:
            job.run(self.fs)
        except Exception as exc:  # every failure is a result the controllers report, never a dead worker
            error = str(exc) or type(exc).__name__
            log.warning("nfs job %s (%s %s on %s) failed: %s", job.key, job.operation, job.directory, job.share, error)
        with self._lock:
            previous = self._results.get(job.key)
            failures = 0 if error is None else (previous.failures if previous is not None else 0) + 1
            self._results[job.key] = Result(job, error, self.clock(), failures)
            self._busy.discard(job.key)
        self.on_done()
