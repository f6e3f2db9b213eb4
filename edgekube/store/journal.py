"""Crash-safe TinyDB Storage: an append-only journal of per-document changes plus compacted snapshots.

Used by TinyStateStore (state.py); plain TinyDB works too: ``InPlaceTinyDB(directory, storage=JournalStorage)``
(table.py) costs O(change) per write, stock ``TinyDB(...)`` O(table) CPU (it rebuilds each table dict per write).

Files in the directory (see files.py for the byte format):

    state.snapshot        all tables as of sequence number S (header line with seq, length, crc32)
    state.snapshot.prev   the snapshot before that (sequence P), used when state.snapshot fails its checksum
    state.journal.<B>     one line per write() with sequence numbers > B; journals for P and S are kept
    state.lock            flock'd while open, so two processes never append to the same journal

Opening loads the newest intact snapshot, replays every intact journal record newer than it in sequence
order, and drops a torn tail (an append cut short by a crash).  Anything stranger (a damaged snapshot,
damaged records before intact ones, a missing journal, an interrupted compaction) is logged and repaired
by compacting at once.  Both snapshots damaged is media failure, not a crash: StoreError, never an empty
store that the master would take for the truth.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tinydb.storages import Storage

from edgekube.model.errors import StoreError
from edgekube.store import files
from edgekube.store.view import TableView

log = logging.getLogger(__name__)

SNAPSHOT = "state.snapshot"
SNAPSHOT_PREV = "state.snapshot.prev"
SNAPSHOT_TMP = "state.snapshot.tmp"
JOURNAL_PREFIX = "state.journal."
LOCK = "state.lock"

DEFAULT_COMPACTION_MIN_BYTES = 1 << 20

_RESTORE_HINT = "restore the directory from a backup; starting empty would make the master forget the cluster"


@dataclass(frozen=True)
class Recovery:
    """What opening the store found on disk; tests and the master's startup log read it."""

    snapshot: Literal["current", "previous", "none"]
    snapshot_seq: int
    replayed: int  # journal records applied on top of the snapshot
    torn_tail: bool  # an append cut short by a crash was dropped (normal after kill -9 or power loss)
    dropped: int  # damaged records skipped although later ones were intact (media damage)
    gaps: int  # holes in the sequence numbers: changes known to be lost
    problems: tuple[str, ...]  # what made opening compact at once to repair the directory

    @property
    def repaired(self) -> bool:
        return bool(self.problems)


class _Table:
    __slots__ = ("texts", "version")

    def __init__(self) -> None:
        # texts holds each document as the JSON last written (parsed only when read: a pod costs ~1 KiB of
        # memory, not the ~10 KiB of its dicts); version counts changes, so write() can tell whether a
        # TableView still describes texts.
        self.texts: dict[str, str] = {}
        self.version = 0


