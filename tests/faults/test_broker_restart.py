"""The MQTT broker restarts while a client scales one controller and applies another: nobody is evicted.

A ReplicationController "steady" runs 3 replicas on 3 nodes. The broker goes away for a second — stopped with
SIGTERM (persistence saved) or killed with SIGKILL (only the last autosave survives) — and comes back on the
same port. Meanwhile a client scales "steady" to 5 and applies a new controller "burst" with 3 replicas,
retrying until the master answers, as any client would. The master and every agent lose the broker at the
same moment and reconnect. No node failed, so no pod may be evicted: the 3 original replicas keep their uid,
their node and their Podman pod, and are never restarted. The 5 new pods start, and the Podman stores end up
holding exactly the 8 pods the API lists.
"""

from __future__ import annotations

import pytest

from tests.support.fleet import Fleet, disturbed, meanwhile, rc_manifest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_broker_restart_under_traffic_evicts_nothing_and_converges(fleet: Fleet, kill: bool) -> None:
    fleet.apply(rc_manifest("steady", 3))
    before = fleet.wait_converged({"app=steady": 3})

    with meanwhile(lambda: fleet.restart_broker(kill=kill, down_for=1.0)):
        fleet.scale("ReplicationController", "steady", 5)
        fleet.apply(rc_manifest("burst", 3))

    after = fleet.wait_converged({"app=steady": 5, "app=burst": 3})
    assert not disturbed(before.podman, after), "no node failed, so no pod may be touched"
