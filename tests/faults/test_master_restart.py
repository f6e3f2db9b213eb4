"""The master restarts while a client scales one controller and applies another: state intact, nobody evicted.

A ReplicationController "steady" runs 3 replicas on 3 nodes. The master process goes away for a second —
stopped with SIGTERM or killed with SIGKILL — and starts again on the same data directory. Meanwhile a client
scales "steady" to 5 and applies a new controller "burst" with 3 replicas, retrying until the master answers
(requests sent while it is down wait in its persistent MQTT session). The new master knows nothing yet about
the nodes' liveness, but they never failed, so no pod may be evicted: the 3 original replicas keep their uid,
node and Podman pod, and are never restarted. Both controllers come back from the store with the replica
counts last applied, no controller creates a pod twice, and the Podman stores end up holding exactly the 8
pods the API lists.
"""

from __future__ import annotations

import pytest

from tests.support.fleet import Fleet, disturbed, meanwhile, rc_manifest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_master_restart_under_traffic_keeps_state_evicts_nothing_and_converges(fleet: Fleet, kill: bool) -> None:
    fleet.apply(rc_manifest("steady", 3))
    before = fleet.wait_converged({"app=steady": 3})

    with meanwhile(lambda: fleet.restart_master(kill=kill, down_for=1.0, wait=False)):
        fleet.scale("ReplicationController", "steady", 5)
        fleet.apply(rc_manifest("burst", 3))

    after = fleet.wait_converged({"app=steady": 5, "app=burst": 3})
    controllers = {rc["metadata"]["name"]: rc["spec"]["replicas"] for rc in fleet.api.objects("ReplicationController")}
    assert controllers == {"steady": 5, "burst": 3}
    assert {n["metadata"]["name"] for n in fleet.api.nodes()} == set(fleet.nodes)
    assert not disturbed(before.podman, after), "no node failed, so no pod may be touched"
