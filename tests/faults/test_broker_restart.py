"""The MQTT broker restarts while a client scales one controller and applies another: nobody is evicted.

A ReplicationController "steady" runs 3 replicas on 3 nodes. The broker goes away — stopped with SIGTERM
(persistence saved) or killed with SIGKILL (only the last autosave survives). While it is away (its process
gone and its port refusing connections, checked before and after the requests are sent) a client sends two
requests, once each: scale "steady" to 5, and apply a new controller "burst" with 3 replicas. Its MQTT library
queues them. The broker comes back on the same port; the master, every agent and the client reconnect, the
queued requests go out, and the master answers both with success. No node failed, so no pod may be evicted:
the 3 original replicas keep their uid, their node and their Podman pod, and are never restarted. The 5 new
pods start, and the Podman stores end up holding exactly the 8 pods the API lists.
"""

from __future__ import annotations

import pytest

from edgekube.model.wire import ApiRequest, Verb
from tests.support.fleet import Fleet, disturbed, rc_manifest

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("kill", [False, True], ids=["sigterm", "sigkill"])
def test_requests_sent_while_the_broker_is_down_are_answered_after_it_returns_and_nothing_is_evicted(
    fleet: Fleet, kill: bool
) -> None:
    fleet.apply(rc_manifest("steady", 3))
    before = fleet.wait_converged({"app=steady": 3})

    fleet.stop_broker(kill=kill)
    assert fleet.broker_down(), "the broker must be gone before the requests are sent"
    scaled = fleet.api.send(ApiRequest(verb=Verb.SCALE, kind="ReplicationController", name="steady", replicas=5))
    applied = fleet.api.send(ApiRequest(verb=Verb.APPLY, manifest=rc_manifest("burst", 3)))
    assert fleet.broker_down(), "the broker must still be gone once both requests were sent"
    fleet.start_broker()

    for name, reply in (("scale steady to 5", scaled), ("apply burst", applied)):
        answer = reply.wait(timeout=60)
        assert answer.ok, f"{name}, sent while the broker was down: {answer.error}"
    after = fleet.wait_converged({"app=steady": 5, "app=burst": 3})
    assert not disturbed(before.podman, after), "no node failed, so no pod may be touched"
