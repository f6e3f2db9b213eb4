"""The master restarts while a client scales one controller and applies another: state intact, nobody evicted.

A ReplicationController "steady" runs 3 replicas on 3 nodes. The master process goes away — stopped with
SIGTERM or killed with SIGKILL — and is reaped. While it is gone, a client sends two requests, once each:
scale "steady" to 5, and apply a new controller "burst" with 3 replicas. A second client subscribed to the
API topic sees both arrive at the broker while the master process is still gone: they wait in the master's
persistent MQTT session. The master starts again on the same data directory, takes them from its session and
answers both with success. The new master knows nothing yet about the nodes' liveness, but they never failed,
so no pod may be evicted: the 3 original replicas keep their uid, node and Podman pod, and are never
restarted. Both controllers come back from the store with the replica counts the requests set, no controller
creates a pod twice, and the Podman stores end up holding exactly the 8 pods the API lists.
"""

from __future__ import annotations

import pytest

from edgekube.bus import topics
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.model.wire import ApiRequest, Verb
from tests.support.cluster import wait_for
from tests.support.fleet import Fleet, disturbed, rc_manifest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_requests_sent_while_the_master_is_down_are_applied_after_it_returns_and_nothing_is_evicted(
    fleet: Fleet, kill: bool
) -> None:
    fleet.apply(rc_manifest("steady", 3))
    before = fleet.wait_converged({"app=steady": 3})
    arrived: list[bytes] = []
    watcher = PahoBus(BusConfig(port=fleet.port))
    watcher.subscribe(topics.API_REQUEST, lambda m: arrived.append(m.correlation or b""))
    watcher.start(wait=10)
    try:
        fleet.stop_master(kill=kill)
        assert fleet.master is not None and not fleet.master.running, "the master must be gone first"
        scaled = fleet.api.send(ApiRequest(verb=Verb.SCALE, kind="ReplicationController", name="steady", replicas=5))
        applied = fleet.api.send(ApiRequest(verb=Verb.APPLY, manifest=rc_manifest("burst", 3)))
        sent = {scaled.correlation, applied.correlation}
        wait_for("both requests at the broker", lambda: sent <= set(arrived), timeout=10)
        assert not fleet.master.running, "the master must still be gone when the broker has both requests"
    finally:
        watcher.close()
    fleet.start_master(wait=False)

    for name, reply in (("scale steady to 5", scaled), ("apply burst", applied)):
        answer = reply.wait(timeout=60)
        assert answer.ok, f"{name}, sent while the master was down: {answer.error}"
    after = fleet.wait_converged({"app=steady": 5, "app=burst": 3})
    controllers = {rc["metadata"]["name"]: rc["spec"]["replicas"] for rc in fleet.api.objects("ReplicationController")}
    assert controllers == {"steady": 5, "burst": 3}
    assert {n["metadata"]["name"] for n in fleet.api.nodes()} == set(fleet.nodes)
    assert not disturbed(before.podman, after), "no node failed, so no pod may be touched"
