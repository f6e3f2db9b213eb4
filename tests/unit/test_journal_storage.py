"""JournalStorage as a TinyDB Storage: what reaches the disk, and what opening a damaged directory yields."""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tinydb import Query, TinyDB
from tinydb.table import Document

from edgekube.model.errors import StoreError
from edgekube.store import JournalStorage, files
from edgekube.store.table import InPlaceTinyDB

Opener = Callable[..., TinyDB]


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture(params=[TinyDB, InPlaceTinyDB], ids=["stock-table", "in-place-table"])
def open_db(request: pytest.FixtureRequest, directory: Path) -> Iterator[Opener]:
    """Open TinyDB on the journal; opening again closes the previous handle, as a restarted master would.

    Stock TinyDB rebuilds each table dict per write, InPlaceTable edits the one read() returned: the
    storage finds the changes differently for each, so every test runs with both.
    """
    opened: list[TinyDB] = []
    database: type[TinyDB] = request.param

    def opener(**options: Any) -> TinyDB:
        if opened:
            opened[-1].close()
        opened.append(database(directory, storage=JournalStorage, **options))
        return opened[-1]

    yield opener
    opened[-1].close()


def storage(db: TinyDB) -> JournalStorage:
    store = db.storage
    assert isinstance(store, JournalStorage)
    return store


def journal_lines(directory: Path) -> list[bytes]:
    journal = max(directory.glob("state.journal.*"), key=lambda path: int(path.suffix[1:]))
    return journal.read_bytes().splitlines(keepends=True)


def doc(number: int, size: int = 1000) -> dict[str, Any]:
    return {"name": f"pod-{number}", "payload": "x" * size, "nested": {"list": [number, {"deep": True}]}}


def fill(db: TinyDB) -> None:
    """A mix of every kind of TinyDB write, including an empty and a dropped table."""
    pods = db.table("pods")
    pods.insert_multiple(doc(n, 50) for n in range(10))
    pods.update({"phase": "Running"}, Query().name == "pod-3")
    pods.update(lambda d: d["nested"]["list"].append("more"), doc_ids=[4])
    pods.remove(Query().name == "pod-5")
    pods.upsert(Document({"name": "pod-42"}, doc_id=42))
    db.table("nodes").insert({"name": "pi-1", "labels": {"zone": "attic"}})
    db.table("gone").insert({"x": 1})
    db.drop_table("gone")
    db.table("emptied").insert({"x": 1})
    db.table("emptied").truncate()


