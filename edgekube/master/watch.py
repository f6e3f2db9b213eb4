"""Watch streams (`ekctl get -w`): the master tells a client each change of the objects it watches.

Called by master.requests (verb watch: open, renew, close) and master.app (`flush` after every group commit).
The CachedStore's listeners see every write; a change to an object some watch matches is queued, and goes out
only after the commit that made it durable, on the watching client's stream topic
(`edgekube/v1/clients/<client-id>/streams/<stream>`, derived from the request's response topic so a client can
only have changes sent to itself). Events carry the object's resourceVersion; the client lists first and drops
events not newer than what it listed, so opening the watch before the list loses nothing (level-triggered start).
A watch lives as long as its client renews it (model.watch.WATCH_LEASE_SECONDS); in memory only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from edgekube.bus import topics
from edgekube.bus.protocol import MessageBus
from edgekube.master.cache import CachedStore
from edgekube.model.errors import EdgekubeError, ValidationError
from edgekube.model.labels import Selector, parse_selector
from edgekube.model.manifest import CLUSTER_SCOPED
from edgekube.model.types import Obj
from edgekube.model.watch import MAX_WATCHES, WATCH_LEASE_SECONDS, EventType, WatchEvent
from edgekube.model.wire import ApiRequest

log = logging.getLogger(__name__)

_Key = tuple[str, str]
Clock = Callable[[], float]
#: Kinds kept in the store, so every change passes a CachedStore listener (events live in the EventLog instead).
WATCHABLE = (
    "Pod", "Node", "ReplicationController", "ReplicaSet", "Deployment", "PersistentVolume", "PersistentVolumeClaim",
    "StorageClass", "ConfigMap", "Secret", "Service", "Endpoints",
)  # fmt: skip


@dataclass
class Watch:
    """One client's watch: what it matches, where its events go, and the keys it has been shown."""

    topic: str
    stream: str
    kind: str
    namespace: str | None
    selector: Selector
    name: str | None
    expires: float
    seen: set[_Key] = field(default_factory=set)
    seq: int = 0

    def matches(self, key: _Key, obj: Obj) -> bool:
        if self.namespace is not None and key[0] != self.namespace:
            return False
        if self.name is not None and key[1] != self.name:
            return False
        return self.selector.matches(obj["metadata"].get("labels") or {})


class Watches:
    """Every open watch, the events queued for the next commit, and the listeners that fill the queue."""

    def __init__(self, store: CachedStore, clock: Clock, decorate: Callable[[str, Obj], Obj]) -> None:
        self.store = store
        self._clock = clock
        self._decorate = decorate  # Node: the liveness-decorated status `get` shows
        self._watches: dict[str, Watch] = {}  # by stream topic
        self._queued: list[tuple[Watch, EventType, Obj]] = []
        self._listening: set[str] = set()
        self._last: dict[tuple[str, _Key], Obj] = {}  # the last object shown per watched key: DELETED carries it

    def __len__(self) -> int:
        return len(self._watches)

    def open(self, req: ApiRequest, response_topic: str | None) -> bool:
        """Open (True) or renew (False) the watch `req` asks for; close it when `seconds` is 0. Under the lock."""
        client = topics.client_of_reply(response_topic or "")
        if client is None or not req.stream:
            raise ValidationError(
                "watch: needs a stream id and a response topic edgekube/v1/clients/<client-id>/reply",
                hint="the changes go to edgekube/v1/clients/<client-id>/streams/<stream>",
            )
        kind = req.kind or ""
        if kind not in WATCHABLE:
            raise ValidationError(f"watch: kind: Unsupported value: {kind!r}: supported values: {', '.join(WATCHABLE)}")
        topic = topics.client_stream(client, req.stream)
        self.expire()
        if req.seconds == 0:
            self._watches.pop(topic, None)
            return False
        now = self._clock()
        known = self._watches.get(topic)
        if known is not None:
            known.expires = now + WATCH_LEASE_SECONDS
            return False
        if len(self._watches) >= MAX_WATCHES:
            raise EdgekubeError(f"watch: this master serves at most {MAX_WATCHES} watches", hint="try again later")
        namespace = None if kind in CLUSTER_SCOPED else req.namespace
        watch = Watch(topic, req.stream, kind, namespace, parse_selector(req.selector or ""), req.name, now)
        watch.expires = now + WATCH_LEASE_SECONDS
        self._listen(kind)
        for key, obj in self.store.objects(kind).items():
            if watch.matches(key, obj):
                watch.seen.add(key)
                self._last[(kind, key)] = obj
        self._watches[topic] = watch
        log.info("watch %s opened: %s in %s", topic, kind, namespace or "every namespace")
        return True

    def expire(self) -> None:
        now = self._clock()
        for topic in [t for t, w in self._watches.items() if w.expires <= now]:
            log.info("watch %s expired: not renewed for %ss", topic, WATCH_LEASE_SECONDS)
            del self._watches[topic]

    def _listen(self, kind: str) -> None:
        if kind in self._listening:
            return
        self._listening.add(kind)
        ready = False

        def changed(key: _Key, obj: Obj | None) -> None:
            if ready:
                self._changed(kind, key, obj)

        self.store.listen(kind, changed)  # it replays every object now; the watches took those from objects()
        ready = True

    def _changed(self, kind: str, key: _Key, obj: Obj | None) -> None:
        last = self._last.get((kind, key))
        shown = False
        for watch in self._watches.values():
            if watch.kind != kind:
                continue
            now_matches = obj is not None and watch.matches(key, obj)
            if now_matches and obj is not None:
                self._queued.append((watch, "MODIFIED" if key in watch.seen else "ADDED", obj))
                watch.seen.add(key)
                shown = True
            elif key in watch.seen:
                watch.seen.discard(key)
                self._queued.append((watch, "DELETED", obj if obj is not None else last or _stub(kind, key)))
        if shown and obj is not None:
            self._last[(kind, key)] = obj
        elif obj is None:
            self._last.pop((kind, key), None)

    def take(self) -> list[tuple[str, bytes]]:
        """The queued events as (topic, payload), numbered per stream; call under the lock right after a commit."""
        queued, self._queued = self._queued, []
        out = []
        for watch, kind, obj in queued:
            if self._watches.get(watch.topic) is not watch:
                continue  # closed or expired since
            watch.seq += 1
            shown = self._decorate(watch.kind, obj)
            event = WatchEvent(stream=watch.stream, seq=watch.seq, type=kind, object=shown)
            out.append((watch.topic, event.encode()))
        return out

    def discard(self) -> None:
        """A deposed master sends nothing more: its queued events are dropped (the clients resync on renewal)."""
        self._queued = []


def publish(bus: MessageBus, events: list[tuple[str, bytes]]) -> None:
    for topic, payload in events:
        bus.publish(topic, payload)


def _stub(kind: str, key: _Key) -> Obj:
    return {"kind": kind, "apiVersion": "v1", "metadata": {"namespace": key[0], "name": key[1]}}
