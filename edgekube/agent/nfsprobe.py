"""Which of the cluster's NFS servers this node reaches: a periodic probe on its own thread, never on the loop.

The master names the servers (NodeDesired.nfsServers); `NfsProber` probes each every `interval` seconds, each probe
on a thread of its own that is abandoned (and counts as unreachable) once it overruns its timeout, so a server that
hangs can never stall the agent. What it found goes into the Node's status: `nfsServers` and the `NFSReachable`
condition, which change only when a server's reachability or reason does (so the master writes nothing on a
steady cluster). A server becoming unreachable is a Warning event on the node, its return a Normal one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from edgekube.agent.events import NodeEvents
from edgekube.model.node import NfsServerStatus, NodeCondition
from edgekube.model.storage import NfsServer

log = logging.getLogger(__name__)

#: `probe(server, timeout)`: None when the server is usable, else one line saying why not.
ProbeFn = Callable[[NfsServer, float], str | None]
CONDITION = "NFSReachable"
REASON_REACHABLE = "NFSServersReachable"
REASON_UNREACHABLE = "NFSServerUnreachable"
REASON_PENDING = "NFSProbePending"
EVENT_UNREACHABLE = "NFSServerUnreachable"
EVENT_REACHABLE = "NFSServerReachable"
DEFAULT_TIMEOUT = 2.0
#: A probe gets this much longer than its own timeout before it is abandoned (the real one keeps to its timeout).
GRACE = 0.5
#: Node events waiting for the broker beyond this are dropped, oldest first (they are few: transitions only).
EVENT_QUEUE = 100
Key = tuple[str, int]


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def nfs_probe(server: NfsServer, timeout: float) -> str | None:
    """The real probe: edgekube.nfs's TCP connect, NFSv4 mount and stat of the export's root."""
    from edgekube.nfs.probe import probe  # noqa: PLC0415 - libnfs loads only on a node that has NFS servers
    from edgekube.nfs.target import NfsTarget  # noqa: PLC0415

    return probe(NfsTarget(server.server, "/", server.port), timeout=timeout)


def _key(server: NfsServer) -> Key:
    return (server.server, server.port)


def _reason(server: NfsServer, message: str) -> str:
    """The probe's reason without a leading `cannot reach nfs server X: `, which the event message adds itself."""
    prefix = f"cannot reach nfs server {server.address()}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


