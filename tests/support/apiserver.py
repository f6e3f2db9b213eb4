"""A real master (and real agents on FakeRuntime) on the in-memory bus, stepped synchronously, for ekctl's unit tests.

ekctl connects through its own `BusSession` to a `MemoryBroker(inline=True)` on which the real `Master` (real
`TinyStateStore` in a temporary directory) answers. Nothing runs on a thread of its own: the master's loop and
group committer are stood in for by one `reconcile()` pass after every API request and node status report (what
the woken loop would do next), and each agent reconciles when its desired state arrives. So when an ekctl command
returns, every consequence of it has happened. `requests` are the API requests ekctl put on the wire.

    server = ApiServer(tmp_path)
    server.add_node("pi-1")                          # a real Agent: registers, runs pods, answers logs
    assert server.ekctl("apply", "-f", "pod.yaml") == 0
    assert [r.verb for r in server.requests] == [Verb.APPLY]
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path

from edgekube.agent.app import Agent, AgentConfig
from edgekube.agent.runtime.fake import FakeRuntime
from edgekube.bus import topics
from edgekube.bus.protocol import Message, MessageBus
from edgekube.cli.client import BusSession, Session
from edgekube.cli.config import Connection
from edgekube.cli.main import run
from edgekube.master.app import Master
from edgekube.master.cache import CachedStore
from edgekube.master.config import MasterConfig
from edgekube.model.names import NodeName
from edgekube.model.types import Obj
from edgekube.model.wire import ApiRequest, ApiResponse, EventReport, NodeReport, PodReport, Presence, Verb
from edgekube.store.state import TinyStateStore
from tests.support.membus import MemoryBroker, MemoryBus

#: What ekctl's clients are called on the broker (their requests are the ones `requests` lists).
EKCTL = "ekctl-"


class Clock:
    """The master's monotonic clock, still unless a test moves it: heartbeats never age, nodes stay Ready."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        """Real wall time: ekctl shows ages against its own clock (the master's events are "0s" old)."""
        return time.time()


class RecordingSession:
    """ekctl's real BusSession, noting the wait each request was given (drain waits longer than --timeout)."""

    def __init__(self, session: BusSession, timeouts: list[float]) -> None:
        self.session = session
        self.timeouts = timeouts

    def call(self, request: ApiRequest, timeout: float | None = None) -> ApiResponse:
        self.timeouts.append(self.session.timeout if timeout is None else timeout)
        return self.session.call(request, timeout)

    def close(self) -> None:
        self.session.close()

    @property
    def client_id(self) -> str:
        return self.session.client_id

    def subscribe(self, topic_filter: str, handler: Callable[[Message], None]) -> None:
        self.session.subscribe(topic_filter, handler)


def build_master(data_dir: Path, bus: MessageBus, clock: Clock) -> Master:
    """The one place a test master is built: real store, the given bus, the reconcile loop left to the test."""
    data_dir.mkdir(parents=True, exist_ok=True)
    store = CachedStore(TinyStateStore(data_dir / "state"))
    return Master(MasterConfig(data_dir=data_dir), bus=bus, store=store, clock=clock, wall=clock.wall).start(loop=False)


