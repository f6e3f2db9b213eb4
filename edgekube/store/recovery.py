"""Opening the state store's directory: newest intact snapshot, journal replay, torn tails; called by JournalStorage.

recover() only reads.  It loads state.snapshot (or state.snapshot.prev when the current one fails its
checksum, or nothing), replays every intact journal record newer than it in sequence order, and says what
it found: a torn tail of the current journal (an append cut short by a crash, normal after kill -9) is for
JournalStorage to cut with cut_torn_tail(); anything stranger (a damaged snapshot, damaged records before
intact ones, a sequence gap, a missing journal, an interrupted compaction) is listed as a problem, and
JournalStorage repairs the directory by compacting at once.  Both snapshots damaged is media failure, not
a crash: StoreError, never an empty store that the master would take for the truth.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from edgekube.model.errors import StoreError
from edgekube.store import files
from edgekube.store.files import SNAPSHOT, SNAPSHOT_PREV, SNAPSHOT_TMP

log = logging.getLogger(__name__)

_RESTORE_HINT = "restore the directory from a backup; starting empty would make the master forget the cluster"

Tables = dict[str, dict[str, str]]  # table name -> doc id -> the document's JSON text


@dataclass(frozen=True)
class Recovery:
    """What opening the store found on disk (JournalStorage.recovery); read by tests and the crash test."""

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


@dataclass(frozen=True)
class Recovered:
    """The state rebuilt from the directory, for JournalStorage to take over."""

    tables: Tables
    seq: int  # sequence number of the last record replayed (the snapshot's if none)
    base_seq: int  # sequence number of the snapshot loaded (0: none)
    prev_seq: int  # oldest state that can still be rebuilt: journals from here on must be kept
    snapshot_ok: bool  # state.snapshot exists and is intact
    snapshot_bytes: int
    torn_end: int | None  # where to cut the torn tail of state.journal.<base_seq>; None: nothing to cut
    report: Recovery


@dataclass(frozen=True)
class _Base:
    """The snapshot recovery starts from."""

    source: Literal["current", "previous", "none"]
    seq: int
    prev_seq: int
    tables: dict[str, dict[str, Any]]
    size: int
    current_ok: bool


@dataclass
class _Scan:
    """Every intact record of the journals that may hold changes newer than the snapshot."""

    records: list[tuple[int, list[Any]]]
    dropped: int = 0
    torn_tail: bool = False
    torn_end: int | None = None


def recover(directory: Path) -> Recovered:
    """Rebuild the store's state from ``directory``; raise StoreError when snapshots exist but none is intact."""
    problems: list[str] = []
    _forget_interrupted_compaction(directory, problems)
    base = _load_base(directory, problems)
    tables: Tables = {
        name: {doc_id: files.dumps(doc) for doc_id, doc in docs.items()} for name, docs in base.tables.items()
    }
    journals = files.journals(directory)
    scan = _scan_journals(directory, journals, base.seq, problems)
    seq, replayed, gaps = _replay(directory, tables, scan.records, base.seq, problems)
    if journals and journals[-1][0] != base.seq:
        problems.append("journal does not match the snapshot")
    report = Recovery(
        base.source, base.seq, replayed, scan.torn_tail, scan.dropped, gaps, tuple(dict.fromkeys(problems))
    )
    return Recovered(tables, seq, base.seq, base.prev_seq, base.current_ok, base.size, scan.torn_end, report)


def cut_torn_tail(journal_fd: int, end: int) -> None:
    """Cut the current journal back to its last intact record, or the next append would land behind garbage."""
    os.ftruncate(journal_fd, end)
    files.datasync(journal_fd)


def _forget_interrupted_compaction(directory: Path, problems: list[str]) -> None:
    tmp = directory / SNAPSHOT_TMP
    if tmp.exists():
        problems.append("interrupted compaction")
        tmp.unlink()


