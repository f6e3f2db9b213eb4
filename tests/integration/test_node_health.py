"""Node health on real parts: pressure eviction by QoS class and replacement elsewhere, throttled boards avoided.

Eviction: one agent on real Podman and Mosquitto, driven as the master would drive it (tests/support/podman.py),
with the hard threshold `memory.available<1000Ti`, which this machine's real /proc/meminfo always meets. Three pods
(BestEffort, Burstable, Guaranteed) run; each health check then evicts exactly one, BestEffort first, using the
real Podman stats, and the node's reported status carries MemoryPressure True in the kubelet's words. The same with
`nodefs.available<100%` on the real root filesystem (DiskPressure). With the real master and two agents, a
ReplicaSet's replica on a node whose proc tree says 50Mi MemAvailable is evicted and replaced on the other node.

Taints: the real master and two real agents; each agent reads its Pi flags from a temporary tree laid out like
/sys (`devices/platform/soc/soc:firmware/get_throttled`). Writing the documented `50005` (under-voltage and
throttled now) into one tree makes that node ThermalThrottling and UnderVoltage, the master taints it NoSchedule,
and new pods go to the other node; with both throttled a pod waits with kube-scheduler's message, and is placed
once the flags clear and the taints go.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.app import Agent
from edgekube.agent.health.pi import THROTTLED_SYSFS
from edgekube.local.broker import Mosquitto
from edgekube.local.podman_service import PodmanService
from edgekube.master.app import Master
from edgekube.model.wire import ApiRequest, Verb
from tests.support.cluster import ApiClient, start_agent, start_master, stop_agent, wait_for
from tests.support.podman import EdgeNode, manifest, running

pytestmark = pytest.mark.integration

SLEEP = {"command": ["sleep", "600"]}


def node_conditions(node: EdgeNode) -> dict[str, dict[str, Any]]:
    with node._lock:
        report = node.reports[-1] if node.reports else None
    conditions = (report.node_object.get("status") or {}).get("conditions") or [] if report else []
    return {c["type"]: c for c in conditions}


def node_events(node: EdgeNode) -> list[tuple[str, str]]:
    with node._lock:
        return [(e["reason"], e["message"]) for e in node.events.values() if e["involvedObject"]["kind"] == "Node"]


def test_memory_pressure_evicts_one_pod_per_check_besteffort_first_and_the_node_reports_it(
    edge_node: EdgeNode,
) -> None:
    # The monitor checks once at start (no pods yet: nothing to evict), then this test calls each check itself.
    edge_node.config.update(
        eviction_hard="memory.available<1000Ti", health_check_interval=3600.0, eviction_pressure_transition_period=0.0
    )
    agent = edge_node.start_agent()
    pods = {
        "besteffort": manifest("besteffort", {"name": "app", **SLEEP}),
        "burstable": manifest("burstable", {"name": "app", **SLEEP, "resources": {"requests": {"memory": "32Mi"}}}),
        "guaranteed": manifest(
            "guaranteed", {"name": "app", **SLEEP, "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}}
        ),
    }
    edge_node.want(*pods.values())
    for name in pods:
        edge_node.wait_observed(f"{name} running", name, running)
        edge_node.wait_status(f"{name} Running", name, lambda s: s.get("phase") == "Running")

    conditions = wait_for("MemoryPressure reported", lambda: node_conditions(edge_node).get("MemoryPressure"))
    assert (conditions["status"], conditions["reason"]) == ("True", "KubeletHasInsufficientMemory")
    assert node_conditions(edge_node)["DiskPressure"]["status"] == "False"

    order = []
    for _ in pods:
        eviction = agent.health.check()
        assert eviction is not None
        order.append(eviction.name)
        status = edge_node.wait_status(
            f"{eviction.name} evicted", eviction.name, lambda s: s.get("reason") == "Evicted"
        )
        assert status["phase"] == "Failed"
        assert status["message"].startswith("The node was low on resource: memory. Threshold quantity: 1000Ti")
        observed = edge_node.observed(eviction.name)
        assert observed is not None and not any(c.state == "running" for c in observed.containers)
        left = [n for n in pods if n not in order]
        assert all(running(p) for n in left if (p := edge_node.observed(n)) is not None)
    assert order == ["besteffort", "burstable", "guaranteed"]

    # The BestEffort pod used more than its request (0): the message names its container, as the kubelet's does.
    evicted = edge_node.status("besteffort")
    assert evicted is not None and "Container app was using " in evicted["message"]
    assert "request is 0, has larger consumption of memory." in evicted["message"]
    assert agent.health.check() is None  # nothing left to evict
    assert any(reason == "Evicted" for reason, _ in edge_node.event_reasons("besteffort"))
    events = wait_for("node events", lambda: (e := node_events(edge_node)) and len(e) >= 2 and e)
    assert ("NodeHasInsufficientMemory", f"Node {edge_node.name} status is now: NodeHasInsufficientMemory") in events
    assert ("EvictionThresholdMet", "Attempting to reclaim memory") in events


def test_disk_pressure_from_the_real_root_filesystem_evicts_the_besteffort_pod_first(edge_node: EdgeNode) -> None:
    # statvfs of / always has less than 100% available: DiskPressure on the real filesystem.
    edge_node.config.update(
        eviction_hard="nodefs.available<100%", health_check_interval=3600.0, eviction_pressure_transition_period=0.0
    )
    agent = edge_node.start_agent()
    guaranteed = {"name": "app", **SLEEP, "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}}
    edge_node.want(manifest("guaranteed", guaranteed), manifest("besteffort", {"name": "app", **SLEEP}))
    for name in ("guaranteed", "besteffort"):
        edge_node.wait_observed(f"{name} running", name, running)
    eviction = agent.health.check()
    assert eviction is not None and eviction.name == "besteffort"
    status = edge_node.wait_status("besteffort evicted", "besteffort", lambda s: s.get("reason") == "Evicted")
    assert status["message"].startswith("The node was low on resource: ephemeral-storage. Threshold quantity: ")
    condition = wait_for("DiskPressure reported", lambda: node_conditions(edge_node).get("DiskPressure"))
    assert (condition["status"], condition["reason"]) == ("True", "KubeletHasDiskPressure")
    assert node_conditions(edge_node)["MemoryPressure"]["status"] == "False"
    observed = edge_node.observed("guaranteed")
    assert observed is not None and running(observed)


# -- throttled boards are tainted and avoided ------------------------------------------------------------------------
POD = """
apiVersion: v1
kind: Pod
metadata: {name: %(name)s}
spec:
  containers:
  - name: app
    image: %(image)s
    command: [sleep, "600"]
