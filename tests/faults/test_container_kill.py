"""Shared fate: when one container of a pod dies, the whole pod restarts in place.

A ReplicationController runs 3 replicas of a two-container pod, "main" and "sidecar". The harness kills the
sidecar of one replica with `podman kill` in its node's store. The agent sees the container exit and restarts
the pod as a unit: both the sidecar and the main container start again, restartCount increments, and the pod
keeps its name, uid and node — the controller does not replace it. The other two replicas are not touched, and
the Podman stores still hold exactly 3 pods.
"""

from __future__ import annotations

import time

import pytest

from tests.support.cluster import wait_for
from tests.support.fleet import Fleet, PodmanContainer, container, disturbed, phase, rc_manifest, restart_counts

pytestmark = pytest.mark.integration

SELECTOR = "app=fate"


def restarted(old: PodmanContainer, new: PodmanContainer) -> bool:
    return new.state == "running" and (new.container_id != old.container_id or new.started_at > old.started_at)


def test_a_killed_container_restarts_its_whole_pod_in_place(fleet: Fleet) -> None:
    fleet.apply(rc_manifest("fate", 3, [container("main"), container("sidecar")]))
    before = fleet.wait_converged({SELECTOR: 3})
    victim = min(before.podman.values(), key=lambda p: p.name)
    old = {c.name: c for c in fleet.containers_of(victim.node, victim.name)}
    # Podman reports StartedAt in whole seconds: let one pass, so a restart shows as a later start.
    time.sleep(max(0.0, max(c.started_at for c in old.values()) + 1.1 - time.time()))

    fleet.kill_container(victim.node, victim.name, "sidecar")

    def back_up() -> dict[str, int] | None:
        pod = fleet.api.pod(victim.name)
        counts = restart_counts(pod)
        statuses = pod["status"].get("containerStatuses", [])
        healthy = phase(pod) == "Running" and statuses and all(c.get("ready") for c in statuses)
        return counts if healthy and counts.get("sidecar", 0) >= 1 else None

    counts = wait_for(f"{victim.name} Running again after its sidecar was killed", back_up, timeout=30)
    assert counts["main"] >= 1, "the main container must restart with the sidecar: the pod restarts as a unit"
    new = {c.name: c for c in fleet.containers_of(victim.node, victim.name)}
    assert restarted(old["sidecar"], new["sidecar"])
    assert restarted(old["main"], new["main"]), "shared fate: the main container must be restarted too"

    after = fleet.wait_converged({SELECTOR: 3})
    assert set(after.api) == set(before.api), "the pod must restart in place, not be replaced by the controller"
    assert after.podman[victim.uid].node == victim.node
    others = {uid: pod for uid, pod in before.podman.items() if uid != victim.uid}
    assert not disturbed(others, after), "the other replicas must not be touched"
