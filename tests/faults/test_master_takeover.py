"""kill -9 of the active master under a stream of applies, with real agents on Podman: the standby takes over.

A fleet (tests/support/fleet.py: Mosquitto, the master and three agents as processes, each node its own Podman
store) whose master is HA master m1 (`--master-id m1 --role active`); a second master m2 starts as standby on its
own data directory with the same Secret key. A ReplicationController "steady" runs 3 replicas. A client applies
ConfigMaps one after the other, counting those answered ok. m1 is killed with SIGKILL. The agents see its Will and
say so in their witnesses (agent/witness.py, real code); m2 takes over with term 2. The stream goes on through m2.
Then every acknowledged ConfigMap is stored, the 3 replicas keep their uid, node and Podman pod and were never
restarted (the takeover republished every node's desired state with the same spec hashes), and no controller
created a replica twice. m1 is started again, configured active: it sees term 2, comes back as standby and catches
up, and the pods stay untouched.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekube.local.podman_service import PodmanService
from edgekube.model.errors import BusError
from edgekube.model.ha import Replication, Role
from edgekube.store.sealed import new_key_file
from tests.support.fleet import Fleet, disturbed, rc_manifest
from tests.support.hamasters import HaMasters

pytestmark = pytest.mark.integration

NODES = 3


def config_map(name: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{k: v}}\n"


@pytest.fixture
def ha_fleet(fleet_podman: dict[str, PodmanService], tmp_path: Path) -> Iterator[tuple[Fleet, HaMasters]]:
    key = tmp_path / "encryption-config.yaml"
    new_key_file(key)
    m1 = ["--master-id", "m1", "--role", "active", "--encryption-config", str(key), "--replication-timeout", "1"]
    with (
        Fleet(tmp_path / "fleet", NODES, netns=False, podman=fleet_podman, master_args=m1) as fleet,
        HaMasters(fleet.port, tmp_path / "ha", key=key) as masters,
    ):
        masters.wait_role("m1", Role.ACTIVE, term=1)
        masters.start("m2", "standby")
        masters.wait_replication("m1", Replication.REPLICATED)
        yield fleet, masters


def test_kill_of_the_active_master_under_applies_loses_no_acknowledged_write_and_no_pod_is_touched(
    ha_fleet: tuple[Fleet, HaMasters],
) -> None:
    fleet, masters = ha_fleet
    fleet.apply(rc_manifest("steady", 3))
    before = fleet.wait_converged({"app=steady": 3})
    acknowledged: list[str] = []
    stop = threading.Event()

    def stream() -> None:
        i = 0
        while not stop.is_set():
            try:
                if fleet.api.apply(config_map(f"s{i}"), timeout=2).ok:
                    acknowledged.append(f"s{i}")
            except BusError:
                pass  # unanswered: it may or may not be stored; only answered ones are counted
            i += 1

    writer = threading.Thread(target=stream)
    writer.start()
    try:
        while len(acknowledged) < 10:
            stop.wait(0.05)
        fleet.stop_master(kill=True)
        killed_after = len(acknowledged)
        masters.wait_role("m2", Role.ACTIVE, term=2, timeout=60)
        while len(acknowledged) < killed_after + 10:
            stop.wait(0.05)
    finally:
        stop.set()
        writer.join()

    stored = {cm["metadata"]["name"] for cm in fleet.api.objects("ConfigMap")}
    assert set(acknowledged) <= stored, f"acknowledged writes lost: {sorted(set(acknowledged) - stored)}"
    after = fleet.wait_converged({"app=steady": 3})
    assert not disturbed(before.podman, after), "the takeover must not touch a running pod"
    assert {n for n, t in masters.desired if t == 2} >= set(fleet.nodes), "every node was told term 2"

    fleet.start_master(wait=False)  # m1, configured active, comes back: term 2 is m2's
    masters.wait_role("m1", Role.STANDBY, term=2, timeout=60)
    masters.wait_replication("m2", Replication.REPLICATED, timeout=60)
    assert fleet.api.apply(config_map("after-return")).ok
    final = fleet.wait_converged({"app=steady": 3})
    assert not disturbed(before.podman, final), "the deposed master's return must not touch a running pod"
    assert all(t == 2 for _, t in masters.desired[-len(fleet.nodes) :]), "no desired state of term 1 after term 2"