"""


class Cluster:
    def __init__(self, master: Master, agents: dict[str, Agent], trees: dict[str, Path], client: ApiClient) -> None:
        self.master, self.agents, self.trees, self.client = master, agents, trees, client

    def flags(self, node: str, value: str) -> None:
        """What the firmware says on this board from now on (get_throttled, hex without 0x)."""
        (self.trees[node] / THROTTLED_SYSFS).write_text(value + "\n")

    def node(self, name: str) -> dict[str, Any]:
        """The Node as the API shows it ({} until its agent registered it)."""
        response = self.client.call(ApiRequest(verb=Verb.GET, kind="Node", name=name))
        return response.object or {} if response.ok else {}

    def taints(self, node: str) -> list[str]:
        return sorted(f"{t['key']}:{t['effect']}" for t in (self.node(node).get("spec") or {}).get("taints") or [])

    def conditions(self, node: str) -> dict[str, str]:
        return {c["type"]: c["status"] for c in (self.node(node).get("status") or {}).get("conditions") or []}

    def placement(self) -> dict[str, str | None]:
        return {p["metadata"]["name"]: p["spec"].get("nodeName") for p in self.client.pods()}


@pytest.fixture
def cluster(mosquitto: Mosquitto, podman_service: PodmanService, demo_image: str, tmp_path: Path) -> Iterator[Cluster]:
    master = start_master(mosquitto.port, tmp_path / "master")
    agents: dict[str, Agent] = {}
    trees: dict[str, Path] = {}
    for name in ("pi-cool", "pi-hot"):
        tree = tmp_path / f"sys-{name}"
        (tree / THROTTLED_SYSFS).parent.mkdir(parents=True)
        (tree / THROTTLED_SYSFS).write_text("0\n")
        trees[name] = tree
        agents[name] = start_agent(
            mosquitto.port, name, podman_service, tmp_path / name, fence_dir="", sys_root=str(tree),
            health_check_interval=0.2, eviction_pressure_transition_period=0.0, eviction_hard="",
        )  # fmt: skip
    client = ApiClient(mosquitto.port)
    try:
        yield Cluster(master, agents, trees, client)
    finally:
        client.close()
        master.stop()
        for agent in agents.values():
            stop_agent(agent)


def test_a_throttled_board_is_tainted_noschedule_and_new_pods_go_to_the_cooler_one(
    cluster: Cluster, demo_image: str
) -> None:
    wait_for("both nodes report their Pi conditions", lambda: all(
        cluster.conditions(n).get("UnderVoltage") == "False" for n in ("pi-cool", "pi-hot")
    ), timeout=30)  # fmt: skip
    assert cluster.taints("pi-hot") == [] and cluster.taints("pi-cool") == []

    cluster.flags("pi-hot", "50005")  # under-voltage and throttled now (the documented example)
    hot = ["edgekube.io/thermal-throttling:NoSchedule", "edgekube.io/under-voltage:NoSchedule"]
    wait_for("pi-hot tainted", lambda: cluster.taints("pi-hot") == hot, timeout=30)
    conditions = cluster.conditions("pi-hot")
    assert (conditions["ThermalThrottling"], conditions["UnderVoltage"]) == ("True", "True")
    assert cluster.taints("pi-cool") == []

    for i in range(3):
        response = cluster.client.apply(POD % {"name": f"web-{i}", "image": demo_image})
        assert response.ok, response.error
    placed = wait_for("three pods placed", lambda: all((p := cluster.placement()).values()) and len(p) == 3 and p)
    assert set(placed.values()) == {"pi-cool"}

    # Both boards throttled: a new pod waits, saying why in kube-scheduler's words.
    cluster.flags("pi-cool", "80008")  # soft temperature limit active
    wait_for("pi-cool tainted", lambda: cluster.taints("pi-cool") == ["edgekube.io/thermal-throttling:NoSchedule"])
    response = cluster.client.apply(POD % {"name": "late", "image": demo_image})
    assert response.ok, response.error
    pending = wait_for("late unschedulable", lambda: (p := cluster.client.pod("late"))["status"].get("message") and p)
    assert pending["status"]["phase"] == "Pending"
    message = pending["status"]["message"]
    assert message.startswith("0/2 nodes are available: 2 node(s) had untolerated taint {edgekube.io/")
    events = cluster.client.objects("Event")
    assert any(e["reason"] == "FailedScheduling" and e["message"] == message for e in events)

    # The firmware flags clear on pi-hot (the sticky "occurred" bits stay): its taints go and the pod lands there.
    cluster.flags("pi-hot", "50000")
    wait_for("pi-hot untainted", lambda: cluster.taints("pi-hot") == [], timeout=30)
    late = wait_for("late placed", lambda: cluster.client.pod("late")["spec"].get("nodeName"))
    assert late == "pi-hot"
    assert cluster.conditions("pi-hot")["UnderVoltage"] == "False"


# -- an evicted replica is replaced on another node -------------------------------------------------------------------
RS = """
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: app, image: %(image)s, command: [sleep, "600"]}]}
"""


def test_a_replica_evicted_under_memory_pressure_is_replaced_on_the_other_node(
    mosquitto: Mosquitto, podman_service: PodmanService, demo_image: str, tmp_path: Path
) -> None:
    # pi-tight reads its memory from a proc tree the test writes (MemAvailable), pi-roomy from the real /proc.
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "meminfo").write_text("MemTotal: 4000000 kB\nMemAvailable: 2000000 kB\n")
    master = start_master(mosquitto.port, tmp_path / "master")
    common: dict[str, Any] = {"fence_dir": "", "health_check_interval": 0.2, "eviction_pressure_transition_period": 0.0}
    agents = {
        "pi-tight": start_agent(mosquitto.port, "pi-tight", podman_service, tmp_path / "t", proc_root=str(proc),
                                eviction_hard="memory.available<100Mi", **common),
        "pi-roomy": start_agent(mosquitto.port, "pi-roomy", podman_service, tmp_path / "r", **common),
    }  # fmt: skip
    client = ApiClient(mosquitto.port)
    try:
        wait_for("both nodes registered", lambda: len(client.nodes()) == 2, timeout=30)
        response = client.apply(RS % {"image": demo_image})
        assert response.ok, response.error

        def web() -> dict[str, tuple[str, str]]:
            return {
                p["metadata"]["name"]: (p["spec"].get("nodeName") or "", (p.get("status") or {}).get("phase", ""))
                for p in client.pods("app=web")
            }

        def web_when(expected: list[tuple[str, str]], leaving: str = "") -> dict[str, tuple[str, str]] | None:
            """The replicas when those other than `leaving` are on the expected (node, phase) pairs."""
            found = web()
            return found if sorted(v for k, v in found.items() if k != leaving) == expected else None

        spread = wait_for(
            "one replica Running per node", lambda: web_when([("pi-roomy", "Running"), ("pi-tight", "Running")])
        )
        [first] = [name for name, (node, _) in spread.items() if node == "pi-tight"]

        (proc / "meminfo").write_text("MemTotal: 4000000 kB\nMemAvailable: 51200 kB\n")  # 50Mi left
        evicted = wait_for("the replica on pi-tight evicted", lambda: (
            p := client.pod(first))["status"].get("reason") == "Evicted" and p)  # fmt: skip
        assert evicted["status"]["phase"] == "Failed"
        assert evicted["status"]["message"].startswith(
            "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi."
        )
        taints = wait_for("pi-tight tainted", lambda: (client.get("Node", "pi-tight").get("spec") or {}).get("taints"))
        assert [(t["key"], t["effect"]) for t in taints] == [("node.kubernetes.io/memory-pressure", "NoSchedule")]
        replaced = wait_for("a replacement Running on pi-roomy", lambda: web_when([("pi-roomy", "Running")] * 2, first))
        assert first not in replaced  # the ReplicaSet deletes its terminal pods (the evicted one, Failed)
        assert {e["reason"] for e in client.objects("Event") if e["involvedObject"]["name"] == first} >= {"Evicted"}
    finally:
        client.close()
        master.stop()
        for agent in agents.values():
            stop_agent(agent)
