"""`ekctl logs -f` on the node: one thread per followed container, pushing LogChunks to the client over MQTT.

Called by agent.app (verb logs with `follow`: start, or renew and acknowledge). The follower reads the container's
log from the local runtime with timestamps, since the last line it sent, every POLL seconds (Podman on the same
board, never the network), so it carries on across restarts of the container: the agent restarts the same Podman
container, whose log keeps growing. Flow control: at most LOG_WINDOW_CHUNKS chunks beyond the client's last
acknowledgement; a follow whose client stopped renewing for FOLLOW_LEASE_SECONDS ends. When the pod or container
is gone it sends a last chunk with `end` and the reason.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from edgekube.agent.runtime.protocol import LogWindow, PodRuntime
from edgekube.model.errors import EdgekubeError, NotFoundError
from edgekube.model.names import PodUID
from edgekube.model.watch import FOLLOW_LEASE_SECONDS, LOG_CHUNK_CHARS, LOG_WINDOW_CHUNKS, LogChunk

log = logging.getLogger(__name__)

#: How often the follower reads the container's new lines from the local runtime.
POLL = 0.5
#: Follows one node serves at once.
MAX_FOLLOWS = 16
Publish = Callable[[str, bytes], None]
Clock = Callable[[], float]


@dataclass(frozen=True)
class FollowSpec:
    uid: PodUID
    container: str
    topic: str  # the client's stream topic
    stream: str
    tail: int | None
    since: float | None  # Unix seconds
    timestamps: bool  # the client asked for them (they are always read, to continue after the last line)


def split_stamp(line: str) -> tuple[str, str]:
    """`2026-12-03T11:00:00.123456789Z text` → (stamp, text); Podman's stamps sort as text within one zone."""
    stamp, _, text = line.partition(" ")
    return stamp, text


class Follower:
    """One followed container; `renew(ack)` from the client's requests, `stop()` from the agent."""

    def __init__(self, spec: FollowSpec, runtime: PodRuntime, publish: Publish, clock: Clock) -> None:
        self.spec = spec
        self._runtime = runtime
        self._publish = publish
        self._clock = clock
        self._acked = 0
        self._sent = 0
        self._expires = clock() + FOLLOW_LEASE_SECONDS
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._last_stamp = ""
        self.thread = threading.Thread(target=self._run, name=f"logs-f-{spec.container}", daemon=True)

    def start(self) -> Follower:
        self.thread.start()
        return self

    def renew(self, ack: int | None) -> None:
        with self._changed:
            self._expires = self._clock() + FOLLOW_LEASE_SECONDS
            if ack is not None:
                self._acked = max(self._acked, min(ack, self._sent))
            self._changed.notify_all()

    def stop(self) -> None:
        self._stop.set()
        with self._changed:
            self._changed.notify_all()

    @property
    def done(self) -> bool:
        return self._stop.is_set()

    def _read(self, first: bool) -> list[str]:
        """New lines (with their stamps) since the last one sent; the first read honours tail and since."""
        window = LogWindow(since=self.spec.since if first else None, timestamps=True)
        if not first and self._last_stamp:
            window = LogWindow(since=_unix(self._last_stamp), timestamps=True)
        text = self._runtime.logs(self.spec.uid, self.spec.container, self.spec.tail if first else None, window)
        lines = text.splitlines(keepends=True)
        if not first:
            lines = [line for line in lines if split_stamp(line)[0] > self._last_stamp]
        return lines

    def _send(self, text: str = "", *, end: bool = False, reason: str = "") -> None:
        self._sent += 1
        chunk = LogChunk(stream=self.spec.stream, seq=self._sent, text=text, end=end, reason=reason)
        self._publish(self.spec.topic, chunk.encode())

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            with self._changed:
                while self._sent - self._acked >= LOG_WINDOW_CHUNKS and not self._stop.is_set():
                    if self._clock() >= self._expires:
                        break
                    self._changed.wait(POLL)
                expired = self._clock() >= self._expires
            if expired:
                log.info("logs -f of %s ended: its client stopped renewing", self.spec.container)
                break
            try:
                lines = self._read(first)
            except NotFoundError as exc:
                self._send(end=True, reason=str(exc))
                break
            except EdgekubeError as exc:  # the engine is busy or restarting: try again on the next poll
                log.debug("logs -f read failed: %s", exc)
                lines = []
            first = False
            self._ship(lines)
            self._stop.wait(POLL)
        self._stop.set()

    def _ship(self, lines: list[str]) -> None:
        text = ""
        for line in lines:
            stamp, rest = split_stamp(line)
            self._last_stamp = max(self._last_stamp, stamp)
            shown = line if self.spec.timestamps else rest
            if len(text) + len(shown) > LOG_CHUNK_CHARS and text:
                self._send(text)
                text = ""
            while len(shown) > LOG_CHUNK_CHARS:  # a line longer than a chunk goes in pieces, nothing dropped
                self._send(shown[:LOG_CHUNK_CHARS])
                shown = shown[LOG_CHUNK_CHARS:]
            text += shown
        if text:
            self._send(text)


def _unix(stamp: str) -> float:
    """Podman's RFC 3339 stamp (nanoseconds, any zone) as Unix seconds.

    Python keeps microseconds, which is why `_read` drops the lines not after the last stamp by their text.
    """
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class Follows:
    """Every follow this node serves, by stream topic."""

    def __init__(self, runtime: PodRuntime, publish: Publish, clock: Clock) -> None:
        self._runtime = runtime
        self._publish = publish
        self._clock = clock
        self._follows: dict[str, Follower] = {}
        self._lock = threading.Lock()

    def start_or_renew(self, spec: FollowSpec, ack: int | None) -> bool:
        """True when a follow started; a known one is renewed (and acknowledged)."""
        with self._lock:
            self._follows = {t: f for t, f in self._follows.items() if not f.done}
            known = self._follows.get(spec.topic)
            if known is not None:
                known.renew(ack)
                return False
            if len(self._follows) >= MAX_FOLLOWS:
                raise EdgekubeError(f"logs -f: this node follows at most {MAX_FOLLOWS} containers at once")
            self._follows[spec.topic] = Follower(spec, self._runtime, self._publish, self._clock).start()
            return True

    def stop_all(self) -> None:
        with self._lock:
            for follower in self._follows.values():
                follower.stop()
            self._follows = {}
