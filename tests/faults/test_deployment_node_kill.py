"""A node killed in the middle of a Deployment's rolling update neither loses nor doubles a replica.

On the fault fleet (tests/support/fleet.py: Mosquitto, the master and three agents as processes, each node with its
own Podman store) a Deployment runs 4 replicas of image A with maxSurge 1 and maxUnavailable 1. Image B is image A
tagged under a second name in every node's store (a different image reference, as a new release would be). The
first version of B has a readiness probe that never passes, so the rollout holds half way: 3 Ready A pods and 2 B
pods that are Running but never Ready. Then a node (one holding pods of both versions when one does, the most pods
among those) has its agent killed with SIGKILL: its MQTT connection dies without a DISCONNECT, the broker publishes
its Last Will, the master marks the node NotReady and evicts its pods, and their ReplicaSets replace them on the
other two nodes; the killed node's Podman keeps running them (only its agent could stop them). A version of B that
serves then completes the rollout on the two live nodes. The API and the live nodes' Podman stores hold exactly the
4 replicas, and the killed node's store nothing but the pods it had. When its agent comes back it stops those
(fencing): all three stores together hold exactly the 4 replicas, the ones the API lists.

A Pod watch over MQTT (tests/support/rollout.py EventSampler, the stream `ekctl get pods -w` reads) samples
every event the master publishes: never more than replicas + maxSurge pods, kill included, and from the moment
the replacements serve until the rollout completes, never fewer than replicas - maxUnavailable Ready.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from edgekube.local.images import DEMO_IMAGE
from edgekube.master.controllers.replication.plan import is_ready
from tests.support.cluster import wait_for
from tests.support.fleet import Fleet, container, node_of, phase, terminating, uid_of
from tests.support.rollout import EventSampler, assert_stream_told_the_rollout, view_of

pytestmark = pytest.mark.integration

FLEET_NETNS = False  # a kill needs no network namespace: the agent's process dies, its TCP connection with it
REPLICAS, MAX_SURGE, MAX_UNAVAILABLE = 4, 1, 1
IMAGE_A = DEMO_IMAGE
IMAGE_B = "localhost/edgekube/busybox-b:1"
NEVER_READY = {"exec": {"command": ["false"]}, "periodSeconds": 1}


def deployment(image: str, readiness: dict[str, Any] | None = None) -> str:
    """Deployment `web` (app=web): REPLICAS of `image`, optionally with a readiness probe."""
    fields: dict[str, Any] = {"image": image}
    if readiness is not None:
        fields["readinessProbe"] = readiness
    return json.dumps(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": REPLICAS,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"rollingUpdate": {"maxSurge": MAX_SURGE, "maxUnavailable": MAX_UNAVAILABLE}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"terminationGracePeriodSeconds": 1, "containers": [container("web", **fields)]},
                },
            },
        }
    )


@pytest.fixture
def events(fleet: Fleet) -> Iterator[EventSampler]:
    """Image B tagged in every node's store and a watch on the app=web pods; afterwards the Deployment deleted
    (Fleet.reset removes ReplicaSets and pods, not Deployments) and the tag removed."""
    for service in fleet.podman.values():
        service.podman("tag", IMAGE_A, IMAGE_B)
    sampler = EventSampler(fleet.port)
    try:
        yield sampler
    finally:
        sampler.close()
        fleet.heal()
        fleet.api.delete("Deployment", "web")
        wait_for("the Deployment's pods gone", lambda: not fleet.api.pods("app=web"), timeout=60)
        for service in fleet.podman.values():
            service.podman("untag", IMAGE_A, IMAGE_B, check=False)


def web(fleet: Fleet) -> list[dict[str, Any]]:
    return fleet.api.pods("app=web")


def image(pod: dict[str, Any]) -> str:
    return str(pod["spec"]["containers"][0]["image"])


def rolled_out(fleet: Fleet, to: str, avoid: str = "") -> list[dict[str, Any]] | None:
    """The pods, once they are exactly REPLICAS of `to`, all Ready, none terminating, none on `avoid`."""
    pods = web(fleet)
    done = len(pods) == REPLICAS and all(
        image(p) == to and is_ready(p) and not terminating(p) and node_of(p) != avoid for p in pods
    )
    return pods if done else None


def held(fleet: Fleet, avoid: str = "") -> list[dict[str, Any]] | None:
    """The pods, once the rollout holds half way: REPLICAS - 1 Ready A pods and 2 Running B pods, none on `avoid`."""
    pods = web(fleet)
    if Counter(image(p) for p in pods) != {IMAGE_A: REPLICAS - MAX_UNAVAILABLE, IMAGE_B: MAX_SURGE + MAX_UNAVAILABLE}:
        return None
    if any(phase(p) != "Running" or terminating(p) or node_of(p) in ("", avoid) for p in pods):
        return None
    return pods if all(is_ready(p) for p in pods if image(p) == IMAGE_A) else None


def stream_caught_up(fleet: Fleet, events: EventSampler) -> set[str]:
    """Wait until the watch stream tells the API's app=web pods; their names."""

    def same() -> set[str] | None:
        api = {p["metadata"]["name"]: view_of(p) for p in web(fleet)}
        return set(api) if events.view() == api else None

    names: set[str] = wait_for("the watch stream to tell the API's pods", same, timeout=10)
    return names


