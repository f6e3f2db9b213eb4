"""Durability of JournalStorage: which bytes are written and synced, in what order, before a write returns.

kill -9 (tests/integration/test_store_crash.py) cannot see what only the page cache held: a process crash keeps
it, a power cut does not.  So these tests watch the calls themselves.  A spy wraps os.write, os.fsync,
os.fdatasync, os.ftruncate and os.replace/os.rename, names each file descriptor by its /proc/self/fd link, calls
the real function and records it; the test then asserts the exact sequence up to the moment the call returns:

    a write:       the record's bytes written -> the journal file synced -> return
    a new file:    its directory fsynced (with the new name in it) before anything relies on the name
    a compaction:  snapshot.tmp written -> fsynced -> renamed over state.snapshot -> directory fsynced -> return

fdatasync is the journal's sync: it flushes the data and the size (what reading the record back needs), only
timestamps may stay behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.store import JournalStorage, TinyStateStore, files


class SyscallLog:
    """The file-system calls made on files under ``root``, in order, as readable lines."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root.resolve()
        self.events: list[str] = []
        real_write, real_fsync, real_fdatasync = os.write, os.fsync, os.fdatasync
        real_ftruncate, real_replace, real_rename = os.ftruncate, os.replace, os.rename

        def write(fd: int, data: Any) -> int:
            written = real_write(fd, data)
            self._note(f"write {self._fd_name(fd)}")
            return written

        def fsync(fd: int) -> None:
            name = self._fd_name(fd)
            real_fsync(fd)
            self._note(f"fsync {name}{self._holding(fd)}")

        def fdatasync(fd: int) -> None:
            name = self._fd_name(fd)
            real_fdatasync(fd)
            self._note(f"fdatasync {name}")

        def ftruncate(fd: int, length: int) -> None:
            real_ftruncate(fd, length)
            self._note(f"ftruncate {self._fd_name(fd)} to {length}")

        def replace(src: Any, dst: Any, **kwargs: Any) -> None:
            real_replace(src, dst, **kwargs)
            self._note(f"rename {self._name(src)} -> {self._name(dst)}")

        def rename(src: Any, dst: Any, **kwargs: Any) -> None:
            real_rename(src, dst, **kwargs)
            self._note(f"rename {self._name(src)} -> {self._name(dst)}")

        for name, spy in [
            ("write", write),
            ("fsync", fsync),
            ("fdatasync", fdatasync),
            ("ftruncate", ftruncate),
            ("replace", replace),
            ("rename", rename),
        ]:
            monkeypatch.setattr(os, name, spy)

    def mark(self, what: str) -> None:
        self.events.append(what)

    def _note(self, event: str) -> None:
        if " <outside> " not in f" {event} ":
            self.events.append(event)

    def _name(self, path: Any) -> str:
        resolved = Path(os.fsdecode(path)).resolve()
        if not resolved.is_relative_to(self.root):
            return "<outside>"
        relative = resolved.relative_to(self.root).as_posix()
        return "./" if relative == "." else relative + ("/" if resolved.is_dir() else "")

    def _fd_name(self, fd: int) -> str:
        return self._name(os.readlink(f"/proc/self/fd/{fd}"))

    def _holding(self, fd: int) -> str:
        """For a directory: the names it holds as it is synced (which new names the fsync made durable)."""
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        return f" holding {','.join(sorted(os.listdir(path)))}" if path.is_dir() else ""


@pytest.fixture
def syscalls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SyscallLog]:
    yield SyscallLog(tmp_path, monkeypatch)
    monkeypatch.undo()


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"}, "spec": {}}


def test_a_store_create_returns_only_after_its_record_is_written_and_the_journal_file_is_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with TinyStateStore(tmp_path / "state") as store:
        log = SyscallLog(tmp_path, monkeypatch)

        store.create(pod("web"))
        log.mark("create returned")

        assert log.events == [
            "write state/state.journal.0",
            "fdatasync state/state.journal.0",
            "create returned",
        ]


def test_a_store_update_and_delete_sync_every_record_they_append_before_returning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "state" / "state.journal.0"
    with TinyStateStore(tmp_path / "state") as store:
        created = store.create(pod("web"))
        records_before = len(journal.read_bytes().splitlines())
        log = SyscallLog(tmp_path, monkeypatch)

        store.update({**created, "spec": {"nodeName": "pi-1"}})
        log.mark("update returned")
        store.delete("Pod", "default", "web")
        log.mark("delete returned")

    # The delete of the newest object also records the resourceVersion high-water mark (its table is
    # created first): one record per TinyDB write, each one synced before the next and before returning.
    appended = len(journal.read_bytes().splitlines()) - records_before
    assert appended == 4
    synced_write = ["write state/state.journal.0", "fdatasync state/state.journal.0"]
    assert log.events == [*synced_write, "update returned", *synced_write * (appended - 1), "delete returned"]