class TestRoundTrip:
    def test_reopening_reads_exactly_what_was_written(self, open_db: Opener) -> None:
        db = open_db()
        fill(db)
        before = db.storage.read()

        db = open_db()

        assert db.storage.read() == before
        assert db.tables() == {"pods", "nodes", "emptied"}
        assert storage(db).recovery.replayed > 0
        assert not storage(db).recovery.torn_tail

    def test_compaction_keeps_the_content_and_drops_journals_nobody_needs(
        self, open_db: Opener, directory: Path
    ) -> None:
        db = open_db(compaction_min_bytes=4096, compaction_ratio=0.5)
        pods = db.table("pods")
        for number in range(200):
            pods.insert(doc(number, 200))
            pods.update({"phase": f"step-{number}"}, doc_ids=[1 + number // 2])
        before = db.storage.read()

        db = open_db()

        assert db.storage.read() == before
        assert storage(db).recovery.snapshot == "current"
        assert storage(db).recovery.snapshot_seq > 300
        assert len(list(directory.glob("state.journal.*"))) <= 2
        assert (directory / "state.snapshot.prev").exists()

    def test_a_durable_false_store_survives_a_clean_close(self, open_db: Opener) -> None:
        db = open_db(durable=False)
        fill(db)
        before = db.storage.read()

        db = open_db()

        assert db.storage.read() == before


class TestWriteAmplification:
    def test_one_changed_document_appends_one_record_of_its_size(self, open_db: Opener, directory: Path) -> None:
        pods = open_db().table("pods")
        pods.insert_multiple(doc(n) for n in range(1000))
        lines_before = len(journal_lines(directory))

        pods.update({"phase": "Running"}, doc_ids=[500])

        appended = journal_lines(directory)[lines_before:]
        assert len(appended) == 1
        assert 1000 < len(appended[0]) < 1200

    def test_a_write_that_changes_nothing_appends_nothing(self, open_db: Opener) -> None:
        db = open_db()
        pods = db.table("pods")
        pods.insert(doc(1))
        size = storage(db).journal_bytes

        pods.update({"name": "pod-1"}, doc_ids=[1])
        pods.update({"phase": "x"}, doc_ids=[99])

        assert storage(db).journal_bytes == size

    def test_each_write_is_one_atomic_record(self, open_db: Opener, directory: Path) -> None:
        open_db().table("pods").insert_multiple(doc(n, 10) for n in range(5))

        (line,) = journal_lines(directory)
        ops = json.loads(line.split(b" ", 1)[1])["ops"]
        assert [op[0] for op in ops] == ["mk", "put", "put", "put", "put", "put"]


class TestIsolationFromTinyDB:
    """TinyDB mutates what read() returns; whatever it or a caller does, the store holds what was written."""

    def test_mutating_a_returned_document_does_not_change_the_store(self, open_db: Opener) -> None:
        db = open_db()
        pods = db.table("pods")
        pods.insert(doc(1))

        got = pods.get(doc_id=1)
        assert got is not None
        got["nested"]["list"].append("sneaky")
        got["name"] = "renamed"

        assert pods.get(doc_id=1) == doc(1)
        assert open_db().table("pods").get(doc_id=1) == doc(1)

    def test_the_inserted_object_stays_the_callers(self, open_db: Opener) -> None:
        pods = open_db().table("pods")
        mine = doc(1)
        pods.insert(mine)

        mine["nested"]["list"].clear()

        assert pods.get(doc_id=1) == doc(1)

    def test_an_update_that_fails_halfway_leaves_nothing_behind(self, open_db: Opener) -> None:
        db = open_db()
        pods = db.table("pods")
        pods.insert(doc(1))

        def half_done(document: Any) -> None:
            document["nested"]["list"].append("half")
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            pods.update(half_done, doc_ids=[1])
        assert pods.get(doc_id=1) == doc(1)
        db.table("other").insert({"x": 1})
        assert open_db().table("pods").get(doc_id=1) == doc(1)

    def test_a_failed_append_changes_nothing_and_the_next_one_works(
        self, open_db: Opener, monkeypatch: pytest.MonkeyPatch, directory: Path
    ) -> None:
        db = open_db()
        pods = db.table("pods")
        pods.insert(doc(1))
        real_write_all = files.write_all

        def disk_full(fd: int, data: bytes) -> None:
            os.write(fd, data[:10])
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(files, "write_all", disk_full)
        with pytest.raises(StoreError, match="No space left"):
            pods.update({"phase": "lost"}, doc_ids=[1])
        monkeypatch.setattr(files, "write_all", real_write_all)

        assert pods.get(doc_id=1) == doc(1)
        pods.update({"phase": "kept"}, doc_ids=[1])
        assert open_db().table("pods").get(doc_id=1) == {**doc(1), "phase": "kept"}

    def test_walking_a_table_while_changing_it_sees_the_table_as_it_was(self, open_db: Opener) -> None:
        # read() hands out views of the live documents, not copies: iterating must still be safe to mix with writes.
        db = open_db()
        pods = db.table("pods")
        pods.insert_multiple(doc(n, 10) for n in range(5))

        seen = []
        for document in pods:
            seen.append(document["name"])
            pods.insert(doc(100 + len(seen), 10))
            pods.remove(doc_ids=[document.doc_id])

        assert seen == [f"pod-{n}" for n in range(5)]
        assert sorted(d["name"] for d in pods) == [f"pod-{n}" for n in range(101, 106)]
        assert sorted(d["name"] for d in open_db().table("pods")) == [f"pod-{n}" for n in range(101, 106)]

    def test_truncate_then_insert_in_one_table_is_stored_as_such(self, open_db: Opener) -> None:
        db = open_db()
        pods = db.table("pods")
        pods.insert_multiple(doc(n, 10) for n in range(3))
        pods.truncate()
        pods.insert(doc(7, 10))

        reopened = open_db().table("pods")
        assert [d["name"] for d in reopened] == ["pod-7"]
        assert len(reopened) == 1


class TestRecovery:
    def test_a_torn_tail_is_dropped_and_later_writes_survive(self, open_db: Opener, directory: Path) -> None:
        pods = open_db().table("pods")
        pods.insert(doc(1))
        pods.insert(doc(2))
        journal = max(directory.glob("state.journal.*"))
        with journal.open("ab") as handle:
            handle.write(journal_lines(directory)[-1][:-40])  # an append cut short by the crash

        db = open_db()
        assert storage(db).recovery.torn_tail
        assert not storage(db).recovery.repaired
        db.table("pods").insert(doc(3))

        assert [d["name"] for d in open_db().table("pods").all()] == ["pod-1", "pod-2", "pod-3"]

    def test_a_record_failing_its_checksum_is_dropped(self, open_db: Opener, directory: Path) -> None:
        pods = open_db().table("pods")
        for number in (1, 2, 3):
            pods.insert(doc(number, 10))
        journal = max(directory.glob("state.journal.*"))
        lines = journal.read_bytes().splitlines(keepends=True)
        lines[1] = lines[1].replace(b"pod-2", b"pod-X")
        journal.write_bytes(b"".join(lines))

        db = open_db()

        assert [d["name"] for d in db.table("pods").all()] == ["pod-1", "pod-3"]
        assert storage(db).recovery.dropped == 1
        assert storage(db).recovery.gaps == 1
        assert storage(db).recovery.repaired

    def test_a_damaged_snapshot_falls_back_to_the_previous_one(self, open_db: Opener, directory: Path) -> None:
        db = open_db()
        pods = db.table("pods")
        pods.insert(doc(1))
        storage(db).compact()
        pods.insert(doc(2))
        storage(db).compact()
        pods.insert(doc(3))
        before = db.storage.read()
        snapshot = directory / "state.snapshot"
        data = bytearray(snapshot.read_bytes())
        data[-5] ^= 0xFF
        snapshot.write_bytes(bytes(data))

        db = open_db()

        assert db.storage.read() == before
        assert storage(db).recovery.snapshot == "previous"
        assert storage(db).recovery.repaired
        assert open_db().storage.read() == before

    def test_both_snapshots_damaged_refuses_to_open(self, open_db: Opener, directory: Path) -> None:
        db = open_db()
        db.table("pods").insert(doc(1))
        storage(db).compact()
        db.table("pods").insert(doc(2))
        storage(db).compact()
        db.close()
        for name in ("state.snapshot", "state.snapshot.prev"):
            (directory / name).write_bytes(b"garbage")

        with pytest.raises(StoreError, match="damaged"):
            JournalStorage(directory)

    @pytest.mark.parametrize("stage", ["snapshot written", "journal started", "snapshot moved to prev"])
    def test_an_interrupted_compaction_loses_nothing(self, open_db: Opener, directory: Path, stage: str) -> None:
        db = open_db()
        db.table("pods").insert(doc(1))
        storage(db).compact()
        db.table("pods").insert(doc(2))
        before = storage(db).read()
        seq = storage(db).seq
        db.close()
        # Replay by hand the first steps of a compaction, as a crash would have left them.
        tables = {"pods": {doc_id: files.dumps(d) for doc_id, d in before["pods"].items()}}
        (directory / "state.snapshot.tmp").write_bytes(files.encode_snapshot(seq, tables))
        if stage != "snapshot written":
            (directory / f"state.journal.{seq}").touch()
        if stage == "snapshot moved to prev":
            (directory / "state.snapshot").replace(directory / "state.snapshot.prev")

        db = open_db()

        assert db.storage.read() == before
        assert storage(db).recovery.repaired
        assert not (directory / "state.snapshot.tmp").exists()
        assert open_db().storage.read() == before


class TestFormat:
    def test_journal_lines_carry_a_crc32_of_their_payload(self) -> None:
        line = files.encode_record(7, [files.op_put("pods", "1", '{"a":1}')])

        crc, payload = line.rstrip(b"\n").split(b" ", 1)
        assert int(crc, 16) == zlib.crc32(payload)
        assert json.loads(payload) == {"seq": 7, "ops": [["put", "pods", "1", {"a": 1}]]}

    def test_a_snapshot_round_trips_and_detects_truncation(self) -> None:
        data = files.encode_snapshot(3, {"pods": {"1": '{"a":1}'}, "empty": {}})

        assert files.decode_snapshot(data) == (3, {"pods": {"1": {"a": 1}}, "empty": {}})
        with pytest.raises(files.SnapshotInvalid, match="truncated"):
            files.decode_snapshot(data[:-1])
