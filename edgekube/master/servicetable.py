"""The ServiceTable publisher: the whole table of Services and endpoints, built when either changed; run by master.app.

After each reconcile pass the master asks `flush()` for a table to publish retained on `edgekube/v1/services`
(bus.topics.SERVICES): None when no Service or Endpoints was written, or when what was written leaves the table as
it was published. After a reconnect (`forget()`) it is published again, as the broker may have lost it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from edgekube.master.cache import CachedStore
from edgekube.model.netstate import ServiceEntry, ServiceTable
from edgekube.model.servicetable import table_service

_Key = tuple[str, str]
#: What an entry was built from: the Service's and its Endpoints' resourceVersions.
_Version = tuple[str, str]


class ServiceTablePublisher:
    """Builds the ServiceTable from the cache; `generation` is max(last + 1, wall-clock milliseconds).

    Each Service's entry is kept with the resourceVersions it was built from, so a change rebuilds only the
    entries of the Services or Endpoints written since (100 Services x 10 endpoints: one entry, not a thousand).
    """

    def __init__(self, store: CachedStore, wall: Callable[[], float]) -> None:
        self.store = store
        self._wall = wall
        self._dirty = True
        self._force = True
        self._entries: dict[_Key, tuple[_Version, ServiceEntry]] = {}
        self.generation = 0
        for kind in ("Service", "Endpoints"):
            store.listen(kind, self._changed)

    def _changed(self, key: _Key, obj: Mapping[str, Any] | None) -> None:
        self._dirty = True

    def forget(self) -> None:
        """The broker may have lost the retained table (a reconnect): the next flush publishes it again."""
        self._force = True
        self._dirty = True

    def flush(self) -> ServiceTable | None:
        """The table to publish now, or None when it has not changed since it was last published."""
        if not self._dirty:
            return None
        self._dirty = False
        endpoints = self.store.objects("Endpoints")
        changed = self._force
        entries: dict[_Key, tuple[_Version, ServiceEntry]] = {}
        for key, service in self.store.objects("Service").items():
            found = endpoints.get(key)
            version = (_version(service), _version(found))
            kept = self._entries.get(key)
            if kept is not None and kept[0] == version:
                entries[key] = kept
                continue
            entry = table_service(service, found)
            changed = changed or kept is None or kept[1] != entry
            entries[key] = (version, entry)
        changed = changed or entries.keys() != self._entries.keys()
        self._entries = entries
        if not changed:
            return None
        self._force = False
        self.generation = max(self.generation + 1, int(self._wall() * 1000))
        return ServiceTable(generation=self.generation, services=[entries[k][1] for k in sorted(entries)])


def _version(obj: Mapping[str, Any] | None) -> str:
    return str((obj or {}).get("metadata", {}).get("resourceVersion") or "") if obj is not None else "-"
