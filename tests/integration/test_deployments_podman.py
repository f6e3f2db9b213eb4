"""A Deployment on real parts: Mosquitto, the master, three agents on real Podman; rollout, broken image, undo.

Image A is the busybox demo image, image B the same image imported under a second name (a different image
reference, as a new release would be). The broken image points at a registry that refuses connections, so its
pods stay Pending with ErrImagePull and never turn Ready. As in tests/integration/test_deployments.py, a listener
on the master's cache samples every Pod write, and a Pod watch over MQTT (the stream `ekctl get pods -w` reads,
tests/support/rollout.py EventSampler) samples every event the master publishes: pods <= replicas + maxSurge and
Ready pods >= replicas - maxUnavailable at each, from the first complete rollout on. The stream's samples count
only once it is shown to have told the whole phase (no event lost, every pod that went or came) and to have come
to the API's state. A node killed in the middle of a rollout: tests/faults/test_deployment_node_kill.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekube.agent.app import Agent
from edgekube.cli.main import main
from edgekube.local.broker import Mosquitto
from edgekube.local.images import ensure_demo_image
from edgekube.local.podman_service import PodmanService
from edgekube.master.app import Master
from edgekube.master.controllers.replication.plan import is_ready
from tests.support.cluster import ApiClient, start_agent, start_master, stop_agent, wait_for
from tests.support.rollout import EventSampler, Sample, Sampler, StreamChecks, view_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

NODES = ("node-1", "node-2", "node-3")
REPLICAS = 4
BROKEN = "127.0.0.1:9/edgekube/missing:1"  # port 9 (discard): nothing listens, the pull fails at once
MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: %(replicas)d
  progressDeadlineSeconds: 20
  selector: {matchLabels: {app: web}}
  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 1}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: web, image: "%(image)s", command: [sleep, "600"]}]
"""


class Cluster(StreamChecks):
    def __init__(self, mosquitto: Mosquitto, master: Master, agents: list[Agent], client: ApiClient) -> None:
        self.mosquitto, self.master, self.agents, self.client = mosquitto, master, agents, client
        self.sampler = Sampler()
        with master._lock:
            master.store.listen("Pod", self.sampler)
        self.events = EventSampler(mosquitto.port)

    def ekctl(self, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
        code = main(["--mqtt-host", "127.0.0.1", "--mqtt-port", str(self.mosquitto.port), "--timeout", "5", *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    def images(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for pod in self.client.pods("app=web"):
            image = pod["spec"]["containers"][0]["image"]
            out[image] = out.get(image, 0) + 1
        return out

    def web_pods(self) -> dict[str, tuple[str, bool]]:
        """The app=web pods as the API lists them: name -> (image, Ready), as EventSampler.view() has them."""
        return {p["metadata"]["name"]: view_of(p) for p in self.client.pods("app=web")}

    def rolled_out(self, image: str) -> bool:
        pods = self.client.pods("app=web")
        return len(pods) == REPLICAS and all(p["spec"]["containers"][0]["image"] == image and is_ready(p) for p in pods)

    def running_in_podman(self) -> int:
        return sum(1 for agent in self.agents for p in agent.runtime.list_pods() if p.name.startswith("web-"))


@pytest.fixture
def cluster(mosquitto: Mosquitto, podman_service: PodmanService, tmp_path: Path) -> Iterator[Cluster]:
    master = start_master(mosquitto.port, tmp_path / "master")
    agents = [
        start_agent(mosquitto.port, name, podman_service, tmp_path / name, device_dir="", fence_dir="")
        for name in NODES
    ]
    client = ApiClient(mosquitto.port)
    cluster_ = Cluster(mosquitto, master, agents, client)
    try:
        wait_for("three nodes registered", lambda: len(client.nodes()) == 3, timeout=30)
        yield cluster_
    finally:
        client.close()
        cluster_.events.close()
        master.stop()
        for agent in agents:
            stop_agent(agent)


def assert_bounds(samples: list[Sample], surge: int = 1, unavailable: int = 1) -> None:
    assert samples
    for total, ready, _ in samples:
        assert total <= REPLICAS + surge and ready >= REPLICAS - unavailable, (total, ready)


def test_rollout_broken_image_and_undo_on_podman_over_three_nodes(
    cluster: Cluster, podman_service: PodmanService, demo_image: str, capsys: pytest.CaptureFixture[str]
) -> None:
    image_b = ensure_demo_image(podman_service, "localhost/edgekube/busybox-b:1")
    assert cluster.client.apply(MANIFEST % {"replicas": REPLICAS, "image": demo_image}).ok
    wait_for("image A on every replica", lambda: cluster.rolled_out(demo_image), timeout=120)
    nodes = {p["spec"]["nodeName"] for p in cluster.client.pods("app=web")}
    assert len(nodes) == 3  # spread over the three nodes

    mark, event_mark, before = cluster.marks()
    assert cluster.ekctl(capsys, "set", "image", "deploy/web", f"web={image_b}")[0] == 0
    code, out, _ = cluster.ekctl(capsys, "rollout", "status", "deploy/web", "--wait-timeout", "3m")
    assert (code, out.splitlines()[-1]) == (0, 'deployment "web" successfully rolled out')
    wait_for("image B on every replica", lambda: cluster.rolled_out(image_b), timeout=60)
    samples = cluster.sampler.since(mark)
    assert_bounds(samples)
    assert max(total for total, _, _ in samples) == REPLICAS + 1  # the surge was used
    streamed = cluster.streamed(event_mark, before)  # at least one sample per replaced pod and per new one
    assert_bounds(streamed)
    assert max(total for total, _, _ in streamed) == REPLICAS + 1
    assert any(images == {demo_image, image_b} for _, _, images in streamed)  # A and B side by side on the way
    wait_for("Podman runs exactly the replicas", lambda: cluster.running_in_podman() == REPLICAS, timeout=60)

    mark, event_mark, before = cluster.marks()
    assert cluster.ekctl(capsys, "set", "image", "deploy/web", f"web={BROKEN}")[0] == 0

    def stopped() -> dict[str, int] | None:
        images = cluster.images()
        return images if images == {image_b: REPLICAS - 1, BROKEN: 2} else None

    wait_for("the rollout stopped: 3 serving, 2 broken", stopped, timeout=60)
    code, _, err = cluster.ekctl(capsys, "rollout", "status", "deploy/web", "--wait-timeout", "2m")
    assert code == 1 and "exceeded its progress deadline" in err
    assert_bounds(cluster.sampler.since(mark))
    assert_bounds(cluster.streamed(event_mark, before))

    mark, event_mark, before = cluster.marks()
    assert cluster.ekctl(capsys, "rollout", "undo", "deploy/web")[:2] == (0, "deployment.apps/web rolled back\n")
    wait_for("image B back on every replica", lambda: cluster.rolled_out(image_b), timeout=120)
    assert_bounds(cluster.sampler.since(mark))
    assert_bounds(cluster.streamed(event_mark, before))
    code, out, _ = cluster.ekctl(capsys, "rollout", "history", "deploy/web")
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["1", "3", "4"]
    wait_for("Podman runs exactly the replicas", lambda: cluster.running_in_podman() == REPLICAS, timeout=60)
