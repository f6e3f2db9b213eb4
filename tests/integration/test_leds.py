"""Node health on LEDs on real parts: Mosquitto, the master, one agent on real Podman with its LEDs on gpiozero's
MockFactory pins (GPIO 17 green, 27 red; this machine has no GPIO chip), and ekctl.

A crash-looping pod turns the LEDs to PodFailing (green solid, red blinking 0.5 s / 0.5 s), and `ekctl describe
node` says so; killing the broker turns them to CutOff (green blipping 0.1 s every 2 s, red dark) in the agent's
status, and once the broker is back `describe node` shows Healthy and, in its events, that the node was cut off;
`ekctl node identify` through the master blinks both LEDs fast until cancelled; an unknown node is a clear error;
heartbeats that stop reaching the master make it taint the node, and the node shows NotReady until they return.
Blink times are checked with gpiozero's own tolerance (`assert_states_and_times`: 50 ms).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.app import Agent
from edgekube.agent.indicators.drivers import GpioPair
from edgekube.agent.indicators.table import Pattern
from edgekube.bus import topics
from edgekube.cli.main import main
from edgekube.local.broker import Mosquitto
from edgekube.local.podman_service import PodmanService
from edgekube.master.app import Master
from edgekube.master.config import MasterConfig
from edgekube.master.wiring import build_master
from tests.support.cluster import ApiClient, start_agent, stop_agent, wait_for

pytestmark = pytest.mark.integration

Capture = pytest.CaptureFixture[str]
GREEN, RED = 17, 27
POD = """
apiVersion: v1
kind: Pod
metadata: {name: %(name)s}
spec:
  restartPolicy: Always
  terminationGracePeriodSeconds: 1
  containers:
  - {name: app, image: %(image)s, command: [sh, -c, %(script)s]}
"""
IDLE = "\"trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done\""
CRASH = '"sleep 0.2; exit 1"'


@dataclass
class Env:
    master: Master
    agent: Agent
    node: str
    ekctl: list[str]
    client: ApiClient
    image: str
    mosquitto: Mosquitto

    def pin(self, number: int) -> Any:
        driver = self.agent.indicator.driver
        assert isinstance(driver, GpioPair), f"the agent runs without LEDs: {driver.name}"
        return driver.factory.pin(number)

    def pattern(self) -> Pattern | None:
        shown = self.agent.indicator.shown
        return shown.pattern if shown is not None else None

    def apply(self, name: str, script: str) -> None:
        response = self.client.apply(POD % {"name": name, "image": self.image, "script": script})
        assert response.ok, response.error


@pytest.fixture
def env(mosquitto: Mosquitto, podman_service: PodmanService, demo_image: str, tmp_path: Path) -> Iterator[Env]:
    config = MasterConfig(mqtt_port=mosquitto.port, data_dir=tmp_path / "master", node_timeout=4.0)
    master = build_master(config).start(wait=10)
    node = f"node-led-{uuid.uuid4().hex[:6]}"
    agent = start_agent(
        mosquitto.port, node, podman_service, tmp_path / "agent", fence_dir="", telemetry_interval=0.0,
        led_pins=f"{GREEN},{RED}", led_pin_factory="mock",
    )  # fmt: skip
    client = ApiClient(mosquitto.port)
    try:
        yield Env(master, agent, node, ["--mqtt-port", str(mosquitto.port), "--timeout", "10"], client, demo_image,
                  mosquitto)  # fmt: skip
    finally:
        client.close()
        master.stop()
        stop_agent(agent)


def ekctl(env: Env, capsys: Capture, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([*env.ekctl, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def leds_section(env: Env, capsys: Capture) -> dict[str, str]:
    """The LEDs section of `ekctl describe node` as {field: value} ({} if the command failed or it is absent)."""
    code, out, _ = ekctl(env, capsys, "describe", "node", env.node)
    if code != 0 or "\nLEDs:\n" not in out:
        return {}
    fields = {}
    for line in out.split("\nLEDs:\n", 1)[1].splitlines():
        if not line.startswith("  "):
            break
        key, _, value = line.strip().partition(":")
        fields[key] = value.strip()
    return fields


def describe_shows(env: Env, capsys: Capture, pattern: Pattern) -> dict[str, str]:
    return wait_for(  # type: ignore[no-any-return]
        f"describe node to show {pattern.value}",
        lambda: (section := leds_section(env, capsys)).get("Pattern") == pattern.value and section,
    )


def wait_pattern(env: Env, pattern: Pattern, timeout: float = 60) -> None:
    wait_for(f"the LEDs to show {pattern.value}", lambda: env.pattern() is pattern, timeout=timeout)


def blink(pin: Any, changes: int = 4, timeout: float = 15) -> list[tuple[float, bool]]:
    """The pin's next `changes` level changes from now, as (seconds since the previous change, lit)."""
    pin.clear_states()
    wait_for(f"{changes} changes of {pin!r}", lambda: len(pin.states) > changes, timeout=timeout, interval=0.05)
    # The first change comes at whatever point of the blink the clearing fell on: its time says nothing.
    return [(s.timestamp, bool(s.state)) for s in pin.states[2 : changes + 1]]


def close(actual: float, expected: float) -> bool:
    return math.isclose(actual, expected, rel_tol=0.05, abs_tol=0.05)  # gpiozero's assert_states_and_times