class JournalStorage(Storage):
    """TinyDB Storage writing O(change) bytes per write and surviving kill -9 at any point.

    durable=True fdatasyncs every append: a write that returned survives power loss, at the price of one
    flash write (and its latency, milliseconds on an SD card) per change.  durable=False leaves appends
    in the page cache: still safe against a process crash (kill -9, OOM), but power loss can lose the
    last seconds of acknowledged changes (never the store's consistency: the torn tail is dropped and
    snapshots are always fsynced before they are renamed into place).

    Compaction rewrites the snapshot when the journal grows past
    max(compaction_min_bytes, compaction_ratio * snapshot size), so its cost amortises to a fraction of
    a document per change.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        durable: bool = True,
        compaction_min_bytes: int = DEFAULT_COMPACTION_MIN_BYTES,
        compaction_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        self.directory = Path(path)
        self.durable = durable
        self.compaction_min_bytes = compaction_min_bytes
        self.compaction_ratio = compaction_ratio
        self._tables: dict[str, _Table] = {}
        self._seq = 0
        self._base_seq = 0  # sequence number of state.snapshot (0: no snapshot, the empty store)
        self._prev_seq = 0  # oldest state we can still rebuild: journals from here on are kept
        self._snapshot_ok = False  # state.snapshot exists and is intact
        self._snapshot_bytes = 0
        self._journal_fd = -1
        self._journal_base = 0
        self._journal_bytes = 0
        self._compact_at = compaction_min_bytes
        self._broken: str | None = None
        self._lock_fd = -1
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock()
            self.recovery = self._recover()
        except OSError as exc:
            self.close()
            raise StoreError(
                f"cannot open the state store in {self.directory}: {exc}",
                hint="check that the directory exists, is writable and the SD card is not full",
            ) from exc
        except BaseException:
            self.close()
            raise

    # -- TinyDB Storage interface ---------------------------------------------------------------------

    def read(self) -> dict[str, Any]:  # table name -> TableView (a Mapping, not the dict TinyDB's stubs say)
        self._check_open()
        # A fresh outer dict (TinyDB replaces tables[name] and deletes tables in it) of views: each document is
        # parsed when asked for, so whatever TinyDB or a caller does to it changes nothing until write().
        return {name: TableView(table.texts, table, table.version) for name, table in self._tables.items()}

    def write(self, data: dict[str, Any]) -> None:  # table name -> a Mapping of doc id -> document
        self._check_open()
        if self._broken is not None:
            raise StoreError(
                f"the state store in {self.directory} refuses writes: {self._broken}",
                hint="restart the master; reopening the store recovers from the journal",
            )
        ops: list[str] = []
        staged: list[tuple[str, str, str | None]] = []  # (table, doc_id, text or None=delete)
        created: list[str] = []
        dropped: list[str] = []
        for name, docs in data.items():
            # TinyDB hands over str ids; other callers may not, and the journal only has strings.
            keyed: Mapping[str, Any] = docs
            if docs and type(docs) is not TableView and type(next(iter(docs))) is not str:
                keyed = {str(doc_id): doc for doc_id, doc in docs.items()}
            self._diff_table(name, keyed, ops, staged, created)
        for name in self._tables:
            if name not in data:
                ops.append(files.op_rm(name))
                dropped.append(name)
        if ops:
            # Nothing in memory changes before the record is in the journal: a failed append leaves no trace.
            self._append(files.encode_record(self._seq + 1, ops))
            self._seq += 1
            self._commit(staged, created, dropped)
        if self._journal_bytes >= self._compact_at:
            self._compact_quietly()

    def close(self) -> None:
        if self._journal_fd >= 0:
            os.close(self._journal_fd)
            self._journal_fd = -1
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = -1

    # -- public extras ---------------------------------------------------------------------------------

    @property
    def seq(self) -> int:
        """Sequence number of the last durable write()."""
        return self._seq

    @property
    def journal_bytes(self) -> int:
        return self._journal_bytes

    def compact(self) -> None:
        """Write a snapshot of everything, start a new journal and drop journals nothing needs any more."""
        self._check_open()
        if self._seq != self._base_seq or not self._snapshot_ok:
            self._compact()

    def _compact(self) -> None:
        seq = self._seq
        data = files.encode_snapshot(seq, {name: table.texts for name, table in self._tables.items()})
        snapshot = self.directory / SNAPSHOT
        tmp = self.directory / SNAPSHOT_TMP
        files.write_durably(tmp, data)
        # The new journal exists (empty) before the snapshot naming it is in place, so after a crash at
        # any point below every record is still in some journal that the surviving snapshot replays.
        journal_fd = self._open_journal(seq, truncate=True)
        new_prev = self._prev_seq  # a damaged or missing state.snapshot never becomes the fallback
        try:
            if self._snapshot_ok:
                os.replace(snapshot, self.directory / SNAPSHOT_PREV)
                self._snapshot_ok, self._prev_seq = False, self._base_seq
                new_prev = self._base_seq
            os.replace(tmp, snapshot)
            files.fsync_dir(self.directory)
        except BaseException:
            os.close(journal_fd)
            if seq != self._journal_base:
                (self.directory / f"{JOURNAL_PREFIX}{seq}").unlink(missing_ok=True)
            raise
        if self._journal_fd >= 0:
            os.close(self._journal_fd)
        self._journal_fd, self._journal_base, self._journal_bytes = journal_fd, seq, 0
        self._base_seq, self._prev_seq, self._snapshot_ok = seq, new_prev, True
        self._snapshot_bytes = len(data)
        self._compact_at = self._threshold(len(data))
        for base, path in self._journals():
            if base < new_prev:
                path.unlink(missing_ok=True)

    # -- writing ---------------------------------------------------------------------------------------

    def _diff_table(
        self,
        name: str,
        docs: Mapping[str, Any],
        ops: list[str],
        staged: list[tuple[str, str, str | None]],
        created: list[str],
    ) -> None:
        table = self._tables.get(name)
        if table is None:
            ops.append(files.op_mk(name))
            created.append(name)
            table = _Table()
        texts = table.texts

        def stage(doc_id: str, doc: Any) -> None:
            text = files.dumps(doc)
            if text != texts.get(doc_id):
                ops.append(files.op_put(name, doc_id, text))
                staged.append((name, doc_id, text))

        def remove(doc_id: str) -> None:
            ops.append(files.op_del(name, doc_id))
            staged.append((name, doc_id, None))

        # Our own view of the current table, as InPlaceTable writes it back: only the documents it handed out
        # or was given can differ from their text, O(changes).
        if type(docs) is TableView and docs.source is table and docs.version == table.version:
            if docs.cleared:
                for doc_id in texts:
                    if doc_id not in docs:
                        remove(doc_id)
            for doc_id, doc in docs.touched():
                if doc is not None:
                    stage(doc_id, doc)
                elif doc_id in texts and not docs.cleared:
                    remove(doc_id)
            return

        # Anything else (stock TinyDB rebuilds the table dict per write, foreign callers): compare every entry.
        matched = 0
        for doc_id, doc in docs.items():
            matched += doc_id in texts
            stage(doc_id, doc)
        if matched != len(texts):
            for doc_id in texts:
                if doc_id not in docs:
                    remove(doc_id)

    def _commit(self, staged: list[tuple[str, str, str | None]], created: list[str], dropped: list[str]) -> None:
        for name in created:
            self._tables[name] = _Table()
        for name in dropped:
            del self._tables[name]
        for name, doc_id, text in staged:
            table = self._tables[name]
            table.version += 1
            if text is None:
                del table.texts[doc_id]
            else:
                table.texts[doc_id] = text

    def _append(self, line: bytes) -> None:
        start = self._journal_bytes
        try:
            files.write_all(self._journal_fd, line)
            if self.durable:
                files.datasync(self._journal_fd)
        except OSError as exc:
            try:
                # A half-written line would swallow the next record appended after it.
                os.ftruncate(self._journal_fd, start)
            except OSError as trunc_exc:
                self._broken = f"a failed append could not be undone ({trunc_exc})"
            raise StoreError(
                f"cannot append to the state journal in {self.directory}: {exc}",
                hint="the change was not stored; check free space and the SD card",
            ) from exc
        self._journal_bytes = start + len(line)

    def _threshold(self, snapshot_bytes: int) -> int:
        return max(self.compaction_min_bytes, int(self.compaction_ratio * snapshot_bytes))

    def _compact_quietly(self) -> None:
        try:
            self._compact()
        except OSError as exc:
            # The change itself is durable in the journal; compaction can wait.
            self._compact_at = self._journal_bytes + self.compaction_min_bytes
            log.warning("state store compaction in %s failed, will retry later: %s", self.directory, exc)

    # -- opening ---------------------------------------------------------------------------------------

    def _lock(self) -> None:
        self._lock_fd = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise StoreError(
                f"the state store in {self.directory} is already open in another process",
                hint="stop the other edgekube master first",
            ) from exc

    def _journals(self) -> list[tuple[int, Path]]:
        found: list[tuple[int, Path]] = []
        for path in self.directory.glob(JOURNAL_PREFIX + "*"):
            suffix = path.name[len(JOURNAL_PREFIX) :]
            if suffix.isdigit():
                found.append((int(suffix), path))
        return sorted(found)

    def _open_journal(self, base: int, *, truncate: bool) -> int:
        path = self.directory / f"{JOURNAL_PREFIX}{base}"
        existed = path.exists()
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if truncate else 0)
        fd = os.open(path, flags, 0o644)
        if not existed:
            files.fsync_dir(self.directory)
        return fd

    def _load_snapshot(self, name: str, *, parse: bool) -> tuple[int, dict[str, dict[str, Any]], int] | None:
        """Return (seq, tables, size); None if absent; raise SnapshotInvalid if damaged."""
        try:
            data = (self.directory / name).read_bytes()
        except FileNotFoundError:
            return None
        if parse:
            seq, tables = files.decode_snapshot(data)
            return seq, tables, len(data)
        return files.snapshot_seq(data), {}, len(data)

    def _recover(self) -> Recovery:
        abnormal: list[str] = []
        tmp = self.directory / SNAPSHOT_TMP
        if tmp.exists():
            abnormal.append("interrupted compaction")
            tmp.unlink()

        source: Literal["current", "previous", "none"] = "none"
        tables: dict[str, dict[str, Any]] = {}
        current_damaged = False
        try:
            loaded = self._load_snapshot(SNAPSHOT, parse=True)
        except files.SnapshotInvalid as exc:
            log.error("state store %s: %s is damaged (%s)", self.directory, SNAPSHOT, exc)
            abnormal.append(f"damaged {SNAPSHOT}")
            loaded, current_damaged = None, True
        if loaded is not None:
            source = "current"
            self._base_seq, tables, self._snapshot_bytes = loaded
            self._snapshot_ok = True
            try:
                prev = self._load_snapshot(SNAPSHOT_PREV, parse=False)
                self._prev_seq = prev[0] if prev is not None else 0
            except files.SnapshotInvalid:
                abnormal.append(f"damaged {SNAPSHOT_PREV}")
                self._prev_seq = self._base_seq
        else:
            try:
                prev = self._load_snapshot(SNAPSHOT_PREV, parse=True)
            except files.SnapshotInvalid as exc:
                raise StoreError(
                    f"both snapshots of the state store in {self.directory} are damaged ({exc})",
                    hint=_RESTORE_HINT,
                ) from exc
            if prev is not None:
                source = "previous"
                self._base_seq, tables, self._snapshot_bytes = prev
                self._prev_seq = self._base_seq
                if not current_damaged:
                    abnormal.append("interrupted compaction")  # between the two renames
            elif current_damaged:
                raise StoreError(
                    f"the state store snapshot in {self.directory} is damaged and there is no previous one",
                    hint=_RESTORE_HINT,
                )

        for name, docs in tables.items():
            table = self._tables[name] = _Table()
            for doc_id, doc in docs.items():
                table.texts[doc_id] = files.dumps(doc)
        self._seq = loaded_seq = self._base_seq

        replayed, dropped, gaps, torn_tail, torn_end = self._replay(abnormal)

        journals = self._journals()
        if journals and journals[-1][0] != self._base_seq:
            abnormal.append("journal does not match the snapshot")
        if abnormal:
            log.warning("state store %s: repairing on open (%s)", self.directory, ", ".join(abnormal))
            self._compact()
        else:
            self._journal_fd = self._open_journal(self._base_seq, truncate=False)
            self._journal_base = self._base_seq
            if torn_end is not None:
                # Cut the torn tail off, or the next append would land behind garbage.
                os.ftruncate(self._journal_fd, torn_end)
                files.datasync(self._journal_fd)
            self._journal_bytes = os.fstat(self._journal_fd).st_size
            self._compact_at = self._threshold(self._snapshot_bytes)
            if self._journal_bytes >= self._compact_at:
                self._compact()
        return Recovery(source, loaded_seq, replayed, torn_tail, dropped, gaps, tuple(dict.fromkeys(abnormal)))

    def _replay(self, abnormal: list[str]) -> tuple[int, int, int, bool, int | None]:
        """Apply journal records newer than the snapshot; return (replayed, dropped, gaps, torn, cut_at)."""
        records: list[tuple[int, list[Any]]] = []
        dropped = 0
        torn_tail = False
        torn_end: int | None = None
        journals = self._journals()
        for index, (base, path) in enumerate(journals):
            if index + 1 < len(journals) and journals[index + 1][0] <= self._seq:
                # Kept for the previous snapshot only: every record in it is older than the snapshot loaded.
                continue
            scan = files.decode_journal(path.read_bytes())
            records.extend(scan.records)
            dropped += scan.corrupt
            if scan.corrupt:
                log.error("state store: skipped %d damaged record(s) in %s", scan.corrupt, path)
                abnormal.append(f"damaged records in {path.name}")
            if scan.torn_tail:
                torn_tail = True
                if index == len(journals) - 1 and base == self._base_seq:
                    torn_end = scan.valid_end
                else:
                    abnormal.append(f"torn tail in {path.name}")
        records.sort(key=lambda record: record[0])
        replayed = gaps = 0
        for seq, ops in records:
            if seq <= self._seq:
                continue
            if seq != self._seq + 1:
                gaps += 1
                log.error("state store %s: changes %d..%d are lost", self.directory, self._seq + 1, seq - 1)
                abnormal.append("sequence gap")
            self._apply(ops)
            self._seq = seq
            replayed += 1
        return replayed, dropped, gaps, torn_tail, torn_end

    def _apply(self, ops: list[Any]) -> None:
        for op in ops:
            kind, name = op[0], op[1]
            if kind == "put":
                doc_id, doc = op[2], op[3]
                table = self._tables.setdefault(name, _Table())
                table.texts[doc_id] = files.dumps(doc)
            elif kind == "del":
                table_or_none = self._tables.get(name)
                if table_or_none is not None:
                    table_or_none.texts.pop(op[2], None)
            elif kind == "mk":
                self._tables.setdefault(name, _Table())
            elif kind == "rm":
                self._tables.pop(name, None)
            else:
                raise StoreError(
                    f"unknown journal operation {kind!r} in {self.directory}",
                    hint="the store was written by a newer edgekube; upgrade this one",
                )

    def _check_open(self) -> None:
        if self._lock_fd < 0:
            raise StoreError(f"the state store in {self.directory} is closed")
