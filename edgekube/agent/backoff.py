"""Exponential back-off (CrashLoopBackOff, edge-sized; image pulls), pure with injected time; used by Agent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K")


@dataclass(frozen=True)
class BackoffPolicy:
    """First retry at once, then `initial` seconds, doubling up to `cap`; a quiet `reset_after` starts over."""

    initial: float = 1.0
    cap: float = 60.0
    reset_after: float = 60.0

    def delay(self, streak: int) -> float:
        """Wait before retry number `streak` (0-based) of an unbroken run of failures."""
        if streak <= 0:
            return 0.0
        # min() before the power keeps huge streaks from overflowing a float.
        return min(self.initial * 2.0 ** min(streak - 1, 62), self.cap)


@dataclass(frozen=True)
class ImagePullBackoffPolicy(BackoffPolicy):
    """The kubelet's image pull back-off: no retry at once, `initial` (10 s) doubling up to `cap` (300 s)."""

    initial: float = 10.0
    cap: float = 300.0
    reset_after: float = 300.0

    def delay(self, streak: int) -> float:
        return super().delay(streak + 1)


@dataclass
class _Entry:
    streak: int  # failures in the current run, the one just recorded included
    failed_at: float
    retry_at: float
    started_at: float | None = None  # when the last retry happened


class Backoff(Generic[K]):
    """Per-key back-off state; every method takes `now` (monotonic seconds), so tests need no clock."""

    def __init__(self, policy: BackoffPolicy | None = None) -> None:
        self.policy = policy or BackoffPolicy()
        self._entries: dict[K, _Entry] = {}

    def failed(self, key: K, now: float) -> float:
        """Record a failure of `key` at `now`; return how long to wait before the next retry."""
        entry = self._entries.get(key)
        streak = 0 if entry is None or self._quiet_since_retry(entry, now) else entry.streak
        delay = self.policy.delay(streak)
        self._entries[key] = _Entry(streak=streak + 1, failed_at=now, retry_at=now + delay)
        return delay

    def retried(self, key: K, now: float) -> None:
        """The retry happened (the pod runs again); the streak lasts until it has run `reset_after` quietly."""
        entry = self._entries.get(key)
        if entry is not None:
            entry.started_at = now

    def due(self, key: K, now: float) -> bool:
        """True if `key` may be retried (or never failed)."""
        entry = self._entries.get(key)
        return entry is None or now >= entry.retry_at

    def remaining(self, key: K, now: float) -> float:
        entry = self._entries.get(key)
        return 0.0 if entry is None else max(entry.retry_at - now, 0.0)

    def streak(self, key: K) -> int:
        entry = self._entries.get(key)
        return 0 if entry is None else entry.streak

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)

    def tracked(self) -> list[K]:
        return list(self._entries)

    def _quiet_since_retry(self, entry: _Entry, now: float) -> bool:
        # Ran without trouble for reset_after since the last retry (or, never retried, since the last failure).
        since = entry.started_at if entry.started_at is not None else entry.retry_at
        return now - since >= self.policy.reset_after
