"""The replication stream: journal records appended elsewhere, snapshots installed, and the active's gate.

Two real JournalStorage directories (TinyStateStore over each, as the master uses them); the active's Replicator
and the standby's Follower talk through the in-memory broker in inline mode (tests/support/membus.py), so every
consequence of a publish has happened when it returns. The supervisor's job of handing the active its own flag
back from the broker (`on_flag`) and the acks (`on_ack`) is done by the subscriptions made here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.bus import topics
from edgekube.master.ha import active
from edgekube.master.ha.active import Replicator
from edgekube.master.ha.standby import Follower
from edgekube.model.errors import StoreError
from edgekube.model.ha import FrameHeader, Replication, ReplicationAck, ReplicationFlag, SyncRequest, encode_frame
from edgekube.store.journal import JournalStorage
from edgekube.store.state import TinyStateStore
from tests.support.membus import MemoryBroker, MemoryBus


def cm(name: str, value: str = "v") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"k": value},
    }


def journal(store: TinyStateStore) -> JournalStorage:
    storage = store.storage
    assert isinstance(storage, JournalStorage)
    return storage


def contents(path: Path) -> dict[str, Any]:
    with TinyStateStore(path) as store:
        return {o["metadata"]["name"]: o["data"] for o in store.list("ConfigMap")}


# -- the journal ---------------------------------------------------------------------------------------------
def test_records_appended_elsewhere_rebuild_the_same_store_after_a_reopen(tmp_path: Path) -> None:
    lines: list[bytes] = []
    with TinyStateStore(tmp_path / "a") as a:
        journal(a).tap = lambda _seq, line: lines.append(line)
        for i in range(5):
            a.create(cm(f"c{i}", f"v{i}"))
        a.delete("ConfigMap", "default", "c2")
        seq = journal(a).seq
    b = JournalStorage(tmp_path / "b")
    assert b.append_replicated(lines) == seq
    b.close()
    assert contents(tmp_path / "b") == contents(tmp_path / "a") == {f"c{i}": {"k": f"v{i}"} for i in (0, 1, 3, 4)}


def test_a_record_that_does_not_follow_or_fails_its_checksum_is_refused_and_nothing_of_it_applied(
    tmp_path: Path,
) -> None:
    lines: list[bytes] = []
    with TinyStateStore(tmp_path / "a") as a:
        journal(a).tap = lambda _seq, line: lines.append(line)
        a.create(cm("one"))
        a.create(cm("two"))
    b = JournalStorage(tmp_path / "b")
    with pytest.raises(StoreError, match="does not follow"):
        b.append_replicated([lines[1]])
    damaged = lines[0].replace(b'"v"', b'"w"')
    with pytest.raises(StoreError, match="checksum"):
        b.append_replicated([damaged])
    assert b.seq == 0
    b.append_replicated(lines)
    b.close()
    assert set(contents(tmp_path / "b")) == {"one", "two"}


def test_an_installed_snapshot_replaces_another_lineage_and_later_records_follow_it(tmp_path: Path) -> None:
    lines: list[bytes] = []
    with TinyStateStore(tmp_path / "a") as a, TinyStateStore(tmp_path / "b") as b:
        for i in range(30):  # b's own history: a deposed master's writes, more of them than a has
            b.create(cm(f"mine{i}"))
        a.create(cm("theirs"))
        seq, data = journal(a).export()
        journal(a).tap = lambda _seq, line: lines.append(line)
        a.create(cm("after"))
        assert journal(b).install(data) == seq
        journal(b).append_replicated(lines)
    assert contents(tmp_path / "b") == {"theirs": {"k": "v"}, "after": {"k": "v"}}


# -- the stream --------------------------------------------------------------------------------------------
class Pair:
    """An active (Replicator on store a) and a standby (Follower on store b) on one inline in-memory broker."""

    def __init__(self, root: Path, *, timeout: float = 5.0) -> None:
        self.broker = MemoryBroker(inline=True)
        self.store = TinyStateStore(root / "a")
        self.lock = threading.RLock()
        self.active_bus: MemoryBus = self.broker.client("m1").start()
        self.standby_bus: MemoryBus = self.broker.client("m2").start()
        self.replicator = Replicator(
            self.active_bus, journal(self.store), master_id="m1", term=3, timeout=timeout, lock=self.lock
        )
        self.active_bus.subscribe(
            topics.master_ack("m1"), lambda m: self.replicator.on_ack(ReplicationAck.decode(m.payload))
        )
        self.active_bus.subscribe(
            topics.master_sync("m1"), lambda m: self.replicator.on_sync(SyncRequest.decode(m.payload))
        )
        self.active_bus.subscribe(
            topics.master_replication("m1"), lambda m: self.replicator.on_flag(ReplicationFlag.decode(m.payload))
        )
        self.follower = Follower(self.standby_bus, JournalStorage(root / "b"), master_id="m2")
        self.follower.term = 3
        self.standby_bus.subscribe(topics.master_replicate("m2"), self.follower.on_frame)
        self.replicator.start()

    def write(self, name: str) -> int:
        """One write and its group commit; the seq the answer waits for."""
        with self.lock:
            self.store.create(cm(name))
            return self.replicator.ship()

    def flag(self) -> ReplicationFlag:
        return ReplicationFlag.decode(self.broker.retained[topics.master_replication("m1")].payload)

    def close(self) -> None:
        self.store.close()
        self.follower.close()


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    p = Pair(tmp_path)
    yield p
    p.close()


def test_a_joining_standby_gets_a_snapshot_then_the_stream_and_writes_then_wait_for_it(pair: Pair) -> None:
    pair.write("before")
    assert pair.replicator.settle(pair.replicator.ship())  # alone: nobody follows yet, and the flag says so
    assert pair.flag().state is Replication.UNREPLICATED

    pair.follower.follow("m1", 3)  # asks; the snapshot arrives, is installed and acknowledged
    assert pair.follower.current
    assert pair.replicator.state is Replication.REPLICATED
    assert pair.flag().state is Replication.REPLICATED and pair.flag().peer == "m2"

    seq = pair.write("after")
    assert pair.follower.applied == seq  # shipped and applied inside the write's commit
    assert pair.replicator.settle(seq)
    assert pair.replicator.acked == seq


def test_a_silent_standby_is_declared_down_and_answers_go_once_the_broker_echoed_unreplicated(
    tmp_path: Path,
) -> None:
    p = Pair(tmp_path, timeout=0.05)
    try:
        p.follower.follow("m1", 3)
        assert p.replicator.state is Replication.REPLICATED
        p.standby_bus.close()  # it acknowledges nothing any more
        seq = p.write("lonely")
        assert p.replicator.settle(seq)
        assert p.replicator.state.value == "unreplicated"  # (mypy narrowed state above)
        assert p.flag().state is Replication.UNREPLICATED  # on the broker, retained, before the answer went
    finally:
        p.close()


def test_without_the_broker_s_echo_of_unreplicated_no_answer_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(active, "CONFIRM_TIMEOUT", 0.05)
    p = Pair(tmp_path, timeout=0.05)
    try:
        p.follower.follow("m1", 3)
        p.standby_bus.close()
        p.broker.outage()  # the flag cannot reach the broker
        assert not p.replicator.settle(p.write("lost"))
    finally:
        p.close()


def test_a_fenced_active_answers_nothing_and_publishes_no_desired_state(pair: Pair) -> None:
    pair.follower.follow("m1", 3)
    pair.replicator.fence()
    assert not pair.replicator.settle(pair.write("too-late"))
    with pair.replicator.publishing() as allowed:
        assert not allowed


def test_a_duplicate_frame_is_acknowledged_again_and_a_gap_asks_for_what_follows(pair: Pair) -> None:
    pair.follower.follow("m1", 3)
    seq = pair.write("one")
    acks = len(pair.broker.published(topics.master_ack("m1")))
    header = FrameHeader(kind="records", stream=pair.replicator.stream, term=3, first=seq, last=seq)
    pair.standby_bus.publish(topics.master_replicate("m2"), encode_frame(header, b""))  # a redelivery
    assert len(pair.broker.published(topics.master_ack("m1"))) == acks + 1
    assert pair.follower.applied == seq

    pair.follower.retry = 0.0  # it asks at most once per `retry` seconds; it just asked (follow)
    asks = len(pair.broker.published(topics.master_sync("m1")))
    beat = FrameHeader(kind="beat", stream=pair.replicator.stream, term=3, last=seq + 5)
    pair.standby_bus.publish(topics.master_replicate("m2"), encode_frame(beat))
    sync = pair.broker.published(topics.master_sync("m1"))[asks:]
    assert [SyncRequest.decode(m.payload) for m in sync][:1] == [
        SyncRequest(master_id="m2", stream=pair.replicator.stream, seq=seq)
    ]


def test_frames_of_an_older_term_are_ignored(pair: Pair) -> None:
    pair.follower.follow("m1", 3)
    before = pair.follower.applied
    old = FrameHeader(kind="snapshot", stream="m0.2.x", term=2, last=99)
    pair.standby_bus.publish(topics.master_replicate("m2"), encode_frame(old, b"garbage"))
    assert pair.follower.applied == before and pair.follower.current


def test_alone_an_active_answers_only_while_a_majority_of_its_nodes_is_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(active, "CONFIRM_TIMEOUT", 0.05)
    p = Pair(tmp_path, timeout=0.05)
    majority = False
    p.replicator._majority = lambda: majority
    try:
        assert not p.replicator.settle(p.write("cut-off"))  # unreplicated and echoed, but the nodes are not behind it
        majority = True
        assert p.replicator.settle(p.write("with-the-fleet"))
    finally:
        p.close()
