"""Messages of the streams to one client on edgekube/v1/clients/<id>/streams/<stream>: watch events, log chunks."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from edgekube.model.wire import WireModel

#: A watch the client has not renewed for this long is dropped by the master (the client renews every third of it).
WATCH_LEASE_SECONDS = 30.0
#: At most this many watches per master: each costs a selector match per write of its kind.
MAX_WATCHES = 256

EventType = Literal["ADDED", "MODIFIED", "DELETED"]


class WatchEvent(WireModel):
    """One change of one object, after the write is on flash; `seq` counts from 1 per stream, in publish order.

    DELETED carries the last object the watch saw (an object that stopped matching the selector is DELETED for
    this watch, as in Kubernetes).
    """

    stream: str
    seq: int = Field(ge=1)
    type: EventType
    object: dict[str, Any]


#: logs -f: chunks an agent sends beyond the last one acknowledged, the most text one chunk holds, and how long a
#: follow lives without a renewal from its client (it renews every third of it, acknowledging as it goes).
LOG_WINDOW_CHUNKS = 8
LOG_CHUNK_CHARS = 32 * 1024
FOLLOW_LEASE_SECONDS = 30.0


class LogChunk(WireModel):
    """Agent → one client (`ekctl logs -f`): the next lines of a followed container, `seq` from 1 per stream.

    `end` closes the stream with `reason` (the pod or container is gone from the node).
    """

    stream: str
    seq: int = Field(ge=1)
    text: str = ""
    end: bool = False
    reason: str = ""
    #: exec -it: on the last chunk, the command's exit code.
    exit_code: int | None = None
