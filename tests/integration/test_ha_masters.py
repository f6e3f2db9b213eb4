"""Two HA masters on a real Mosquitto with real TinyDB directories: replication, acks, takeover, step-down.

Each master is an `edgekube master --master-id ID --role ROLE` process (tests/support/hamasters.py). m1 starts
active, m2 standby; m2 asks m1 for a snapshot and follows its journal stream. Clients only ever talk to the
cluster's API topic; the standby does not subscribe to it, so exactly one master answers.

The nodes are simulated (tests/support/simnodes.py: the agent's protocol without Podman). What each node says
as a witness is decided by the agent's own code (agent/witness.py MasterWatch, run by tests/support/hamasters.py
Witnesses on the presences and on the terms of the desired states the node receives), published retained as the
agent does. With real agents on Podman (each its own witness): tests/faults/test_master_takeover.py.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekube.cli.main import main as ekctl_main
from edgekube.local.broker import Mosquitto
from edgekube.model.errors import BusError
from edgekube.model.ha import Replication, Role
from edgekube.model.wire import ApiRequest, Verb
from tests.support.cluster import ApiClient, wait_for
from tests.support.hamasters import HaMasters, Witnesses
from tests.support.simnodes import SimNodes

pytestmark = pytest.mark.integration

NODES = ["node-1", "node-2", "node-3"]


def config_map(name: str, value: str = "v") -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{k: {value}}}\n"


def rc(name: str, replicas: int) -> str:
    return (
        "apiVersion: v1\nkind: ReplicationController\n"
        f"metadata: {{name: {name}}}\n"
        f"spec:\n  replicas: {replicas}\n  selector: {{app: {name}}}\n"
        f"  template:\n    metadata: {{labels: {{app: {name}}}}}\n"
        "    spec: {containers: [{name: main, image: demo}]}\n"
    )


@pytest.fixture
def masters(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[HaMasters]:
    with HaMasters(mosquitto.port, tmp_path) as pair:
        pair.start("m1", "active")
        pair.wait_role("m1", Role.ACTIVE, term=1)
        pair.start("m2", "standby")
        pair.wait_replication("m1", Replication.REPLICATED)
        yield pair


@pytest.fixture
def api(mosquitto: Mosquitto) -> Iterator[ApiClient]:
    client = ApiClient(mosquitto.port)
    yield client
    client.bus.close()


def test_acknowledged_writes_are_in_the_standby_s_store(masters: HaMasters, api: ApiClient) -> None:
    for i in range(20):
        answer = api.apply(config_map(f"c{i}", f"v{i}"))
        assert answer.ok, answer.error
    masters.kill("m2")  # kill -9: what is on its flash is what it acknowledged
    stored = masters.stored("m2", "ConfigMap")
    assert {name: obj["data"] for name, obj in stored.items()} == {f"c{i}": {"k": f"v{i}"} for i in range(20)}


def test_an_answer_waits_for_the_standby_s_acknowledgement(
    mosquitto: Mosquitto, tmp_path: Path, api: ApiClient
) -> None:
    with HaMasters(mosquitto.port, tmp_path, timeout=600) as masters:
        masters.start("m1", "active")
        masters.wait_role("m1", Role.ACTIVE)
        masters.start("m2", "standby")
        masters.wait_replication("m1", Replication.REPLICATED)
        masters.freeze("m2")
        events: list[str] = []
        reply = api.send(ApiRequest(verb=Verb.APPLY, manifest=config_map("held")))
        waiter = threading.Thread(target=lambda: events.append("answered" if reply.wait(timeout=120).ok else "failed"))
        waiter.start()
        time.sleep(2.0)  # room for a wrong early answer: the active has stored and shipped the write by now
        events.append("thawed")
        masters.thaw("m2")
        waiter.join()
        assert events == ["thawed", "answered"]
        presence = masters.presence("m1")
        assert presence is not None and presence.replication == Replication.REPLICATED.value
        masters.kill("m2")
        assert "held" in masters.stored("m2", "ConfigMap")


def test_with_the_standby_down_writes_are_acknowledged_and_shown_unreplicated(
    masters: HaMasters, api: ApiClient
) -> None:
    masters.kill("m2")
    masters.wait_replication("m1", Replication.UNREPLICATED)
    assert api.apply(config_map("alone")).ok
    flag = masters.flags["m1"]
    assert (flag.state, flag.term) == (Replication.UNREPLICATED, 1)

    masters.start("m2", "standby")  # it comes back, is sent a snapshot, and holds everything again
    masters.wait_replication("m1", Replication.REPLICATED)
    assert api.apply(config_map("together")).ok
    masters.kill("m2")
    assert {"alone", "together"} <= set(masters.stored("m2", "ConfigMap"))


def test_kill_of_the_active_under_applies_keeps_every_acknowledged_write_and_the_nodes_pods(
    masters: HaMasters, api: ApiClient, mosquitto: Mosquitto
) -> None:
    with SimNodes(mosquitto.port, NODES) as nodes, Witnesses(mosquitto.port, NODES):
        assert api.apply(rc("web", 6)).ok
        wait_for("6 pods running", lambda: sum(len(nodes.running(n)) for n in NODES) == 6)
        before = {n: nodes.uids(n) for n in NODES}
        acknowledged: list[str] = []
        stop = threading.Event()

        def stream() -> None:
            i = 0
            while not stop.is_set():
                try:
                    if api.apply(config_map(f"s{i}"), timeout=2).ok:
                        acknowledged.append(f"s{i}")
                except BusError:
                    pass  # no answer: it may or may not be stored, the test does not count it
                i += 1

        writer = threading.Thread(target=stream)
        writer.start()
        try:
            wait_for("some writes acknowledged", lambda: len(acknowledged) >= 10)
            masters.kill("m1")
            killed_after = len(acknowledged)
            masters.wait_role("m2", Role.ACTIVE, term=2)
            wait_for("writes acknowledged by the new active", lambda: len(acknowledged) >= killed_after + 5)
        finally:
            stop.set()
            writer.join()
        stored = {cm["metadata"]["name"] for cm in api.objects("ConfigMap")}
        assert set(acknowledged) <= stored, f"lost acknowledged writes: {sorted(set(acknowledged) - stored)}"
        wait_for("every node told term 2", lambda: {n for n, t in masters.desired if t == 2} >= set(NODES))
        assert {n: nodes.uids(n) for n in NODES} == before, "the takeover changed what a node runs"


def test_the_deposed_active_returns_as_standby_and_never_publishes_its_old_term(
    masters: HaMasters, api: ApiClient, mosquitto: Mosquitto
) -> None:
    with SimNodes(mosquitto.port, NODES) as nodes, Witnesses(mosquitto.port, NODES):
        assert api.apply(rc("web", 3)).ok
        wait_for("3 pods running", lambda: sum(len(nodes.running(n)) for n in NODES) == 3)
        assert {n for n, t in masters.desired if t == 1} >= set(NODES)
        masters.kill("m1")
        masters.wait_role("m2", Role.ACTIVE, term=2)
        assert api.apply(config_map("after-takeover")).ok
        seen = len(masters.desired)

        masters.start("m1", "active")  # configured active, but term 2 is held by m2
        masters.wait_role("m1", Role.STANDBY, term=2)
        masters.wait_replication("m2", Replication.REPLICATED)
        assert api.apply(config_map("after-return")).ok
        assert all(term == 2 for _, term in masters.desired[seen:]), "a desired state of term 1 after the takeover"
        masters.kill("m1")
        assert {"after-takeover", "after-return"} <= set(masters.stored("m1", "ConfigMap"))


def ekctl(port: int, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = ekctl_main(["--mqtt-host", "127.0.0.1", "--mqtt-port", str(port), *argv])
    return code, out.getvalue()


def test_ekctl_get_and_describe_masters_show_roles_terms_and_an_unreplicated_active(
    masters: HaMasters, mosquitto: Mosquitto
) -> None:
    masters.wait_replication("m2", Replication.FOLLOWING)
    code, text = ekctl(mosquitto.port, "get", "masters")
    assert code == 0
    rows = [line.split() for line in text.splitlines()]
    assert rows[0] == ["NAME", "ROLE", "ONLINE", "TERM", "REPLICATION", "PEER", "SEQ"]
    assert [row[:6] for row in rows[1:]] == [
        ["m1", "active", "yes", "1", "replicated", "m2"],
        ["m2", "standby", "yes", "1", "following", "m1"],
    ]

    masters.kill("m2")
    masters.wait_replication("m1", Replication.UNREPLICATED)
    code, text = ekctl(mosquitto.port, "describe", "master", "m1")
    assert code == 0
    assert "Replication:  unreplicated (writes are acknowledged on this master's flash alone)" in text
    assert "Note:         m2 went offline" in text
    code, text = ekctl(mosquitto.port, "get", "masters", "m2")
    # Its Last Will speaks: offline, role unknown (set when it connected).
    assert [line.split()[:3] + line.split()[4:5] for line in text.splitlines()[1:]] == [["m2", "-", "no", "offline"]]


def test_masters_preferring_two_unbridged_brokers_replicate_and_take_over_through_either(
    mosquitto: Mosquitto, tmp_path: Path, api: ApiClient
) -> None:
    """Each master is on both brokers (one client per broker); the nodes and the client are on the second only."""
    with Mosquitto(workdir=tmp_path / "broker-2") as second, HaMasters(mosquitto.port, tmp_path / "ha") as masters:
        masters.start("m1", "active", brokers=[mosquitto.port, second.port])
        masters.start("m2", "standby", brokers=[second.port, mosquitto.port])
        masters.wait_replication("m1", Replication.REPLICATED)
        client = ApiClient(second.port)
        try:
            with SimNodes(second.port, NODES) as nodes, Witnesses(second.port, NODES):
                assert client.apply(rc("web", 3)).ok
                wait_for("3 pods running on broker 2's nodes", lambda: sum(len(nodes.running(n)) for n in NODES) == 3)
                assert client.apply(config_map("before")).ok
                masters.kill("m1")
                masters.wait_role("m2", Role.ACTIVE, term=2)
                assert client.apply(config_map("after")).ok
                assert {"before", "after"} <= {cm["metadata"]["name"] for cm in client.objects("ConfigMap")}
                assert api.apply(config_map("through-the-first-broker")).ok  # the other broker serves too
        finally:
            client.bus.close()


def test_a_clean_stop_of_the_active_hands_over_without_any_witness(
    mosquitto: Mosquitto, tmp_path: Path, api: ApiClient
) -> None:
    """No node at all, so no witness: only the active's own word (its last presence, `handover`) allows it.

    A generous --replication-timeout: on a loaded machine a slow last acknowledgement would rightly cancel the
    handover (the standby declared down), which is not what this test is about.
    """
    with HaMasters(mosquitto.port, tmp_path, timeout=30) as masters:
        masters.start("m1", "active")
        masters.wait_role("m1", Role.ACTIVE, term=1)
        masters.start("m2", "standby")
        masters.wait_replication("m1", Replication.REPLICATED)
        assert api.apply(config_map("before-handover")).ok
        masters.procs["m1"].terminate(timeout=60)  # SIGTERM: last commit acknowledged by m2, then the handover
        masters.wait_role("m2", Role.ACTIVE, term=2)
        assert api.apply(config_map("after-handover")).ok
        assert {"before-handover", "after-handover"} <= {cm["metadata"]["name"] for cm in api.objects("ConfigMap")}


def test_without_nodes_a_killed_active_is_not_replaced(masters: HaMasters, api: ApiClient) -> None:
    """kill -9 leaves no handover, and with no Ready node nobody can witness: the standby waits, saying why."""
    assert api.apply(config_map("alone")).ok
    masters.kill("m1")

    def waiting() -> str:
        presence = masters.presence("m2")
        return presence.note if presence is not None and "no Ready node" in presence.note else ""

    wait_for("m2 says why it waits", waiting)
    presence = masters.presence("m2")
    assert presence is not None and presence.role is Role.STANDBY and presence.term == 1


def test_a_standby_never_takes_over_from_an_active_that_acknowledged_writes_without_it(
    masters: HaMasters, api: ApiClient, mosquitto: Mosquitto
) -> None:
    """m2 is down while m1 acknowledges a write alone; m1 dies; m2 comes back: the witnesses say m1 is gone, but
    m1's retained flag says m2's copy misses acknowledged writes, so m2 stays standby (and says why) until m1 is
    back; then m2 follows m1 again and holds the write."""
    with SimNodes(mosquitto.port, NODES) as nodes, Witnesses(mosquitto.port, NODES):
        assert api.apply(rc("web", 3)).ok
        wait_for("3 pods running", lambda: sum(len(nodes.running(n)) for n in NODES) == 3)
        masters.kill("m2")
        masters.wait_replication("m1", Replication.UNREPLICATED)
        assert api.apply(config_map("only-on-m1")).ok
        masters.kill("m1")
        masters.start("m2", "standby")

        def waiting() -> str:
            presence = masters.presence("m2")
            note = presence.note if presence is not None and presence.online else ""
            return note if "without this copy" in note else ""

        wait_for("m2 refusing to take over", waiting)
        presence = masters.presence("m2")
        assert presence is not None and presence.role is Role.STANDBY and presence.term == 1

        masters.start("m1", "active")  # the only master with every acknowledged write comes back and serves
        masters.wait_role("m1", Role.ACTIVE, term=1)
        masters.wait_replication("m1", Replication.REPLICATED)
        masters.kill("m2")
        assert "only-on-m1" in masters.stored("m2", "ConfigMap")
