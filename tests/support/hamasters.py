"""Two HA masters as processes on one real Mosquitto, plus what the tests read of them (docs/ha.md).

`HaMasters` starts `edgekube master --master-id ID --role ROLE` processes (real TinyDB directories, one shared
Secret key), kills, freezes and restarts them, and keeps the retained presences and replication flags it sees.
`Witnesses` states, for simulated nodes (tests/support/simnodes.py), the Witness a real agent would: it runs the
agent's own MasterWatch (edgekube/agent/witness.py) on the masters' presences and the terms of the desired states
the nodes receive, and publishes each node's witness retained, as the agent does.

    with HaMasters(broker.port, tmp_path) as masters:
        masters.start("m1", "active"); masters.start("m2", "standby")
        masters.wait_replicated("m1")
"""

from __future__ import annotations

import signal
import sys
import threading
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Self

from edgekube.agent.witness import MasterWatch
from edgekube.bus import topics
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.bus.protocol import Message
from edgekube.model.ha import MasterPresence, Replication, ReplicationFlag, Role
from edgekube.model.wire import NodeDesired
from edgekube.store.sealed import new_key_file
from edgekube.store.state import TinyStateStore
from tests.support.cluster import wait_for
from tests.support.fleet import Proc


def _as_is(argv: list[str]) -> list[str]:
    return argv


class HaMasters:
    """Master processes by id on the broker at `port`; presences and flags as the broker holds them."""

    def __init__(
        self,
        port: int,
        root: Path,
        *,
        timeout: float = 1.0,
        extra: Iterable[str] = (),
        key: Path | None = None,
        watch_host: str = "127.0.0.1",
    ) -> None:
        """`watch_host`: where the watch client (presences, flags, desired states) reaches the broker at `port`."""
        self.port = port
        self.root = root
        self.timeout = timeout
        self.extra = list(extra)
        #: The Secret key both masters share (made here unless given: e.g. a Fleet's master already uses one).
        self.key = key if key is not None else root / "encryption-config.yaml"
        if key is None:
            root.mkdir(parents=True, exist_ok=True)
            new_key_file(self.key)
        (root / "logs").mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, Proc] = {}
        self.roles: dict[str, str] = {}
        #: Each master's `--broker` list (none: only `port`), the address it reaches the broker at, and how its
        #: command line is wrapped (e.g. NetNode.enter: run it in a network namespace the test can cut).
        self.brokers: dict[str, list[str]] = {}
        self.hosts: dict[str, str] = {}
        self.wraps: dict[str, Callable[[list[str]], list[str]]] = {}
        self._lock = threading.Lock()
        self.presences: dict[str, MasterPresence] = {}
        self.flags: dict[str, ReplicationFlag] = {}
        #: Every desired state published, in arrival order: (node, term).
        self.desired: list[tuple[str, int]] = []
        self.bus = PahoBus(BusConfig(host=watch_host, port=port, client_id=f"ha-watch-{uuid.uuid4().hex[:8]}"))
        self.bus.subscribe(topics.ALL_MASTERS_ONLINE, self._on_presence)
        self.bus.subscribe(topics.ALL_MASTERS_REPLICATION, self._on_flag)
        self.bus.subscribe(f"{topics.NODES}/+/desired", self._on_desired)
        self.bus.start(wait=10)

    def data_dir(self, master_id: str) -> Path:
        return self.root / master_id

    def _argv(self, master_id: str) -> list[str]:
        wrap: Callable[[list[str]], list[str]] = self.wraps.get(master_id, _as_is)
        return wrap([
            sys.executable, "-m", "edgekube.main", "master",
            "--mqtt-host", self.hosts.get(master_id, "127.0.0.1"),
            "--mqtt-port", str(self.port),
            "--data-dir", str(self.data_dir(master_id)),
            "--master-id", master_id,
            "--role", self.roles[master_id],
            "--encryption-config", str(self.key),
            "--replication-timeout", str(self.timeout),
            "--node-timeout", "2",
            *(f"--broker={broker}" for broker in self.brokers.get(master_id, [])),
            *self.extra,
        ])  # fmt: skip

    def start(
        self,
        master_id: str,
        role: str,
        brokers: Iterable[int | str] = (),
        *,
        host: str = "",
        wrap: Callable[[list[str]], list[str]] | None = None,
    ) -> Proc:
        """Start (or restart) a master; `brokers`: its `--broker` list (127.0.0.1 ports or HOST:PORT)."""
        self.roles[master_id] = role
        if brokers:
            self.brokers[master_id] = [f"127.0.0.1:{b}" if isinstance(b, int) else b for b in brokers]
        if host:
            self.hosts[master_id] = host
        if wrap is not None:
            self.wraps[master_id] = wrap
        proc = self.procs.get(master_id)
        if proc is None:
            proc = self.procs[master_id] = Proc(
                master_id, lambda: self._argv(master_id), self.root / "logs" / f"{master_id}.log"
            )
        proc.start()
        return proc

    def kill(self, master_id: str) -> None:
        self.procs[master_id].kill()

    def freeze(self, master_id: str) -> None:
        self.procs[master_id].signal(signal.SIGSTOP)

    def thaw(self, master_id: str) -> None:
        self.procs[master_id].signal(signal.SIGCONT)

    def close(self) -> None:
        for proc in self.procs.values():
            proc.kill()
        self.bus.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
        if e is not None:
            self.dump_logs()

    def dump_logs(self, lines: int = 60) -> None:
        """The tail of every master's log on stderr (pytest shows it with a failure: what each master did)."""
        for master_id in self.procs:
            path = self.root / "logs" / f"{master_id}.log"
            text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else ["(no log)"]
            print(f"--- {master_id}'s log, last {len(text)} lines ---", *text, sep="\n", file=sys.stderr)

    # -- what the broker says ------------------------------------------------------------------------
    def presence(self, master_id: str) -> MasterPresence | None:
        with self._lock:
            return self.presences.get(master_id)

    def wait_role(self, master_id: str, role: Role, term: int | None = None, timeout: float = 30) -> MasterPresence:
        def check() -> MasterPresence | None:
            p = self.presence(master_id)
            ok = p is not None and p.online and p.role is role and (term is None or p.term == term)
            return p if ok else None

        found: MasterPresence = wait_for(f"{master_id} {role.value} (term {term})", check, timeout=timeout)
        return found

    def wait_replication(self, master_id: str, state: Replication, timeout: float = 30) -> MasterPresence:
        def check() -> MasterPresence | None:
            p = self.presence(master_id)
            return p if p is not None and p.online and p.replication == state.value else None

        found: MasterPresence = wait_for(f"{master_id} {state.value}", check, timeout=timeout)
        return found

    def stored(self, master_id: str, kind: str) -> dict[str, dict[str, object]]:
        """The objects of `kind` in a master's store directory, by name (the master must not be running)."""
        assert not self.procs[master_id].running, f"{master_id} holds its store open"
        with TinyStateStore(self.data_dir(master_id) / "state") as store:
            return {obj["metadata"]["name"]: obj for obj in store.list(kind)}

    def _on_presence(self, msg: Message) -> None:
        if msg.payload:
            presence = MasterPresence.decode(msg.payload)
            with self._lock:
                self.presences[presence.master_id] = presence

    def _on_flag(self, msg: Message) -> None:
        if msg.payload:
            flag = ReplicationFlag.decode(msg.payload)
            with self._lock:
                self.flags[flag.master_id] = flag

    def _on_desired(self, msg: Message) -> None:
        if msg.payload:
            desired = NodeDesired.decode(msg.payload)
            with self._lock:
                self.desired.append((desired.node, desired.term))


