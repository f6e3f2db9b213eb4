"""Wire schemas of two-master HA (docs/ha.md): presence, witness, replication frames; used by master, agent, ekctl.

A replication frame is one MQTT payload: a JSON header line (`FrameHeader`), a newline, then a body. For records
the body is the active's journal lines exactly as it appended them (`<crc32> <payload>` and a newline each, see
edgekube/store/files.py), so the standby appends the very bytes and checks their checksums; for a snapshot the
body is one chunk of the store's snapshot file. No JSON escaping of the documents: a record costs its own size.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from edgekube.model.errors import ValidationError
from edgekube.model.wire import MAX_PAYLOAD_BYTES, WireModel

#: Frames are cut at this size; one record (one write: an object of at most MAX_PAYLOAD_BYTES plus its table's
#: metadata) may exceed it alone, so a frame may be up to FRAME_LIMIT (docs/protocol.md: brokers allow 2 MiB).
FRAME_TARGET = 512 * 1024
FRAME_LIMIT = 2 * MAX_PAYLOAD_BYTES


class Role(StrEnum):
    ACTIVE = "active"
    STANDBY = "standby"


class Replication(StrEnum):
    """What a master says of the standby's copy (MasterPresence.replication; shown by `ekctl get masters`)."""

    #: Every acknowledged write is on the standby's flash too.
    REPLICATED = "replicated"
    #: The standby is down or behind: writes are acknowledged when they are on the active's flash alone.
    UNREPLICATED = "unreplicated"
    #: The standby is loading a snapshot and the records after it; writes are acknowledged as unreplicated.
    CATCHING_UP = "catching-up"
    #: A standby's own presence: it holds a copy (streamed from the active named in `peer`).
    FOLLOWING = "following"
    #: A standby with no current copy yet (just started, or deposed and waiting for a snapshot).
    STALE = "stale"


class MasterPresence(WireModel):
    """Retained on `edgekube/v1/masters/<id>/online`; the Last Will is `{"online": false, "masterId", "term"}`."""

    online: bool
    master_id: str
    role: Role | None = None
    term: int = Field(default=0, ge=0)
    boot_id: str = ""
    #: What this master says of the standby's copy (a Replication value; "" in a Will).
    replication: str = ""
    #: The other master: the active's standby, or the active a standby follows.
    peer: str = ""
    #: The last journal sequence number this master holds (the active's: written; the standby's: applied).
    seq: int = Field(default=0, ge=0)
    #: A standby waiting: why it does not take over (plan.py's reason); an active handing over: "handover".
    note: str = ""


class Witness(WireModel):
    """Agent → standby, retained on `edgekube/v1/nodes/<node>/witness`: what this node sees of the active master."""

    node: str
    #: The highest term this agent accepted desired state for.
    term: int = Field(ge=0)
    #: The master that announced itself active with that term ("" when none yet).
    active: str = ""
    #: Whether that master's presence is online on the broker the agent is connected to.
    active_online: bool = False
    #: When (RFC 3339) any of these last changed.
    since: str = ""


class ReplicationFlag(WireModel):
    """Retained on `edgekube/v1/masters/<id>/replication` by the active (not replaced by its Will).

    Published, and seen back from the broker, before the active acknowledges any write its standby does not hold,
    so a standby that later sees the active gone knows whether its own copy may miss acknowledged writes.
    """

    master_id: str
    term: int = Field(ge=0)
    state: Replication
    peer: str = ""
    seq: int = Field(default=0, ge=0)
    #: Counts this term's flags: with two brokers a standby may see an old copy on one; the highest is the truth.
    version: int = Field(default=0, ge=0)


class ReplicationAck(WireModel):
    """Standby → active on `edgekube/v1/masters/<active>/ack`: every record up to `seq` of `stream` is on flash."""

    master_id: str
    stream: str
    seq: int = Field(ge=0)


class SyncRequest(WireModel):
    """Standby → active on `edgekube/v1/masters/<active>/sync`: send me what follows `seq` of `stream`.

    An unknown stream (or a sequence the active no longer keeps) gets a full snapshot, then the records after it.
    """

    master_id: str
    stream: str = ""
    seq: int = Field(default=0, ge=0)


class FrameHeader(WireModel):
    """First line of a frame on `edgekube/v1/masters/<standby>/replicate`.

    kind "records": the body holds the journal records `first`..`last` (consecutive) of `stream`.
    kind "snapshot": the body is chunk `index` of `count` of a snapshot at sequence `last`; the records after it
    follow in the same stream. kind "beat": no body; `last` is the active's newest sequence number (sent when idle).
    """

    kind: Literal["records", "snapshot", "beat"]
    stream: str
    term: int = Field(ge=0)
    first: int = Field(default=0, ge=0)
    last: int = Field(ge=0)
    index: int = Field(default=0, ge=0)
    count: int = Field(default=1, ge=1)


def encode_frame(header: FrameHeader, body: bytes = b"") -> bytes:
    return header.encode() + b"\n" + body


def decode_frame(payload: bytes) -> tuple[FrameHeader, bytes]:
    """Split a frame; ValidationError names what is wrong (size, header line, header field)."""
    if len(payload) > FRAME_LIMIT:
        raise ValidationError(f"replication frame: {len(payload)} bytes exceeds the limit of {FRAME_LIMIT}")
    head, sep, body = payload.partition(b"\n")
    if not sep:
        raise ValidationError("replication frame: no header line (expected a JSON header, a newline, a body)")
    return FrameHeader.decode(head, what="replication frame header"), body
