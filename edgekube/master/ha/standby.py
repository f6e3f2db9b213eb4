"""The standby master's copy: replication frames applied to its own journal, acknowledged once on flash.

The Follower holds the standby's JournalStorage (the same directory the master opens when it takes over) and
handles every frame on `edgekube/v1/masters/<me>/replicate` with plan.classify: records that follow on are
appended as the very lines the active wrote (one flash sync per frame) and acknowledged; duplicates are
acknowledged again; a gap, another stream or a damaged record makes it ask the active (SyncRequest) for what
follows what it holds, at most once per `retry` seconds; snapshot chunks are assembled and installed.
After a start it holds no stream: the first thing it asks for is a snapshot.

Runs on the supervisor's bus handler thread only (frames) and the supervisor's thread (follow, close).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from edgekube.bus import topics
from edgekube.bus.protocol import Message, MessageBus
from edgekube.master.ha.plan import Step, classify
from edgekube.model.errors import EdgekubeError
from edgekube.model.ha import FrameHeader, ReplicationAck, SyncRequest, decode_frame
from edgekube.store.journal import JournalStorage

log = logging.getLogger(__name__)
T = TypeVar("T")


class Follower:
    """The standby's side of the stream."""

    def __init__(
        self,
        bus: MessageBus,
        storage: JournalStorage,
        *,
        master_id: str,
        retry: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        send: Callable[[str, bytes], None] | None = None,
    ) -> None:
        self.bus = bus
        #: Acks and requests go through one broker (the supervisor's first connected one), as the frames come.
        self._send: Callable[[str, bytes], None] = send if send is not None else bus.publish
        self.storage = storage
        self.master_id = master_id
        self.retry = retry
        self._clock = clock
        self._lock = threading.RLock()  # re-entered when a broker delivers inline (the unit tests' in-memory one)
        #: The active followed, the lowest term accepted, and the stream held ("" after a start: nothing current).
        self.active = ""
        self.term = 0
        self.stream = ""
        #: Snapshot chunks by (stream, seq, count), then index (a snapshot cut short by a broker change is dropped
        #: when a later one completes).
        self._chunks: dict[tuple[str, int, int], dict[int, bytes]] = {}
        self._asked_at = -float("inf")

    @property
    def applied(self) -> int:
        return self.storage.seq

    @property
    def current(self) -> bool:
        """Whether it holds the stream of the active it follows (a snapshot installed, or records since)."""
        return bool(self.stream) and self.stream.startswith(f"{self.active}.{self.term}.")

    def follow(self, active: str, term: int) -> None:
        """Follow `active` of `term` (announced active on the bus): ask it for what this copy misses."""
        with self._lock:
            if (active, term) == (self.active, self.term):
                if not self.current:
                    self._ask()  # once per `retry` until the snapshot is in
                return
            self.active, self.term = active, term
            self._ask(force=True)

    def on_frame(self, msg: Message) -> None:
        header, body = decode_frame(msg.payload)
        with self._lock:
            if header.term < self.term or not self.active:
                return  # a deposed master's last frames, or nobody followed yet
            step = classify(self.stream, self.storage.seq, header)
            if step is Step.SNAPSHOT:
                self._chunk(header, body)
            elif step is Step.APPLY:
                self._apply(header, body)
            elif step is Step.DUPLICATE:
                if header.kind == "records":
                    self._ack()
            else:  # GAP, FOREIGN
                self._ask()

    def inspect(self, read: Callable[[JournalStorage], T]) -> T:
        """Read the copy (from another thread than the frames'): `read(storage)` while no frame is applied."""
        with self._lock:
            return read(self.storage)

    def close(self) -> None:
        with self._lock:
            self.storage.close()

    # -- inside ----------------------------------------------------------------------------------------
    def _apply(self, header: FrameHeader, body: bytes) -> None:
        lines = [line + b"\n" for line in body.split(b"\n") if line]
        skip = self.storage.seq + 1 - header.first
        try:
            self.storage.append_replicated(lines[skip:])
        except EdgekubeError as exc:
            log.error("replication: records %d..%d refused (%s); asking again", header.first, header.last, exc)
            self._ask(force=True)
            return
        self._ack()

    def _chunk(self, header: FrameHeader, body: bytes) -> None:
        key = (header.stream, header.last, header.count)
        chunks = self._chunks.setdefault(key, {})
        chunks[header.index] = body
        if len(chunks) < header.count:
            return
        data = b"".join(chunks[i] for i in range(header.count))
        self._chunks = {}
        try:
            seq = self.storage.install(data)
        except EdgekubeError as exc:
            log.error("replication: snapshot at seq %d refused (%s); asking again", header.last, exc)
            self._ask(force=True)
            return
        self.stream = header.stream
        log.info("replication: installed a snapshot at seq %d from %s (%d bytes)", seq, self.active, len(data))
        self._ack()

    def _ack(self) -> None:
        ack = ReplicationAck(master_id=self.master_id, stream=self.stream, seq=self.storage.seq)
        self._send(topics.master_ack(self.active), ack.encode())

    def _ask(self, *, force: bool = False) -> None:
        now = self._clock()
        if not self.active or (not force and now - self._asked_at < self.retry):
            return
        self._asked_at = now
        request = SyncRequest(master_id=self.master_id, stream=self.stream, seq=self.storage.seq)
        self._send(topics.master_sync(self.active), request.encode())
