"""A node is lost three ways — its agent killed with SIGKILL, frozen with SIGSTOP, or cut off the network.

The scenario is the same for each fault. A ReplicationController keeps 6 replicas on 3 nodes. node-2 fails.
The master notices (the agent's Last Will, or heartbeats that stop), marks node-2 NotReady and evicts its
pods at once (pod eviction timeout 0 s); the controller starts replacements on node-1 and node-3. Meanwhile
node-2's containers keep running: nothing but node-2 itself could stop them, so Podman on node-2 still shows
each of them running, with the same container id and no start since the one before the fault (its event log
holds exactly one start per container). When node-2 comes back (agent
restarted, resumed, or its link restored) it learns that its pods were replaced and stops them — fencing —
while the pods on the other nodes are never touched. In the end the Podman stores of all nodes together hold
exactly the 6 replicas the API lists, each on the node the API names: nothing lost, no duplicate left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.support.fleet import Converged, Fleet, PodmanContainer, disturbed, rc_manifest, uid_of

pytestmark = pytest.mark.integration

REPLICAS = 6
SELECTOR = "app=lost"
VICTIM = "node-2"


@dataclass(frozen=True)
class Fault:
    name: str
    inflict: Callable[[Fleet, str], None]
    repair: Callable[[Fleet, str], None]


FAULTS = [
    Fault("agent-kill-9", Fleet.kill_agent, Fleet.start_agent),
    Fault("agent-sigstop", Fleet.stop_agent, Fleet.cont_agent),
    Fault("network-cut", Fleet.cut, Fleet.restore),
]


def victim_containers(fleet: Fleet, before: Converged) -> dict[str, list[PodmanContainer]]:
    """Each of the victim's pods (by uid) with its app containers as Podman on the victim holds them now."""
    return {uid: fleet.containers_of(VICTIM, pod.name) for uid, pod in before.on(VICTIM).items()}


def not_running_as_before(
    fleet: Fleet, then: dict[str, list[PodmanContainer]], now: dict[str, list[PodmanContainer]]
) -> list[str]:
    """What differs between two looks at the victim's containers: not running, replaced, or started again."""
    problems = []
    for uid, old in then.items():
        new = {c.name: c for c in now[uid]}
        for container in old:
            seen = new.get(container.name)
            starts = fleet.container_starts(VICTIM, uid, container.name)
            if seen is None:
                problems.append(f"{uid[:8]}/{container.name} is gone")
            elif seen.state != "running":
                problems.append(f"{uid[:8]}/{container.name} is {seen.state}")
            elif seen.container_id != container.container_id:
                problems.append(f"{uid[:8]}/{container.name} was recreated")
            elif len(starts) != 1:
                problems.append(f"{uid[:8]}/{container.name} was started {len(starts)} times")
    return problems


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.name)
def test_a_lost_nodes_pods_are_replaced_elsewhere_and_fenced_when_it_returns(fleet: Fleet, fault: Fault) -> None:
    fleet.apply(rc_manifest("lost", REPLICAS))
    before = fleet.wait_converged({SELECTOR: REPLICAS})
    doomed = before.on(VICTIM)
    assert doomed, f"the scheduler put none of the {REPLICAS} replicas on {VICTIM}: {before.podman}"
    survivors = {uid: pod for uid, pod in before.podman.items() if pod.node != VICTIM}
    containers = victim_containers(fleet, before)
    assert all(containers.values()), f"Podman on {VICTIM} lists no container of some pod: {containers}"
    assert not not_running_as_before(fleet, containers, containers), "before the fault: all running, started once"

    fault.inflict(fleet, VICTIM)
    running = fleet.wait_replicas(SELECTOR, REPLICAS, avoid=VICTIM, timeout=30)
    replacements = {uid_of(p) for p in running} - set(survivors)
    assert len(replacements) == len(doomed), "only the lost node's pods may be replaced"
    assert not replacements & set(doomed), "replacements must be new pods, not the lost ones rebound"
    assert {uid_of(p) for p in running} >= set(survivors), "the other nodes' pods must stay"
    still_there = {p.uid for p in fleet.pods_on(VICTIM)}
    assert set(doomed) <= still_there, "while lost, the node keeps its pods (only it could remove them)"
    problems = not_running_as_before(fleet, containers, victim_containers(fleet, before))
    assert not problems, (
        f"while lost, the node's containers keep running untouched (only it could stop them): {problems}"
    )

    fault.repair(fleet, VICTIM)
    fleet.wait_ready([VICTIM])
    after = fleet.wait_converged({SELECTOR: REPLICAS})
    assert not set(doomed) & set(after.podman), f"{VICTIM} must stop the pods that were replaced (fencing)"
    assert replacements <= set(after.api), "the replacements must stay"
    assert not disturbed(survivors, after), "the pods on the other nodes must never be touched"
