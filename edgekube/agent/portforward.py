"""`ekctl port-forward` on the node: one TCP connection to a pod's port per client stream, bytes relayed both ways.

Called by agent.app (verb portforward): the first request of a stream dials the pod (its IP, or 127.0.0.1 for a
hostNetwork pod) and starts a Relay. The pod's bytes go to the client's stream as LogChunks (base64 text), at most
PF_WINDOW_CHUNKS beyond the client's `received` and PF_RATE_BYTES a second; the client's bytes come in requests
(`stdin`, numbered by `ack`, a duplicate dropped) and each is answered once written, so a slow pod holds the client
back. `eof` from the client half-closes the pod's side; the pod's EOF ends the stream with reason "eof". A relay
whose client sent nothing for PF_LEASE_SECONDS is closed.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import queue
import socket
import threading
from collections.abc import Callable
from typing import Protocol

from edgekube.model.errors import EdgekubeError
from edgekube.model.portforward import (
    PF_CHUNK_BYTES,
    PF_LEASE_SECONDS,
    PF_MAX_SESSIONS,
    PF_RATE_BYTES,
    PF_SEND_BYTES,
    PF_WINDOW_CHUNKS,
)
from edgekube.model.watch import LogChunk
from edgekube.model.wire import ApiRequest

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], None]
Clock = Callable[[], float]
Sleep = Callable[[float], None]
#: Called once the client's bytes of one request are written (or failed: the error), to answer that request.
Done = Callable[[EdgekubeError | None], None]


class Conn(Protocol):
    """The relay's side of a TCP connection to the pod."""

    def recv(self, size: int) -> bytes: ...
    def sendall(self, data: bytes) -> None: ...
    def shutdown_write(self) -> None: ...
    def close(self) -> None: ...


Dial = Callable[[str, int], Conn]


class SocketConn:
    """A real TCP connection (socket.create_connection)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def recv(self, size: int) -> bytes:
        return self._sock.recv(size)

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)

    def shutdown_write(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


def dial_tcp(host: str, port: int) -> Conn:
    """Connect to the pod's port (5 s to connect; then blocking)."""
    try:
        sock = socket.create_connection((host, port), timeout=5.0)
    except OSError as exc:
        raise EdgekubeError(f"port-forward: cannot connect to {host}:{port} in the pod: {exc}") from None
    sock.settimeout(None)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return SocketConn(sock)


