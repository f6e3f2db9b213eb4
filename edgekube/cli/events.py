"""Reading Events as kubectl shows them: LAST SEEN with repeat counts, OBJECT, SOURCE, order, and per-object filter."""

from __future__ import annotations

from datetime import UTC, datetime

from edgekube.cli.status import section
from edgekube.cli.timefmt import age, parse_timestamp
from edgekube.model.types import Obj

_EPOCH = datetime.min.replace(tzinfo=UTC)


def _first(event: Obj) -> object:
    return event.get("firstTimestamp") or section(event, "metadata").get("creationTimestamp")


def _last(event: Obj) -> object:
    return event.get("lastTimestamp") or _first(event)


def count(event: Obj) -> int:
    value = event.get("count")
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 1


def _repeated(shown: str, event: Obj, now: datetime | None) -> str:
    """Add kubectl's `5m (x3 over 10m)` for an event seen more than once."""
    times = count(event)
    return f"{shown} (x{times} over {age(_first(event), now)})" if times > 1 else shown


def last_seen(event: Obj, now: datetime | None = None) -> str:
    """The LAST SEEN column of `get events`."""
    return _repeated(age(_last(event), now), event, now)


def first_seen(event: Obj, now: datetime | None = None) -> str:
    return age(_first(event), now)


def interval(event: Obj, now: datetime | None = None) -> str:
    """The Age column of describe's Events: the first time, or the last with the repeat count."""
    return last_seen(event, now) if count(event) > 1 else first_seen(event, now)


def involved_object(event: Obj) -> str:
    """`pod/web-abcde`: the involved object's kind in lower case, as kubectl prints it."""
    ref = section(event, "involvedObject")
    return f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"


def source(event: Obj) -> str:
    """`component, host` as in the SOURCE column of `get events -o wide`."""
    src = section(event, "source")
    component, host = src.get("component") or "", src.get("host") or ""
    return f"{component}, {host}" if component and host else str(component)


def by_time(events: list[Obj]) -> list[Obj]:
    """Oldest first, so the newest is at the bottom of a terminal (kubectl's SortableEvents)."""
    return sorted(events, key=lambda event: parse_timestamp(_last(event)) or _EPOCH)


def about(events: list[Obj], obj: Obj) -> list[Obj]:
    """The events whose involvedObject is `obj`: same kind and name, namespace if it has one, uid if both do."""
    meta = section(obj, "metadata")
    kind, name = obj.get("kind"), meta.get("name")
    namespace, uid = meta.get("namespace") or "", meta.get("uid")
    found = []
    for event in events:
        ref = section(event, "involvedObject")
        if ref.get("kind") != kind or ref.get("name") != name:
            continue
        if namespace and (ref.get("namespace") or "") != namespace:
            continue
        if uid and ref.get("uid") and ref.get("uid") != uid:
            continue
        found.append(event)
    return by_time(found)
