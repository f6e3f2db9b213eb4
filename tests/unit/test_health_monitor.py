"""The health monitor: conditions with transition times that change only on status or reason, node events, evictions."""

from __future__ import annotations

from typing import Any

from edgekube.agent.health.monitor import HealthMonitor
from edgekube.agent.health.pi import ThrottleFlags
from edgekube.agent.health.pressure import ContainerUse, Eviction, PodCandidate, Settings, parse_thresholds
from edgekube.agent.health.signals import Amount, Signal, Signals
from edgekube.model.names import PodUID
from edgekube.model.node import NodeConditionType as C
from edgekube.model.qos import QOSClass

Mi = 1024 * 1024


class World:
    """The monitor's surroundings: a settable reading, the pods, a clock and a wall clock, the evictions made."""

    def __init__(self) -> None:
        self.memory = 4096 * Mi
        self.temperature: float | None = 50.0
        self.flags = 0
        self.now = 100.0
        self.wall = 0
        self.pod_calls = 0
        self.evicted: list[Eviction] = []
        self.changes = 0
        self.pods = [
            PodCandidate(
                PodUID("g"), "default", "guaranteed", QOSClass.GUARANTEED, 0, (ContainerUse("a", 64 * Mi, Mi),)
            ),
            PodCandidate(PodUID("be"), "default", "besteffort", QOSClass.BEST_EFFORT, 0, (ContainerUse("a", 0, Mi),)),
        ]

    def read(self) -> Signals:
        amounts = {Signal.MEMORY_AVAILABLE: Amount(self.memory, 8192 * Mi)}
        return Signals(amounts, self.temperature, ThrottleFlags(self.flags))

    def list_pods(self) -> list[PodCandidate]:
        self.pod_calls += 1
        return [p for p in self.pods if p.uid not in {e.uid for e in self.evicted}]

    def stamp(self) -> str:
        self.wall += 1
        return f"2026-01-01T00:00:{self.wall:02d}Z"

    def monitor(self, period: float = 30.0) -> HealthMonitor:
        settings = Settings(parse_thresholds("memory.available<100Mi"), period)
        return HealthMonitor(
            "pi-1", settings, self.read, pods=self.list_pods, evict=self.evicted.append,
            on_change=self._changed, clock=lambda: self.now, wall=self.stamp,
        )  # fmt: skip

    def _changed(self) -> None:
        self.changes += 1


def status(monitor: HealthMonitor) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in monitor.node_status()["conditions"]}


def test_nothing_is_reported_before_the_first_check() -> None:
    assert World().monitor().node_status() == {}


def test_a_healthy_node_reports_false_conditions_without_events_or_asking_for_pods() -> None:
    world = World()
    monitor = world.monitor()
    assert monitor.check() is None
    conditions = status(monitor)
    assert {t: c["status"] for t, c in conditions.items()} == {
        "MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False",
        "ThermalThrottling": "False", "UnderVoltage": "False",
    }  # fmt: skip
    assert conditions["MemoryPressure"]["lastTransitionTime"] == "2026-01-01T00:00:01Z"
    assert monitor.events() == []
    assert world.pod_calls == 0  # no threshold met: the pods and their usage are not even listed


def test_steady_checks_keep_the_same_condition_objects() -> None:
    world = World()
    monitor = world.monitor()
    monitor.check()
    first, changes = monitor.node_status(), world.changes
    world.temperature = 55.0  # a reading that changes nothing the conditions say
    world.now += 10
    monitor.check()
    assert monitor.node_status() == first
    assert world.changes == changes


def test_memory_pressure_evicts_one_pod_per_check_besteffort_first_and_records_events() -> None:
    world = World()
    monitor = world.monitor()
    monitor.check()
    world.memory = 50 * Mi
    world.now += 10
    first = monitor.check()
    assert first is not None and first.name == "besteffort"
    assert first.message.startswith("The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi.")
    assert status(monitor)["MemoryPressure"]["status"] == "True"
    assert status(monitor)["MemoryPressure"]["reason"] == "KubeletHasInsufficientMemory"
    world.now += 10
    second = monitor.check()
    assert second is not None and second.name == "guaranteed"
    assert [e.name for e in world.evicted] == ["besteffort", "guaranteed"]
    reasons = [(e["reason"], e["message"], e["type"]) for e in monitor.events()]
    assert reasons == [
        ("NodeHasInsufficientMemory", "Node pi-1 status is now: NodeHasInsufficientMemory", "Warning"),
        ("EvictionThresholdMet", "Attempting to reclaim memory", "Warning"),
    ]


def test_pressure_clears_after_the_transition_period_with_an_event() -> None:
    world = World()
    monitor = world.monitor(period=30.0)
    world.memory = 50 * Mi
    monitor.check()
    since = status(monitor)["MemoryPressure"]["lastTransitionTime"]
    world.memory = 4096 * Mi
    world.now += 29
    monitor.check()
    assert status(monitor)["MemoryPressure"]["status"] == "True"
    assert status(monitor)["MemoryPressure"]["lastTransitionTime"] == since
    world.now += 1
    monitor.check()
    assert status(monitor)["MemoryPressure"]["status"] == "False"
    assert status(monitor)["MemoryPressure"]["lastTransitionTime"] != since
    assert [e["reason"] for e in monitor.events()][-1] == "NodeHasSufficientMemory"


def test_throttling_and_under_voltage_turn_true_from_the_firmware_flags() -> None:
    world = World()
    monitor = world.monitor(period=0.0)
    monitor.check()
    world.flags = 0x50005
    world.now += 10
    monitor.check()
    conditions = status(monitor)
    assert (conditions["ThermalThrottling"]["status"], conditions["ThermalThrottling"]["reason"]) == (
        "True",
        "SoCThrottled",
    )
    assert (conditions["UnderVoltage"]["status"], conditions["UnderVoltage"]["reason"]) == (
        "True",
        "UnderVoltageDetected",
    )
    assert world.evicted == []  # Pi conditions only taint
    assert monitor.holds(C.THERMAL_THROTTLING) and monitor.holds(C.UNDER_VOLTAGE)
    assert not monitor.holds(C.MEMORY_PRESSURE)
    world.flags = 0x50000
    world.now += 10
    monitor.check()
    conditions = status(monitor)
    assert conditions["UnderVoltage"]["reason"] == "UnderVoltageOccurred"
    assert [e["reason"] for e in monitor.events()] == [
        "NodeHasThermalThrottling", "NodeHasUnderVoltage", "NodeHasNoThermalThrottling", "NodeHasNoUnderVoltage",
    ]  # fmt: skip


def test_events_are_handed_out_once() -> None:
    world = World()
    monitor = world.monitor()
    world.memory = 10 * Mi
    monitor.check()
    batches: list[list[dict[str, Any]]] = []
    assert monitor.flush_events(batches.append) == 2
    assert monitor.flush_events(batches.append) == 0
    assert len(batches) == 1
