"""Image pull failures on real Podman and Mosquitto: Pending with ErrImagePull, ImagePullBackOff, ErrImageNeverPull.

As the kubelet does, a pod whose image cannot be had stays Pending (not Failed, whatever its restartPolicy) and
is retried with the image back-off (10 s doubling to 300 s); once the image is on the node the next retry starts
the same pod. With the master, a ReplicationController or Deployment keeps the same pod (same uid) meanwhile.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from edgekube.local.broker import Mosquitto
from edgekube.local.images import ensure_demo_image
from edgekube.local.podman_service import PodmanService
from tests.support.cluster import ApiClient, start_agent, start_master, stop_agent, wait_for
from tests.support.podman import EdgeNode, manifest, running

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

MISSING = "localhost/does-not-exist:1"  # no registry listens on localhost: the pull fails at once
IDLE = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]


def waiting(status: dict[str, Any]) -> dict[str, Any]:
    return dict(status["containerStatuses"][0]["state"].get("waiting") or {})


def reason(status: dict[str, Any]) -> str:
    return str(waiting(status).get("reason", ""))


@pytest.mark.parametrize("policy", ["Always", "Never"])
def test_an_image_that_cannot_be_pulled_keeps_the_pod_pending_in_image_pull_back_off(
    edge_node: EdgeNode, policy: str
) -> None:
    edge_node.start_agent()
    edge_node.want(manifest("ghost", {"name": "app", "image": MISSING, "command": IDLE}, policy=policy))
    status = edge_node.wait_status("ImagePullBackOff", "ghost", lambda s: reason(s) == "ImagePullBackOff")
    assert waiting(status)["message"] == f'Back-off pulling image "{MISSING}"'
    # Every report the agent sent, in order: Pending throughout, ErrImagePull (the runtime's error) first.
    with edge_node._lock:
        seen = [p.status for r in edge_node.reports for p in r.pods if p.name == "ghost"]
    assert {s["phase"] for s in seen} == {"Pending"}, seen
    first = next(waiting(s) for s in seen if reason(s) != "ContainerCreating")
    assert first["reason"] == "ErrImagePull", seen
    assert first["message"].startswith(f"failed to pull image '{MISSING}': "), first
    assert "reason" not in status and not status["containerStatuses"][0]["ready"]
    edge_node.wait_status("Pending still", "ghost", lambda s: s["phase"] == "Pending" and reason(s) != "ErrImagePull")
    reasons = edge_node.event_reasons("ghost")
    assert ("Failed", "Error: ErrImagePull") in reasons, reasons
    assert ("BackOff", f'Back-off pulling image "{MISSING}"') in reasons, reasons
    assert any(r == "Failed" and m.startswith(f'Failed to pull image "{MISSING}": ') for r, m in reasons), reasons
    assert edge_node.observed("ghost") is None  # nothing half-created is left in Podman


def test_image_pull_policy_never_with_the_image_absent_is_err_image_never_pull(edge_node: EdgeNode) -> None:
    edge_node.start_agent()
    app = {"name": "app", "image": MISSING, "imagePullPolicy": "Never", "command": IDLE}
    edge_node.want(manifest("never", app, policy="Never"))
    status = edge_node.wait_status("ErrImageNeverPull", "never", lambda s: reason(s) == "ErrImageNeverPull")
    assert status["phase"] == "Pending"
    assert waiting(status)["message"] == f'Container image "{MISSING}" is not present with pull policy of Never'
    assert ("Failed", "Error: ErrImageNeverPull") in edge_node.event_reasons("never")


def test_a_pod_in_image_pull_back_off_starts_at_the_next_retry_once_the_image_is_imported(
    edge_node: EdgeNode, podman_service: PodmanService
) -> None:
    image = f"localhost/edgekube/appears-{uuid.uuid4().hex[:8]}:1"
    edge_node.start_agent()
    pod = manifest("late", {"name": "app", "image": image, "command": IDLE})
    edge_node.want(pod)
    edge_node.wait_status("ImagePullBackOff", "late", lambda s: reason(s) == "ImagePullBackOff")
    ensure_demo_image(podman_service, image)  # `podman import` on the node: no new desired state, no new pod
    status = edge_node.wait_status("late Running", "late", lambda s: s["phase"] == "Running", timeout=60)
    observed = edge_node.wait_observed("late running in Podman", "late", running)
    assert observed.uid == pod["metadata"]["uid"]
    assert status["containerStatuses"][0]["image"] == image
    assert ("Pulled", f'Container image "{image}" already present on machine') in edge_node.event_reasons("late")


RC = """
apiVersion: v1
kind: ReplicationController
metadata: {name: ghost}
spec:
  replicas: 1
  selector: {app: ghost}
  template:
    metadata: {labels: {app: ghost}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: app, image: "%s", command: [sleep, "600"]}]
"""

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: ghost}
spec:
  replicas: 1
  selector: {matchLabels: {app: ghost}}
  template:
    metadata: {labels: {app: ghost}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: app, image: "%s", command: [sleep, "600"]}]
"""


@pytest.mark.parametrize("controller", [RC, DEPLOYMENT], ids=["ReplicationController", "Deployment"])
def test_a_controller_keeps_the_same_pod_while_it_is_in_image_pull_back_off(
    mosquitto: Mosquitto, podman_service: PodmanService, tmp_path: Path, controller: str
) -> None:
    master = start_master(mosquitto.port, tmp_path / "master")
    agent = start_agent(mosquitto.port, "node-1", podman_service, tmp_path / "node-1", device_dir="", fence_dir="")
    client = ApiClient(mosquitto.port)
    try:
        wait_for("node registered", lambda: len(client.nodes()) == 1, timeout=30)
        assert client.apply(controller % MISSING).ok

        def backing_off() -> dict[str, Any] | None:
            pods = client.pods("app=ghost")
            if len(pods) == 1 and pods[0].get("status", {}).get("containerStatuses"):
                return pods[0] if reason(pods[0]["status"]) == "ImagePullBackOff" else None
            return None

        first = wait_for("the pod in ImagePullBackOff", backing_off, timeout=60)
        uid = first["metadata"]["uid"]
        # Through a retry of the pull (10 s) and beyond: the same single pod all along, Pending.
        for _ in range(60):
            pods = client.pods("app=ghost")
            assert [p["metadata"]["uid"] for p in pods] == [uid]
            assert pods[0]["status"]["phase"] == "Pending"
            time.sleep(0.25)
        assert client.pods("app=ghost")[0]["metadata"]["uid"] == uid
    finally:
        client.close()
        master.stop()
        stop_agent(agent)
