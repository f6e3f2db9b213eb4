"""An agent that fails over to the second broker converges without touching its pods (real Podman, real brokers).

The layout of docs/ha.md on one machine: two brokers, and "masters" connected to both — here the test itself
plays them, publishing the same retained desired state (same pods, same term, epoch and generation) and the
masters' presences on both brokers, as an HA master does. A real agent knows both brokers and runs its pods on
real Podman from the first. The first broker is killed (SIGKILL): the agent must be on the second, report there,
say there (retained) that it is online and what it witnesses, and keep every container — same ids, no restart —
because the desired state it finds there is the same set. Then the takeover as the agent sees it: the active
master's Will arrives (its witness says so), the standby announces term 2 and republishes the same pods from its
own store (a new epoch): the agent takes term 2 and still touches nothing; a late message of term 1 is refused.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.app import Agent
from edgekube.agent.runtime.protocol import ObservedPod
from edgekube.agent.witness import STALE_MASTER
from edgekube.bus import topics
from edgekube.bus.brokers import Broker
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.bus.protocol import Message
from edgekube.local.podman_service import PodmanService
from edgekube.model.ha import MasterPresence, Role, Witness
from edgekube.model.wire import EventReport, NodeDesired, NodeReport, Presence
from tests.support.broker import AnyBroker, make_broker
from tests.support.cluster import start_agent, stop_agent, wait_for
from tests.support.podman import manifest, running

pytestmark = pytest.mark.integration

IDLE = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]
WAIT = 30.0


class MasterSide:
    """What the masters do on one broker, and what they hear there: the node's reports, events, presence, witness."""

    def __init__(self, broker: AnyBroker, node: str) -> None:
        self.node = node
        self.heard: queue.Queue[Message] = queue.Queue()
        self.reports: list[NodeReport] = []
        self.events: list[dict[str, Any]] = []
        self.witness: Witness | None = None
        self.online: bool | None = None
        self._lock = threading.Lock()
        self.bus = PahoBus(BusConfig(port=broker.port, client_id=f"master-like-{uuid.uuid4().hex[:8]}"))
        self.bus.subscribe(topics.node_status(node), self._on)
        self.bus.subscribe(topics.node_events(node), self._on)
        self.bus.subscribe(topics.node_online(node), self._on)
        self.bus.subscribe(topics.node_witness(node), self._on)
        self.bus.start(wait=10)

    def _on(self, msg: Message) -> None:
        with self._lock:
            if msg.topic.endswith("/status"):
                self.reports.append(NodeReport.decode(msg.payload))
            elif msg.topic.endswith("/events"):
                self.events += EventReport.decode(msg.payload).events
            elif msg.topic.endswith("/online") and msg.payload:
                self.online = Presence.decode(msg.payload).online
            elif msg.topic.endswith("/witness") and msg.payload:
                self.witness = Witness.decode(msg.payload)

    def publish_desired(self, desired: NodeDesired) -> None:
        self.bus.publish(topics.node_desired(self.node), desired.encode(), retain=True)

    def announce(self, master: str, *, online: bool, role: Role | None, term: int) -> None:
        presence = MasterPresence(online=online, master_id=master, role=role, term=term)
        self.bus.publish(topics.master_online(master), presence.encode(), retain=True)

    def said(self) -> tuple[int, str, bool] | None:
        with self._lock:
            w = self.witness
        return None if w is None else (w.term, w.active, w.active_online)

    def stale_master_events(self) -> int:
        with self._lock:
            return sum(e["count"] for e in self.events if e["reason"] == STALE_MASTER)

    def pod_events(self) -> list[str]:
        with self._lock:
            return [e["reason"] for e in self.events if e["involvedObject"].get("kind") == "Pod"]

    def close(self) -> None:
        self.bus.close()


#: The second broker is also rumqttd: what the agent needs from the broker it fails over to is plain MQTT 5.
SECOND = ["mosquitto", "rumqttd"]


@pytest.fixture(params=SECOND, ids=[f"mosquitto+{kind}" for kind in SECOND])
def brokers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[AnyBroker, AnyBroker]]:
    with make_broker("mosquitto", tmp_path / "b1") as b1, make_broker(request.param, tmp_path / "b2") as b2:
        yield b1, b2