def _read_snapshot(path: Path, *, parse: bool) -> tuple[int, dict[str, dict[str, Any]], int] | None:
    """Return (seq, tables, size); None if absent; raise SnapshotInvalid if damaged (tables only if parse)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if parse:
        seq, tables = files.decode_snapshot(data)
        return seq, tables, len(data)
    return files.snapshot_seq(data), {}, len(data)


def _load_base(directory: Path, problems: list[str]) -> _Base:
    """Load state.snapshot; fall back to state.snapshot.prev only if it is missing or damaged."""
    try:
        current = _read_snapshot(directory / SNAPSHOT, parse=True)
    except files.SnapshotInvalid as exc:
        log.error("state store %s: %s is damaged (%s)", directory, SNAPSHOT, exc)
        problems.append(f"damaged {SNAPSHOT}")
        return _load_previous(directory, problems, current_damaged=True)
    if current is None:
        return _load_previous(directory, problems, current_damaged=False)
    seq, tables, size = current
    return _Base("current", seq, _previous_seq(directory, seq, problems), tables, size, current_ok=True)


def _previous_seq(directory: Path, current_seq: int, problems: list[str]) -> int:
    """Sequence number of state.snapshot.prev (checked, not parsed); a damaged one is no fallback."""
    try:
        previous = _read_snapshot(directory / SNAPSHOT_PREV, parse=False)
    except files.SnapshotInvalid:
        problems.append(f"damaged {SNAPSHOT_PREV}")
        return current_seq
    return previous[0] if previous is not None else 0


def _load_previous(directory: Path, problems: list[str], *, current_damaged: bool) -> _Base:
    try:
        previous = _read_snapshot(directory / SNAPSHOT_PREV, parse=True)
    except files.SnapshotInvalid as exc:
        raise StoreError(
            f"both snapshots of the state store in {directory} are damaged ({exc})", hint=_RESTORE_HINT
        ) from exc
    if previous is None:
        if current_damaged:
            raise StoreError(
                f"the state store snapshot in {directory} is damaged and there is no previous one",
                hint=_RESTORE_HINT,
            )
        return _Base("none", 0, 0, {}, 0, current_ok=False)
    if not current_damaged:
        problems.append("interrupted compaction")  # between the two renames
    seq, tables, size = previous
    return _Base("previous", seq, seq, tables, size, current_ok=False)


def _scan_journals(directory: Path, journals: list[tuple[int, Path]], base_seq: int, problems: list[str]) -> _Scan:
    """Read the journals that may hold records newer than the snapshot; note damage and torn tails."""
    scan = _Scan(records=[])
    for index, (base, path) in enumerate(journals):
        if index + 1 < len(journals) and journals[index + 1][0] <= base_seq:
            # Kept for the previous snapshot only: every record in it is older than the snapshot loaded.
            continue
        found = files.decode_journal(path.read_bytes())
        scan.records.extend(found.records)
        scan.dropped += found.corrupt
        if found.corrupt:
            log.error("state store: skipped %d damaged record(s) in %s", found.corrupt, path)
            problems.append(f"damaged records in {path.name}")
        if found.torn_tail:
            scan.torn_tail = True
            if index == len(journals) - 1 and base == base_seq:
                scan.torn_end = found.valid_end  # the journal appends go to: cut, no repair needed
            else:
                problems.append(f"torn tail in {path.name}")
    return scan


def _replay(
    directory: Path, tables: Tables, records: list[tuple[int, list[Any]]], base_seq: int, problems: list[str]
) -> tuple[int, int, int]:
    """Apply the records newer than the snapshot in sequence order; return (last seq, replayed, gaps)."""
    seq, replayed, gaps = base_seq, 0, 0
    for record_seq, ops in sorted(records, key=lambda record: record[0]):
        if record_seq <= seq:
            continue
        if record_seq != seq + 1:
            gaps += 1
            log.error("state store %s: changes %d..%d are lost", directory, seq + 1, record_seq - 1)
            problems.append("sequence gap")
        _apply(directory, tables, ops)
        seq = record_seq
        replayed += 1
    return seq, replayed, gaps


def _apply(directory: Path, tables: Tables, ops: list[Any]) -> None:
    for op in ops:
        kind, name = op[0], op[1]
        if kind == "put":
            tables.setdefault(name, {})[op[2]] = files.dumps(op[3])
        elif kind == "del":
            docs = tables.get(name)
            if docs is not None:
                docs.pop(op[2], None)
        elif kind == "mk":
            tables.setdefault(name, {})
        elif kind == "rm":
            tables.pop(name, None)
        else:
            raise StoreError(
                f"unknown journal operation {kind!r} in {directory}",
                hint="the store was written by a newer edgekube; upgrade this one",
            )
