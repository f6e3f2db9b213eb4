"""The active master's replication: its journal records streamed to the standby, answers held until acknowledged.

The Replicator is the active Master's CommitGate (gate.py). JournalStorage hands it every record it appends
(`tap`); each group commit ships the new ones, in frames of up to FRAME_TARGET bytes, on
`edgekube/v1/masters/<standby>/replicate` (QoS 1), and the commit's answers wait until the standby acknowledged
that sequence number on `edgekube/v1/masters/<me>/ack`. When no acknowledgement comes within `timeout`, or the
standby's presence goes offline, the standby is declared down: the active publishes its retained replication
flag "unreplicated" and answers only once it has seen that flag back from the broker, so a standby can always
tell whether its copy may miss an acknowledged write (plan.plan_takeover). A standby (re)joining asks with a
SyncRequest and gets the records it misses from memory, or a snapshot and what follows it; once it acknowledged
all of that and everything acknowledged alone meanwhile, the flag says "replicated" again.

Called from the master's threads (tap, ship, settle: the commit and the loop) and the supervisor's bus thread
(on_ack, on_sync, on_peer, on_flag): one condition variable guards the state; `lock` is the master's, taken
only to export a consistent snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from edgekube.bus import topics
from edgekube.bus.protocol import MessageBus
from edgekube.model.ha import (
    FRAME_TARGET,
    FrameHeader,
    MasterPresence,
    Replication,
    ReplicationAck,
    ReplicationFlag,
    Role,
    SyncRequest,
    encode_frame,
)
from edgekube.store.journal import JournalStorage

log = logging.getLogger(__name__)

#: Records kept in memory for a standby that fell a little behind (beyond: a snapshot).
RING_BYTES = 4 * 1024 * 1024
#: How long answers wait for the broker to echo the "unreplicated" flag (and, alone, for a majority of Ready nodes)
#: before they are dropped.
CONFIRM_TIMEOUT = 5.0
#: How often a waiting answer looks again whether the majority is back (nothing signals it).
MAJORITY_POLL = 0.1


class Replicator:
    """The active's side of the stream, and its CommitGate."""

    def __init__(
        self,
        bus: MessageBus,
        storage: JournalStorage,
        *,
        master_id: str,
        term: int,
        timeout: float,
        lock: threading.RLock,
        on_change: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        brokers: Callable[[], set[int]] = lambda: {0},
        majority: Callable[[], bool] = lambda: True,
        send: Callable[[str, bytes], None] | None = None,
        fresh: Callable[[], bool] = lambda: True,
    ) -> None:
        self.bus = bus
        #: Whether this master has seen what the brokers hold since it last (re)connected: desired state is
        #: published only then (a higher term may be waiting there after a cut heals).
        self._fresh = fresh
        #: Frames go through ONE broker (the supervisor's first connected one): through all of them they would
        #: arrive twice and out of order between brokers. The flag goes to every broker (`bus`).
        self._send: Callable[[str, bytes], None] = send if send is not None else bus.publish
        self.storage = storage
        self.master_id = master_id
        self.term = term
        self.timeout = timeout
        #: The master's lock (writes happen under it): held to export a snapshot consistent with its seq.
        self.lock = lock
        #: Told when the state changes (the supervisor republishes this master's presence).
        self._on_change = on_change
        self._clock = clock
        #: The brokers (member indices of a FanoutBus; {0} for one broker) connected now: the "unreplicated" flag
        #: must come back from each of them before an answer relies on it.
        self._brokers = brokers
        #: Whether a majority of the nodes is Ready in this master's eyes: alone, it answers only while it holds one
        #: (a standby can then not gather the majority of witnesses it needs to take over).
        self._majority = majority
        self.stream = f"{master_id}.{term}.{uuid.uuid4().hex[:8]}"
        self._cond = threading.Condition()
        self.state = Replication.UNREPLICATED
        self.peer = ""
        self.acked = 0
        self._pending: list[tuple[int, bytes]] = []
        self._ring: deque[tuple[int, bytes]] = deque()
        self._ring_bytes = 0
        self._shipped = storage.seq
        self._snapshot_seq = 0
        self._snapshot_acked = False
        #: The highest seq answered while the standby did not hold it: "replicated" again only once it does.
        self._alone_max = 0
        self._published: ReplicationFlag | None = None
        self._confirmed_by: set[int] = set()
        self._fenced = False
        self._version = 0
        self._publishing = threading.Lock()
        self.reason = "no standby yet"
        storage.tap = self._tap

    # -- the journal -----------------------------------------------------------------------------------
    def _tap(self, seq: int, line: bytes) -> None:
        with self._cond:
            self._pending.append((seq, line))
            self._ring.append((seq, line))
            self._ring_bytes += len(line)
            while self._ring_bytes > RING_BYTES and len(self._ring) > 1:
                self._ring_bytes -= len(self._ring.popleft()[1])

    # -- CommitGate ------------------------------------------------------------------------------------
    def ship(self) -> int:
        """Send the records appended since the last ship (under the master's lock, so in journal order)."""
        with self._cond:
            pending, self._pending = self._pending, []
            self._shipped = self.storage.seq
            if pending and self.peer and self.state is not Replication.UNREPLICATED and not self._fenced:
                self._send_records(pending)
            return self._shipped

    def settle(self, seq: int) -> bool:
        """Block until writes up to `seq` may be answered: the standby holds them, or the cluster knows it does not."""
        with self._cond:
            deadline = self._clock() + self.timeout
            confirm_by = deadline + CONFIRM_TIMEOUT
            while not self._fenced:
                if seq <= self.acked:
                    return True
                now = self._clock()
                if self._waits_for_standby():
                    if now >= deadline:
                        self._degrade(f"{self.peer} did not acknowledge seq {seq} within {self.timeout:g}s")
                        continue
                    self._cond.wait(deadline - now)
                    continue
                if self._told_unreplicated() and self._majority():
                    self._alone_max = max(self._alone_max, seq)
                    return True
                if now >= confirm_by:
                    why = "a majority of the nodes is not Ready" if self._told_unreplicated() else (
                        "the brokers did not all echo the 'unreplicated' flag"
                    )  # fmt: skip
                    log.error("answers dropped: alone, and %s within %gs", why, CONFIRM_TIMEOUT)
                    return False
                self._cond.wait(min(confirm_by - now, MAJORITY_POLL))
            return False

    @contextmanager
    def publishing(self) -> Iterator[bool]:
        with self._publishing:
            yield not self._fenced and self._fresh()

    # -- what the supervisor tells it -------------------------------------------------------------------
    def fence(self) -> None:
        """Deposed: no answer and no desired state may leave this master any more (returns once none is underway)."""
        with self._publishing, self._cond:
            self._fenced = True
            self.storage.tap = None
            self._cond.notify_all()

    def start(self) -> None:
        """Say where the copy stands before the first answer (the flag this active's answers rely on)."""
        with self._cond:
            self._publish_flag()

    def on_ack(self, ack: ReplicationAck) -> None:
        with self._cond:
            if ack.master_id != self.peer or ack.stream != self.stream or ack.seq < self.acked:
                return
            self.acked = ack.seq
            if self.acked >= self._snapshot_seq:
                self._snapshot_acked = True
            if self.state is Replication.CATCHING_UP and self.acked >= max(self._snapshot_seq, self._alone_max):
                self.state = Replication.REPLICATED
                self.reason = f"{self.peer} holds every acknowledged write"
                log.info("replication: %s caught up at seq %d; writes now wait for it", self.peer, self.acked)
                self._publish_flag()
                self._changed()
            self._cond.notify_all()

    def on_sync(self, request: SyncRequest) -> None:
        """A standby asks to follow: the records it misses (from memory) or a snapshot, then the stream."""
        with self.lock, self._cond:
            if self._fenced:
                return
            self.peer = request.master_id
            self.state = Replication.CATCHING_UP
            self.reason = f"{self.peer} is catching up"
            self._publish_flag()  # before any frame: a standby mid-install never sees "replicated"
            self._pending = []
            self._shipped = self.storage.seq
            held = [(s, line) for s, line in self._ring if s > request.seq]
            resumable = request.stream == self.stream and (
                request.seq == self._shipped or (held and held[0][0] == request.seq + 1)
            )
            if resumable:
                self._snapshot_seq = request.seq
                if held:
                    self._send_records(held)
                how = f"records {request.seq + 1}..{self._shipped}"
            else:
                self._snapshot_seq, data = self.storage.export()
                self._send_snapshot(self._snapshot_seq, data)
                how = f"a snapshot at seq {self._snapshot_seq} ({len(data)} bytes)"
            self.acked = min(self.acked, request.seq) if request.stream == self.stream else 0
            self._snapshot_acked = False
            log.info("replication: %s asked to follow from %s:%d; sending %s", self.peer, request.stream or "-",
                     request.seq, how)  # fmt: skip
            self._cond.notify_all()
        self._changed()

    def on_peer(self, presence: MasterPresence) -> None:
        """The other master's presence: a standby online may follow; the followed one going offline is down."""
        with self._cond:
            if presence.master_id == self.master_id:
                return
            if presence.online and presence.role is Role.STANDBY and not self.peer:
                self.peer = presence.master_id
            elif not presence.online and presence.master_id == self.peer and self.state is not Replication.UNREPLICATED:
                self._degrade(f"{self.peer} went offline")

    def on_flag(self, flag: ReplicationFlag, broker: int = 0) -> None:
        """Our own flag, back from broker number `broker`: answers relying on it may go once every broker echoed it."""
        with self._cond:
            if flag == self._published:
                self._confirmed_by.add(broker)
                self._cond.notify_all()

    def republish(self) -> None:
        """A broker (re)connected: it must hold the current flag too (its retained copy may be an old one)."""
        with self._cond:
            if self._published is not None and not self._fenced:
                self._publish_flag()

    def beat(self) -> None:
        """When idle: tell the standby the last seq, so one that missed records asks for them."""
        with self._cond:
            if self.peer and not self._fenced:
                header = FrameHeader(kind="beat", stream=self.stream, term=self.term, last=self._shipped)
                self._send(topics.master_replicate(self.peer), encode_frame(header))

    # -- inside ----------------------------------------------------------------------------------------
    def _waits_for_standby(self) -> bool:
        if self.state is Replication.REPLICATED:
            return True
        # Caught up with the snapshot: wait for the standby rather than run ahead of it, so it can catch up fully.
        return self.state is Replication.CATCHING_UP and self._snapshot_acked

    def _told_unreplicated(self) -> bool:
        flag = self._published
        if flag is None or flag.state is Replication.REPLICATED:
            return False
        connected = self._brokers()
        return bool(connected) and connected <= self._confirmed_by

    def _degrade(self, why: str) -> None:
        log.warning("replication: %s; writes are acknowledged unreplicated until it catches up", why)
        self.state = Replication.UNREPLICATED
        self.reason = why
        self._publish_flag()
        self._changed()

    def _changed(self) -> None:
        try:
            self._on_change()
        except Exception:
            log.exception("replication: announcing the new state failed")

    def _publish_flag(self) -> None:
        self._version += 1
        flag = ReplicationFlag(
            master_id=self.master_id, term=self.term, state=self.state, peer=self.peer, seq=self.acked,
            version=self._version,
        )  # fmt: skip
        self._published, self._confirmed_by = flag, set()
        self.bus.publish(topics.master_replication(self.master_id), flag.encode(), retain=True)

    def _send_records(self, records: list[tuple[int, bytes]]) -> None:
        topic = topics.master_replicate(self.peer)
        start = 0
        while start < len(records):
            end, size = start, 0
            while end < len(records) and (end == start or size + len(records[end][1]) <= FRAME_TARGET):
                size += len(records[end][1])
                end += 1
            chunk = records[start:end]
            header = FrameHeader(
                kind="records", stream=self.stream, term=self.term, first=chunk[0][0], last=chunk[-1][0]
            )
            self._send(topic, encode_frame(header, b"".join(line for _, line in chunk)))
            start = end

    def _send_snapshot(self, seq: int, data: bytes) -> None:
        topic = topics.master_replicate(self.peer)
        count = max(1, -(-len(data) // FRAME_TARGET))
        for index in range(count):
            header = FrameHeader(
                kind="snapshot", stream=self.stream, term=self.term, last=seq, index=index, count=count
            )
            self._send(topic, encode_frame(header, data[index * FRAME_TARGET : (index + 1) * FRAME_TARGET]))