class Relay:
    """One forwarded connection: pod → chunks on `topic` (windowed, rate-capped); requests → pod (in order)."""

    def __init__(
        self, conn: Conn, topic: str, stream: str, publish: Publish,
        *, clock: Clock, sleep: Sleep, rate: int = PF_RATE_BYTES,
    ) -> None:  # fmt: skip
        self.conn, self.topic, self.stream = conn, topic, stream
        self._publish, self._clock, self._sleep, self._rate = publish, clock, sleep, rate
        self._seq = 0
        self._send_lock = threading.Lock()
        self._last_sent = False
        self._received = 0
        self._input = 0
        self._cond = threading.Condition()
        self._writes: queue.Queue[tuple[bytes | None, Done]] = queue.Queue()
        self.expires = clock() + PF_LEASE_SECONDS
        self.ended = threading.Event()
        self._pod_done = False
        self._client_done = False
        threading.Thread(target=self._pump, name=f"pf-out-{stream}", daemon=True).start()
        threading.Thread(target=self._writer, name=f"pf-in-{stream}", daemon=True).start()
        threading.Thread(target=self._watchdog, name=f"pf-lease-{stream}", daemon=True).start()

    # -- pod → client ---------------------------------------------------------------------------------------
    def _send(self, data: bytes, *, end: bool = False, reason: str = "") -> None:
        """Publish the next chunk; nothing after the last one (the pump and a close from outside may race)."""
        with self._send_lock:
            if self._last_sent:
                return
            self._last_sent = end
            self._seq += 1
            text = base64.b64encode(data).decode()
            chunk = LogChunk(stream=self.stream, seq=self._seq, text=text, end=end, reason=reason)
            self._publish(self.topic, chunk.encode())

    def _window_open(self) -> bool:
        """Wait until the client acknowledged enough chunks; False when the relay ended meanwhile."""
        with self._cond:
            while self._seq - self._received >= PF_WINDOW_CHUNKS and not self.ended.is_set():
                self._cond.wait(1.0)
                if self._clock() >= self.expires:
                    return False
            return not self.ended.is_set()

    def _pump(self) -> None:
        started, sent = self._clock(), 0
        try:
            while self._window_open():
                data = self.conn.recv(PF_CHUNK_BYTES)
                if self.ended.is_set():
                    return  # closed from outside (its last chunk is sent): what recv says now is no news
                if not data:
                    self._send(b"", end=True, reason="eof")
                    break
                self._send(data)
                sent += len(data)
                ahead = sent / self._rate - (self._clock() - started)  # the rate cap: wait out what ran ahead
                if ahead > 0:
                    self._sleep(ahead)
            else:
                if not self.ended.is_set():
                    self._send(b"", end=True, reason="the client stopped acknowledging")
                self._finish()
                return
        except OSError as exc:
            if self.ended.is_set():
                return
            self._send(b"", end=True, reason=f"connection to the pod lost: {exc}")
            self._finish()
            return
        with self._cond:
            self._pod_done = True
            both = self._client_done
        if both:
            self._finish()

    # -- client → pod ---------------------------------------------------------------------------------------
    def _writer(self) -> None:
        while True:
            data, done = self._writes.get()
            if self.ended.is_set():
                done(EdgekubeError("port-forward: this connection has ended"))
                return
            try:
                if data is None:
                    self.conn.shutdown_write()
                else:
                    self.conn.sendall(data)
            except OSError as exc:
                done(EdgekubeError(f"port-forward: writing to the pod failed: {exc}"))
                self._finish()
                return
            done(None)
            if data is None:
                with self._cond:
                    self._client_done = True
                    both = self._pod_done
                if both:
                    self._finish()
                return

    def feed(self, req: ApiRequest, done: Done) -> None:
        """A request on this stream: take its ack of our chunks, queue its bytes or EOF; `done` answers it."""
        self.expires = self._clock() + PF_LEASE_SECONDS
        with self._cond:
            if req.received is not None and req.received > self._received:
                self._received = req.received
                self._cond.notify_all()
        if req.ack is not None:
            if req.ack <= self._input:
                done(None)  # delivered twice
                return
            self._input = req.ack
        if req.stdin:
            data = base64.b64decode(req.stdin)
            if len(data) > PF_SEND_BYTES:
                done(EdgekubeError(f"port-forward: a request carries at most {PF_SEND_BYTES} bytes"))
                return
            self._writes.put((data, done))
        elif req.eof:
            self._writes.put((None, done))
        else:
            done(None)

    def _watchdog(self) -> None:
        while not self.ended.wait(1.0):
            if self.expired():
                log.info("port-forward on %s closed: its client sent nothing for %ss", self.topic, PF_LEASE_SECONDS)
                self.close("the client sent nothing for a while")
                return

    def expired(self) -> bool:
        return self._clock() >= self.expires

    def _finish(self) -> None:
        if not self.ended.is_set():
            self.ended.set()
            with self._cond:
                self._cond.notify_all()
            self.conn.close()
            self._writes.put((b"", lambda _e: None))  # wakes the writer so it returns

    def close(self, reason: str) -> None:
        """End from outside (the pod left the node, the agent stops): the client hears why."""
        if not self.ended.is_set():
            self._send(b"", end=True, reason=reason)
        self._finish()


class Relays:
    """Every forwarded connection of this node, by stream topic."""

    def __init__(self, publish: Publish, clock: Clock, sleep: Sleep, dial: Dial = dial_tcp) -> None:
        self._publish, self._clock, self._sleep, self._dial = publish, clock, sleep, dial
        self._open: dict[str, tuple[str, Relay]] = {}  # topic -> (pod uid, relay)
        self._lock = threading.Lock()

    def handle(self, req: ApiRequest, uid: str, host: str, topic: str, done: Done) -> bool:
        """Open a connection (True; `done` is not called) or feed an open one (False; `done` answers it later)."""
        with self._lock:
            self._prune()
            known = self._open.get(topic)
            if known is not None:
                known[1].feed(req, done)
                return False
            if req.port is None:
                raise EdgekubeError("port-forward: this connection has ended")
            if len(self._open) >= PF_MAX_SESSIONS:
                raise EdgekubeError(f"port-forward: this node serves at most {PF_MAX_SESSIONS} connections at once")
            conn = self._dial(host, req.port)
            relay = Relay(conn, topic, req.stream or "", self._publish, clock=self._clock, sleep=self._sleep)
            self._open[topic] = (uid, relay)
            return True

    def _prune(self) -> None:
        for topic, (_uid, relay) in list(self._open.items()):
            if relay.expired() and not relay.ended.is_set():
                log.info("port-forward on %s closed: its client sent nothing for %ss", topic, PF_LEASE_SECONDS)
                relay.close("the client sent nothing for a while")
            if relay.ended.is_set():
                del self._open[topic]

    def keep(self, uids: set[str]) -> None:
        """Close the connections of pods no longer on this node (deleted or evicted)."""
        with self._lock:
            for _topic, (uid, relay) in list(self._open.items()):
                if uid not in uids:
                    relay.close("the pod is gone from the node")
            self._prune()

    def close_all(self) -> None:
        with self._lock:
            for _uid, relay in self._open.values():
                relay.close("the node agent stopped")
            self._open = {}
