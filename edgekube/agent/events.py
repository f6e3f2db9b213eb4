"""Events the agent records (Pulled, Started, Killing, BackOff, Unhealthy, ...), deduplicated, batched; for Agent."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from edgekube.model.event import Event, EventSource, ObjectReference
from edgekube.model.meta import ObjectMeta

log = logging.getLogger(__name__)

COMPONENT = "edgekube-agent"
#: EventReport takes at most this many events per message.
BATCH = 500
_MAX_NAME = 253
EventType = Literal["Normal", "Warning"]


def _new_event(
    *,
    name: str,
    namespace: str,
    involved: ObjectReference,
    reason: str,
    message: str,
    type: EventType,
    host: str,
    stamp: str,
) -> dict[str, Any]:
    """A first occurrence of an event (count 1) as published."""
    return Event(
        metadata=ObjectMeta(name=name, namespace=namespace), involved_object=involved, reason=reason,
        message=message, type=type, source=EventSource(component=COMPONENT, host=host), count=1,
        first_timestamp=stamp, last_timestamp=stamp,
    ).to_dict()  # fmt: skip


@dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str
    uid: str


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    """Thread-safe: the reconcile loop, background restarts and probe workers all record.

    A repeat of the same event (same pod, reason, type and message) raises `count` and `lastTimestamp` of
    one event instead of making a new one, as Kubernetes' event correlator does. Events wait in a bounded
    in-memory queue until published (never on disk: SD cards); when it is full the oldest is dropped.
    """

    def __init__(
        self, node: str, *, capacity: int = 1000, series: int = 4096, clock: Callable[[], str] = _timestamp
    ) -> None:
        self.node = node
        self.capacity = max(capacity, 1)
        self.series_limit = max(series, self.capacity)
        self.clock = clock
        self.dropped = 0
        self._series: OrderedDict[str, dict[str, Any]] = OrderedDict()  # LRU of known events, by name
        self._pending: OrderedDict[str, None] = OrderedDict()  # names changed since the last publish
        self._names: dict[str, set[str]] = {}  # pod uid -> names of its events in _series
        self._lock = threading.Lock()

    def record(self, pod: PodRef, reason: str, message: str, type: EventType = "Normal") -> dict[str, Any]:
        """Record one occurrence; returns the event as it will be published."""
        digest = hashlib.sha256(f"{pod.uid}\0{reason}\0{type}\0{message}".encode()).hexdigest()[:16]
        name = f"{pod.name[: _MAX_NAME - len(digest) - 1]}.{digest}"
        now = self.clock()
        with self._lock:
            event = self._series.get(name)
            if event is not None:
                event = {**event, "count": int(event["count"]) + 1, "lastTimestamp": now}
                self._series.move_to_end(name)
            else:
                involved = ObjectReference(kind="Pod", name=pod.name, namespace=pod.namespace, uid=pod.uid)
                event = _new_event(
                    name=name,
                    namespace=pod.namespace,
                    involved=involved,
                    reason=reason,
                    message=message,
                    type=type,
                    host=self.node,
                    stamp=now,
                )
            self._series[name] = event
            self._names.setdefault(pod.uid, set()).add(name)
            while len(self._series) > self.series_limit:
                old, dropped = self._series.popitem(last=False)
                self._unindex(dropped["involvedObject"]["uid"], old)
            self._pending[name] = None
            self._pending.move_to_end(name)
            while len(self._pending) > self.capacity:
                self._pending.popitem(last=False)
                self.dropped += 1
                if self.dropped == 1 or self.dropped % 100 == 0:
                    log.warning("event queue full (%d): %d oldest event(s) dropped", self.capacity, self.dropped)
        log.log(logging.WARNING if type == "Warning" else logging.INFO, "%s %s/%s: %s", reason, pod.namespace,
                pod.name, message)  # fmt: skip
        return event

    def retain(self, uids: Collection[str]) -> None:
        """Forget the published events of pods no longer on this node; unpublished ones wait for their flush.

        The series only serve to count repeats of an event of a pod the node still runs: without this, memory
        would follow every pod the node ever ran (up to `series`, ~4 MB), not the pods it has.
        """
        with self._lock:
            for uid in [u for u in self._names if u not in uids]:
                for name in [n for n in self._names[uid] if n not in self._pending]:
                    del self._series[name]
                    self._unindex(uid, name)

    def _unindex(self, uid: str, name: str) -> None:
        names = self._names.get(uid)
        if names is not None:
            names.discard(name)
            if not names:
                del self._names[uid]

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def flush(self, publish: Callable[[list[dict[str, Any]]], None]) -> int:
        """Hand pending events to `publish` in batches of at most BATCH; a batch that raises stays queued."""
        sent = 0
        for _ in range(self.capacity // BATCH + 2):  # bounded: events recorded meanwhile wait for the next flush
            with self._lock:
                names = list(self._pending)[:BATCH]
                snapshot = {n: self._series.get(n) for n in names}
            if not names:
                return sent
            batch = [e for e in snapshot.values() if e is not None]
            if batch:
                publish(batch)
            with self._lock:
                for n in names:
                    # Only if it did not change meanwhile; a newer count goes out with the next flush.
                    if n in self._pending and self._series.get(n) is snapshot[n]:
                        del self._pending[n]
            sent += len(batch)
        return sent

    def events(self) -> list[dict[str, Any]]:
        """Every event still remembered, oldest first (for tests and debugging)."""
        with self._lock:
            return list(self._series.values())


class NodeEvents:
    """Events about the node itself (NFS reachability, pressure, what the LEDs show): a bounded queue, thread-safe.

    Each part that watches the node (NfsProber, HealthMonitor, Indicator) records into its own; the reporter
    flushes them while connected. Only transitions are recorded, so the queue stays short; when full (a long
    outage of the broker) the oldest event is dropped. Never on disk.
    """

    def __init__(self, node: str, *, capacity: int = 100, clock: Callable[[], str] = _timestamp) -> None:
        self.node = node
        self.clock = clock
        self._events: deque[dict[str, Any]] = deque(maxlen=max(capacity, 1))
        self._lock = threading.Lock()
        self._seq = 0

    def record(self, reason: str, message: str, type: EventType = "Normal", now: str | None = None) -> dict[str, Any]:
        """Queue one event on the Node object (and log it); returns the event as it will be published."""
        stamp = now or self.clock()
        with self._lock:
            self._seq += 1
            seed = f"{self.node}\0{reason}\0{message}\0{stamp}\0{self._seq}"
            name = f"{self.node}.{hashlib.sha256(seed.encode()).hexdigest()[:16]}"
            involved = ObjectReference(kind="Node", name=self.node)
            event = _new_event(
                name=name,
                namespace="default",
                involved=involved,
                reason=reason,
                message=message,
                type=type,
                host=self.node,
                stamp=stamp,
            )
            self._events.append(event)
        log.log(logging.WARNING if type == "Warning" else logging.INFO, "%s node/%s: %s", reason, self.node, message)
        return event

    def events(self) -> list[dict[str, Any]]:
        """The events not published yet, oldest first."""
        with self._lock:
            return list(self._events)

    def flush(self, publish: Callable[[list[dict[str, Any]]], None]) -> int:
        """Hand the events recorded so far to `publish`; they stay queued if it raises (recorded meanwhile: next)."""
        with self._lock:
            batch = list(self._events)
        if not batch:
            return 0
        publish(batch)
        sent = {id(e) for e in batch}
        with self._lock:
            kept = [e for e in self._events if id(e) not in sent]
            self._events.clear()
            self._events.extend(kept)
        return len(batch)
