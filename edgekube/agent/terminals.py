"""`ekctl exec -it` on the node: interactive commands with a terminal, their output pushed to the client's stream.

Called by agent.app (verb exec with `tty`): the first request of a stream starts the command through the runtime's
exec_tty (a thread reads its output and publishes LogChunks on the client's stream topic, the last one with the exit
code); later requests on the stream carry keystrokes and resizes, in order (`ack` numbers them; a duplicate is
dropped). A terminal whose client sent nothing for FOLLOW_LEASE_SECONDS is hung up, as a dropped ssh session.
"""

from __future__ import annotations

import base64
import codecs
import logging
import threading
from collections.abc import Callable

from edgekube.agent.runtime.protocol import PodRuntime, TtySession
from edgekube.model.errors import EdgekubeError
from edgekube.model.names import PodUID
from edgekube.model.watch import FOLLOW_LEASE_SECONDS, LogChunk
from edgekube.model.wire import ApiRequest

log = logging.getLogger(__name__)

#: Interactive commands one node runs at once.
MAX_TERMINALS = 8
Publish = Callable[[str, bytes], None]
Clock = Callable[[], float]


class Terminal:
    """One interactive command: output → chunks on `topic`; input and resizes from requests."""

    def __init__(self, session: TtySession, topic: str, stream: str, publish: Publish, clock: Clock) -> None:
        self.session, self.topic, self.stream = session, topic, stream
        self._publish, self._clock = publish, clock
        self._seq = 0
        self._input = 0
        self.expires = clock() + FOLLOW_LEASE_SECONDS
        self.ended = threading.Event()
        threading.Thread(target=self._pump, name=f"tty-{stream}", daemon=True).start()
        threading.Thread(target=self._watchdog, name=f"tty-lease-{stream}", daemon=True).start()

    def _send(self, text: str, **end: object) -> None:
        self._seq += 1
        chunk = LogChunk(stream=self.stream, seq=self._seq, text=text, **end)
        self._publish(self.topic, chunk.encode())

    def _pump(self) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        try:
            while data := self.session.read():
                self._send(decoder.decode(data))
            code = self.session.exit_code()
        except EdgekubeError as exc:
            self._send(decoder.decode(b"", final=True), end=True, reason=str(exc), exit_code=1)
        else:
            self._send(decoder.decode(b"", final=True), end=True, reason="exited", exit_code=code)
        finally:
            self.ended.set()
            self.session.close()

    def _watchdog(self) -> None:
        while not self.ended.wait(1.0):
            if self._clock() >= self.expires:
                log.info("exec -it on %s hung up: its client sent nothing for %ss", self.topic, FOLLOW_LEASE_SECONDS)
                self.session.close()
                return

    def feed(self, req: ApiRequest) -> None:
        self.expires = self._clock() + FOLLOW_LEASE_SECONDS
        if req.ack is not None:
            if req.ack <= self._input:
                return  # delivered twice
            self._input = req.ack
        if req.rows and req.cols:
            self.session.resize(req.rows, req.cols)
        if req.stdin:
            self.session.write(base64.b64decode(req.stdin))


class Terminals:
    """Every interactive command this node runs, by stream topic."""

    def __init__(self, runtime: PodRuntime, publish: Publish, clock: Clock) -> None:
        self._runtime, self._publish, self._clock = runtime, publish, clock
        self._open: dict[str, Terminal] = {}
        self._lock = threading.Lock()

    def handle(self, req: ApiRequest, uid: PodUID, container: str, topic: str) -> bool:
        """Start the command (True) or feed a running one; a request for an ended one is refused."""
        with self._lock:
            self._open = {t: term for t, term in self._open.items() if not term.ended.is_set()}
            known = self._open.get(topic)
            if known is not None:
                known.feed(req)
                return False
            if not req.command:
                raise EdgekubeError("exec -it: this terminal has ended")
            if len(self._open) >= MAX_TERMINALS:
                raise EdgekubeError(f"exec -it: this node runs at most {MAX_TERMINALS} terminals at once")
            session = self._runtime.exec_tty(uid, container, list(req.command), req.rows or 24, req.cols or 80)
            self._open[topic] = Terminal(session, topic, req.stream or "", self._publish, self._clock)
            return True

    def close_all(self) -> None:
        with self._lock:
            for term in self._open.values():
                term.session.close()
            self._open = {}