class ApiServer:
    """The master on an inline MemoryBroker; `connect` is ekctl's connector, `ekctl(...)` runs one command."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.broker = MemoryBroker(inline=True)
        self.clock = Clock()
        self.master = build_master(
            data_dir / "master", self.broker.client("edgekube-master", persistent=True), self.clock
        )
        # Subscribed after the master's own handlers, so on the same message the pass runs after them.
        self.master.bus.subscribe(topics.API_REQUEST, self._pass)
        self.master.bus.subscribe(topics.API_READ, self._pass)
        self.master.bus.subscribe(topics.ALL_NODE_STATUS, self._pass)
        self.agents: dict[str, Agent] = {}
        self.runtimes: dict[str, FakeRuntime] = {}
        #: Every bus ekctl opened, and the wait given to each request it sent.
        self.clients: list[MemoryBus] = []
        self.timeouts: list[float] = []
        self._ids = itertools.count(1)
        self._seeder = self.broker.client("test-seeder").start()
        self._woken: set[str] = set()
        self._node_objects: dict[str, Obj] = {}
        self._stepping = False

    def _pass(self, _msg: Message) -> None:
        """What the master's woken loop does next: one pass, whose group commit also sends the answers owed."""
        self.master.reconcile()

    # -- ekctl ---------------------------------------------------------------------------------------------
    def connect(self, connection: Connection, timeout: float) -> Session:
        def bus(_connection: Connection) -> MessageBus:
            client = self.broker.client(f"{EKCTL}{next(self._ids)}")
            self.clients.append(client)
            return client

        return RecordingSession(BusSession(connection, timeout, bus=bus), self.timeouts)

    def ekctl(self, *argv: str) -> int:
        return run(list(argv), connector=self.connect)

    @property
    def requests(self) -> list[ApiRequest]:
        """The API requests ekctl sent, as the broker saw them, oldest first."""
        return [
            ApiRequest.decode(p.message.payload)
            for p in self.broker.log
            if p.message.topic in (topics.API_REQUEST, topics.API_READ) and p.sender.startswith(EKCTL)
        ]

    # -- seeding -------------------------------------------------------------------------------------------
    def apply(self, manifest: str) -> ApiResponse:
        """Apply through the master's API over the bus (not counted in `requests`); fails the test if refused."""
        request = ApiRequest(verb=Verb.APPLY, manifest=manifest)
        reply = self._seeder.request(topics.API_REQUEST, request.encode(), timeout=1.0)
        response = ApiResponse.decode(reply.payload)
        assert response.ok, response.error
        return response

    def add_silent_node(self, name: str) -> None:
        """A node whose agent the test speaks for: online and registered (Ready), it runs nothing by itself;
        `report()` sends its pods' status."""
        self._node_objects[name] = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name},
            "status": {"allocatable": {"cpu": "4", "memory": "4Gi", "pods": 110}},
        }
        self._seeder.publish(topics.node_online(name), Presence(online=True, boot_id="b").encode(), retain=True)
        self._seeder.publish(
            topics.node_status(name), NodeReport(node=name, boot_id="b", node_object=self._node_objects[name]).encode()
        )

    def report(self, namespace: str, name: str, status: Obj) -> None:
        """The pod's (silent) node reports its status on the node's status topic, as its agent would."""
        pod = self.master.store.get("Pod", namespace, name)
        node = pod["spec"]["nodeName"]
        item = PodReport(uid=pod["metadata"]["uid"], namespace=namespace, name=name, status=status)
        report = NodeReport(node=node, boot_id="b", node_object=self._node_objects[node], pods=[item])
        self._seeder.publish(topics.node_status(node), report.encode())

    def report_events(self, node: str, *events: Obj) -> None:
        """The node publishes events on its events topic, as its agent does."""
        self._seeder.publish(topics.node_events(node), EventReport(node=node, events=list(events)).encode())

    def add_node(self, name: str) -> Agent:
        """A real Agent on FakeRuntime: it connects, reports (the master registers it, Ready) and runs its pods.

        Its loops are not started; it reconciles whenever its desired state arrives (see `_step`).
        """
        runtime = FakeRuntime(NodeName(name))
        bus = self.broker.client(f"edgekube-agent-{name}", persistent=True)
        config = AgentConfig(node_name=name, state_dir=self.data_dir / "agents" / name)
        agent = Agent(config, runtime, bus, clock=self.clock)
        agent.start(loop=False)  # no loops of its own: the test steps it
        bus.subscribe(topics.node_desired(NodeName(name)), lambda _msg: self._wake(name))
        self.agents[name], self.runtimes[name] = agent, runtime
        self._wake(name)
        return agent

    def _wake(self, node: str) -> None:
        """What a woken agent loop does: reconcile (letting removals in the background finish), which reports.

        A desired state that arrives while an agent reconciles (its report led to a master pass) wakes it again
        after that reconcile, as the real loop would, instead of reconciling inside it.
        """
        self._woken.add(node)
        if self._stepping:
            return
        self._stepping = True
        try:
            while self._woken:
                agent = self.agents[min(self._woken)]
                self._woken.discard(min(self._woken))
                agent.reconcile()
                assert agent.wait_idle(5)
        finally:
            self._stepping = False

    def __enter__(self) -> ApiServer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        for agent in self.agents.values():
            agent.stop()
        self.master.stop()
