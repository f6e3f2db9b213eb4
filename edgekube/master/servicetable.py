"""The ServiceTable publisher: the whole table of Services and endpoints, built when either changed; run by master.app.

After each reconcile pass the master asks `flush()` for a table to publish retained on `edgekube/v1/services`
(bus.topics.SERVICES): None when no Service or Endpoints was written, or when what was written leaves the table as
it was published. After a reconnect (`forget()`) it is published again, as the broker may have lost it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from edgekube.master.cache import CachedStore
from edgekube.model import servicetable
from edgekube.model.netstate import ServiceEntry, ServiceTable


class ServiceTablePublisher:
    """Builds the ServiceTable from the cache; `generation` is max(last + 1, wall-clock milliseconds)."""

    def __init__(self, store: CachedStore, wall: Callable[[], float]) -> None:
        self.store = store
        self._wall = wall
        self._dirty = True
        self._published: list[ServiceEntry] | None = None
        self.generation = 0
        for kind in ("Service", "Endpoints"):
            store.listen(kind, self._changed)

    def _changed(self, key: tuple[str, str], obj: Mapping[str, Any] | None) -> None:
        self._dirty = True

    def forget(self) -> None:
        """The broker may have lost the retained table (a reconnect): the next flush publishes it again."""
        self._published = None
        self._dirty = True

    def flush(self) -> ServiceTable | None:
        """The table to publish now, or None when it has not changed since it was last published."""
        if not self._dirty:
            return None
        self._dirty = False
        table = servicetable.build(
            self.store.objects("Service").values(), self.store.objects("Endpoints"), generation=0
        )
        if table.services == self._published:
            return None
        self._published = table.services
        self.generation = max(self.generation + 1, int(self._wall() * 1000))
        table.generation = self.generation
        return table
