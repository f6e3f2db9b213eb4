"""A failing liveness probe restarts its pod in place, again and again with back-off, and says why in an event.

Two ReplicationControllers run side by side, 3 replicas each. "sick" has a liveness probe that always fails —
an exec probe running `false`, or an httpGet probe to a port nothing listens on — after a one-second initial
delay. "well" serves HTTP with busybox httpd and is probed with an httpGet to its open port. Every "sick" pod
is restarted by its node's agent: its restartCount reaches 4, it keeps its name, uid and node (the
controller does not replace it), and an Unhealthy warning event names it. The restarts back off: Podman's
event log on the pod's node shows its container started 5 times, and each wait between two starts is longer
than the one before (the agents run with a 2 s initial back-off: they wait 0, 2, 4, then 8 s before restarting;
probing adds the same to each, so each wait grows by at least 2 s, well above a loaded machine's jitter). The
"well" pods are never restarted and no Unhealthy event names them.

The agents run in the host's network here: an agent in its own namespace could not reach pod addresses on
Podman's bridge, so the healthy httpGet probe would fail for the wrong reason.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.support.cluster import wait_for
from tests.support.fleet import Fleet, container, rc_manifest, restart_counts, uid_of

pytestmark = pytest.mark.integration

FLEET_NETNS = False
FLEET_AGENT_ARGS = ["--backoff-initial", "2"]
PORT = 8080
SICK_PROBES = {
    "exec-false": {"exec": {"command": ["false"]}},
    "httpGet-closed-port": {"httpGet": {"path": "/", "port": PORT}},
}
#: Restarts each sick pod must go through: the first is immediate, the next three back off 2, 4 and 8 s.
RESTARTS = 4
TIMING = {"initialDelaySeconds": 1, "periodSeconds": 1, "failureThreshold": 1, "timeoutSeconds": 1}


def bound(pods: list[dict[str, Any]], count: int) -> dict[str, dict[str, Any]] | None:
    if len(pods) == count and all(p["spec"].get("nodeName") for p in pods):
        return {uid_of(p): p for p in pods}
    return None


def unhealthy_pods(fleet: Fleet) -> set[str]:
    events: list[dict[str, Any]] = fleet.api.objects("Event")
    return {e["involvedObject"]["name"] for e in events if e.get("reason") == "Unhealthy"}


@pytest.mark.parametrize("probe", SICK_PROBES.values(), ids=SICK_PROBES.keys())
def test_a_failing_liveness_probe_restarts_the_pod_with_back_off_and_an_event(
    fleet: Fleet, probe: dict[str, Any]
) -> None:
    fleet.apply(rc_manifest("sick", 3, [container(livenessProbe={**probe, **TIMING})]))
    httpd = ["sh", "-c", f"trap 'exit 0' TERM; httpd -f -p {PORT} -h /www & wait"]
    well_probe = {"httpGet": {"path": "/", "port": PORT}, **TIMING}
    fleet.apply(rc_manifest("well", 3, [container(command=httpd, livenessProbe=well_probe)]))
    # The sick pods may be restarting already; they only have to exist and be bound to a node.
    sick = wait_for("3 sick pods bound to nodes", lambda: bound(fleet.api.pods("app=sick"), 3))
    well = {uid_of(p): p for p in fleet.wait_replicas("app=well", 3)}

    def restarted(times: int) -> dict[str, int] | None:
        pods = fleet.api.pods("app=sick")
        counts = {p["metadata"]["name"]: restart_counts(p).get("main", 0) for p in pods}
        return counts if len(counts) == 3 and min(counts.values()) >= times else None

    wait_for(f"every sick pod restarted {RESTARTS} times", lambda: restarted(RESTARTS), timeout=120, interval=0.5)
    now_sick = {uid_of(p): p for p in fleet.api.pods("app=sick")}
    assert set(now_sick) == set(sick), "sick pods must restart in place, never be replaced by the controller"
    for uid, pod in sick.items():
        assert now_sick[uid]["spec"]["nodeName"] == pod["spec"]["nodeName"]
    for uid, pod in sick.items():
        starts = fleet.container_starts(pod["spec"]["nodeName"], uid, "main")[: RESTARTS + 1]
        assert len(starts) == RESTARTS + 1, f"{pod['metadata']['name']}: Podman logged {len(starts)} starts"
        gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
        growing = all(later > earlier for earlier, later in itertools.pairwise(gaps))
        assert growing, f"{pod['metadata']['name']}: each wait between starts must be longer than the last: {gaps}"
    sick_names = {p["metadata"]["name"] for p in sick.values()}
    wait_for("an Unhealthy event for every sick pod", lambda: sick_names <= unhealthy_pods(fleet), timeout=10)

    well_now = {uid_of(p): p for p in fleet.api.pods("app=well")}
    assert set(well_now) == set(well)
    for pod in well_now.values():
        assert restart_counts(pod) == {"main": 0}, f"{pod['metadata']['name']} passes its probe and must not restart"
    assert not unhealthy_pods(fleet) & {p["metadata"]["name"] for p in well.values()}
