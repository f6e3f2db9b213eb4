"""The dashboard's live feed: a snapshot for each browser that connects, then every change, as server-sent events.

Built by master.dashboard.Dashboard. Stored objects (pods, nodes, controllers) reach it through the CachedStore's
listeners, called under the master's lock at each write, so a deleted pod leaves the page as soon as the master
has deleted it. What the master keeps only in memory — readiness (liveness), heartbeat usage (temperature, CPU,
memory), events — has no listeners: one ticker thread looks at it every TICK seconds and sends what changed, plus
a sparkline point per node every SPARK_EVERY seconds. Nothing here is written to disk, and with no browser
connected the listeners return at once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

from edgekube.master.cache import CachedStore
from edgekube.master.dashboard import view
from edgekube.master.eventlog import EventLog
from edgekube.master.liveness import Liveness
from edgekube.model.errors import EdgekubeError
from edgekube.model.types import Obj

log = logging.getLogger(__name__)

_Key = tuple[str, str]
Clock = Callable[[], float]
#: How often readiness, usage and events are looked at (the page's ≤ 1 s promise for what has no listener).
TICK = 0.5
#: A sparkline point per node this often; SPARK_POINTS of them are kept (10 minutes).
SPARK_EVERY = 5.0
SPARK_POINTS = 120
#: A browser that falls this far behind is dropped; its EventSource reconnects and starts from a new snapshot.
BACKLOG = 2000
#: Open pages at most (each holds one HTTP thread writing its stream); more are answered 503.
MAX_SUBSCRIBERS = 32


@dataclass
class Subscriber:
    """One connected browser: the messages (encoded) waiting to be written to it; None ends the stream."""

    role: str
    messages: queue.Queue[bytes | None] = field(default_factory=lambda: queue.Queue(maxsize=BACKLOG))
    dropped: bool = False

    def send(self, message: bytes) -> None:
        if self.dropped:
            return
        try:
            self.messages.put_nowait(message)
        except queue.Full:
            self.dropped = True
            self.end()

    def end(self) -> None:
        with contextlib.suppress(queue.Full):  # full: the writer sees `dropped` and stops anyway
            self.messages.put_nowait(None)

    def stream(self, keepalive: float) -> Iterator[bytes | None]:
        """Messages as they come; None after `keepalive` seconds of silence (write a comment then), until ended."""
        while not self.dropped:  # dropped: messages were lost, so the page must start again from a snapshot
            try:
                message = self.messages.get(timeout=keepalive)
            except queue.Empty:
                yield None
                continue
            if message is None or self.dropped:
                return
            yield message


def encode(message: Obj) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()


class Feed:
    """Keeps the rows the page shows and tells every subscriber each change; `lock` is the master's."""

    def __init__(
        self,
        store: CachedStore,
        lock: threading.RLock,
        liveness: Liveness,
        events: EventLog,
        *,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
    ) -> None:
        self.store = store
        self.liveness = liveness
        self.events = events
        self._lock = lock
        self._clock = clock
        self._wall = wall
        self._subscribers: list[Subscriber] = []
        self._nodes: dict[str, Obj] = {}  # the node rows last sent
        self._spark: dict[str, deque[list[float]]] = {}
        self._next_spark = 0.0
        self._events_version = -1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._ticker, name="dashboard-feed", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> Feed:
        with self._lock:
            self.store.listen("Pod", self._pod_changed)
            self.store.listen("Node", self._node_changed)
            for kind in view.CONTROLLER_KINDS:
                self.store.listen(kind, self._controller_changed(kind))
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        with self._lock:
            for sub in self._subscribers:
                sub.end()
            self._subscribers = []

    # -- subscribers -------------------------------------------------------------------------------------
    def subscribe(self, role: str) -> Subscriber:
        """A new subscriber whose first message is the whole picture; every later change follows it in order."""
        sub = Subscriber(role)
        with self._lock:  # no write can slip between the snapshot and the subscription
            if len(self._subscribers) >= MAX_SUBSCRIBERS:
                raise EdgekubeError(f"dashboard: this master serves at most {MAX_SUBSCRIBERS} open pages")
            sub.send(encode(self._snapshot(role)))
            self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    def __len__(self) -> int:
        return len(self._subscribers)

    def _broadcast(self, message: Obj) -> None:
        """Under the master's lock."""
        data = encode(message)
        for sub in self._subscribers:
            sub.send(data)
        if any(s.dropped for s in self._subscribers):
            log.warning("dashboard: a browser fell %d messages behind; it reconnects for a new snapshot", BACKLOG)
            self._subscribers = [s for s in self._subscribers if not s.dropped]

    def _snapshot(self, role: str) -> Obj:
        self._nodes = {name: self._node_row(obj) for (_, name), obj in self.store.objects("Node").items()}
        controllers = [
            view.controller_row(kind, obj)
            for kind in view.CONTROLLER_KINDS
            for obj in self.store.objects(kind).values()
        ]
        return {
            "op": "snapshot",
            "role": role,
            "nodes": list(self._nodes.values()),
            "pods": [view.pod_row(obj) for obj in self.store.objects("Pod").values()],
            "controllers": controllers,
            "events": self._recent_events(),
            "spark": {name: list(points) for name, points in self._spark.items()},
            "sparkEvery": SPARK_EVERY,
        }

    # -- store listeners (under the master's lock) ----------------------------------------------------------
    def _pod_changed(self, key: _Key, obj: Obj | None) -> None:
        if not self._subscribers:
            return
        if obj is None:
            self._broadcast({"op": "del", "kind": "pod", "key": view.pod_key(*key)})
        else:
            self._broadcast({"op": "put", "kind": "pod", "row": view.pod_row(obj)})

    def _node_changed(self, key: _Key, obj: Obj | None) -> None:
        name = key[1]
        if obj is None:
            self._spark.pop(name, None)
            if self._nodes.pop(name, None) is not None and self._subscribers:
                self._broadcast({"op": "del", "kind": "node", "key": name})
            return
        self._send_node(name, obj)

    def _controller_changed(self, kind: str) -> Callable[[_Key, Obj | None], None]:
        def changed(key: _Key, obj: Obj | None) -> None:
            if not self._subscribers:
                return
            if obj is None:
                self._broadcast({"op": "del", "kind": "controller", "key": view.controller_key(kind, *key)})
            else:
                self._broadcast({"op": "put", "kind": "controller", "row": view.controller_row(kind, obj)})

        return changed

    def _node_row(self, obj: Obj) -> Obj:
        name = obj["metadata"]["name"]
        ready = self.liveness.ready(name)
        return view.node_row(obj, ready=ready, reason=self.liveness.reason(name), usage=self.liveness.usage(name))

    def _send_node(self, name: str, obj: Obj) -> None:
        row = self._node_row(obj)
        if self._nodes.get(name) != row:
            self._nodes[name] = row
            if self._subscribers:
                self._broadcast({"op": "put", "kind": "node", "row": row})

    def _recent_events(self) -> list[Obj]:
        self._events_version = self.events.version
        return [view.event_row(e) for e in self.events.list()[-view.EVENTS_SHOWN :]][::-1]

    # -- what has no listener: readiness, usage, events ---------------------------------------------------------
    def _ticker(self) -> None:
        while not self._stop.wait(TICK):
            try:
                self.tick()
            except Exception:
                log.exception("dashboard: tick failed")

    def tick(self) -> None:
        """Send readiness, usage and event changes; record a sparkline point per node when one is due."""
        now = self._clock()
        spark = now >= self._next_spark
        if spark:
            self._next_spark = now + SPARK_EVERY
        with self._lock:
            nodes: Mapping[_Key, Obj] = self.store.objects("Node")
            for (_, name), obj in nodes.items():
                self._send_node(name, obj)
                if spark:
                    self._spark_point(name)
            if self._subscribers and self.events.version != self._events_version:
                self._broadcast({"op": "events", "rows": self._recent_events()})

    def _spark_point(self, name: str) -> None:
        usage = self.liveness.usage(name) if self.liveness.ready(name) else {}
        if "cpuCores" not in usage and "memoryWorkingSetBytes" not in usage:
            return
        point = [
            round(self._wall(), 1),
            round(float(usage.get("cpuCores", 0.0)), 3),
            float(usage.get("memoryWorkingSetBytes", 0.0)),
        ]
        points = self._spark.setdefault(name, deque(maxlen=SPARK_POINTS))
        points.append(point)
        if self._subscribers:
            self._broadcast({"op": "spark", "node": name, "point": point})
