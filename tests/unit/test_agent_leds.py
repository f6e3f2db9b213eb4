"""The agent feeds its LEDs (docs/leds.md) on FakeRuntime and the in-memory bus, with gpiozero's MockFactory pins:
what it knows each pass (broker, the master's presence and view of the node, failing pods, probe failures) picks
the pattern, the pattern is in the node status it reports, and `identify` arrives as a node RPC.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from edgekube.agent.app import Agent, AgentConfig
from edgekube.agent.indicators.drivers import GpioPair
from edgekube.agent.runtime.fake import FakeRuntime
from edgekube.bus import topics
from edgekube.model.errors import ValidationError
from edgekube.model.names import NodeName, PodUID
from edgekube.model.taints import TAINT_UNREACHABLE
from edgekube.model.wire import ApiRequest, ApiResponse, NodeDesired, NodeReport, Presence, Verb
from tests.support.membus import MemoryBroker, MemoryBus

NODE = NodeName("pi-1")
IMAGE = "localhost/edgekube/busybox:1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Setup:
    def __init__(self, state_dir: Path) -> None:
        self.clock = Clock()
        self.broker = MemoryBroker(inline=True)
        self.bus: MemoryBus = self.broker.client(f"edgekube-agent-{NODE}", persistent=True).start()
        self.runtime = FakeRuntime(NODE)
        self.runtime.add_image(IMAGE)
        self.factory = MockFactory(pin_class=MockPWMPin)
        self.flags = (False, False)
        self.agent = Agent(
            AgentConfig(node_name=NODE, state_dir=state_dir), self.runtime, self.bus, clock=self.clock,
            leds=GpioPair([17, 27], factory=self.factory), pi_flags=lambda: self.flags,
        )  # fmt: skip
        self.agent.start(loop=False)
        self.master = self.broker.client("master").start()
        self.generation = 0

    def desired(self, *pods: dict[str, Any], not_ready: str | None = None) -> None:
        self.generation += 1
        msg = NodeDesired(node=NODE, generation=self.generation, epoch="e", pods=list(pods), not_ready=not_ready)
        self.master.publish(topics.node_desired(NODE), msg.encode(), retain=True)

    def pattern(self) -> str:
        self.agent.reconcile()
        self.agent.wait_idle(5)
        self.agent.reconcile()
        return str(self.agent.indicator.status()["pattern"])

    def reported_leds(self) -> dict[str, Any]:
        reports = [NodeReport.decode(m.payload) for m in self.broker.published(topics.node_status(NODE))]
        leds: dict[str, Any] = reports[-1].node_object["status"]["leds"]
        return leds

    def identify(self, seconds: float | None, correlation: bytes = b"c-1") -> ApiResponse:
        request = ApiRequest(verb=Verb.IDENTIFY, kind="Node", name=NODE, seconds=seconds)
        answers: list[ApiResponse] = []
        reply = f"edgekube/v1/clients/cli-{correlation.decode()}/reply"
        self.master.subscribe(reply, lambda m: answers.append(ApiResponse.decode(m.payload)))
        self.master.publish(topics.node_rpc(NODE), request.encode(), response_topic=reply, correlation=correlation)
        assert answers, "the agent did not answer"
        return answers[-1]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path)
    yield s
    s.agent.prober.stop()
    s.agent.indicator.close()
    s.factory.reset()


def pod(name: str, command: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": {"containers": [{"name": "app", "image": IMAGE, "command": command}]},
    }


def test_a_healthy_node_shows_healthy_and_reports_it(node: Setup) -> None:
    node.desired(pod("web", ["serve"]))
    assert node.pattern() == "Healthy"
    assert node.reported_leds() == {
        "pattern": "Healthy",
        "description": "Ready, all pods healthy",
        "driver": "gpio pins 17,27 (green, red)",
    }
    assert node.factory.pin(17).state == 1 and node.factory.pin(27).state == 0


def test_the_master_going_offline_shows_cut_off(node: Setup) -> None:
    assert node.pattern() == "Healthy"
    node.master.publish(topics.MASTER_ONLINE, Presence(online=False).encode(), retain=True)
    assert node.pattern() == "CutOff"
    node.master.publish(topics.MASTER_ONLINE, Presence(online=True).encode(), retain=True)
    assert node.pattern() == "Healthy"


def test_a_lost_broker_shows_cut_off(node: Setup) -> None:
    assert node.pattern() == "Healthy"
    node.broker.outage()
    assert node.pattern() == "CutOff"
    node.broker.recover()
    assert node.pattern() == "Healthy"


def test_the_masters_not_ready_view_shows_not_ready(node: Setup) -> None:
    node.desired(not_ready=TAINT_UNREACHABLE)
    assert node.pattern() == "NotReady"
    node.desired()
    assert node.pattern() == "Healthy"


def test_a_pod_that_cannot_start_shows_pod_failing(node: Setup) -> None:
    node.runtime.make_image_missing(IMAGE)
    node.desired(pod("bad", ["serve"]))
    assert node.pattern() == "PodFailing"
    assert node.reported_leds()["pattern"] == "PodFailing"


def test_a_crash_loop_shows_pod_failing_between_restarts_too(node: Setup) -> None:
    node.desired(pod("x", ["serve"]))
    assert node.pattern() == "Healthy"
    node.runtime.exit_container(PodUID("uid-x"), "app", 1)
    node.pattern()  # restarted at once (the first retry waits for nothing)
    node.runtime.exit_container(PodUID("uid-x"), "app", 1)
    assert node.pattern() == "PodFailing"  # CrashLoopBackOff
    node.clock.now += 1
    assert node.pattern() == "PodFailing"  # running again, but it just crashed: held
    node.clock.now += 30
    assert node.pattern() == "Healthy"


def test_pi_flags_show_throttling_and_under_voltage(node: Setup) -> None:
    node.flags = (True, False)
    assert node.pattern() == "Throttled"
    node.flags = (True, True)
    assert node.pattern() == "UnderVoltage"


def test_identify_through_the_rpc_topic_then_cancel(node: Setup) -> None:
    assert node.pattern() == "Healthy"
    answer = node.identify(30)
    assert answer.ok and answer.object is not None
    assert answer.object["pattern"] == "Identify"
    until = answer.object["identifyUntil"]
    assert node.pattern() == "Identify"
    assert node.reported_leds()["identifyUntil"] == until
    again = node.identify(30)  # QoS 1 delivered the same request twice: the same end
    assert again.object is not None and again.object["identifyUntil"] == until
    assert node.identify(0, correlation=b"c-2").object == {
        "pattern": "Healthy",
        "description": "Ready, all pods healthy",
        "driver": "gpio pins 17,27 (green, red)",
    }
    assert node.pattern() == "Healthy"


def test_identify_ends_by_itself_and_the_loop_is_told_when(node: Setup) -> None:
    node.pattern()
    node.identify(10)
    node.agent.reconcile()
    assert node.agent._next_due is not None and node.agent._next_due <= node.clock.now + 10
    node.clock.now += 10
    assert node.pattern() == "Healthy"


def test_bad_led_settings_are_one_line_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="led_pins: 'x,1': expected BCM numbers separated by commas"):
        AgentConfig(node_name=NODE, state_dir=tmp_path, led_pins="x,1")
    with pytest.raises(ValidationError, match="led_pin_factory: Unsupported value"):
        AgentConfig(node_name=NODE, state_dir=tmp_path, led_pins="17", led_pin_factory="gpio")
    assert AgentConfig(node_name=NODE, state_dir=tmp_path, led_pins="[17, 27]").led_settings().pins == (17, 27)
