"""Affinity on real parts: Mosquitto, the master, two agents on real Podman, placing pods by labels and by each other.

node-small is labelled `edgekube.io/ram-gb: 2` and node-big `edgekube.io/ram-gb: 8` through their configs, beside
the well-known labels every agent sets (kubernetes.io/hostname, arch, os). A ReplicationController whose pods
refuse to share a host (podAntiAffinity on kubernetes.io/hostname) gets one replica on each node, and the third,
after a scale-up, stays Pending with kube-scheduler's reason; a pod requiring `ram-gb Gt 4` runs on node-big.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.app import Agent
from edgekube.local.broker import Mosquitto
from edgekube.local.podman_service import PodmanService
from edgekube.master.app import Master
from tests.support.cluster import ApiClient, start_agent, start_master, stop_agent, wait_for

pytestmark = pytest.mark.integration

RAM = "edgekube.io/ram-gb"
RC = """
apiVersion: v1
kind: ReplicationController
metadata: {name: web}
spec:
  replicas: %(replicas)d
  selector: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - {name: web, image: %(image)s, command: [sleep, "600"]}
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: {matchLabels: {app: web}}
            topologyKey: kubernetes.io/hostname
"""
BIG = """
apiVersion: v1
kind: Pod
metadata: {name: needs-ram}
spec:
  containers:
  - {name: work, image: %(image)s, command: [sleep, "600"]}
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms:
        - matchExpressions:
          - {key: edgekube.io/ram-gb, operator: Gt, values: ["4"]}
"""


class Cluster:
    def __init__(self, master: Master, agents: list[Agent], client: ApiClient, image: str) -> None:
        self.master, self.agents, self.client, self.image = master, agents, client, image

    def apply(self, text: str, **fields: Any) -> None:
        response = self.client.apply(text % {"image": self.image, **fields})
        assert response.ok, response.error

    def running(self, name: str) -> dict[str, Any]:
        def phase() -> dict[str, Any] | None:
            pod = self.client.pod(name)
            return pod if pod.get("status", {}).get("phase") == "Running" else None

        found: dict[str, Any] = wait_for(f"{name} running", phase, timeout=60)
        return found


@pytest.fixture
def cluster(mosquitto: Mosquitto, podman_service: PodmanService, demo_image: str, tmp_path: Path) -> Iterator[Cluster]:
    master = start_master(mosquitto.port, tmp_path / "master")
    agents = [
        start_agent(
            mosquitto.port, name, podman_service, tmp_path / name, device_dir="", fence_dir="", labels={RAM: ram}
        )
        for name, ram in (("node-small", "2"), ("node-big", "8"))
    ]
    client = ApiClient(mosquitto.port)
    try:
        wait_for("both nodes registered", lambda: len(client.nodes()) == 2, timeout=30)
        yield Cluster(master, agents, client, demo_image)
    finally:
        client.close()
        master.stop()
        for agent in agents:
            stop_agent(agent)


def test_nodes_carry_the_well_known_labels_and_their_configured_ones(cluster: Cluster) -> None:
    labels = {n["metadata"]["name"]: n["metadata"]["labels"] for n in cluster.client.nodes()}
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(platform.machine(), platform.machine())
    for name, ram in (("node-small", "2"), ("node-big", "8")):
        assert labels[name]["kubernetes.io/hostname"] == name
        assert labels[name]["kubernetes.io/os"] == "linux"
        assert labels[name]["kubernetes.io/arch"] == arch
        assert labels[name][RAM] == ram


def test_pod_anti_affinity_spreads_two_replicas_over_two_nodes_and_holds_back_a_third(cluster: Cluster) -> None:
    cluster.apply(RC, replicas=2)

    def both_running() -> list[dict[str, Any]] | None:
        pods = cluster.client.pods("app=web")
        return pods if len(pods) == 2 and all(p["status"].get("phase") == "Running" for p in pods) else None

    pods = wait_for("two replicas running", both_running, timeout=90)
    assert sorted(p["spec"]["nodeName"] for p in pods) == ["node-big", "node-small"]
    # And the containers really run on the node each pod was bound to.
    for agent in cluster.agents:
        assert len([p for p in agent.runtime.list_pods() if p.name.startswith("web-")]) == 1

    cluster.apply(RC, replicas=3)
    message = "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules."

    def third_pending() -> dict[str, Any] | None:
        waiting = [p for p in cluster.client.pods("app=web") if not p["spec"].get("nodeName")]
        return waiting[0] if waiting and waiting[0]["status"].get("message") else None

    pending = wait_for("the third replica explained", third_pending, timeout=30)
    assert pending["status"]["phase"] == "Pending"
    assert pending["status"]["message"] == message
    events = cluster.client.objects("Event")
    assert any(e["reason"] == "FailedScheduling" and e["message"] == message for e in events)


def test_node_affinity_gt_places_the_pod_on_the_node_with_the_larger_number(cluster: Cluster) -> None:
    cluster.apply(BIG)
    pod = cluster.running("needs-ram")
    assert pod["spec"]["nodeName"] == "node-big"
    assert "needs-ram" in [p.name for p in cluster.agents[1].runtime.list_pods()]
    assert "needs-ram" not in [p.name for p in cluster.agents[0].runtime.list_pods()]
