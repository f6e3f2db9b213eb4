"""A node is lost three ways — its agent killed with SIGKILL, frozen with SIGSTOP, or cut off the network.

The scenario is the same for each fault. A ReplicationController keeps 6 replicas on 3 nodes. node-2 fails.
The master notices (the agent's Last Will, or heartbeats that stop), marks node-2 NotReady and evicts its
pods at once (pod eviction timeout 0 s); the controller starts replacements on node-1 and node-3. Meanwhile
node-2's containers keep running: nothing but node-2 itself could stop them. When node-2 comes back (agent
restarted, resumed, or its link restored) it learns that its pods were replaced and stops them — fencing —
while the pods on the other nodes are never touched. In the end the Podman stores of all nodes together hold
exactly the 6 replicas the API lists, each on the node the API names: nothing lost, no duplicate left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from tests.support.fleet import Fleet, disturbed, rc_manifest, uid_of

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


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.name)
def test_a_lost_nodes_pods_are_replaced_elsewhere_and_fenced_when_it_returns(fleet: Fleet, fault: Fault) -> None:
    fleet.apply(rc_manifest("lost", REPLICAS))
    before = fleet.wait_converged({SELECTOR: REPLICAS})
    doomed = before.on(VICTIM)
    assert doomed, f"the scheduler put none of the {REPLICAS} replicas on {VICTIM}: {before.podman}"
    survivors = {uid: pod for uid, pod in before.podman.items() if pod.node != VICTIM}

    fault.inflict(fleet, VICTIM)
    running = fleet.wait_replicas(SELECTOR, REPLICAS, avoid=VICTIM, timeout=30)
    replacements = {uid_of(p) for p in running} - set(survivors)
    assert len(replacements) == len(doomed), "only the lost node's pods may be replaced"
    assert not replacements & set(doomed), "replacements must be new pods, not the lost ones rebound"
    assert {uid_of(p) for p in running} >= set(survivors), "the other nodes' pods must stay"
    still_there = {p.uid for p in fleet.pods_on(VICTIM)}
    assert set(doomed) <= still_there, "while lost, the node's containers keep running (only it could stop them)"

    fault.repair(fleet, VICTIM)
    fleet.wait_ready([VICTIM])
    after = fleet.wait_converged({SELECTOR: REPLICAS})
    assert not set(doomed) & set(after.podman), f"{VICTIM} must stop the pods that were replaced (fencing)"
    assert replacements <= set(after.api), "the replacements must stay"
    assert not disturbed(survivors, after), "the pods on the other nodes must never be touched"
