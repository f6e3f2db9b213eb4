"""An active master cut off from the broker and every node (its board's network down): replaced, then fenced.

m1 (active) runs in a network namespace of its own and reaches the broker through a veth the test takes down;
m2 (standby), three simulated nodes and the client are on the host (tests/support/hamasters.py, simnodes.py; the
nodes' witnesses are the agent's own MasterWatch). The cut is silent, as a pulled cable: the broker notices m1 gone
after its keep-alive (here 2 s: 3 s) and publishes its Wills; the nodes witness it; m2 takes over with term 2 and
serves. m1, alone with no node (a minority), cannot acknowledge anything meanwhile. When the link comes back, m1
reconnects, sees term 2 before it publishes anything (its first look at the broker after a reconnect comes before
any answer or desired state), steps down and follows m2: no desired state of term 1 appears after the heal, and the
writes acknowledged before and during the cut are all in m1's copy afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekube.local.broker import Mosquitto
from edgekube.model.errors import BusError
from edgekube.model.ha import Replication, Role
from edgekube.model.wire import ApiRequest, Verb
from tests.support.cluster import ApiClient, wait_for
from tests.support.hamasters import HaMasters, Witnesses
from tests.support.netns import NetNode, mosquitto_inside
from tests.support.prerequisites import require_mosquitto, require_netns
from tests.support.simnodes import SimNodes

pytestmark = pytest.mark.integration

NODES = ["node-1", "node-2", "node-3"]


def config_map(name: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{k: v}}\n"


def rc(name: str, replicas: int) -> str:
    return (
        f"apiVersion: v1\nkind: ReplicationController\nmetadata: {{name: {name}}}\n"
        f"spec:\n  replicas: {replicas}\n  selector: {{app: {name}}}\n"
        f"  template:\n    metadata: {{labels: {{app: {name}}}}}\n"
        "    spec: {containers: [{name: main, image: demo}]}\n"
    )


def _back_as_standby_of_term_2(masters: HaMasters, api: ApiClient, since: int, write: str) -> None:
    """m1, the deposed active, follows m2 (term 2) and is replicated to; a write (ConfigMap `write`) is served, and
    no desired state of term 1 was published from `masters.desired[since]` on."""
    masters.wait_role("m1", Role.STANDBY, term=2, timeout=60)
    masters.wait_replication("m2", Replication.REPLICATED, timeout=60)
    assert api.apply(config_map(write)).ok
    late = masters.desired[since:]
    assert all(term == 2 for _, term in late), f"desired state of term 1 once m1 was back ({write}): {late}"


def test_an_active_cut_off_from_everything_is_replaced_and_steps_down_when_the_cut_heals(
    cable: NetNode, tmp_path: Path
) -> None:
    with (
        Mosquitto(workdir=tmp_path / "broker", extra_listeners=[cable.host_address]) as broker,
        HaMasters(broker.port, tmp_path / "ha", extra=["--mqtt-keepalive", "2"]) as masters,
    ):
        masters.start("m1", "active", host=cable.host_address, wrap=cable.enter)
        masters.wait_role("m1", Role.ACTIVE, term=1)
        masters.start("m2", "standby")
        masters.wait_replication("m1", Replication.REPLICATED)
        api = ApiClient(broker.port)
        try:
            with SimNodes(broker.port, NODES) as nodes, Witnesses(broker.port, NODES):
                assert api.apply(rc("web", 3)).ok
                wait_for("3 pods running", lambda: sum(len(nodes.running(n)) for n in NODES) == 3)
                assert api.apply(config_map("before-cut")).ok

                cable.cut()
                masters.wait_role("m2", Role.ACTIVE, term=2, timeout=60)
                assert api.apply(config_map("during-cut")).ok
                heal_at = len(masters.desired)
                cable.restore()

                _back_as_standby_of_term_2(masters, api, heal_at, "after-heal")
        finally:
            api.bus.close()
        masters.kill("m1")
        assert {"before-cut", "during-cut", "after-heal"} <= set(masters.stored("m1", "ConfigMap"))


@pytest.fixture
def cables() -> Iterator[tuple[NetNode, NetNode]]:
    require_netns()
    require_mosquitto()
    first, second = NetNode.create(), NetNode.create()
    try:
        yield first, second
    finally:
        first.delete()
        second.delete()


def test_masters_split_from_each_other_but_not_from_the_nodes_the_side_with_most_nodes_serves(
    cables: tuple[NetNode, NetNode], tmp_path: Path
) -> None:
    """Two brokers; each master in a namespace of its own reaching both, until each loses the other's broker.

    node-1 is on m1's broker, node-2 and node-3 on m2's: the majority is with the standby. m1, unreplicated and
    seeing one Ready node of three, answers nothing; m2 cannot see m1 offline on every broker, so it waits for
    its witness majority to hold `--node-timeout`, then takes over. A write sent to m1's broker during the split
    is never answered (never acknowledged: nothing acknowledged is lost); writes through m2's broker are served.
    When the split heals, m1 steps down and follows m2; the unanswered write is gone with m1's own history.
    """
    net1, net2 = cables
    listeners = [net1.host_address, net2.host_address]
    with (
        Mosquitto(workdir=tmp_path / "b1", extra_listeners=listeners) as b1,
        Mosquitto(workdir=tmp_path / "b2", extra_listeners=listeners) as b2,
        HaMasters(b1.port, tmp_path / "ha", extra=["--mqtt-keepalive", "2"]) as masters,
        HaMasters(b2.port, tmp_path / "watch-b2") as seen_on_b2,  # what m2's broker says (no process of its own)
    ):
        for master_id, role, net in (("m1", "active", net1), ("m2", "standby", net2)):
            via = [f"{net.host_address}:{b1.port}", f"{net.host_address}:{b2.port}"]
            masters.start(master_id, role, brokers=via if master_id == "m1" else via[::-1], wrap=net.enter)
        masters.wait_role("m1", Role.ACTIVE, term=1)
        masters.wait_replication("m1", Replication.REPLICATED)
        api1, api2 = ApiClient(b1.port), ApiClient(b2.port)
        try:
            with (
                SimNodes(b1.port, ["node-1"]) as minority,
                SimNodes(b2.port, ["node-2", "node-3"]) as majority,
                Witnesses(b1.port, ["node-1"]),
                Witnesses(b2.port, ["node-2", "node-3"]),
            ):
                assert api1.apply(rc("web", 3)).ok

                def running() -> int:
                    return len(minority.running("node-1")) + sum(len(majority.running(n)) for n in NODES[1:])

                wait_for("3 pods running", lambda: running() == 3)
                assert api2.apply(config_map("before-split")).ok

                net1.drop_port(b2.port)  # m1 loses m2's broker, m2 loses m1's: the masters no longer meet
                net2.drop_port(b1.port)
                seen_on_b2.wait_role("m2", Role.ACTIVE, term=2, timeout=60)
                assert api2.apply(config_map("during-split")).ok
                stranded = api1.send(ApiRequest(verb=Verb.APPLY, manifest=config_map("to-the-minority")))

                net1.allow_all()
                net2.allow_all()
                masters.wait_role("m1", Role.STANDBY, term=2, timeout=60)
                masters.wait_replication("m2", Replication.REPLICATED, timeout=60)
                assert api1.apply(config_map("after-heal")).ok  # m1's broker serves again, through m2
                with pytest.raises(BusError):
                    stranded.wait(timeout=0.5)  # m1 answered nothing alone; deposed, it never will
        finally:
            api1.bus.close()
            api2.bus.close()
        masters.kill("m1")
        stored = set(masters.stored("m1", "ConfigMap"))
        assert {"before-split", "during-split", "after-heal"} <= stored
        assert "to-the-minority" not in stored


def test_the_active_s_whole_board_dies_the_standby_takes_over_and_the_rebooted_master_follows_it(
    cable: NetNode, tmp_path: Path
) -> None:
    """m1 and its broker b1 are one board: one network namespace, b1 listening on the namespace's address.

    m2 and b2 are on the host. m1 prefers b1, then b2 over the veth; m2 prefers b2, then b1 over the veth. The
    nodes, their witnesses and the client are on b2. The board loses power: its link is cut, then m1 and b1 are
    SIGKILLed (with the link down, no FIN of theirs reaches b2 or m2). b2 drops m1 after its keep-alive (here
    2 s: 3 s) and publishes its Will; m2 cannot see m1 offline on b1 (gone), so it waits --node-timeout with its
    witness majority, takes over with term 2 and serves a write; every node is told term 2 and runs the same pods
    as before. The board boots: link up, b1 started again inside the namespace (empty, no persistence), m1
    started again as a new process on its own store, configured active as before. It comes back as standby of
    term 2, is replicated to, never publishes desired state of term 1 (on b2, nor on b1, watched from its boot
    on), the nodes still run the same pods, and every acknowledged write is in m1's store.
    """
    board = cable
    with (
        mosquitto_inside(board, tmp_path / "b1") as b1,
        Mosquitto(workdir=tmp_path / "b2", extra_listeners=[board.host_address]) as b2,
        HaMasters(b2.port, tmp_path / "ha", extra=["--mqtt-keepalive", "2"]) as masters,
    ):
        b1_via_veth = f"{board.address}:{b1.port}"
        masters.start("m1", "active", brokers=[b1_via_veth, f"{board.host_address}:{b2.port}"], wrap=board.enter)
        masters.wait_role("m1", Role.ACTIVE, term=1)
        masters.start("m2", "standby", brokers=[b2.port, b1_via_veth])
        masters.wait_replication("m1", Replication.REPLICATED)
        api = ApiClient(b2.port)
        try:
            with SimNodes(b2.port, NODES) as nodes, Witnesses(b2.port, NODES):
                assert api.apply(rc("web", 3)).ok
                wait_for("3 pods running", lambda: sum(len(nodes.running(n)) for n in NODES) == 3)
                pods = {n: nodes.uids(n) for n in NODES}
                assert api.apply(config_map("before-power-cut")).ok

                board.cut()  # first, so that what the kernel sends for the killed processes' sockets is lost
                masters.kill("m1")
                b1.kill()
                masters.wait_role("m2", Role.ACTIVE, term=2, timeout=60)
                assert api.apply(config_map("while-the-board-is-down")).ok
                wait_for("every node told term 2", lambda: {n for n, t in masters.desired if t == 2} >= set(NODES))
                assert {n: nodes.uids(n) for n in NODES} == pods, "the takeover changed what a node runs"

                back_at = len(masters.desired)
                board.restore()
                b1.start()
                # What b1 carries from its boot on (retained desired states included): m1 may publish there first.
                with HaMasters(b1.port, tmp_path / "watch-b1", watch_host=board.address) as seen_on_b1:
                    masters.start("m1", "active")  # the board's boot starts it as configured
                    _back_as_standby_of_term_2(masters, api, back_at, "after-the-board-is-back")
                    on_b1 = list(seen_on_b1.desired)
                assert all(term == 2 for _, term in on_b1), f"desired state of term 1 on the rebooted b1: {on_b1}"
                assert {n: nodes.uids(n) for n in NODES} == pods, "m1's return changed what a node runs"
        finally:
            api.bus.close()
        masters.kill("m1")
        stored = set(masters.stored("m1", "ConfigMap"))
        assert {"before-power-cut", "while-the-board-is-down", "after-the-board-is-back"} <= stored