def test_a_node_killed_mid_rollout_on_podman_neither_loses_nor_doubles_replicas(
    fleet: Fleet, events: EventSampler
) -> None:
    fleet.apply(deployment(IMAGE_A))
    wait_for("image A on every replica", lambda: rolled_out(fleet, IMAGE_A), timeout=120)
    fleet.apply(deployment(IMAGE_B, NEVER_READY))
    half_way = wait_for("the rollout held half way: 3 A Ready, 2 B never Ready", lambda: held(fleet), timeout=60)
    by_node: dict[str, set[str]] = {}
    for pod in half_way:
        by_node.setdefault(node_of(pod), set()).add(image(pod))
    victim = max(sorted(by_node), key=lambda n: (len(by_node[n]), sum(node_of(p) == n for p in half_way)))
    live = [n for n in fleet.nodes if n != victim]
    doomed = {uid_of(p) for p in half_way if node_of(p) == victim}
    kept = {uid_of(p) for p in half_way} - doomed
    in_podman = {p.uid for p in fleet.pods_on(victim) if p.status == "Running"}
    assert doomed <= in_podman, f"{victim}'s Podman must run its pods before the kill"
    before_kill = stream_caught_up(fleet, events)
    kill_mark = events.mark()

    fleet.kill_agent(victim)
    replaced = wait_for(f"{victim}'s pods replaced on {live}", lambda: held(fleet, avoid=victim), timeout=60)
    assert fleet.node_ready(victim) is False, f"the master must see {victim} NotReady"
    now = {uid_of(p) for p in replaced}
    assert kept <= now and not now & doomed and len(now - kept) == len(doomed), (
        "exactly the killed node's pods replaced"
    )
    still = {p.uid for p in fleet.pods_on(victim) if p.status == "Running"}
    assert doomed <= still, f"killed, not stopped: {victim}'s Podman keeps running its pods"
    after_kill = stream_caught_up(fleet, events)
    streamed = assert_stream_told_the_rollout(events, kill_mark, before_kill - after_kill, after_kill - before_kill)
    assert all(total <= REPLICAS + MAX_SURGE for total, _, _ in streamed), "a replica doubled while the node died"

    mark = events.mark()
    fleet.apply(deployment(IMAGE_B))  # a version of B that serves
    final = wait_for("image B on every replica", lambda: rolled_out(fleet, IMAGE_B, avoid=victim), timeout=120)
    done = stream_caught_up(fleet, events)
    streamed = assert_stream_told_the_rollout(events, mark, after_kill - done, done - after_kill)
    for total, ready, images in streamed:
        assert total <= REPLICAS + MAX_SURGE and ready >= REPLICAS - MAX_UNAVAILABLE, (total, ready, images)

    want = {(node_of(p), uid_of(p)) for p in final}
    assert len(want) == REPLICAS and {n for n, _ in want} <= set(live)

    def live_podman() -> set[tuple[str, str]] | None:
        pods = [p for n in live for p in fleet.pods_on(n)]
        have = {(p.node, p.uid) for p in pods}
        return have if have == want and len(pods) == REPLICAS and all(p.status == "Running" for p in pods) else None

    wait_for("the live nodes' Podman runs exactly the replicas", live_podman, timeout=60)
    assert {p.uid for p in fleet.pods_on(victim)} == doomed, f"nothing new on {victim} while it was dead"

    fleet.start_agent(victim)
    fleet.wait_ready([victim])
    after = fleet.wait_converged({"app=web": REPLICAS})
    assert set(after.api) == {uid for _, uid in want}, "the replicas must stay as they were when the node returns"
    assert not doomed & set(after.podman), f"{victim} must stop the pods that were replaced (fencing)"
