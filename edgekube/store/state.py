"""TinyStateStore: the StateStore on TinyDB (JournalStorage or MemoryStorage); built by the master."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping, MutableMapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from tinydb import TinyDB
from tinydb.storages import MemoryStorage, Storage
from tinydb.table import Document, Table

from edgekube.model import jsoncodec
from edgekube.model.errors import ConflictError, NotFoundError, StoreError, ValidationError
from edgekube.store.journal import DEFAULT_COMPACTION_MIN_BYTES, JournalStorage
from edgekube.store.protocol import Object, ObjectList
from edgekube.store.table import InPlaceTinyDB

# One table per kind; this one holds the resourceVersion high-water mark.  Kinds are Kubernetes
# identifiers and never start with "_", so it cannot collide with a kind.
_META_TABLE = "_meta"
_META_DOC_ID = 1


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _ref(kind: str, namespace: str, name: str) -> str:
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def _key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    if not isinstance(obj, Mapping):
        raise ValidationError(f"a stored object must be a mapping, not {type(obj).__name__}")
    kind = obj.get("kind")
    if not isinstance(kind, str) or not kind or kind.startswith("_"):
        raise ValidationError(f"kind must be a non-empty string not starting with '_', got {kind!r}")
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping):
        raise ValidationError(f"{kind}: metadata must be a mapping")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise ValidationError(f"{kind}: metadata.name must be a non-empty string, got {name!r}")
    namespace = metadata.get("namespace") or ""
    if not isinstance(namespace, str):
        raise ValidationError(f"{_ref(kind, '', name)}: metadata.namespace must be a string")
    return kind, namespace, name


class TinyStateStore:
    """StateStore keeping one TinyDB table per kind and an in-memory index (kind, namespace, name) -> doc id.

    path is the store's directory (JournalStorage) or None for TinyDB's MemoryStorage.  A ready TinyDB
    Storage may be passed instead (path must then be None).  durable and the compaction settings go to
    JournalStorage (durable=False: safe against crashes, may lose the last seconds on power loss).
    Thread-safe: one lock around every call.  The store does not default namespaces: an object without
    metadata.namespace is keyed under "", as cluster-scoped kinds are; the API layer fills it in.

    resourceVersion survives restarts without a second write per change: on open the counter resumes
    from the highest version of any stored object, and the only version that could vanish with its
    object, the newest one, is saved to the _meta table before a delete removes it.
    """

    def __init__(
        self,
        path: Path | None,
        *,
        durable: bool = True,
        compaction_min_bytes: int = DEFAULT_COMPACTION_MIN_BYTES,
        compaction_ratio: float = 2.0,
        storage: Storage | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if storage is not None and path is not None:
            raise ValueError("pass either a path or a storage, not both")
        if storage is None:
            storage = (
                MemoryStorage()  # type: ignore[no-untyped-call]  # tinydb leaves __init__ unannotated
                if path is None
                else JournalStorage(
                    path,
                    durable=durable,
                    compaction_min_bytes=compaction_min_bytes,
                    compaction_ratio=compaction_ratio,
                )
            )
        ready = storage
        #: JournalStorage keeps documents as JSON text and parses a fresh copy for every read (MemoryStorage keeps
        #: and hands out the very objects it was given): with it no copy is needed to keep callers apart.
        self._private = isinstance(storage, JournalStorage)
        self._db: TinyDB = InPlaceTinyDB(storage=lambda: ready)
        self._clock = clock
        self._lock = threading.RLock()
        self._closed = False
        self._tables: dict[str, Table] = {}
        self._index: dict[str, dict[tuple[str, str], int]] = {}
        self._rv = 0
        self._rv_saved = 0
        self._load()

    @property
    def storage(self) -> Storage:
        storage: Storage = self._db.storage
        return storage

    def _load(self) -> None:
        for kind in self._db.tables():
            table = self._table(kind)
            if kind == _META_TABLE:
                meta = table.get(doc_id=_META_DOC_ID)
                if meta is not None:
                    self._rv_saved = int(meta["resourceVersion"])
                continue
            index = self._index.setdefault(kind, {})
            for doc in table.all():
                metadata = doc["metadata"]
                index[(metadata.get("namespace") or "", metadata["name"])] = doc.doc_id
                self._rv = max(self._rv, int(metadata["resourceVersion"]))
        self._rv = max(self._rv, self._rv_saved)

    def _table(self, kind: str) -> Table:
        table = self._tables.get(kind)
        if table is None:
            table = self._tables[kind] = self._db.table(kind)
        return table

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("the state store is closed")

    def _copy(self, doc: Mapping[str, Any]) -> Object:
        """A read document for the caller to keep: a fresh parse already (JournalStorage), else a deep copy."""
        return dict(doc) if self._private else jsoncodec.copy(doc)

    def _find(self, kind: str, namespace: str, name: str) -> tuple[int, Document]:
        doc_id = self._index.get(kind, {}).get((namespace, name))
        if doc_id is None:
            raise NotFoundError(f"{_ref(kind, namespace, name)} not found")
        doc = self._table(kind).get(doc_id=doc_id)
        if doc is None:  # only if someone wrote to the TinyDB file behind our back
            raise StoreError(f"{_ref(kind, namespace, name)} is indexed but missing from the store")
        return doc_id, doc

    def _now(self) -> str:
        return self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    # -- StateStore ------------------------------------------------------------------------------------

    def create(self, obj: Mapping[str, Any]) -> Object:
        kind, namespace, name = _key(obj)
        with self._lock:
            self._check_open()
            if (namespace, name) in self._index.get(kind, {}):
                raise ConflictError(
                    f"{_ref(kind, namespace, name)} already exists",
                    hint="update the existing object, or delete it first",
                )
            # Our own copy: MemoryStorage keeps the nested objects of what it is given.
            new: Object = jsoncodec.copy(obj)
            metadata = new["metadata"]
            metadata.setdefault("uid", str(uuid.uuid4()))
            metadata["creationTimestamp"] = self._now()
            version = self._rv + 1
            metadata["resourceVersion"] = str(version)
            doc_id = self._table(kind).insert(new)
            self._rv = version
            self._index.setdefault(kind, {})[(namespace, name)] = doc_id
            return new if self._private else jsoncodec.copy(new)

    def update(self, obj: Mapping[str, Any]) -> Object:
        kind, namespace, name = _key(obj)
        with self._lock:
            self._check_open()
            doc_id, current = self._find(kind, namespace, name)
            stored_meta = current["metadata"]
            given_meta = obj["metadata"]
            given_rv = given_meta.get("resourceVersion")
            if given_rv is not None and str(given_rv) != stored_meta["resourceVersion"]:
                raise ConflictError(
                    f"{_ref(kind, namespace, name)}: resourceVersion {given_rv} is stale, "
                    f"the stored one is {stored_meta['resourceVersion']}",
                    hint="get the object again, reapply the change and retry",
                )
            given_uid = given_meta.get("uid")
            if given_uid is not None and given_uid != stored_meta["uid"]:
                raise ConflictError(
                    f"{_ref(kind, namespace, name)}: uid {given_uid} does not match the stored {stored_meta['uid']}",
                    hint="the object was deleted and recreated; get it again",
                )
            new: Object = jsoncodec.copy(obj)
            metadata = new["metadata"]
            metadata["uid"] = stored_meta["uid"]
            metadata["creationTimestamp"] = stored_meta["creationTimestamp"]
            version = self._rv + 1
            metadata["resourceVersion"] = str(version)

            def replace(doc: MutableMapping[str, Any]) -> None:
                doc.clear()
                doc.update(new)

            self._table(kind).update(replace, doc_ids=[doc_id])
            self._rv = version
            return new if self._private else jsoncodec.copy(new)

    def get(self, kind: str, namespace: str, name: str) -> Object:
        with self._lock:
            self._check_open()
            result: Object = self._copy(self._find(kind, namespace, name)[1])
            return result

    def list(self, kind: str, namespace: str | None = None) -> ObjectList:
        with self._lock:
            self._check_open()
            if kind not in self._index:
                return []
            found: ObjectList = [
                self._copy(doc)
                for doc in self._table(kind).all()
                if namespace is None or (doc["metadata"].get("namespace") or "") == namespace
            ]
        found.sort(key=lambda obj: (obj["metadata"].get("namespace") or "", obj["metadata"]["name"]))
        return found

    def delete(self, kind: str, namespace: str, name: str, resource_version: str | None = None) -> Object:
        with self._lock:
            self._check_open()
            doc_id, current = self._find(kind, namespace, name)
            stored_rv = current["metadata"]["resourceVersion"]
            if resource_version is not None and str(resource_version) != stored_rv:
                raise ConflictError(
                    f"{_ref(kind, namespace, name)}: resourceVersion {resource_version} is stale, "
                    f"the stored one is {stored_rv}",
                    hint="get the object again and retry the delete",
                )
            if int(stored_rv) > self._rv_saved:
                # This object may carry the newest version ever issued; once it is gone, the restart
                # counter must still start above it.
                high_water = Document({"resourceVersion": str(self._rv)}, doc_id=_META_DOC_ID)
                self._table(_META_TABLE).upsert(high_water)
                self._rv_saved = self._rv
            self._table(kind).remove(doc_ids=[doc_id])
            del self._index[kind][(namespace, name)]
            result: Object = self._copy(current)
            return result

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    def __enter__(self) -> TinyStateStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
