"""Pi hardware for pods on real parts: Mosquitto, the master, two agents on real Podman, one advertising a device.

node-serial advertises a character device (a copy of /dev/null made with mknod, standing in for /dev/ttyUSB0) as
edgekube.io/serial through its config; node-plain advertises none. A pod asking for one serial device must land on
node-serial and find the device in its container, without privileges; a second such pod stays Pending with
kube-scheduler's reason.
"""

from __future__ import annotations

import os
import stat
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

SERIAL = "edgekube.io/serial"
POD = """
apiVersion: v1
kind: Pod
metadata: {name: %(name)s}
spec:
  restartPolicy: Never
  containers:
  - name: sensor
    image: %(image)s
    command:
    - sh
    - -c
    - D=$EDGEKUBE_DEVICES_SERIAL; test -c "$D" && echo hi > "$D" && echo "$D works"; sleep 600
    resources:
      limits: {"edgekube.io/serial": 1}
"""


class Cluster:
    def __init__(self, master: Master, agents: list[Agent], client: ApiClient, device: str, image: str) -> None:
        self.master, self.agents, self.client, self.device, self.image = master, agents, client, device, image

    def apply(self, name: str) -> None:
        response = self.client.apply(POD % {"name": name, "image": self.image})
        assert response.ok, response.error

    def pod(self, name: str) -> dict[str, Any]:
        return self.client.pod(name)


@pytest.fixture
def cluster(mosquitto: Mosquitto, podman_service: PodmanService, demo_image: str, tmp_path: Path) -> Iterator[Cluster]:
    device = tmp_path / "ttyEK0"
    try:
        os.mknod(device, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs CAP_MKNOD (run as root)")
    os.chmod(device, 0o666)
    master = start_master(mosquitto.port, tmp_path / "master")
    agents = [
        start_agent(
            mosquitto.port, "node-serial", podman_service, tmp_path / "a", device_dir="",
            devices={SERIAL: [str(device)]}, fence_dir="",
        ),
        start_agent(mosquitto.port, "node-plain", podman_service, tmp_path / "b", device_dir="", fence_dir=""),
    ]  # fmt: skip
    client = ApiClient(mosquitto.port)
    try:
        yield Cluster(master, agents, client, str(device), demo_image)
    finally:
        client.close()
        master.stop()
        for agent in agents:
            stop_agent(agent)


def test_a_pod_requesting_a_serial_device_runs_only_where_one_is_advertised_and_sees_it(cluster: Cluster) -> None:
    def advertised() -> dict[str, Any]:
        nodes = {n["metadata"]["name"]: n["status"]["allocatable"] for n in cluster.client.nodes()}
        return nodes if len(nodes) == 2 else {}

    allocatable = wait_for("both nodes registered", advertised, timeout=30)
    assert allocatable["node-serial"][SERIAL] == "1"
    assert SERIAL not in allocatable["node-plain"]

    cluster.apply("sensor-1")
    running = wait_for(
        "sensor-1 running", lambda: (p := cluster.pod("sensor-1")).get("status", {}).get("phase") == "Running" and p
    )
    assert running["spec"]["nodeName"] == "node-serial"
    logs = wait_for("the container's output", lambda: cluster.client.logs("sensor-1").text or "")
    assert logs.strip() == f"{cluster.device} works"  # told by EDGEKUBE_DEVICES_SERIAL, found and written
    [observed] = [p for p in cluster.agents[0].runtime.list_pods() if p.name == "sensor-1"]
    assert observed.containers[0].devices == (cluster.device,)

    cluster.apply("sensor-2")  # the only device is taken
    message = "0/2 nodes are available: 2 Insufficient edgekube.io/serial."
    pending = wait_for("sensor-2 unschedulable", lambda: (p := cluster.pod("sensor-2"))["status"].get("message") and p)
    assert pending["status"]["phase"] == "Pending"
    assert pending["status"]["message"] == message
    events = cluster.client.objects("Event")
    assert any(e["reason"] == "FailedScheduling" and e["message"] == message for e in events)