def containers(agent: Agent, pod: str) -> dict[str, str]:
    found = next((p for p in agent.runtime.list_pods() if p.name == pod), None)
    assert found is not None, f"pod {pod} is gone"
    assert running(found), f"pod {pod} is not running: {found}"
    return {c.name: c.container_id for c in found.containers}


def observed(agent: Agent) -> dict[str, ObservedPod]:
    return {p.name: p for p in agent.runtime.list_pods()}


def eventually(what: str, check: Callable[[], Any]) -> Any:
    return wait_for(what, check, timeout=WAIT, interval=0.05)


def test_an_agent_that_fails_over_keeps_its_pods_and_follows_the_new_term(
    brokers: tuple[AnyBroker, AnyBroker], podman_service: PodmanService, demo_image: str, tmp_path: Path
) -> None:
    b1, b2 = brokers
    node = f"node-{uuid.uuid4().hex[:8]}"
    sides = [MasterSide(b1, node), MasterSide(b2, node)]
    pods = [manifest("alpha", {"name": "a", "command": IDLE}), manifest("beta", {"name": "b", "command": IDLE})]
    first = NodeDesired(node=node, term=1, epoch="epoch-m1", generation=3, pods=pods)
    for side in sides:  # the active master m1 publishes on every broker
        side.announce("m1", online=True, role=Role.ACTIVE, term=1)
        side.announce("m2", online=True, role=Role.STANDBY, term=1)
        side.publish_desired(first)
    agent = start_agent(
        b1.port, node, podman_service, tmp_path / "agent",
        brokers=[f"127.0.0.1:{b1.port}", f"127.0.0.1:{b2.port}"],
    )  # fmt: skip
    bus = agent.bus
    assert isinstance(bus, PahoBus)
    try:
        assert bus.broker == Broker("127.0.0.1", b1.port)
        eventually("both pods running", lambda: all(n in observed(agent) and running(observed(agent)[n])
                                                   for n in ("alpha", "beta")))  # fmt: skip
        before = {name: containers(agent, name) for name in ("alpha", "beta")}
        assert eventually("the witness on broker 1", lambda: sides[0].said() == (1, "m1", True))
        # The control for "nothing started again" below: creating them was reported, on broker 1.
        assert eventually("Started events on broker 1", lambda: sides[0].pod_events().count("Started") == 2)

        b1.kill()
        eventually("the agent on broker 2", lambda: bus.connected and bus.broker.port == b2.port)
        assert eventually("its presence on broker 2", lambda: sides[1].online is True)
        assert eventually("its witness on broker 2", lambda: sides[1].said() == (1, "m1", True))
        eventually(
            "a report on broker 2 with both pods",
            lambda: (
                sides[1].reports
                and {p.name for p in sides[1].reports[-1].pods if p.status.get("phase") == "Running"}
                == {"alpha", "beta"}
            ),
        )
        agent.reconcile()  # one more whole pass on broker 2's desired state, now, not on the next resync
        assert {name: containers(agent, name) for name in ("alpha", "beta")} == before

        # The takeover as the node sees it, on broker 2: m1's Will, then m2 active with term 2 and the same pods.
        sides[1].announce("m1", online=False, role=None, term=1)
        assert eventually("the witness says m1 is gone", lambda: sides[1].said() == (1, "m1", False))
        sides[1].announce("m2", online=True, role=Role.ACTIVE, term=2)
        sides[1].publish_desired(NodeDesired(node=node, term=2, epoch="epoch-m2", generation=1, pods=pods))
        assert eventually("the witness follows term 2", lambda: sides[1].said() == (2, "m2", True))
        assert agent.desired.term == 2
        agent.reconcile()
        assert {name: containers(agent, name) for name in ("alpha", "beta")} == before

        # m1 comes back deposed and still publishes its old state with a newer generation: refused.
        stale = NodeDesired(node=node, term=1, epoch="epoch-m1", generation=4, pods=pods[:1])
        sides[1].publish_desired(stale)
        assert eventually("a StaleMaster event", lambda: sides[1].stale_master_events() == 1)
        agent.reconcile()
        assert {name: containers(agent, name) for name in ("alpha", "beta")} == before
        assert (agent.desired.term, agent.desired.epoch) == (2, "epoch-m2")
        assert [r for r in sides[1].pod_events() if r in ("Killing", "Created", "Started")] == []
        assert all(c["restartCount"] == 0 for p in sides[1].reports[-1].pods for c in p.status["containerStatuses"])
    finally:
        stop_agent(agent)
        for side in sides:
            side.close()
