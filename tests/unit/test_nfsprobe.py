"""The agent's NFS reachability probe with a fake probe function: node status, condition, events, hung probes.

`NfsProber.probe_round()` is called by the tests (no worker thread) except where the worker itself is the claim;
the agent tests run a real Agent on FakeRuntime and the in-memory bus with the fake probe injected.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.app import Agent, AgentConfig
from edgekube.agent.nfsprobe import NfsProber
from edgekube.agent.runtime.fake import FakeRuntime
from edgekube.bus import topics
from edgekube.model.names import NodeName
from edgekube.model.node import Node, NodeCondition
from edgekube.model.storage import NfsServer
from edgekube.model.wire import EventReport, NodeDesired, NodeReport
from tests.support.membus import MemoryBroker

NAS = NfsServer(server="10.0.0.5")
OTHER = NfsServer(server="nas.local", port=2050)


class FakeProbe:
    """Answers per server: None (reachable) or a reason; `hang` makes probes of a server block until released."""

    def __init__(self) -> None:
        self.answers: dict[str, str | None] = {}
        self.calls: list[str] = []
        self.hang: dict[str, threading.Event] = {}

    def __call__(self, server: NfsServer, timeout: float) -> str | None:
        self.calls.append(server.address())
        gate = self.hang.get(server.address())
        if gate is not None:
            gate.wait()
        answer = self.answers.get(server.address())
        if answer == "raise":
            raise OSError("name resolution failed")
        return answer


class Wall:
    """RFC 3339 stamps one second apart, so a status that was rewritten shows a new time."""

    def __init__(self) -> None:
        self.seconds = itertools.count()

    def __call__(self) -> str:
        return f"2024-05-01T12:00:{next(self.seconds):02d}Z"


@pytest.fixture
def fake() -> Iterator[FakeProbe]:
    probe = FakeProbe()
    yield probe
    for gate in probe.hang.values():
        gate.set()  # let abandoned probe threads end


def prober(fake: FakeProbe, *servers: NfsServer, **kwargs: Any) -> NfsProber:
    p = NfsProber("pi-1", fake, interval=3600, timeout=0.01, grace=0.0, wall=Wall(), **kwargs)
    p.set_servers(list(servers))
    return p


def condition(p: NfsProber) -> NodeCondition:
    [found] = p.node_status()["conditions"]
    return NodeCondition.model_validate(found)


def servers(p: NfsProber) -> list[tuple[str, int, bool, str | None]]:
    return [(s["server"], s["port"], s["reachable"], s.get("message")) for s in p.node_status()["nfsServers"]]


def events(p: NfsProber) -> list[tuple[str, str, str, str]]:
    sent: list[dict[str, Any]] = []
    p.flush_events(sent.extend)
    return [(e["type"], e["reason"], e["message"], e["involvedObject"]["kind"]) for e in sent]


def test_a_cluster_without_nfs_servers_adds_nothing_to_the_node_status(fake: FakeProbe) -> None:
    p = prober(fake)
    assert p.probe_round() is False
    assert p.node_status() == {}
    assert fake.calls == []


def test_the_condition_is_unknown_before_the_first_probe(fake: FakeProbe) -> None:
    p = prober(fake, NAS)
    assert (condition(p).status, condition(p).reason) == ("Unknown", "NFSProbePending")
    assert servers(p) == []


def test_every_server_reachable_makes_the_condition_true(fake: FakeProbe) -> None:
    p = prober(fake, NAS, OTHER)
    assert p.probe_round() is True
    assert servers(p) == [("10.0.0.5", 2049, True, None), ("nas.local", 2050, True, None)]
    assert (condition(p).status, condition(p).reason) == ("True", "NFSServersReachable")
    assert sorted(fake.calls) == ["10.0.0.5", "nas.local:2050"]
    assert events(p) == []  # reachable from the start is no news


def test_an_unreachable_server_is_named_in_a_false_condition_and_a_warning_node_event(fake: FakeProbe) -> None:
    fake.answers["nas.local:2050"] = "cannot reach nfs server nas.local:2050: Connection refused"
    p = prober(fake, NAS, OTHER)
    p.probe_round()
    assert servers(p)[1] == ("nas.local", 2050, False, "cannot reach nfs server nas.local:2050: Connection refused")
    found = condition(p)
    assert (found.status, found.reason) == ("False", "NFSServerUnreachable")
    assert found.message == "cannot reach nfs server nas.local:2050: Connection refused"
    assert events(p) == [
        ("Warning", "NFSServerUnreachable", "cannot reach nfs server nas.local:2050: Connection refused", "Node")
    ]


def test_a_reason_without_the_prefix_gets_it_in_the_event(fake: FakeProbe) -> None:
    fake.answers["10.0.0.5"] = "nfs server 10.0.0.5 accepts connections but did not answer within 2s"
    p = prober(fake, NAS)
    p.probe_round()
    [(_type, _reason, message, _kind)] = events(p)
    assert (
        message
        == "cannot reach nfs server 10.0.0.5: nfs server 10.0.0.5 accepts connections but did not answer within 2s"
    )


def test_a_server_back_emits_a_normal_event_and_turns_the_condition_true(fake: FakeProbe) -> None:
    fake.answers["10.0.0.5"] = "cannot reach nfs server 10.0.0.5: No route to host"
    p = prober(fake, NAS)
    p.probe_round()
    assert [e[1] for e in events(p)] == ["NFSServerUnreachable"]
    fake.answers.clear()
    assert p.probe_round() is True
    assert events(p) == [("Normal", "NFSServerReachable", "nfs server 10.0.0.5 is reachable again", "Node")]
    assert condition(p).status == "True"


def test_the_same_results_leave_the_node_status_exactly_as_it_was(fake: FakeProbe) -> None:
    fake.answers["10.0.0.5"] = "cannot reach nfs server 10.0.0.5: Connection refused"
    p = prober(fake, NAS, OTHER)
    p.probe_round()
    before = p.node_status()
    assert p.probe_round() is False
    assert p.node_status() == before  # probe times included: the master has nothing to write
    assert [e[1] for e in events(p)] == ["NFSServerUnreachable"]  # once, not per probe


def test_a_new_reason_while_unreachable_updates_the_status_without_a_new_event(fake: FakeProbe) -> None:
    fake.answers["10.0.0.5"] = "cannot reach nfs server 10.0.0.5: Connection refused"
    p = prober(fake, NAS)
    p.probe_round()
    events(p)
    fake.answers["10.0.0.5"] = "cannot reach nfs server 10.0.0.5: No route to host"
    assert p.probe_round() is True
    assert servers(p)[0][3] == "cannot reach nfs server 10.0.0.5: No route to host"
    assert events(p) == []


def test_the_condition_transition_time_moves_only_when_its_status_does(fake: FakeProbe) -> None:
    p = prober(fake, NAS)
    p.probe_round()
    up = condition(p).last_transition_time
    fake.answers["10.0.0.5"] = "cannot reach nfs server 10.0.0.5: Connection refused"
    p.probe_round()
    down = condition(p).last_transition_time
    fake.answers["10.0.0.5"] = "cannot reach nfs server 10.0.0.5: No route to host"
    p.probe_round()
    assert up is not None and down is not None and down > up
    assert condition(p).last_transition_time == down


def test_a_hung_probe_is_abandoned_counts_as_unreachable_and_is_not_started_again(fake: FakeProbe) -> None:
    fake.hang["10.0.0.5"] = threading.Event()
    p = prober(fake, NAS, OTHER)
    assert p.probe_round() is True  # returned although the probe of 10.0.0.5 never did
    assert servers(p) == [
        ("10.0.0.5", 2049, False, "cannot reach nfs server 10.0.0.5: no answer within 0.01s"),
        ("nas.local", 2050, True, None),
    ]
    p.probe_round()
    assert fake.calls.count("10.0.0.5") == 1 and fake.calls.count("nas.local:2050") == 2
    assert servers(p)[0][3] == "cannot reach nfs server 10.0.0.5: the previous probe still has no answer"
    fake.hang.pop("10.0.0.5").set()
    # The stuck probe finishes in its own time; a round after that probes the server afresh.
    while p.probe_round() is False or servers(p)[0][2] is False:
        pass
    assert servers(p)[0] == ("10.0.0.5", 2049, True, None)


def test_a_probe_that_raises_counts_as_unreachable_with_the_error(fake: FakeProbe) -> None:
    fake.answers["10.0.0.5"] = "raise"
    p = prober(fake, NAS)
    p.probe_round()
    assert servers(p) == [
        ("10.0.0.5", 2049, False, "cannot reach nfs server 10.0.0.5: OSError: name resolution failed")
    ]


def test_a_server_the_master_no_longer_names_leaves_the_status(fake: FakeProbe) -> None:
    changed: list[bool] = []
    p = prober(fake, NAS, OTHER, on_change=lambda: changed.append(True))
    p.probe_round()
    changed.clear()
    p.set_servers([NAS])
    assert [s[0] for s in servers(p)] == ["10.0.0.5"]
    assert changed == [True]
    p.set_servers([])
    assert p.node_status() == {}


def test_events_stay_queued_when_publishing_fails(fake: FakeProbe) -> None:
    fake.answers["10.0.0.5"] = "cannot reach nfs server 10.0.0.5: Connection refused"
    p = prober(fake, NAS)
    p.probe_round()

    def broken(batch: list[dict[str, Any]]) -> None:
        raise OSError("broker gone")

    with pytest.raises(OSError, match="broker gone"):
        p.flush_events(broken)
    assert [e[1] for e in events(p)] == ["NFSServerUnreachable"]
    assert events(p) == []


def test_the_worker_probes_on_its_own_thread_and_reports_changes(fake: FakeProbe) -> None:
    changed = threading.Event()
    p = NfsProber("pi-1", fake, interval=3600, timeout=1.0, on_change=changed.set)
    p.start()
    try:
        p.set_servers([NAS])  # a new server is probed at once, not after the interval
        assert changed.wait(30)
        assert servers(p) == [("10.0.0.5", 2049, True, None)]
    finally:
        p.stop()


# -- in the agent ------------------------------------------------------------------------------------------


NODE = NodeName("pi-1")


class AgentNode:
    """A real Agent on FakeRuntime and the in-memory bus, its NFS probe faked; tests call reconcile themselves."""

    def __init__(self, state_dir: Path, fake: FakeProbe) -> None:
        self.broker = MemoryBroker(inline=True)
        bus = self.broker.client(f"edgekube-agent-{NODE}", persistent=True)
        config = AgentConfig(node_name=NODE, state_dir=state_dir, report_interval=3600)
        self.agent = Agent(config, FakeRuntime(NODE), bus, nfs_probe_fn=fake).start(loop=False)
        self.agent.nfs.timeout = 0.01
        self.agent.nfs.grace = 0.0

    def desire(self, generation: int, *nfs: NfsServer) -> None:
        message = NodeDesired(node=NODE, generation=generation, epoch="e", nfs_servers=list(nfs))
        self.broker.client("master").start().publish(topics.node_desired(NODE), message.encode(), retain=True)

    def reports(self) -> list[NodeReport]:
        return [NodeReport.decode(m.payload) for m in self.broker.published(topics.node_status(NODE))]

    def node_events(self) -> list[tuple[str, str]]:
        found = [EventReport.decode(m.payload) for m in self.broker.published(topics.node_events(NODE))]
        return [(e["reason"], e["involvedObject"]["kind"]) for r in found for e in r.events]


@pytest.fixture
def agent_node(tmp_path: Path, fake: FakeProbe) -> Iterator[AgentNode]:
    n = AgentNode(tmp_path / "agent", fake)
    yield n
    n.agent.prober.stop()
    n.agent.nfs.stop()


def test_the_agent_reports_nfs_servers_and_the_condition_in_its_node_object(
    agent_node: AgentNode, fake: FakeProbe
) -> None:
    fake.answers["10.0.0.5"] = "cannot reach nfs server 10.0.0.5: Connection refused"
    agent_node.desire(1, NAS)
    assert agent_node.agent.nfs.servers == [NAS]
    agent_node.agent.nfs.probe_round()
    agent_node.agent.reconcile()
    node = Node.model_validate(agent_node.reports()[-1].node_object)
    assert node.status is not None
    [status] = node.status.nfs_servers
    assert (status.server, status.reachable) == ("10.0.0.5", False)
    [cond] = node.status.conditions
    assert (cond.type, cond.status, cond.reason) == ("NFSReachable", "False", "NFSServerUnreachable")
    assert agent_node.node_events() == [("NFSServerUnreachable", "Node")]


def test_the_agent_resends_its_node_only_when_reachability_changed(agent_node: AgentNode, fake: FakeProbe) -> None:
    agent_node.desire(1, NAS)
    agent_node.agent.nfs.probe_round()
    agent_node.agent.reconcile()
    sent = len(agent_node.reports())
    agent_node.agent.nfs.probe_round()
    agent_node.agent.reconcile()
    assert len(agent_node.reports()) == sent  # same reachability: nothing new to say
    fake.answers["10.0.0.5"] = "cannot reach nfs server 10.0.0.5: Connection refused"
    agent_node.agent.nfs.probe_round()
    agent_node.agent.reconcile()
    assert len(agent_node.reports()) == sent + 1
    [cond] = agent_node.reports()[-1].node_object["status"]["conditions"]
    assert cond["status"] == "False"


def test_a_stale_desired_state_does_not_change_the_servers_probed(agent_node: AgentNode) -> None:
    agent_node.desire(2, NAS, OTHER)
    agent_node.desire(1, NAS)  # an older generation: ignored, pods and servers alike
    assert agent_node.agent.nfs.servers == [NAS, OTHER]
