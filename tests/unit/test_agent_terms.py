"""The agent's side of two masters (docs/ha.md): master terms in the desired state, and the node's Witness.

Desired state carries its master's term. The node keeps the highest term it accepted (on disk, inside its local
copy of the desired state) and refuses anything of a lower term — a deposed master — with a StaleMaster event.
It follows the masters' retained presences and publishes, retained, a Witness: its term, the active master of
that term, and whether it sees that master online. No broker here: the in-memory bus and the fake runtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.app import Agent, AgentConfig
from edgekube.agent.desired import DesiredState
from edgekube.agent.runtime.fake import FakeRuntime
from edgekube.agent.witness import STALE_MASTER, MasterWatch
from edgekube.bus import topics
from edgekube.bus.protocol import Message
from edgekube.model.ha import MasterPresence, Role, Witness
from edgekube.model.names import NodeName
from edgekube.model.wire import EventReport, NodeDesired
from tests.support.membus import MemoryBroker

NODE = NodeName("pi-1")


def pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": {"containers": [{"name": "app", "image": "busybox"}]},
    }


def desired(term: int, generation: int, epoch: str = "e1", pods: tuple[str, ...] = ("web",)) -> NodeDesired:
    return NodeDesired(node=NODE, term=term, generation=generation, epoch=epoch, pods=[pod(p) for p in pods])


def offer(state: DesiredState, msg: NodeDesired) -> bool:
    return state.offer(msg, msg.encode())


# -- terms in the desired state ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offers", "accepted", "final"),
    [
        pytest.param([(1, 5, "e1"), (2, 1, "e2")], [True, True], (2, 1, "e2"), id="higher-term-any-generation"),
        pytest.param([(1, 5, "e1"), (2, 1, "e1")], [True, True], (2, 1, "e1"), id="higher-term-same-epoch"),
        pytest.param([(2, 1, "e2"), (1, 9, "e1")], [True, False], (2, 1, "e2"), id="lower-term-refused"),
        pytest.param([(2, 1, "e2"), (1, 9, "e3")], [True, False], (2, 1, "e2"), id="lower-term-new-epoch-refused"),
        pytest.param([(2, 3, "e2"), (2, 3, "e2")], [True, False], (2, 3, "e2"), id="duplicate"),
        pytest.param([(2, 3, "e2"), (2, 2, "e2")], [True, False], (2, 3, "e2"), id="same-term-stale-generation"),
        pytest.param([(2, 3, "e2"), (2, 1, "e4")], [True, True], (2, 1, "e4"), id="same-term-new-epoch"),
        pytest.param([(0, 7, "e1"), (1, 1, "e2"), (0, 8, "e1")], [True, True, False], (1, 1, "e2"), id="no-term-is-0"),
    ],
)
def test_the_highest_term_wins_and_within_a_term_the_epoch_and_generation_decide(
    offers: list[tuple[int, int, str]], accepted: list[bool], final: tuple[int, int, str]
) -> None:
    state = DesiredState()
    assert [offer(state, desired(t, g, e)) for t, g, e in offers] == accepted
    assert (state.term, state.generation, state.epoch) == final


def test_a_refused_lower_term_leaves_the_pods_alone() -> None:
    state = DesiredState()
    offer(state, desired(2, 1, "e2", pods=("web",)))
    assert not offer(state, desired(1, 9, "e1", pods=("other",)))
    assert [d.pod.metadata.name for d in state.pods] == ["web"]


def test_the_term_is_kept_on_disk_with_the_desired_state(tmp_path: Path) -> None:
    path = tmp_path / "desired.json"
    offer(DesiredState(path=path), desired(3, 1, "e3"))
    reloaded = DesiredState.load(path)
    assert reloaded.term == 3
    assert not offer(reloaded, desired(2, 50, "e2"))  # a rebooted node still refuses the deposed master


def test_refusals_and_duplicates_do_not_write_the_local_copy(tmp_path: Path) -> None:
    path = tmp_path / "desired.json"
    state = DesiredState(path=path)
    offer(state, desired(3, 1, "e3"))
    written = path.stat()
    assert not offer(state, desired(3, 1, "e3"))
    assert not offer(state, desired(2, 9, "e2"))
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)


def test_a_message_without_a_term_is_term_0_on_the_wire() -> None:
    raw = b'{"schema":"edgekube/v1","node":"pi-1","generation":1,"epoch":"e","pods":[]}'
    assert NodeDesired.decode(raw).term == 0
    assert b'"term"' not in NodeDesired.prepared("pi-1", 1, "e", [], []).encode()
    assert NodeDesired.decode(NodeDesired.prepared("pi-1", 1, "e", [], [], term=4).encode()).term == 4


# -- the witness -------------------------------------------------------------------------------------------------


class Wall:
    def __init__(self) -> None:
        self.tick = 0

    def __call__(self) -> str:
        self.tick += 1
        return f"2026-12-03T10:00:{self.tick:02d}Z"


def presence(master: str, *, online: bool = True, role: Role | None = Role.ACTIVE, term: int = 1) -> Message:
    payload = MasterPresence(online=online, master_id=master, role=role, term=term).encode()
    return Message(topic=topics.master_online(master), payload=payload, retain=True)


def said(watch: MasterWatch) -> tuple[int, str, bool]:
    w = watch.witness()
    return w.term, w.active, w.active_online


def test_the_active_of_the_held_term_is_the_master_announcing_itself_active_with_it() -> None:
    watch = MasterWatch(NODE, 1, wall=Wall())
    assert not watch.on_presence(presence("m2", role=Role.STANDBY, term=1))  # a standby changes nothing said
    assert said(watch) == (1, "", False)
    assert watch.on_presence(presence("m1", term=1))
    assert said(watch) == (1, "m1", True)


def test_the_active_s_will_makes_the_witness_say_offline_and_moves_since() -> None:
    watch = MasterWatch(NODE, 1, wall=Wall())
    watch.on_presence(presence("m1", term=1))
    before = watch.witness().since
    will = MasterPresence(online=False, master_id="m1", term=1).encode()
    assert watch.on_presence(Message(topic=topics.master_online("m1"), payload=will, retain=True))
    assert said(watch) == (1, "m1", False)
    assert watch.witness().since != before


def test_a_presence_that_changes_nothing_the_witness_says_is_no_change() -> None:
    watch = MasterWatch(NODE, 1, wall=Wall())
    watch.on_presence(presence("m1", term=1))
    assert not watch.on_presence(presence("m1", term=1))  # the same retained copy from another broker
    assert not watch.on_presence(presence("m2", role=Role.STANDBY, term=1))


def test_a_higher_term_names_its_own_active_once_it_announces_itself() -> None:
    watch = MasterWatch(NODE, 1, wall=Wall())
    watch.on_presence(presence("m1", term=1))
    assert watch.on_term(2)
    assert said(watch) == (2, "", False)  # nobody announced term 2 yet: no active, and nothing claimed of it
    watch.on_presence(presence("m2", term=2))
    assert said(watch) == (2, "m2", True)
    assert not watch.on_presence(presence("m1", term=1))  # the deposed master is not the active of term 2


def test_the_same_term_again_is_no_change() -> None:
    watch = MasterWatch(NODE, 2, wall=Wall())
    assert not watch.on_term(2)


def test_a_stale_master_is_recorded_once_per_master_and_term() -> None:
    watch = MasterWatch(NODE, 2, wall=Wall())
    watch.on_presence(presence("m2", term=2))
    watch.refused(1, "e1")
    watch.refused(1, "e1")
    [event] = watch.node_events.events()
    assert (event["reason"], event["type"]) == (STALE_MASTER, "Warning")
    assert event["message"] == "refused desired state of term 1: this node follows term 2 (active master m2)"


# -- through the agent --------------------------------------------------------------------------------------------


def start_agent(tmp_path: Path, broker: MemoryBroker) -> Agent:
    bus = broker.client(f"edgekube-agent-{NODE}", persistent=True)
    return Agent(AgentConfig(node_name=NODE, state_dir=tmp_path), FakeRuntime(NODE), bus).start(loop=False)


def witnesses(broker: MemoryBroker) -> list[Witness]:
    return [Witness.decode(m.payload) for m in broker.published(topics.node_witness(NODE))]


def test_an_agent_publishes_its_witness_on_connect_and_on_every_change(tmp_path: Path) -> None:
    broker = MemoryBroker(inline=True)
    master = broker.client("master").start()
    agent = start_agent(tmp_path, broker)
    try:
        assert [(w.term, w.active, w.active_online) for w in witnesses(broker)] == [(0, "", False)]
        master.publish(topics.master_online("m1"), presence("m1", term=1).payload, retain=True)
        msg = desired(1, 1)
        master.publish(topics.node_desired(NODE), msg.encode(), retain=True)
        will = MasterPresence(online=False, master_id="m1", term=1).encode()
        master.publish(topics.master_online("m1"), will, retain=True)
        assert [(w.term, w.active, w.active_online) for w in witnesses(broker)] == [
            (0, "", False),
            (1, "m1", True),  # term 1 accepted, m1 announced itself active with it
            (1, "m1", False),  # m1's Will
        ]
        assert all(m.retain for m in broker.published(topics.node_witness(NODE)))
    finally:
        agent.stop()


def test_an_agent_refuses_a_deposed_master_with_a_stale_master_event(tmp_path: Path) -> None:
    broker = MemoryBroker(inline=True)
    master = broker.client("master").start()
    agent = start_agent(tmp_path, broker)
    try:
        master.publish(topics.node_desired(NODE), desired(2, 1, "e2", pods=("web",)).encode(), retain=True)
        master.publish(topics.node_desired(NODE), desired(1, 7, "e1", pods=("old",)).encode(), retain=True)
        assert (agent.desired.term, [d.pod.metadata.name for d in agent.desired.pods]) == (2, ["web"])
        agent.reconcile()
        events = [e for m in broker.published(topics.node_events(NODE)) for e in EventReport.decode(m.payload).events]
        assert [e["reason"] for e in events if e["reason"] == STALE_MASTER] == [STALE_MASTER]
    finally:
        agent.stop()


def test_term_0_stays_off_the_wire_whichever_way_the_message_is_encoded() -> None:
    built = NodeDesired(node=NODE, generation=1, epoch="e", pods=[])
    assert b'"term"' not in built.encode()
    assert b'"term":5' in NodeDesired(node=NODE, term=5, generation=1, epoch="e", pods=[]).encode()
