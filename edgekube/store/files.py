"""On-disk format of the state store (names, journal lines, snapshots, fsync); used by journal.py and recovery.py."""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekube.model import jsoncodec

SNAPSHOT = "state.snapshot"
SNAPSHOT_PREV = "state.snapshot.prev"
SNAPSHOT_TMP = "state.snapshot.tmp"
JOURNAL_PREFIX = "state.journal."
LOCK = "state.lock"

SNAPSHOT_FORMAT = "edgekube-store-snapshot"
SNAPSHOT_VERSION = 1

# Journal: one line per Storage.write() call, so a multi-document change is applied entirely or not at all:
#     <crc32 of payload, 8 hex digits> <payload JSON>\n
#     payload = {"seq":N,"ops":[op,...]}, op = ["put",table,doc_id,doc] | ["del",table,doc_id]
#                                            | ["mk",table] | ["rm",table]
# JSON escapes control characters in strings, so a payload never contains a newline.
# Snapshot: a JSON header line, then the tables JSON ({table: {doc_id: doc}}) checked by length and crc32.

_CRC_WIDTH = 8


def journal_path(directory: Path, base: int) -> Path:
    """The journal holding the records after sequence number ``base``."""
    return directory / f"{JOURNAL_PREFIX}{base}"


def journals(directory: Path) -> list[tuple[int, Path]]:
    """Every journal in ``directory`` as (base sequence number, path), oldest first."""
    found: list[tuple[int, Path]] = []
    for path in directory.glob(JOURNAL_PREFIX + "*"):
        suffix = path.name[len(JOURNAL_PREFIX) :]
        if suffix.isdigit():
            found.append((int(suffix), path))
    return sorted(found)


def dumps(value: Any) -> str:
    """Serialise a document the one way the store compares and writes it."""
    return jsoncodec.dumps(value)


def op_put(table: str, doc_id: str, doc_text: str) -> str:
    return f'["put",{dumps(table)},{dumps(doc_id)},{doc_text}]'


def op_del(table: str, doc_id: str) -> str:
    return f'["del",{dumps(table)},{dumps(doc_id)}]'


def op_mk(table: str) -> str:
    return f'["mk",{dumps(table)}]'


def op_rm(table: str) -> str:
    return f'["rm",{dumps(table)}]'


def encode_record(seq: int, ops: Iterable[str]) -> bytes:
    payload = f'{{"seq":{seq},"ops":[{",".join(ops)}]}}'.encode()
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


@dataclass
class JournalScan:
    """What one journal file holds: the intact records and what had to be dropped."""

    records: list[tuple[int, list[Any]]] = field(default_factory=list)
    valid_end: int = 0  # offset just past the last intact record
    corrupt: int = 0  # damaged lines followed by intact ones: media damage, not a crash
    torn_tail: bool = False  # damaged bytes after the last intact record: an interrupted append


def _decode_line(line: bytes) -> tuple[int, list[Any]] | None:
    if len(line) <= _CRC_WIDTH or line[_CRC_WIDTH : _CRC_WIDTH + 1] != b" ":
        return None
    payload = line[_CRC_WIDTH + 1 :]
    try:
        if int(line[:_CRC_WIDTH], 16) != zlib.crc32(payload):
            return None
        record = jsoncodec.loads(payload)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    seq, ops = record.get("seq"), record.get("ops")
    if not isinstance(seq, int) or not isinstance(ops, list):
        return None
    return seq, ops


def decode_record(line: bytes) -> tuple[int, list[Any]] | None:
    """One journal line (with or without its newline) as (seq, ops); None if it fails its checksum or shape."""
    return _decode_line(line.removesuffix(b"\n"))


def decode_journal(data: bytes) -> JournalScan:
    scan = JournalScan()
    damaged_since_last_good = 0
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        if end < 0:
            damaged_since_last_good += 1  # no newline: the append was cut short
            break
        decoded = _decode_line(data[start:end])
        start = end + 1
        if decoded is None:
            damaged_since_last_good += 1
            continue
        scan.records.append(decoded)
        scan.corrupt += damaged_since_last_good
        damaged_since_last_good = 0
        scan.valid_end = start
    scan.torn_tail = damaged_since_last_good > 0
    return scan


def encode_snapshot(seq: int, tables: Mapping[str, Mapping[str, str]]) -> bytes:
    """Build a snapshot from already-serialised documents, so compaction costs no re-serialisation."""
    parts: list[str] = []
    for name, docs in tables.items():
        body = ",".join(f"{dumps(doc_id)}:{text}" for doc_id, text in docs.items())
        parts.append(f"{dumps(name)}:{{{body}}}")
    payload = ("{" + ",".join(parts) + "}").encode()
    header = {
        "format": SNAPSHOT_FORMAT,
        "version": SNAPSHOT_VERSION,
        "seq": seq,
        "length": len(payload),
        "crc32": zlib.crc32(payload),
    }
    return dumps(header).encode() + b"\n" + payload


class SnapshotInvalid(ValueError):
    """The snapshot file is damaged or not ours; the message says how."""


def _split_snapshot(data: bytes) -> tuple[int, bytes]:
    head, sep, payload = data.partition(b"\n")
    if not sep:
        raise SnapshotInvalid("no header line")
    try:
        header = json.loads(head)
    except ValueError as exc:
        raise SnapshotInvalid(f"unreadable header: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotInvalid("not an edgekube store snapshot")
    if header.get("version") != SNAPSHOT_VERSION:
        raise SnapshotInvalid(f"unsupported snapshot version {header.get('version')!r}")
    seq = header.get("seq")
    if not isinstance(seq, int) or seq < 0:
        raise SnapshotInvalid("bad sequence number")
    if header.get("length") != len(payload):
        raise SnapshotInvalid(f"truncated: {len(payload)} of {header.get('length')} bytes")
    if header.get("crc32") != zlib.crc32(payload):
        raise SnapshotInvalid("checksum mismatch")
    return seq, payload


def snapshot_seq(data: bytes) -> int:
    """Check a snapshot (length and checksum) without parsing its documents."""
    return _split_snapshot(data)[0]


def decode_snapshot(data: bytes) -> tuple[int, dict[str, dict[str, Any]]]:
    seq, payload = _split_snapshot(data)
    try:
        tables = jsoncodec.loads(payload)
    except ValueError as exc:
        raise SnapshotInvalid(f"unreadable tables: {exc}") from exc
    if not isinstance(tables, dict) or not all(isinstance(docs, dict) for docs in tables.values()):
        raise SnapshotInvalid("tables are not objects")
    return seq, tables


def datasync(fd: int) -> None:
    """Make a file's data and size durable (fdatasync; fsync where the platform has no fdatasync).

    Enough for an append: fdatasync also flushes the metadata needed to read the data back (the size),
    only timestamps may stay behind.  Looked up per call so tests can watch it.
    """
    sync = os.fdatasync if hasattr(os, "fdatasync") else os.fsync
    sync(fd)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def write_durably(path: Path, data: bytes) -> None:
    """Write a whole file and fsync it; the caller renames it into place."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dir_durably(path: Path) -> None:
    """Create ``path`` and any missing parents, each one's name fsynced into its parent directory."""
    missing: list[Path] = []
    for directory in (path, *path.parents):
        if directory.exists():
            break
        missing.append(directory)
    path.mkdir(parents=True, exist_ok=True)
    for directory in reversed(missing):
        fsync_dir(directory.parent)


def fsync_dir(path: Path) -> None:
    """Make renames and new names in a directory survive power loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
