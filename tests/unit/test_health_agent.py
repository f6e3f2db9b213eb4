"""The agent's side of node health on FakeRuntime: usage-ranked eviction through the agent, status and reports.

The agent's loop is not started: the test reconciles and calls `agent.health.check()` itself, with thresholds
on a temporary /proc tree whose MemAvailable it sets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekube.agent.app import Agent, AgentConfig
from edgekube.agent.health.pi import THROTTLED_SYSFS
from edgekube.agent.runtime.fake import FakeRuntime
from edgekube.bus import topics
from edgekube.model.errors import RuntimeFailure
from edgekube.model.names import NodeName, PodUID
from edgekube.model.wire import NodeDesired, NodeReport
from tests.support.membus import MemoryBroker

NODE = NodeName("pi-1")
IMAGE = "localhost/edgekube/busybox:1"
Mi = 1024 * 1024


def meminfo(proc: Path, available_kb: int) -> None:
    (proc / "meminfo").write_text(f"MemTotal: 4000000 kB\nMemAvailable: {available_kb} kB\n")


def pod(name: str, **resources: Any) -> dict[str, Any]:
    container = {"name": "app", "image": IMAGE, **({"resources": resources} if resources else {})}
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": [container]}}


class Node:
    def __init__(self, tmp: Path) -> None:
        self.proc = tmp / "proc"
        self.proc.mkdir()
        meminfo(self.proc, 2_000_000)
        self.runtime = FakeRuntime(NODE)
        self.runtime.add_image(IMAGE)
        self.broker = MemoryBroker(inline=True)
        bus = self.broker.client(f"edgekube-agent-{NODE}", persistent=True).start()
        config = AgentConfig(
            node_name=NODE, state_dir=tmp / "agent", proc_root=str(self.proc), sys_root=str(tmp / "sys"),
            eviction_hard="memory.available<100Mi", eviction_pressure_transition_period=0.0,
        )  # fmt: skip
        self.agent = Agent(config, self.runtime, bus)

    def want(self, *pods: dict[str, Any]) -> None:
        msg = NodeDesired(node=NODE, generation=1, epoch="e", pods=list(pods))
        assert self.agent.desired.offer(msg, msg.encode())

    def settle(self) -> None:
        for _ in range(3):
            self.agent.reconcile()
            assert self.agent.wait_idle(5)

    def report(self) -> NodeReport:
        reports = [NodeReport.decode(m.payload) for m in self.broker.published(topics.node_status(NODE))]
        return reports[-1]

    def phase(self, name: str) -> tuple[str, str]:
        [status] = [p.status for p in self.report().pods if p.name == name]
        return status.get("phase", ""), status.get("reason", "")

    def conditions(self) -> dict[str, str]:
        return {c["type"]: c["status"] for c in self.report().node_object["status"].get("conditions", [])}


def test_a_pod_over_its_request_goes_before_an_idle_besteffort_one_and_the_report_says_so(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.want(
        pod("idle"), pod("greedy", requests={"memory": "10Mi"}), pod("steady", limits={"cpu": "1", "memory": "64Mi"})
    )
    node.settle()
    node.runtime.set_stats(PodUID("uid-idle"), "app", memory_bytes=0)
    node.runtime.set_stats(PodUID("uid-greedy"), "app", memory_bytes=50 * Mi)
    node.runtime.set_stats(PodUID("uid-steady"), "app", memory_bytes=20 * Mi)
    assert node.agent.health.check() is None  # plenty of memory: nothing happens
    node.settle()
    assert node.conditions()["MemoryPressure"] == "False"

    meminfo(node.proc, 50 * 1024)
    order = []
    for _ in range(3):
        eviction = node.agent.health.check()
        assert eviction is not None
        order.append(eviction.name)
        node.settle()
        assert node.phase(eviction.name) == ("Failed", "Evicted")
    assert order == ["greedy", "idle", "steady"]
    assert node.conditions()["MemoryPressure"] == "True"
    [greedy] = [p.status for p in node.report().pods if p.name == "greedy"]
    assert "Container app was using 50Mi, request is 10Mi, has larger consumption of memory." in greedy["message"]

    meminfo(node.proc, 2_000_000)
    assert node.agent.health.check() is None
    node.settle()
    assert node.conditions()["MemoryPressure"] == "False"
    node.agent.prober.stop()


def test_an_engine_that_cannot_list_pods_evicts_nothing_but_the_condition_holds(tmp_path: Path) -> None:
    node = Node(tmp_path)
    node.want(pod("idle"))
    node.settle()
    meminfo(node.proc, 50 * 1024)

    def down() -> list[Any]:
        raise RuntimeFailure("cannot reach podman", reason="RuntimeUnavailable")

    node.runtime.list_pods = down  # type: ignore[method-assign]
    assert node.agent.health.check() is None
    assert [c.status for c in node.agent.health.conditions() if c.type == "MemoryPressure"] == ["True"]
    node.agent.prober.stop()


def test_the_leds_show_the_nodes_own_throttling_and_under_voltage_conditions(tmp_path: Path) -> None:
    """The LEDs read the health monitor's conditions, so `describe node` conditions and the pattern never disagree."""
    node = Node(tmp_path)
    flags = tmp_path / "sys" / THROTTLED_SYSFS
    flags.parent.mkdir(parents=True)
    seen = []
    for value in ("0", "4", "5", "0"):  # nothing, throttled now, throttled and under-voltage now, cleared
        flags.write_text(f"{value}\n")
        node.agent.health.check()
        node.agent.reconcile()
        status = node.agent.node_object()["status"]
        conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
        seen.append((conditions.get("ThermalThrottling"), conditions.get("UnderVoltage"), status["leds"]["pattern"]))
    assert seen == [
        ("False", "False", "Healthy"),
        ("True", "False", "Throttled"),
        ("True", "True", "UnderVoltage"),
        ("False", "False", "Healthy"),
    ]
