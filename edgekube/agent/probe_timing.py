"""When to probe and what a probe's result is (Kubernetes' timing and thresholds), pure; used by probe_workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from edgekube.model.probe import Probe


class ProbeKind(StrEnum):
    LIVENESS = "Liveness"
    READINESS = "Readiness"


@dataclass
class ProbeState:
    """One probe on one run of a container: when to probe next and what the result is now.

    As in Kubernetes: nothing is probed before `initialDelaySeconds` after the container started, then once
    every `periodSeconds`; the result turns to failure after `failureThreshold` consecutive failures and to
    success after `successThreshold` consecutive successes. Until then a liveness probe counts as passing
    and a readiness probe as not ready. A failed liveness probe is final for this run (it gets restarted).
    """

    probe: Probe
    kind: ProbeKind
    since: float  # when the container started (monotonic seconds)
    result: bool = field(init=False)
    successes: int = 0
    failures: int = 0
    next_at: float = field(init=False)
    last_message: str = ""

    def __post_init__(self) -> None:
        self.result = self.kind is ProbeKind.LIVENESS
        self.next_at = self.since + self.probe.initial_delay_seconds

    @property
    def finished(self) -> bool:
        """A failed liveness probe stops probing until the container runs again (a new ProbeState)."""
        return self.kind is ProbeKind.LIVENESS and not self.result

    def due(self, now: float) -> bool:
        return not self.finished and now >= self.next_at

    def begin(self, now: float) -> None:
        """A probe starts at `now`: the next one is one period later, however long this one takes."""
        self.next_at = now + self.probe.period_seconds

    def record(self, ok: bool, message: str = "") -> bool:
        """Count one result; True if the probe's result flipped (passing ↔ failing)."""
        self.last_message = message
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            if not self.result and self.successes >= self.probe.success_threshold:
                self.result = True
                return True
        else:
            self.failures, self.successes = self.failures + 1, 0
            if self.result and self.failures >= self.probe.failure_threshold:
                self.result = False
                return True
        return False
