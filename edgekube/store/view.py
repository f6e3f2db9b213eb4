"""TableView: a stored table as JournalStorage.read() hands it to TinyDB; documents are parsed on access."""

from __future__ import annotations

from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, MutableMapping, ValuesView
from typing import Any

from edgekube.model import jsoncodec

_MISSING: Any = object()
_GONE: Any = object()  # in the overlay: removed through this view


class TableView(MutableMapping[str, Any]):
    """The store keeps each document as its JSON text; a view parses a document when it is asked for it.

    So every document TinyDB (or its caller) gets is a private copy: mutating one changes nothing stored until
    TinyDB writes it back. TinyDB reads the whole storage for each operation and edits what it read (InPlaceTable
    inserts and removes documents in it, updates mutate them): the view costs O(1) to make, keeps what it parsed
    or was given in an overlay, and `touched()` tells write() which documents to compare with their text, so
    a change costs O(changed documents), never O(table). `source` and `version` say which stored table, in
    which state, the view shows. Iterating parses every document, on a snapshot of the ids, so a caller may
    write while it walks the table.
    """

    __slots__ = ("_over", "_size", "_texts", "cleared", "source", "version")

    def __init__(self, texts: Mapping[str, str], source: object, version: int) -> None:
        self._texts = texts
        self._over: dict[str, Any] = {}
        self._size = len(texts)
        #: clear() ran: nothing of the stored table shows any more, only what was set since.
        self.cleared = False
        self.source = source
        self.version = version

    def __getitem__(self, key: str) -> Any:
        value = self._over.get(key, _MISSING)
        if value is _MISSING:
            if self.cleared:
                raise KeyError(key)
            value = self._over[key] = jsoncodec.loads(self._texts[key])
        elif value is _GONE:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        value = self._over.get(key, _MISSING)  # type: ignore[call-overload]
        if value is _MISSING:
            return not self.cleared and key in self._texts
        return value is not _GONE

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self:
            self._size += 1
        self._over[key] = value

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._size -= 1
        self._over[key] = _GONE

    def __len__(self) -> int:
        return self._size

    def _ids(self) -> list[str]:
        if self.cleared:
            return [key for key, value in self._over.items() if value is not _GONE]
        ids = [key for key in self._texts if self._over.get(key) is not _GONE]
        ids += [key for key, value in self._over.items() if value is not _GONE and key not in self._texts]
        return ids

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids())

    def keys(self) -> KeysView[str]:
        return dict.fromkeys(self._ids()).keys()

    def values(self) -> ValuesView[Any]:
        return self.snapshot().values()

    def items(self) -> ItemsView[str, Any]:
        return self.snapshot().items()

    def clear(self) -> None:
        self._over, self._size, self.cleared = {}, 0, True

    def snapshot(self) -> dict[str, Any]:
        """Every document, parsed: a plain dict (O(table))."""
        return {key: self[key] for key in self._ids()}

    def touched(self) -> Iterable[tuple[str, Any]]:
        """(id, document) for every document set or handed out through this view; document None: removed."""
        return ((key, None if value is _GONE else value) for key, value in self._over.items())