class NfsProber:
    """Probes the servers `set_servers` names; thread-safe.

    `start()` runs rounds on a worker thread; tests may call `probe_round()` themselves instead.
    `on_change` is called (on the worker) after a round that changed what `node_status()` returns.
    """

    def __init__(
        self,
        node: str,
        probe: ProbeFn = nfs_probe,
        *,
        interval: float = 10.0,
        timeout: float = DEFAULT_TIMEOUT,
        grace: float = GRACE,
        on_change: Callable[[], None] | None = None,
        wall: Callable[[], str] = _timestamp,
    ) -> None:
        self.node = node
        self.probe = probe
        self.interval = interval
        self.timeout = timeout
        self.grace = grace
        self.on_change = on_change
        self.wall = wall
        self._servers: list[NfsServer] = []
        self._results: dict[Key, NfsServerStatus] = {}
        self._transition: str | None = None  # when the condition's status last changed
        self._condition_status: str | None = None
        self._hung: dict[Key, threading.Thread] = {}  # probes abandoned at their deadline and still running
        self.node_events = NodeEvents(node, capacity=EVENT_QUEUE)
        self._lock = threading.Lock()
        self._rounds = threading.Lock()  # one round at a time (the worker, or a test)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> NfsProber:
        self._thread = threading.Thread(target=self._run, name="agent-nfs-probe", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=self.timeout + self.grace + 1.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.probe_round()
            except Exception:  # a bug here must not end the probing for good
                log.exception("nfs probe round failed")
            self._wake.wait(self.interval)
            self._wake.clear()

    # -- what to probe -----------------------------------------------------------------------------------
    def set_servers(self, servers: Sequence[NfsServer]) -> None:
        """The servers the master named; a new one is probed at once, a dropped one leaves the status."""
        wanted = list({_key(s): s for s in servers}.values())  # each once (pydantic models are not hashable)
        with self._lock:
            if wanted == self._servers:
                return
            known = {_key(s) for s in self._servers}
            self._servers = wanted
            keep = {_key(s) for s in wanted}
            gone = [k for k in self._results if k not in keep]
            for key in gone:
                del self._results[key]
            added = any(_key(s) not in known for s in wanted)
        if added:
            self._wake.set()
        if gone and self.on_change is not None:
            self.on_change()

    @property
    def servers(self) -> list[NfsServer]:
        with self._lock:
            return list(self._servers)

    # -- probing -----------------------------------------------------------------------------------------
    def probe_round(self) -> bool:
        """Probe every server at once, each bounded by the timeout (+ grace); True if the node status changed."""
        with self._rounds:
            servers = self.servers
            found = self._probe_all(servers)
            changed = self._record(servers, found)
        if changed and self.on_change is not None:
            self.on_change()
        return changed

    def _probe_all(self, servers: list[NfsServer]) -> dict[Key, str | None]:
        found: dict[Key, str | None] = {}
        started: dict[Key, tuple[NfsServer, threading.Thread, list[str | None]]] = {}
        for server in servers:
            key = _key(server)
            hung = self._hung.get(key)
            if hung is not None and hung.is_alive():
                # The last probe is still stuck: do not pile up threads on a server that does not answer.
                found[key] = f"cannot reach nfs server {server.address()}: the previous probe still has no answer"
                continue
            self._hung.pop(key, None)
            box: list[str | None] = []
            thread = threading.Thread(
                target=self._probe_into, args=(server, box), name=f"nfs-probe {server.address()}", daemon=True
            )
            thread.start()
            started[key] = (server, thread, box)
        deadline = time.monotonic() + self.timeout + self.grace  # they all started together
        for key, (server, thread, box) in started.items():
            thread.join(max(0.0, deadline - time.monotonic()))
            if box:
                found[key] = box[0]
            else:
                self._hung[key] = thread
                found[key] = f"cannot reach nfs server {server.address()}: no answer within {self.timeout:g}s"
        return found

    def _probe_into(self, server: NfsServer, box: list[str | None]) -> None:
        try:
            result = self.probe(server, self.timeout)
        except Exception as exc:  # a probe that raises says the server is not usable, and why
            result = f"cannot reach nfs server {server.address()}: {type(exc).__name__}: {exc}"
        box.append(" ".join(result.split()) if result is not None else None)

    def _record(self, servers: list[NfsServer], found: dict[Key, str | None]) -> bool:
        now = self.wall()
        changed = False
        with self._lock:
            current = {_key(s) for s in self._servers}
            for server in servers:
                key = _key(server)
                if key not in current or key not in found:
                    continue  # dropped while it was being probed
                message = found[key]
                before = self._results.get(key)
                reachable = message is None
                if before is not None and before.reachable == reachable and before.message == message:
                    continue  # unchanged: keep the status (and its time) so the Node object stays the same
                self._results[key] = NfsServerStatus(
                    server=server.server, port=server.port, reachable=reachable, message=message, last_probe_time=now
                )
                changed = True
                if not reachable and (before is None or before.reachable):
                    self.node_events.record(
                        EVENT_UNREACHABLE,
                        f"cannot reach nfs server {server.address()}: {_reason(server, message or '')}",
                        "Warning",
                        now,
                    )
                elif reachable and before is not None and not before.reachable:
                    self.node_events.record(
                        EVENT_REACHABLE, f"nfs server {server.address()} is reachable again", "Normal", now
                    )
            status = self._condition_locked()[0]
            if status != self._condition_status:
                self._condition_status, self._transition = status, now
        return changed

    # -- what the node reports ---------------------------------------------------------------------------
    def _condition_locked(self) -> tuple[Literal["True", "False", "Unknown"], str, str]:
        results = [self._results.get(_key(s)) for s in self._servers]
        down = [s for s, r in zip(self._servers, results, strict=True) if r is not None and not r.reachable]
        if down:
            why = [f"cannot reach nfs server {s.address()}: {_reason(s, self._results[_key(s)].message or '')}"
                   for s in down]  # fmt: skip
            return "False", REASON_UNREACHABLE, "; ".join(why)
        if any(r is None for r in results):
            return "Unknown", REASON_PENDING, "waiting for the first probe of every nfs server"
        return "True", REASON_REACHABLE, "every nfs server is reachable"

    def node_status(self) -> dict[str, Any]:
        """`nfsServers` and `conditions: [NFSReachable]` for the Node's status; {} when the cluster has none."""
        with self._lock:
            if not self._servers:
                return {}
            status, reason, message = self._condition_locked()
            if status != self._condition_status:  # e.g. a new server not probed yet: Unknown from now
                self._condition_status, self._transition = status, self.wall()
            condition = NodeCondition(
                type=CONDITION, status=status, reason=reason, message=message, last_transition_time=self._transition
            )
            servers = [self._results[_key(s)] for s in self._servers if _key(s) in self._results]
        return {"nfsServers": [s.to_dict() for s in servers], "conditions": [condition.to_dict()]}

    # -- node events -------------------------------------------------------------------------------------

    def flush_events(self, publish: Callable[[list[dict[str, Any]]], None]) -> int:
        """Hand the node events recorded so far to `publish`; they stay queued if it raises."""
        return self.node_events.flush(publish)
