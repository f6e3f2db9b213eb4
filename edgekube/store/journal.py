"""Crash-safe TinyDB Storage: an append-only journal of per-document changes plus compacted snapshots.

Used by TinyStateStore (state.py); plain TinyDB works too: ``InPlaceTinyDB(directory, storage=JournalStorage)``
(table.py) costs O(change) per write, stock ``TinyDB(...)`` O(table) CPU (it rebuilds each table dict per write).

Files in the directory (see files.py for the byte format):

    state.snapshot        all tables as of sequence number S (header line with seq, length, crc32)
    state.snapshot.prev   the snapshot before that (sequence P), used when state.snapshot fails its checksum
    state.journal.<B>     one line per write() with sequence numbers > B; journals for P and S are kept
    state.lock            flock'd while open, so two processes never append to the same journal

Opening is recovery.py's: it loads the newest intact snapshot and replays the journals; here a torn tail
is cut and anything stranger is repaired by compacting at once.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tinydb.storages import Storage

from edgekube.model.errors import StoreError
from edgekube.store import files
from edgekube.store.files import LOCK, SNAPSHOT, SNAPSHOT_PREV, SNAPSHOT_TMP
from edgekube.store.recovery import Recovered, Recovery, cut_torn_tail, recover
from edgekube.store.view import TableView

log = logging.getLogger(__name__)

DEFAULT_COMPACTION_MIN_BYTES = 1 << 20

__all__ = ["DEFAULT_COMPACTION_MIN_BYTES", "JournalStorage", "Recovery"]


class _Table:
    __slots__ = ("texts", "version")

    def __init__(self, texts: dict[str, str] | None = None) -> None:
        # texts holds each document as the JSON last written (parsed only when read: a pod costs ~1 KiB of
        # memory, not the ~10 KiB of its dicts); version counts changes, so write() can tell whether a
        # TableView still describes texts.
        self.texts: dict[str, str] = {} if texts is None else texts
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
        #: Called with (seq, record line) after every record this storage appends (write() or replicated ones):
        #: the active master's replication stream (master/ha/active.py) picks the journal up here.
        self.tap: Callable[[int, bytes], None] | None = None
        try:
            files.make_dir_durably(self.directory)
            self._lock()
            self.recovery = self._open()
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
            line = files.encode_record(self._seq + 1, ops)
            self._append(line)
            self._seq += 1
            self._commit(staged, created, dropped)
            if self.tap is not None:
                self.tap(self._seq, line)
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
                files.journal_path(self.directory, seq).unlink(missing_ok=True)
            raise
        if self._journal_fd >= 0:
            os.close(self._journal_fd)
        self._journal_fd, self._journal_base, self._journal_bytes = journal_fd, seq, 0
        self._base_seq, self._prev_seq, self._snapshot_ok = seq, new_prev, True
        self._snapshot_bytes = len(data)
        self._compact_at = self._threshold(len(data))
        for base, path in files.journals(self.directory):
            if base < new_prev:
                path.unlink(missing_ok=True)

    # -- replication (master/ha): the active exports, the standby appends the active's records ------------

    def export(self) -> tuple[int, bytes]:
        """(seq, a snapshot file of everything as of seq): what a standby installs to start following."""
        self._check_open()
        return self._seq, files.encode_snapshot(self._seq, {name: table.texts for name, table in self._tables.items()})

    def append_replicated(self, lines: list[bytes]) -> int:
        """Append another store's journal records (each `seq` must follow the last), with one flash sync; the new seq.

        The very lines the active wrote are appended, so both journals hold the same bytes. A line that fails its
        checksum or does not follow on is refused (StoreError) and nothing of it is applied.
        """
        self._check_open()
        durable, self.durable = self.durable, False
        try:
            for line in lines:
                decoded = files.decode_record(line)
                if decoded is None:
                    raise StoreError(f"a replicated journal record for {self.directory} is damaged (checksum)")
                seq, ops = decoded
                if seq != self._seq + 1:
                    raise StoreError(f"replicated record {seq} does not follow {self._seq} in {self.directory}")
                staged, created, dropped = self._stage_ops(ops)
                self._append(line if line.endswith(b"\n") else line + b"\n")
                self._seq = seq
                self._commit(staged, created, dropped)
                if self.tap is not None:
                    self.tap(seq, line)
        finally:
            self.durable = durable
        if lines and durable:
            files.datasync(self._journal_fd)
        if self._journal_bytes >= self._compact_at:
            self._compact_quietly()
        return self._seq

    def install(self, data: bytes) -> int:
        """Replace everything with a snapshot file's contents (from another store's export()); its seq.

        The old snapshots and journals go (they may hold changes the snapshot's lineage never had). A crash part way
        leaves either the old store or an older consistent one; a standby always asks for a fresh snapshot after
        a restart, so neither is ever taken for current.
        """
        self._check_open()
        try:
            seq, tables = files.decode_snapshot(data)
        except files.SnapshotInvalid as exc:
            raise StoreError(f"a replicated snapshot for {self.directory} is damaged: {exc}") from exc
        texts = {name: {doc_id: files.dumps(doc) for doc_id, doc in docs.items()} for name, docs in tables.items()}
        tmp = self.directory / SNAPSHOT_TMP
        files.write_durably(tmp, data)
        if self._journal_fd >= 0:
            os.close(self._journal_fd)
            self._journal_fd = -1
        (self.directory / SNAPSHOT_PREV).unlink(missing_ok=True)
        for _base, path in files.journals(self.directory):
            path.unlink(missing_ok=True)
        self._journal_fd = self._open_journal(seq, truncate=True)
        os.replace(tmp, self.directory / SNAPSHOT)
        files.fsync_dir(self.directory)
        self._tables = {name: _Table(docs) for name, docs in texts.items()}
        self._seq = self._base_seq = self._prev_seq = seq
        self._snapshot_ok, self._snapshot_bytes = True, len(data)
        self._journal_base, self._journal_bytes = seq, 0
        self._compact_at = self._threshold(len(data))
        return seq

    def _stage_ops(self, ops: list[object]) -> tuple[list[tuple[str, str, str | None]], list[str], list[str]]:
        """What _commit needs to apply a decoded record's operations (as recovery.py replays them)."""
        staged: list[tuple[str, str, str | None]] = []
        created: list[str] = []
        dropped: list[str] = []
        exists = set(self._tables)
        for op in ops:
            if not isinstance(op, list) or len(op) < 2 or not isinstance(op[1], str):
                raise StoreError(f"a replicated journal record for {self.directory} holds a malformed operation")
            kind, name = op[0], op[1]
            if kind == "mk":
                if name not in exists:
                    created.append(name)
                    exists.add(name)
            elif kind == "rm":
                dropped.append(name)
                exists.discard(name)
            elif kind in ("put", "del") and len(op) >= 3 and name in exists:
                staged.append((name, str(op[2]), files.dumps(op[3]) if kind == "put" else None))
            else:
                raise StoreError(f"a replicated journal record for {self.directory} holds {kind!r} on {name!r}")
        return staged, created, dropped

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

    def _open_journal(self, base: int, *, truncate: bool) -> int:
        path = files.journal_path(self.directory, base)
        existed = path.exists()
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if truncate else 0)
        fd = os.open(path, flags, 0o644)
        if not existed:
            files.fsync_dir(self.directory)
        return fd

    def _open(self) -> Recovery:
        found = recover(self.directory)
        self._adopt(found)
        if found.report.problems:
            log.warning("state store %s: repairing on open (%s)", self.directory, ", ".join(found.report.problems))
            self._compact()
            return found.report
        self._journal_fd = self._open_journal(self._base_seq, truncate=False)
        self._journal_base = self._base_seq
        if found.torn_end is not None:
            cut_torn_tail(self._journal_fd, found.torn_end)
        self._journal_bytes = os.fstat(self._journal_fd).st_size
        self._compact_at = self._threshold(self._snapshot_bytes)
        if self._journal_bytes >= self._compact_at:
            self._compact()
        return found.report

    def _adopt(self, found: Recovered) -> None:
        self._tables = {name: _Table(texts) for name, texts in found.tables.items()}
        self._seq, self._base_seq, self._prev_seq = found.seq, found.base_seq, found.prev_seq
        self._snapshot_ok, self._snapshot_bytes = found.snapshot_ok, found.snapshot_bytes

    def _check_open(self) -> None:
        if self._lock_fd < 0:
            raise StoreError(f"the state store in {self.directory} is closed")
