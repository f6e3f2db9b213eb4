"""The master's in-memory, bounded event log (volatile like heartbeats, never on disk); fed by controllers, agents."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edgekube.model.errors import NotFoundError, ValidationError
from edgekube.model.event import Event
from edgekube.model.labels import Selector
from edgekube.model.types import Obj
from edgekube.model.wire import EventReport

log = logging.getLogger(__name__)

WallClock = Callable[[], datetime]
# Spelled out here because the method named `list` hides the builtin inside the class body.
Events = list[Obj]
#: Same limit as an object name; the log appends ".<hex>" to the involved object's name.
_MAX_NAME = 253
DEFAULT_CAPACITY = 2000


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ObjectRef:
    """The object an event is about (Kubernetes' involvedObject)."""

    kind: str
    name: str
    namespace: str = ""
    uid: str | None = None

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> ObjectRef:
        """Reference a stored object (Pod, Node, ReplicationController, ...)."""
        meta = obj["metadata"]
        return cls(str(obj["kind"]), meta["name"], meta.get("namespace") or "", meta.get("uid"))

    def to_dict(self) -> Obj:
        out: Obj = {"kind": self.kind, "name": self.name, "namespace": self.namespace}
        if self.uid:
            out["uid"] = self.uid
        return out


#: Kubernetes' aggregation key: same object, reason, message, type and source → one event with a count.
_Key = tuple[str, str, str, str, str, str, str, str, str]


def _key(event: Mapping[str, Any]) -> _Key:
    obj, source = event["involvedObject"], event["source"]
    return (
        obj["kind"],
        obj.get("namespace", ""),
        obj["name"],
        obj.get("uid") or "",
        event["reason"],
        event.get("message", ""),
        event.get("type", "Normal"),
        source["component"],
        source.get("host") or "",
    )


class EventLog:
    """Keeps the newest `capacity` events; a repeat of an event bumps its count and lastTimestamp.

    Not thread-safe on its own: the master calls it under its lock.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY, clock: WallClock = _utc_now) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._clock = clock
        self._events: OrderedDict[_Key, Obj] = OrderedDict()
        self._names: dict[tuple[str, str], _Key] = {}
        self._serial = 0
        self._version = 0

    def __len__(self) -> int:
        return len(self._events)

    @property
    def version(self) -> int:
        """Changes with every new or repeated event (the dashboard's feed sends the events again then)."""
        return self._version

    # -- writing ---------------------------------------------------------------------------------------
    def record(
        self,
        obj: ObjectRef | Mapping[str, Any],
        reason: str,
        message: str,
        *,
        component: str,
        host: str | None = None,
        type: str = "Normal",
    ) -> Obj:
        """Record that `component` did or saw something about `obj`; returns the stored event."""
        ref = obj if isinstance(obj, ObjectRef) else ObjectRef.of(obj)
        source: Obj = {"component": component}
        if host:
            source["host"] = host
        event = {
            "involvedObject": ref.to_dict(),
            "reason": reason,
            "message": message,
            "type": type,
            "source": source,
        }
        return self._add(event, count=1, first=None, last=None, name=None)

    def ingest(self, node: str, report: EventReport) -> int:
        """Take the events an agent published; bad ones are logged and dropped. Returns how many were kept."""
        if report.node != node:
            raise ValidationError(f"events: node: {report.node!r} does not match the topic's node {node!r}")
        kept = 0
        for i, raw in enumerate(report.events):
            try:
                event = Event.from_dict(raw)
                if event.source.host not in (None, node):
                    raise ValidationError(f"source.host: {event.source.host!r} is not the sending node {node!r}")
            except ValidationError as exc:
                log.warning("dropped event %d from node %s: %s", i, node, exc)
                continue
            data = event.to_dict()
            data["source"]["host"] = node
            if event.reason == "FailedToDecode":  # the agent keeps a pod running that it cannot read (desired.py)
                log.warning("node %s cannot read pod %s: %s", node, event.involved_object.name, event.message)
            self._add(
                data,
                count=event.count,
                first=event.first_timestamp,
                last=event.last_timestamp,
                name=(event.metadata.namespace, event.metadata.name),
            )
            kept += 1
        return kept

    def _add(
        self,
        event: Obj,
        *,
        count: int,
        first: str | None,
        last: str | None,
        name: tuple[str, str] | None,
    ) -> Obj:
        now = _rfc3339(self._clock())
        key = _key(event)
        stored = self._events.get(key)
        if stored is not None:
            same = name is not None and (stored["metadata"]["namespace"], stored["metadata"]["name"]) == name
            # An agent resending its own aggregated event carries the full count; anything else is a repeat.
            stored["count"] = max(count, stored["count"]) if same else stored["count"] + count
            stored["lastTimestamp"] = last or now
            stored["metadata"]["resourceVersion"] = self._next_version()
            self._events.move_to_end(key)
            return stored
        namespace = event["involvedObject"].get("namespace") or "default"
        if name is not None and name not in self._names:
            namespace, event_name = name
        else:
            event_name = self._new_name(event["involvedObject"]["name"], namespace)
        stored = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": event_name,
                "namespace": namespace,
                "creationTimestamp": first or now,
                "resourceVersion": self._next_version(),
            },
            **{k: v for k, v in event.items() if k not in ("apiVersion", "kind", "metadata", "count")},
            "count": count,
            "firstTimestamp": first or now,
            "lastTimestamp": last or first or now,
        }
        self._events[key] = stored
        self._names[(namespace, event_name)] = key
        while len(self._events) > self.capacity:
            _, dropped = self._events.popitem(last=False)
            self._names.pop((dropped["metadata"]["namespace"], dropped["metadata"]["name"]), None)
        return stored

    def _next_version(self) -> str:
        """Bumped by every add and repeat: orders events recorded in the same second, as they happened."""
        self._version += 1
        return str(self._version)

    def _new_name(self, base: str, namespace: str) -> str:
        # Kubernetes names events "<object>.<unix nanoseconds in hex>"; a serial keeps them unique here.
        while True:
            self._serial += 1
            suffix = f".{int(self._clock().timestamp() * 1e9) + self._serial:x}"
            name = base[: _MAX_NAME - len(suffix)] + suffix
            if (namespace, name) not in self._names:
                return name

    # -- reading ---------------------------------------------------------------------------------------
    def list(self, namespace: str | None = None, selector: Selector | None = None) -> Events:
        """Events of a namespace (None: all), oldest first by lastTimestamp; copies the caller may keep."""
        out = [
            _copy(e)
            for e in self._events.values()
            if (namespace is None or e["metadata"]["namespace"] == namespace)
            and (selector is None or selector.matches(e["metadata"].get("labels", {})))
        ]
        out.sort(key=list_key)
        return out

    def get(self, namespace: str, name: str) -> Obj:
        key = self._names.get((namespace, name))
        if key is None:
            raise NotFoundError(f"Event {namespace}/{name} not found")
        return _copy(self._events[key])

    def about(self, kind: str, namespace: str, name: str) -> Events:
        """Every event about one object, oldest first (for `describe`)."""
        found = [
            _copy(e)
            for e in self._events.values()
            if e["involvedObject"]["kind"] == kind
            and e["involvedObject"]["name"] == name
            and e["involvedObject"].get("namespace", "") == namespace
        ]
        found.sort(key=lambda e: e["lastTimestamp"])
        return found


def _copy(event: Obj) -> Obj:
    return {
        **event,
        "metadata": dict(event["metadata"]),
        "involvedObject": dict(event["involvedObject"]),
        "source": dict(event["source"]),
    }


def list_key(event: Mapping[str, Any]) -> tuple[str, ...]:
    """The order events are listed in: by namespace, then as they last happened (ties: as they were recorded)."""
    meta = event["metadata"]
    return (meta["namespace"], event.get("lastTimestamp") or "", f"{int(meta.get('resourceVersion') or 0):020d}")