def test_a_crash_looping_pod_shows_pod_failing_on_the_pins_and_in_describe_node(env: Env, capsys: Capture) -> None:
    env.apply("idle", IDLE)
    wait_pattern(env, Pattern.HEALTHY)
    assert (env.pin(GREEN).state, env.pin(RED).state) == (1, 0)
    describe_shows(env, capsys, Pattern.HEALTHY)

    env.apply("crasher", CRASH)
    wait_pattern(env, Pattern.POD_FAILING)
    red = blink(env.pin(RED))
    assert all(close(t, 0.5) for t, _ in red), red  # 0.5 s lit, 0.5 s dark
    assert [lit for _, lit in red] == [not red[0][1], red[0][1], not red[0][1]][: len(red)] or len(
        {lit for _, lit in red}
    ) == 2
    assert env.pin(GREEN).state == 1  # solid: pods are still served
    section = describe_shows(env, capsys, Pattern.POD_FAILING)
    assert section["Meaning"] == "a pod is failing (CrashLoopBackOff, failed start or probe)"
    assert section["Driver"] == "gpio pins 17,27 (green, red)"


def test_killing_the_broker_shows_cut_off_and_describe_node_tells_it_afterwards(env: Env, capsys: Capture) -> None:
    env.apply("idle", IDLE)
    wait_pattern(env, Pattern.HEALTHY)
    env.mosquitto.kill()
    wait_pattern(env, Pattern.CUT_OFF, timeout=30)
    assert env.agent.node_object()["status"]["leds"]["pattern"] == "CutOff"
    green = blink(env.pin(GREEN), changes=4)
    # A blip: 0.1 s lit in every 2 s.
    assert sorted(round(t, 1) for t, _ in green[:2]) == [0.1, 1.9], green
    assert all(close(t, 0.1 if not lit else 1.9) for t, lit in green), green
    assert env.pin(RED).state == 0
    env.mosquitto.start()
    wait_pattern(env, Pattern.HEALTHY, timeout=60)
    describe_shows(env, capsys, Pattern.HEALTHY)
    # Recorded while cut off, published once back: the cut-off (a Warning), then the way back to normal. The
    # events go out with the agent's next event flush, which may come after the status that says Healthy.

    def led_events() -> list[list[str]]:
        _, out, _ = ekctl(env, capsys, "describe", "node", env.node)
        return [line.split() for line in out.split("Events:", 1)[-1].splitlines() if "LEDs show" in line]

    leds = wait_for(
        "describe node to list the LED events",
        lambda: (rows := led_events()) and rows[0][0] == "Warning" and rows[-1][0] == "Normal" and rows,
    )
    assert [(row[0], row[1], " ".join(row[4:7])) for row in leds][:1] == [("Warning", "LEDs", "LEDs show CutOff:")], (
        leds
    )
    assert leds[-1][0] == "Normal", leds


def test_identify_through_ekctl_and_the_master_blinks_both_leds_until_cancelled(env: Env, capsys: Capture) -> None:
    wait_pattern(env, Pattern.HEALTHY)
    wait_for("the master to know the node", lambda: ekctl(env, capsys, "get", "node", env.node)[0] == 0)
    code, out, err = ekctl(env, capsys, "node", "identify", env.node, "--for", "2m")
    assert code == 0, err
    assert out.startswith(f"node/{env.node} identifying: its LEDs blink the Identify pattern for 120s (until ")
    assert env.pattern() is Pattern.IDENTIFY
    for pin in (env.pin(GREEN), env.pin(RED)):
        changes = blink(pin)
        assert all(close(t, 0.1) for t, _ in changes), changes  # 5 Hz
    section = describe_shows(env, capsys, Pattern.IDENTIFY)
    assert section["Identify Until"].endswith("+0000")

    code, out, err = ekctl(env, capsys, "node", "identify", f"node/{env.node}", "--cancel")
    assert code == 0, err
    assert out == f"node/{env.node} identify cancelled; its LEDs show Healthy\n"
    assert env.pattern() is Pattern.HEALTHY
    assert (env.pin(GREEN).state, env.pin(RED).state) == (1, 0)


def test_identify_of_an_unknown_node_is_a_clear_error(env: Env, capsys: Capture) -> None:
    code, out, err = ekctl(env, capsys, "node", "identify", "no-such-node")
    assert code != 0 and out == ""
    assert err.splitlines()[0].startswith("error: ")
    assert "no-such-node" in err.splitlines()[0] and "not found" in err.splitlines()[0]


def test_the_masters_not_ready_verdict_reaches_the_leds_and_goes_when_heartbeats_return(
    env: Env, capsys: Capture
) -> None:
    wait_pattern(env, Pattern.HEALTHY)
    wait_for("the master to know the node", lambda: ekctl(env, capsys, "get", "node", env.node)[0] == 0)
    # A one-way fault: the node still hears the broker, but nothing it sends about itself reaches the master (its
    # heartbeats and its status reports, both of which count as signs of life; node_timeout 4 s). The master taints
    # it unreachable and says so in the node's desired state; the node shows NotReady (red solid, green dark).
    bus = env.agent.bus
    send = bus.publish
    dropped: list[str] = []
    silenced = (topics.node_heartbeat(env.node), topics.node_status(env.node))

    def one_way(topic: str, payload: bytes, **kwargs: Any) -> None:
        if topic in silenced:
            dropped.append(topic)
            return
        send(topic, payload, **kwargs)

    bus.publish = one_way  # type: ignore[method-assign]
    try:
        wait_pattern(env, Pattern.NOT_READY, timeout=30)
        wait_for("the LEDs to settle", lambda: (env.pin(GREEN).state, env.pin(RED).state) == (0, 1), timeout=5)
        assert topics.node_heartbeat(env.node) in dropped, "the fault was hit: heartbeats were dropped"
    finally:
        bus.publish = send  # type: ignore[method-assign]
    # The link heals: heartbeats reach the master again, it clears the taint, the node hears it and shows Healthy.
    wait_for(
        "Healthy again once heartbeats reach the master",
        lambda: env.pattern() is Pattern.HEALTHY and (env.pin(GREEN).state, env.pin(RED).state) == (1, 0),
        timeout=30,
    )
