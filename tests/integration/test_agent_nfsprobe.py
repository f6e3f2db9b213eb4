"""The agent's NFS probe against a real NFS-Ganesha, and against a server that accepts but never answers.

The probe is edgekube.nfs's real one (TCP connect, NFSv4 mount of the pseudo root, stat); the agent runs its real
threads on FakeRuntime and the in-memory bus, so the claim under test is the probe's, not Podman's or MQTT's.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgekube.agent.app import Agent, AgentConfig
from edgekube.agent.nfsprobe import NfsProber, nfs_probe
from edgekube.agent.runtime.fake import FakeRuntime
from edgekube.bus import topics
from edgekube.local.nfs import Ganesha
from edgekube.model.names import NodeName
from edgekube.model.storage import NfsServer
from edgekube.model.wire import NodeDesired, NodeReport
from tests.support.membus import MemoryBroker
from tests.support.nfs import running_ganesha

pytestmark = pytest.mark.integration
NODE = NodeName("pi-1")


def eventually(check: Callable[[], bool], limit: float = 60.0) -> bool:
    """Poll `check` until it holds; False after `limit` seconds (a guard against hanging, not a timing claim)."""
    done = threading.Event()
    for _ in range(int(limit / 0.05)):
        if check():
            return True
        done.wait(0.05)
    return check()


@pytest.fixture
def ganesha() -> Iterator[Ganesha]:
    with running_ganesha() as server:
        yield server


@pytest.fixture
def silent() -> Iterator[NfsServer]:
    """A TCP port that accepts connections and never says a word: an NFS server hung mid-way."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield NfsServer(server="127.0.0.1", port=listener.getsockname()[1])
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


def test_a_running_ganesha_is_reachable_and_a_stopped_one_is_not(ganesha: Ganesha) -> None:
    server = NfsServer(server="127.0.0.1", port=ganesha.port)
    prober = NfsProber("pi-1", nfs_probe, timeout=2.0)
    prober.set_servers([server])
    prober.probe_round()
    assert prober.node_status()["nfsServers"][0]["reachable"] is True
    assert prober.node_status()["conditions"][0]["status"] == "True"

    ganesha.stop()
    assert prober.probe_round() is True
    [status] = prober.node_status()["nfsServers"]
    assert status["reachable"] is False
    assert status["message"].startswith(f"cannot reach nfs server 127.0.0.1:{ganesha.port}: ")
    sent: list[dict[str, object]] = []
    prober.flush_events(sent.extend)
    assert [(e["type"], e["reason"]) for e in sent] == [("Warning", "NFSServerUnreachable")]


def test_a_server_that_accepts_but_never_answers_counts_as_unreachable(silent: NfsServer) -> None:
    prober = NfsProber("pi-1", nfs_probe, timeout=0.5)
    prober.set_servers([silent])
    prober.probe_round()
    [status] = prober.node_status()["nfsServers"]
    assert status["reachable"] is False
    assert "did not answer" in status["message"] or "no answer" in status["message"]


def test_the_agent_loop_keeps_reporting_while_an_nfs_server_hangs(silent: NfsServer, tmp_path: Path) -> None:
    broker = MemoryBroker()
    config = AgentConfig(node_name=NODE, state_dir=tmp_path / "agent", resync_interval=0.05, nfs_probe_interval=0.05)
    agent = Agent(config, FakeRuntime(NODE), broker.client(f"edgekube-agent-{NODE}", persistent=True))
    agent.nfs.timeout = 0.5
    reported = threading.Event()

    def seen(_msg: object) -> None:
        reports = [NodeReport.decode(m.payload) for m in broker.published(topics.node_status(NODE))]
        conditions = [c for r in reports for c in r.node_object["status"].get("conditions", [])]
        if any(c["type"] == "NFSReachable" and c["status"] == "False" for c in conditions):
            reported.set()

    watcher = broker.client("watcher").start()
    watcher.subscribe(topics.node_status(NODE), seen)
    agent.start(wait=5)
    try:
        master = broker.client("master").start()
        desired = NodeDesired(node=NODE, generation=1, epoch="e", nfs_servers=[silent])
        master.publish(topics.node_desired(NODE), desired.encode(), retain=True)
        assert reported.wait(60)
        beats = len(broker.published(topics.node_heartbeat(NODE)))
        # The server still holds every probe's connection: heartbeats carry on regardless.
        assert eventually(lambda: len(broker.published(topics.node_heartbeat(NODE))) > beats + 2)
    finally:
        agent.stop()