class Witnesses:
    """Each simulated node's Witness, from the agent's own MasterWatch, published retained on its witness topic.

    Stand-in for the agents' side (edgekube/agent/witness.py run by real agents) while the nodes are simulated:
    the same code decides what each node says; only the transport is the test's one connection.
    """

    def __init__(self, port: int, nodes: Iterable[str]) -> None:
        self._watches = {node: MasterWatch(node, 0) for node in nodes}
        self._lock = threading.Lock()
        self.bus = PahoBus(BusConfig(port=port, client_id=f"ha-witness-{uuid.uuid4().hex[:8]}"))
        self.bus.subscribe(topics.ALL_MASTERS_ONLINE, self._on_presence)
        self.bus.subscribe(f"{topics.NODES}/+/desired", self._on_desired)
        self.bus.on_connect(self._publish_all)
        self.bus.start(wait=10)

    def _publish_all(self) -> None:
        with self._lock:
            for watch in self._watches.values():
                watch.publish(self.bus)

    def _on_presence(self, msg: Message) -> None:
        with self._lock:
            for watch in self._watches.values():
                if watch.on_presence(msg):
                    watch.publish(self.bus)

    def _on_desired(self, msg: Message) -> None:
        if not msg.payload:
            return
        desired = NodeDesired.decode(msg.payload)
        with self._lock:
            watch = self._watches.get(desired.node)
            if watch is not None and watch.on_term(desired.term):
                watch.publish(self.bus)

    def close(self) -> None:
        self.bus.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
