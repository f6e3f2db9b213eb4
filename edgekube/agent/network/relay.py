"""The userspace proxy's TCP listeners and byte relays, on one asyncio loop thread; Listeners for userspace.py.

Each accepted connection goes to a ready endpoint of its listener's Target: the client's endpoint while its
ClientIP affinity lasts (kept per listener, refreshed by each connection, as kube-proxy's userspace mode did),
else the next one in round robin; an endpoint that does not accept within `connect_timeout` is skipped for the
next. Bytes are copied both ways in chunks of at most 64 KiB with the streams' back-pressure (a connection holds
at most ~256 KiB), half-closes passed on; at most `max_connections` are relayed at once, beyond which a new one
is closed at once. Bind failures come back as RuntimeFailure naming the Service and address.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import resource
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

from edgekube.agent.network.userspace import Frontend, Target
from edgekube.model.errors import RuntimeFailure

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
#: Clients remembered per listener for sessionAffinity; beyond it the expired ones, then the oldest, are dropped.
AFFINITY_ENTRIES = 4096

T = TypeVar("T")


class _Port:
    """One listener: its server, Target, round-robin counter and ClientIP affinity {client: (backend, until)}."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.server: asyncio.Server | None = None
        self.turn = itertools.count()
        self.affinity: dict[str, tuple[tuple[str, int], float]] = {}

    def candidates(self, client: str, now: float) -> Iterator[tuple[str, int]]:
        """The backends to try, in order: the client's own while its affinity lasts, then round robin."""
        backends = self.target.backends
        if not backends:
            return
        sticky = self.affinity.get(client) if self.target.affinity_seconds else None
        first = sticky[0] if sticky is not None and sticky[1] > now and sticky[0] in backends else None
        if first is not None:
            yield first
        start = next(self.turn) % len(backends)
        yield from (b for b in backends[start:] + backends[:start] if b != first)

    def remember(self, client: str, backend: tuple[str, int], now: float) -> None:
        if not self.target.affinity_seconds:
            return
        self.affinity.pop(client, None)
        self.affinity[client] = (backend, now + self.target.affinity_seconds)
        if len(self.affinity) > AFFINITY_ENTRIES:
            self.affinity = {c: e for c, e in self.affinity.items() if e[1] > now}
            while len(self.affinity) > AFFINITY_ENTRIES:
                del self.affinity[next(iter(self.affinity))]


class Relays:
    """Listeners (userspace.Listeners) on an asyncio loop of their own thread; see the module docstring."""

    def __init__(
        self,
        *,
        max_connections: int = 1024,
        connect_timeout: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self.clock = clock
        self.active = 0
        self._ports: dict[Frontend, _Port] = {}
        self._clients: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="agent-proxy", daemon=True)

    def start(self) -> Relays:
        """Start the loop thread; the process's soft open-file limit is raised to its hard one first.

        Each relayed connection holds two descriptors, so systemd's default soft limit (1024) would be reached before
        `max_connections`; raising it, as Go does for every program, is what systemd advises such daemons to do.
        """
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            except (OSError, ValueError) as exc:
                log.warning("userspace proxy: open files limit stays %d: %s", soft, exc)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close every listener and relayed connection, then the loop."""
        if not self._thread.is_alive():
            return
        self._run(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def targets(self) -> dict[Frontend, Target]:
        return {f: p.target for f, p in self._ports.items()}

    def listen(self, frontend: Frontend, target: Target) -> None:
        self._run(self._listen(frontend, target))

    def retarget(self, frontend: Frontend, target: Target) -> None:
        self._run(self._retarget(frontend, target))

    def close(self, frontend: Frontend) -> None:
        self._run(self._close(frontend))

    async def _retarget(self, frontend: Frontend, target: Target) -> None:
        if frontend in self._ports:
            self._ports[frontend].target = target

    async def _listen(self, frontend: Frontend, target: Target) -> None:
        port = _Port(target)

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve(port, reader, writer)

        try:
            port.server = await asyncio.start_server(
                serve, frontend.address, frontend.port, reuse_address=True, backlog=512
            )
        except OSError as exc:
            raise RuntimeFailure(
                f"{target.service}: cannot listen on {frontend}: {exc.strerror or exc}", reason="ProxyListenError"
            ) from exc
        self._ports[frontend] = port

    async def _shutdown(self) -> None:
        for frontend in list(self._ports):
            await self._close(frontend)
        for writer in list(self._clients):
            writer.transport.abort()  # each relay then ends as on a reset, closing its endpoint's side
        relayed = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if relayed:
            await asyncio.wait(relayed, timeout=self.connect_timeout + 1)

    async def _close(self, frontend: Frontend) -> None:
        port = self._ports.pop(frontend, None)
        if port is not None and port.server is not None:
            port.server.close()  # stops listening; relayed connections go on until either side ends

    async def _serve(self, port: _Port, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.active >= self.max_connections:
            writer.close()
            return
        self.active += 1
        self._clients.add(writer)
        try:
            peer = writer.get_extra_info("peername")
            client = str(peer[0]) if peer else ""
            for backend in port.candidates(client, self.clock()):
                try:
                    up_reader, up_writer = await asyncio.wait_for(
                        asyncio.open_connection(*backend), self.connect_timeout
                    )
                except (OSError, TimeoutError):
                    log.debug("userspace proxy: %s: endpoint %s:%d did not accept", port.target.service, *backend)
                    continue
                port.remember(client, backend, self.clock())
                both = (writer, up_writer)
                try:
                    await asyncio.gather(_copy(reader, up_writer, both), _copy(up_reader, writer, both))
                finally:
                    up_writer.close()
                return
        finally:
            self.active -= 1
            self._clients.discard(writer)
            writer.close()


async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter, both: tuple[Any, ...]) -> None:
    """Copy until `src` ends (passed on to `dst` as a half-close); on an error both connections are cut."""
    try:
        while data := await src.read(CHUNK):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof() and not dst.transport.is_closing():
            dst.write_eof()
            return
    except (OSError, RuntimeError):
        pass
    for writer in both:
        writer.transport.abort()
