"""Dirty-tracking JSON containers; JournalStorage hands them to TinyDB to learn which documents changed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, SupportsIndex

# TinyDB mutates the documents that Storage.read() returns (Table.update does doc.update(fields), callables
# mutate in place) and then passes the same objects back to write().  Comparing every document with its last
# written form costs a full serialisation per change, so instead each container reports its first mutation
# to the Cell of the document it belongs to.  Only the mutators below can change a dict or list, so the
# report cannot be missed (short of dict.__setitem__(obj, ...) trickery).


class Cell:
    """The dirty flag of one stored document, shared by every container inside it."""

    __slots__ = ("dirty", "doc_id", "on_dirty", "table")

    def __init__(self, table: str, doc_id: str, on_dirty: Callable[[Cell], None]) -> None:
        self.table = table
        self.doc_id = doc_id
        self.on_dirty = on_dirty
        self.dirty = False

    def touch(self) -> None:
        if not self.dirty:
            self.dirty = True
            self.on_dirty(self)


class TrackedDict(dict[str, Any]):
    __slots__ = ("cell",)
    cell: Cell

    def __setitem__(self, key: str, value: Any) -> None:
        self.cell.touch()
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.cell.touch()
        super().__delitem__(key)

    def __ior__(self, other: Any) -> TrackedDict:  # type: ignore[override,misc]
        self.cell.touch()
        return super().__ior__(other)

    def clear(self) -> None:
        self.cell.touch()
        super().clear()

    def pop(self, key: str, *default: Any) -> Any:
        self.cell.touch()
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, Any]:
        self.cell.touch()
        return super().popitem()

    def setdefault(self, key: str, default: Any = None) -> Any:
        self.cell.touch()
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.cell.touch()
        super().update(*args, **kwargs)


class TrackedList(list[Any]):
    __slots__ = ("cell",)
    cell: Cell

    def __setitem__(self, index: Any, value: Any) -> None:
        self.cell.touch()
        super().__setitem__(index, value)

    def __delitem__(self, index: SupportsIndex | slice) -> None:
        self.cell.touch()
        super().__delitem__(index)

    def __iadd__(self, other: Iterable[Any]) -> TrackedList:  # type: ignore[misc]
        self.cell.touch()
        return super().__iadd__(other)

    def __imul__(self, count: SupportsIndex) -> TrackedList:
        self.cell.touch()
        return super().__imul__(count)

    def append(self, value: Any) -> None:
        self.cell.touch()
        super().append(value)

    def extend(self, values: Iterable[Any]) -> None:
        self.cell.touch()
        super().extend(values)

    def insert(self, index: SupportsIndex, value: Any) -> None:
        self.cell.touch()
        super().insert(index, value)

    def pop(self, index: SupportsIndex = -1) -> Any:
        self.cell.touch()
        return super().pop(index)

    def remove(self, value: Any) -> None:
        self.cell.touch()
        super().remove(value)

    def clear(self) -> None:
        self.cell.touch()
        super().clear()

    def sort(self, *args: Any, **kwargs: Any) -> None:
        self.cell.touch()
        super().sort(*args, **kwargs)

    def reverse(self) -> None:
        self.cell.touch()
        super().reverse()


def track(value: Any, cell: Cell) -> Any:
    """Deep-copy a JSON value into tracked containers reporting to cell; the copy is the caller's alone."""
    if isinstance(value, dict):
        # dict.__init__ inserts at C level, so building the copy does not mark the cell dirty.
        out = TrackedDict({key: track(item, cell) for key, item in value.items()})
        out.cell = cell
        return out
    if isinstance(value, list | tuple):
        seq = TrackedList([track(item, cell) for item in value])
        seq.cell = cell
        return seq
    return value


def plain(value: Any) -> Any:
    """Deep-copy a JSON value into plain dicts and lists (callers may mutate the copy freely)."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


class TableCopy(dict[str, Any]):
    """A table as read() hands it out, remembering which doc ids were assigned or removed since.

    changed is None once an operation with unknown keys (clear, update, |=) ran: the caller must then
    compare the whole table.  source and version say which stored table, in which state, it copies.
    """

    __slots__ = ("changed", "source", "version")
    changed: set[str] | None
    source: object
    version: int

    def _note(self, key: str) -> None:
        if self.changed is not None:
            self.changed.add(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self._note(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self._note(key)
        super().__delitem__(key)

    def __ior__(self, other: Any) -> TableCopy:  # type: ignore[override,misc]
        self.changed = None
        return super().__ior__(other)

    def clear(self) -> None:
        self.changed = None
        super().clear()

    def pop(self, key: str, *default: Any) -> Any:
        self._note(key)
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, Any]:
        key, value = super().popitem()
        self._note(key)
        return key, value

    def setdefault(self, key: str, default: Any = None) -> Any:
        self._note(key)
        return super().setdefault(key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.changed = None
        super().update(*args, **kwargs)


def table_copy(docs: dict[str, Any], source: object, version: int) -> TableCopy:
    # dict.__init__ copies at C speed and bypasses __setitem__, so the copy starts with nothing changed.
    copy = TableCopy(docs)
    copy.changed, copy.source, copy.version = set(), source, version
    return copy
