"""Edge autonomy on real Podman and Mosquitto: with the broker gone the agent keeps healing its pods, after a
"reboot" it brings them back from its local copy, and on reconnect it converges without touching what runs.

The test plays the master (retained desired state in, NodeReports out); "reboot" = agent stopped, every pod
of the node stopped by Podman (`podman pod stop`, infra containers included), a new agent started.
"""

from __future__ import annotations

import json
import time

import pytest

from edgekube.local.broker import Mosquitto
from tests.support.podman import EdgeNode, manifest, running

pytestmark = pytest.mark.integration

IDLE = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]
HTTPD = ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]


def duo() -> dict[str, object]:
    return manifest("duo", {"name": "web", "command": HTTPD}, {"name": "side", "command": IDLE})


def ready(status: dict[str, object]) -> bool:
    conditions = status.get("conditions")
    return isinstance(conditions, list) and any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def restarts(status: dict[str, object]) -> list[int]:
    containers = status.get("containerStatuses")
    assert isinstance(containers, list)
    return [c["restartCount"] for c in containers]


def saved_restarts(node: EdgeNode, uid: str) -> dict[str, int]:
    path = node.state_dir / "restarts.json"
    if not path.exists():
        return {}
    counts: dict[str, int] = json.loads(path.read_text())["pods"].get(uid, {}).get("restartCount", {})
    return counts


def _ledger_text(node: EdgeNode) -> str:
    path = node.state_dir / "restarts.json"
    return path.read_text() if path.exists() else ""


def wait_saved(node: EdgeNode, uid: str, expected: dict[str, int], timeout: float = 5.0) -> None:
    """The count is written right after Podman started the pod again: allow it that moment."""
    deadline = time.monotonic() + timeout
    while saved_restarts(node, uid) != expected and time.monotonic() < deadline:
        time.sleep(0.02)
    assert saved_restarts(node, uid) == expected


def test_without_a_broker_a_killed_container_is_still_restarted(edge_node: EdgeNode, mosquitto: Mosquitto) -> None:
    edge_node.start_agent()
    pod = duo()
    edge_node.want(pod)
    edge_node.wait_status("duo Ready", "duo", ready)
    before = edge_node.wait_observed("duo running", "duo", running)
    mosquitto.stop()
    edge_node.kill("duo", "web")
    edge_node.wait_observed("web exited", "duo", lambda p: p.containers[0].state == "exited", timeout=5)
    after = edge_node.wait_observed("duo running again", "duo", running)
    assert [c.container_id for c in after.containers] == [c.container_id for c in before.containers]
    uid = str(pod["metadata"]["uid"])  # type: ignore[index]
    wait_saved(edge_node, uid, {"web": 1, "side": 1})
    # Back online: the master hears about the restart without having asked.
    mosquitto.start()
    edge_node.want(duo() | {"metadata": pod["metadata"]})  # the broker lost its retained messages
    status = edge_node.wait_status("the restart reported", "duo", lambda s: restarts(s) == [1, 1] and ready(s))
    assert status["phase"] == "Running"


def test_after_a_reboot_without_a_broker_pods_come_back_from_the_local_copy(
    edge_node: EdgeNode, mosquitto: Mosquitto
) -> None:
    edge_node.start_agent()
    pod = duo()
    done = manifest("done", {"name": "job", "command": ["true"]}, policy="Never")
    edge_node.want(pod, done)
    edge_node.wait_status("duo Ready", "duo", ready)
    edge_node.wait_status("done Succeeded", "done", lambda s: s["phase"] == "Succeeded")
    before = edge_node.wait_observed("duo running", "duo", running)
    finished = edge_node.observed("done")
    assert finished is not None

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and '"finished":"Succeeded"' not in _ledger_text(edge_node):
        time.sleep(0.05)
    assert '"finished":"Succeeded"' in _ledger_text(edge_node)  # the job is known to be done, on disk

    edge_node.stop_agent()
    mosquitto.stop()
    edge_node.power_off()
    stopped = edge_node.wait_observed("duo stopped", "duo", lambda p: not p.infra_running)
    assert all(c.state == "exited" for c in stopped.containers)

    booted_at = time.monotonic()
    edge_node.start_agent(wait=None)  # no broker: everything comes from state_dir
    after = edge_node.wait_observed("duo running after the reboot", "duo", running, timeout=30)
    took = time.monotonic() - booted_at
    print(f"\n[figure] agent start after reboot (no broker) -> pod running: {took:.2f}s")
    assert [c.container_id for c in after.containers] == [c.container_id for c in before.containers]
    assert after.pod_id == before.pod_id and after.ip
    uid = str(pod["metadata"]["uid"])  # type: ignore[index]
    wait_saved(edge_node, uid, {"web": 1, "side": 1})
    time.sleep(1.5)
    job = edge_node.observed("done")
    assert job is not None and job.containers == finished.containers  # a finished job is not started again

    mosquitto.start()
    edge_node.want(pod, done)
    status = edge_node.wait_status("reported after the reboot", "duo", lambda s: restarts(s) == [1, 1] and ready(s))
    assert status["podIP"] == after.ip
    assert (edge_node.status("done") or {})["phase"] == "Succeeded"


def test_reconnecting_converges_to_the_master_without_touching_unchanged_pods(
    edge_node: EdgeNode, mosquitto: Mosquitto
) -> None:
    edge_node.start_agent()
    pod = duo()
    edge_node.want(pod)
    edge_node.wait_status("duo Ready", "duo", ready)
    before = edge_node.wait_observed("duo running", "duo", running)
    mosquitto.stop()
    time.sleep(2)  # the agent notices the broker is gone and keeps working
    mosquitto.start()
    # The master comes back with a newer generation: the same pod plus a new one.
    edge_node.want(pod, manifest("extra", {"name": "app", "command": IDLE}))
    edge_node.wait_status("extra Ready", "extra", ready)
    after = edge_node.observed("duo")
    assert after is not None
    assert after == before  # same pod, container ids, start times, IP: nothing was restarted
    status = edge_node.wait_status("duo reported", "duo", ready)
    assert restarts(status) == [0, 0]
    assert saved_restarts(edge_node, str(pod["metadata"]["uid"])) == {}  # type: ignore[index]
    assert not (edge_node.state_dir / "restarts.json").exists()  # nothing restarted: nothing written
