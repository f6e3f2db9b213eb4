"""The fleet harness itself: each fault does what it claims, seen from the master and from Podman, and closes clean.

Three bare pods (no controller) run on a 3-node fleet. Podman's view of each node holds exactly the pods the API
binds to it. Each fault then takes one node away and its repair brings it back Ready: a killed agent, a frozen
agent, a cut network. Finally the fleet is closed, and no daemon process, pod, network namespace or veth of it
is left behind.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekube.local.podman_service import PodmanService
from tests.support.cluster import wait_for
from tests.support.fleet import Fleet, container, node_of, phase
from tests.support.prerequisites import require_netns

pytestmark = pytest.mark.integration


def bare_pod(name: str) -> str:
    return json.dumps(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [container()]}}
    )


@pytest.fixture
def own_fleet(tmp_path: Path, fleet_podman: dict[str, PodmanService]) -> Iterator[Fleet]:
    require_netns()
    fleet = Fleet(tmp_path, 3, podman=fleet_podman)
    try:
        yield fleet.start()
    finally:
        fleet.close()


def test_faults_take_a_node_away_repairs_bring_it_back_and_close_leaves_nothing(own_fleet: Fleet) -> None:
    fleet = own_fleet
    for name in ("bare-1", "bare-2", "bare-3"):
        fleet.apply(bare_pod(name))
    wait_for("3 bare pods Running", lambda: [phase(p) for p in fleet.api.pods()] == ["Running"] * 3)
    for node in fleet.nodes:
        in_api = {p["metadata"]["name"] for p in fleet.api.pods() if node_of(p) == node}
        assert {p.name for p in fleet.pods_on(node)} == in_api

    for inflict, repair in (
        (fleet.kill_agent, fleet.start_agent),
        (fleet.stop_agent, fleet.cont_agent),
        (fleet.cut, fleet.restore),
    ):
        inflict("node-3")
        wait_for(f"node-3 NotReady after {inflict.__name__}", lambda: fleet.node_ready("node-3") is False, 15)
        repair("node-3")
        fleet.wait_ready(["node-3"], timeout=15)

    pids = [fleet.master.pid if fleet.master else 0, *(a.pid for a in fleet.agents.values())]
    namespaces = [n.name for n in fleet.net.values()]
    veths = [n.host_veth for n in fleet.net.values()]
    fleet.close()
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids), "every daemon process must be gone"
    assert not fleet.all_pods(), "every node's Podman store must be empty"
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert not any(name in listed.split() for name in namespaces), "the namespaces must be deleted"
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert not any(f" {veth}@" in links or f" {veth}:" in links for veth in veths), "the veths must be deleted"
