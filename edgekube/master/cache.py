"""Write-through cache of the state store with group commit; the master's controllers read from it without copying.

The master is the store's only writer, so a cache filled from each write's result is always current. Objects
handed out by `objects`/`peek` (and returned by create/update) are shared: treat them as read-only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Literal

from edgekube.model import jsoncodec
from edgekube.model.errors import NotFoundError
from edgekube.model.labels import Selector
from edgekube.store.journal import JournalStorage
from edgekube.store.protocol import Object, ObjectList, StateStore

#: The master's Lease (Kubernetes keeps one per controller manager); renewing it ends a group commit.
LEASE_KIND, LEASE_NAMESPACE, LEASE_NAME = "Lease", "kube-system", "edgekube-master"

_Key = tuple[str, str]
CommitMode = Literal["sync", "defer", "lazy"]
#: Told about every write of a kind: (namespace, name) and the new object, or None when it was deleted.
Listener = Callable[[_Key, Object | None], None]


class CachedStore:
    """A StateStore (get/list still return fresh copies) plus zero-copy reads of what is stored."""

    def __init__(self, store: StateStore) -> None:
        self.backend = store
        self._kinds: dict[str, dict[_Key, Object]] = {}
        #: Successful writes so far: the master's loop runs again at once after a pass that wrote.
        self.writes = 0
        #: Writes made in "defer" batches that no sync has covered yet.
        self.unsynced = False
        self._batching = False
        self._listeners: dict[str, list[Listener]] = {}
        #: Per kind: (label key, value) -> keys of the objects carrying it, so a selector list is O(matches).
        self._labels: dict[str, dict[tuple[str, str], set[_Key]]] = {}

    def _kind(self, kind: str) -> dict[_Key, Object]:
        objects = self._kinds.get(kind)
        if objects is None:
            objects = self._kinds[kind] = {
                (o["metadata"].get("namespace") or "", o["metadata"]["name"]): o for o in self.backend.list(kind)
            }
            index = self._labels[kind] = {}
            for key, obj in objects.items():
                for pair in (obj["metadata"].get("labels") or {}).items():
                    index.setdefault(pair, set()).add(key)
        return objects

    def _index(self, kind: str, key: _Key, old: Object | None, new: Object | None) -> None:
        index = self._labels[kind]
        before = (old["metadata"].get("labels") or {}) if old is not None else {}
        after = (new["metadata"].get("labels") or {}) if new is not None else {}
        if before == after:
            return
        for pair in before.items():
            keys = index.get(pair)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[pair]
        for pair in after.items():
            index.setdefault(pair, set()).add(key)

    def select(self, kind: str, namespace: str | None, selector: Selector) -> list[Object]:
        """Stored objects in `namespace` (None: all) matching `selector`, shared (do not mutate), unsorted.

        A selector that pins a label to one value (`app=web`) only looks at the objects carrying it.
        """
        objects = self._kind(kind)
        narrowest: set[_Key] | None = None
        for req in selector:
            value = selector.requires_exact_match(req.key)
            if value is not None:
                keys = self._labels[kind].get((req.key, value), set())
                if narrowest is None or len(keys) < len(narrowest):
                    narrowest = keys
        found = []
        for key in objects.keys() if narrowest is None else narrowest:
            obj = objects[key]
            if (namespace is None or key[0] == namespace) and selector.matches(obj["metadata"].get("labels") or {}):
                found.append(obj)
        return found

    # -- group commit ----------------------------------------------------------------------------------
    def listen(self, kind: str, listener: Listener) -> None:
        """Call `listener` for every object of `kind` now, then after every write of one."""
        self._listeners.setdefault(kind, []).append(listener)
        for key, obj in self._kind(kind).items():
            listener(key, obj)

    @contextmanager
    def batch(self, mode: CommitMode = "sync") -> Iterator[None]:
        """Group commit: the writes inside are appended to the journal without a flash sync each.

        "sync": on leaving, if anything is not yet on flash (these writes or earlier "defer" ones), renew the
        master's Lease durably: that one fdatasync of the journal makes every write before it durable too, so
        a pass that binds 500 pods costs one SD-card flush, not 500. "defer": leave the sync to the next
        "sync" batch; whoever acknowledges these writes must wait for it. "lazy": no sync is owed (pod status
        that agents report again anyway); the writes reach flash with the next sync or the kernel's writeback.
        A store that is not durable, or not journal-backed, is left alone.
        """
        storage = getattr(self.backend, "storage", None)
        if self._batching or not isinstance(storage, JournalStorage) or not storage.durable:
            yield
            return
        self._batching = True
        before = self.writes
        storage.durable = False
        try:
            yield
        finally:
            storage.durable = True
            self._batching = False
            if mode != "lazy" and self.writes != before:
                self.unsynced = True
            if mode == "sync" and self.unsynced:
                self.unsynced = False
                self._renew_lease()

    def _renew_lease(self) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        try:
            lease = self.peek(LEASE_KIND, LEASE_NAMESPACE, LEASE_NAME)
        except NotFoundError:
            self.create(
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": LEASE_KIND,
                    "metadata": {"name": LEASE_NAME, "namespace": LEASE_NAMESPACE},
                    "spec": {"holderIdentity": LEASE_NAME, "renewTime": now},
                }
            )
            return
        self.update({**lease, "spec": {**lease["spec"], "renewTime": now}})

    # -- zero-copy reads -------------------------------------------------------------------------------
    def objects(self, kind: str) -> Mapping[_Key, Object]:
        """Every stored object of a kind by (namespace, name); live and shared: do not mutate."""
        return self._kind(kind)

    def peek(self, kind: str, namespace: str, name: str) -> Object:
        """The stored object, shared (do not mutate); NotFoundError if absent."""
        obj = self._kind(kind).get((namespace, name))
        if obj is None:
            ref = f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"
            raise NotFoundError(f"{ref} not found")
        return obj

    # -- StateStore ------------------------------------------------------------------------------------
    def create(self, obj: Mapping[str, Any]) -> Object:
        created = self.backend.create(obj)
        self.writes += 1
        self._remember(created)
        return created

    def update(self, obj: Mapping[str, Any]) -> Object:
        updated = self.backend.update(obj)
        self.writes += 1
        self._remember(updated)
        return updated

    def delete(self, kind: str, namespace: str, name: str, resource_version: str | None = None) -> Object:
        deleted = self.backend.delete(kind, namespace, name, resource_version)
        self.writes += 1
        old = self._kind(kind).pop((namespace, name), None)
        self._index(kind, (namespace, name), old, None)
        for listener in self._listeners.get(kind, ()):
            listener((namespace, name), None)
        return deleted

    def get(self, kind: str, namespace: str, name: str) -> Object:
        """A fresh copy, as the StateStore promises, from memory (the backend's reads cost O(table))."""
        return copy(self.peek(kind, namespace, name))

    def list(self, kind: str, namespace: str | None = None) -> ObjectList:
        found = [copy(o) for (ns, _), o in self._kind(kind).items() if namespace is None or ns == namespace]
        found.sort(key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))
        return found

    def close(self) -> None:
        self.backend.close()

    def _remember(self, obj: Object) -> None:
        # The backend returns its own fresh copy; keep that one and hand the caller a reference to it too.
        meta = obj["metadata"]
        key = (meta.get("namespace") or "", meta["name"])
        objects = self._kind(obj["kind"])
        self._index(obj["kind"], key, objects.get(key), obj)
        objects[key] = obj
        for listener in self._listeners.get(obj["kind"], ()):
            listener(key, obj)


def copy(obj: Object) -> Object:
    """A deep copy of a JSON object (through orjson: several times faster than copy.deepcopy)."""
    result: Object = jsoncodec.copy(obj)
    return result