def test_opening_a_new_store_fsyncs_its_directory_into_the_parent_and_its_journal_into_the_directory(
    tmp_path: Path, syscalls: SyscallLog
) -> None:
    storage = JournalStorage(tmp_path / "state")
    syscalls.mark("opened")
    storage.write({"pods": {"1": {"name": "web"}}})
    syscalls.mark("write returned")
    storage.close()

    assert syscalls.events == [
        "fsync ./ holding state",
        "fsync state/ holding state.journal.0,state.lock",
        "opened",
        "write state/state.journal.0",
        "fdatasync state/state.journal.0",
        "write returned",
    ]


def test_every_missing_parent_of_a_new_store_is_fsynced_into_its_own_parent(
    tmp_path: Path, syscalls: SyscallLog
) -> None:
    JournalStorage(tmp_path / "var" / "lib" / "state").close()

    assert syscalls.events == [
        "fsync ./ holding var",
        "fsync var/ holding lib",
        "fsync var/lib/ holding state",
        "fsync var/lib/state/ holding state.journal.0,state.lock",
    ]


def test_a_write_that_compacts_syncs_the_snapshot_before_renaming_it_and_the_directory_before_returning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = JournalStorage(tmp_path / "state", compaction_min_bytes=1, compaction_ratio=0)  # every write compacts
    log = SyscallLog(tmp_path, monkeypatch)

    storage.write({"pods": {"1": {"name": "web"}}})
    log.mark("first write returned")
    storage.write({"pods": {"1": {"name": "web", "phase": "Running"}}})
    log.mark("second write returned")
    storage.close()

    assert log.events == [
        "write state/state.journal.0",
        "fdatasync state/state.journal.0",
        "write state/state.snapshot.tmp",
        "fsync state/state.snapshot.tmp",
        "fsync state/ holding state.journal.0,state.journal.1,state.lock,state.snapshot.tmp",
        "rename state/state.snapshot.tmp -> state/state.snapshot",
        "fsync state/ holding state.journal.0,state.journal.1,state.lock,state.snapshot",
        "first write returned",
        "write state/state.journal.1",
        "fdatasync state/state.journal.1",
        "write state/state.snapshot.tmp",
        "fsync state/state.snapshot.tmp",
        "fsync state/ holding state.journal.0,state.journal.1,state.journal.2,state.lock,state.snapshot,"
        "state.snapshot.tmp",
        "rename state/state.snapshot -> state/state.snapshot.prev",
        "rename state/state.snapshot.tmp -> state/state.snapshot",
        "fsync state/ holding state.journal.0,state.journal.1,state.journal.2,state.lock,state.snapshot,"
        "state.snapshot.prev",
        "second write returned",
    ]


def test_an_explicit_compaction_syncs_the_snapshot_then_renames_it_then_syncs_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = JournalStorage(tmp_path / "state")
    storage.write({"pods": {"1": {"name": "web"}}})
    log = SyscallLog(tmp_path, monkeypatch)

    storage.compact()
    log.mark("compact returned")
    storage.close()

    assert log.events == [
        "write state/state.snapshot.tmp",
        "fsync state/state.snapshot.tmp",
        "fsync state/ holding state.journal.0,state.journal.1,state.lock,state.snapshot.tmp",
        "rename state/state.snapshot.tmp -> state/state.snapshot",
        "fsync state/ holding state.journal.0,state.journal.1,state.lock,state.snapshot",
        "compact returned",
    ]


def test_opening_cuts_a_torn_tail_and_syncs_the_cut_before_the_store_is_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "state"
    storage = JournalStorage(directory)
    storage.write({"pods": {"1": {"name": "web"}}})
    storage.close()
    journal = directory / "state.journal.0"
    intact = journal.stat().st_size
    with journal.open("ab") as handle:
        handle.write(b'0badc0de {"seq":2,')  # an append cut short by a crash
    log = SyscallLog(tmp_path, monkeypatch)

    reopened = JournalStorage(directory)
    log.mark("opened")
    reopened.close()

    assert reopened.recovery.torn_tail
    assert log.events == [
        f"ftruncate state/state.journal.0 to {intact}",
        "fdatasync state/state.journal.0",
        "opened",
    ]


def test_a_non_durable_write_returns_without_syncing_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = JournalStorage(tmp_path / "state", durable=False)
    log = SyscallLog(tmp_path, monkeypatch)

    storage.write({"pods": {"1": {"name": "web"}}})
    log.mark("write returned")
    storage.close()

    assert log.events == ["write state/state.journal.0", "write returned"]


def test_the_journal_sync_helper_calls_fdatasync_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # The spies above replace os.fdatasync; a helper bound to it at import would slip past them.
    synced: list[int] = []
    monkeypatch.setattr(os, "fdatasync", synced.append)

    files.datasync(7)

    assert synced == [7]
