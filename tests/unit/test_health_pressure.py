"""The pressure plan as tables: threshold syntax and errors, QoS classes, conditions, hysteresis, eviction order."""

from __future__ import annotations

from typing import Any

import pytest

from edgekube.agent.health.pi import ThrottleFlags
from edgekube.agent.health.pressure import (
    DEFAULT_EVICTION_HARD,
    Condition,
    ContainerUse,
    PiSettings,
    PodCandidate,
    Settings,
    candidate,
    parse_thresholds,
    plan,
    rank,
)
from edgekube.agent.health.signals import Amount, Signal, Signals
from edgekube.model.errors import ValidationError
from edgekube.model.names import PodUID
from edgekube.model.node import NodeConditionType as C
from edgekube.model.pod import Pod, PodSpec
from edgekube.model.qos import QOSClass, qos_class

Mi = 1024 * 1024
Gi = 1024 * Mi


# -- thresholds --------------------------------------------------------------------------------------------------
def test_the_kubelet_defaults_parse() -> None:
    rules = parse_thresholds(DEFAULT_EVICTION_HARD)
    assert [(t.signal, t.quantity, t.percentage) for t in rules] == [
        (Signal.MEMORY_AVAILABLE, 100 * Mi, None),
        (Signal.NODEFS_AVAILABLE, None, 0.10),
        (Signal.IMAGEFS_AVAILABLE, None, 0.15),
        (Signal.NODEFS_INODES_FREE, None, 0.05),
    ]


@pytest.mark.parametrize(
    ("text", "signal", "value"),
    [
        ("memory.available<1Gi", Signal.MEMORY_AVAILABLE, Gi),
        (" pid.available < 1k ", Signal.PID_AVAILABLE, 1000),
        ("imagefs.inodesFree<5%", Signal.IMAGEFS_INODES_FREE, 50),  # of a capacity of 1000
        ("memory.available<1000Ti", Signal.MEMORY_AVAILABLE, 1000 * 1024**4),
    ],
)
def test_a_rule_is_a_signal_and_a_quantity_or_percentage(text: str, signal: Signal, value: int) -> None:
    (rule,) = parse_thresholds(text)
    assert rule.signal is signal
    assert rule.value(1000) == value


def test_no_rules_is_no_thresholds() -> None:
    assert parse_thresholds("") == ()
    assert parse_thresholds(" , ") == ()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("memory.avail<1Gi", "eviction_hard: 'memory.avail<1Gi': unknown signal 'memory.avail' (supported: "),
        ("memory.available>1Gi", "eviction_hard: 'memory.available>1Gi': unsupported operator '>': only '<'"),
        ("memory.available<", "eviction_hard: 'memory.available<': missing quantity after '<'"),
        ("memory.available<lots", "eviction_hard: 'memory.available<lots': 'lots' is not a quantity (e.g. 100Mi"),
        ("nodefs.available<110%", "eviction_hard: 'nodefs.available<110%': percentage must be a number from 0%"),
        ("nodefs.available<x%", "eviction_hard: 'nodefs.available<x%': percentage must be a number from 0%"),
        ("memory.available=1Gi", "eviction_hard: 'memory.available=1Gi': unsupported operator '='"),
        ("100Mi", "eviction_hard: '100Mi': must be SIGNAL<QUANTITY or SIGNAL<PERCENT%"),
        (
            "memory.available<1Gi,memory.available<2Gi",
            "'memory.available<2Gi': duplicate threshold for memory.available",
        ),
    ],
)
def test_a_bad_rule_is_one_line_naming_the_setting_and_the_rule(text: str, error: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_thresholds(text)
    assert error in str(caught.value)
    assert "\n" not in str(caught.value)


# -- QoS -----------------------------------------------------------------------------------------------------------
def spec(*resources: dict[str, Any]) -> PodSpec:
    containers = [{"name": f"c{i}", "image": "busybox", "resources": r} for i, r in enumerate(resources)]
    return PodSpec.model_validate({"containers": containers})


@pytest.mark.parametrize(
    ("resources", "qos"),
    [
        (({},), QOSClass.BEST_EFFORT),
        (({}, {}), QOSClass.BEST_EFFORT),
        (({"requests": {"cpu": "0", "memory": "0"}},), QOSClass.BEST_EFFORT),  # zero counts as unset
        (({"requests": {"memory": "64Mi"}},), QOSClass.BURSTABLE),
        (({"limits": {"cpu": "1"}},), QOSClass.BURSTABLE),
        (({"limits": {"cpu": "1", "memory": "64Mi"}},), QOSClass.GUARANTEED),  # requests default to limits
        (({"requests": {"cpu": "1", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "64Mi"}},),
         QOSClass.GUARANTEED),
        (({"requests": {"cpu": "500m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "64Mi"}},),
         QOSClass.BURSTABLE),
        (({"limits": {"cpu": "1", "memory": "64Mi"}}, {}), QOSClass.BURSTABLE),  # one container without limits
        (({"limits": {"cpu": "1000m", "memory": "64Mi"}}, {"limits": {"cpu": "1", "memory": "1Gi"}}),
         QOSClass.GUARANTEED),
    ],
)  # fmt: skip
def test_qos_class_follows_kubernetes_rules(resources: tuple[dict[str, Any], ...], qos: QOSClass) -> None:
    assert qos_class(spec(*resources)) is qos


# -- ranking -------------------------------------------------------------------------------------------------------
def pod(
    name: str, qos: QOSClass, request: int = 0, used: int | None = None, priority: int = 0, pids: int = 1
) -> PodCandidate:
    return PodCandidate(
        PodUID(f"uid-{name}"), "default", name, qos, priority, (ContainerUse("app", request, used, pids),)
    )


def test_memory_ranking_puts_pods_over_their_request_first_then_qos_priority_and_excess() -> None:
    pods = [
        pod("guaranteed-over", QOSClass.GUARANTEED, 64 * Mi, 65 * Mi),
        pod("burstable-under", QOSClass.BURSTABLE, 64 * Mi, 10 * Mi),
        pod("besteffort-small", QOSClass.BEST_EFFORT, 0, 1 * Mi),
        pod("besteffort-big", QOSClass.BEST_EFFORT, 0, 50 * Mi),
        pod("besteffort-important", QOSClass.BEST_EFFORT, 0, 90 * Mi, priority=1000),
        pod("burstable-over", QOSClass.BURSTABLE, 10 * Mi, 30 * Mi),
        pod("guaranteed-under", QOSClass.GUARANTEED, 64 * Mi, 5 * Mi),
    ]
    assert [p.name for p in rank(pods, Signal.MEMORY_AVAILABLE)] == [
        "besteffort-big",
        "besteffort-small",
        "besteffort-important",
        "burstable-over",
        "guaranteed-over",
        "burstable-under",
        "guaranteed-under",
    ]


def test_unmeasured_pods_rank_by_qos_and_priority() -> None:
    pods = [
        pod("g", QOSClass.GUARANTEED, 64 * Mi),
        pod("b-high", QOSClass.BURSTABLE, 64 * Mi, priority=10),
        pod("b-low", QOSClass.BURSTABLE, 64 * Mi, priority=-5),
        pod("be", QOSClass.BEST_EFFORT),
    ]
    for signal in (Signal.MEMORY_AVAILABLE, Signal.NODEFS_AVAILABLE, Signal.PID_AVAILABLE):
        assert [p.name for p in rank(pods, signal)] == ["be", "b-low", "b-high", "g"]


def test_pid_ranking_breaks_ties_by_pids_in_use() -> None:
    pods = [pod("few", QOSClass.BURSTABLE, pids=2), pod("many", QOSClass.BURSTABLE, pids=200)]
    assert [p.name for p in rank(pods, Signal.PID_AVAILABLE)] == ["many", "few"]


def test_candidate_reads_request_qos_priority_and_usage_from_the_pod() -> None:
    manifest = Pod.model_validate({
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"priority": 7, "containers": [
            {"name": "app", "image": "b", "resources": {"requests": {"memory": "32Mi"}}},
            {"name": "side", "image": "b"},
        ]},
    })  # fmt: skip
    c = candidate(PodUID("u1"), manifest, {"app": (40 * Mi, 3)})
    assert (c.namespace, c.name, c.qos, c.priority, c.memory_request) == ("shop", "web", QOSClass.BURSTABLE, 7, 32 * Mi)
    assert c.memory == 40 * Mi and c.exceeds_memory_request and c.pids == 3


# -- the plan ------------------------------------------------------------------------------------------------------
def signals(memory: int = 8 * Gi, disk: int = 50 * Gi, pids: int = 30000, **kw: Any) -> Signals:
    amounts = {
        Signal.MEMORY_AVAILABLE: Amount(memory, 16 * Gi),
        Signal.NODEFS_AVAILABLE: Amount(disk, 100 * Gi),
        Signal.NODEFS_INODES_FREE: Amount(900_000, 1_000_000),
        Signal.PID_AVAILABLE: Amount(pids, 32768),
    }
    return Signals(amounts, **kw)


def by_type(conditions: tuple[Condition, ...]) -> dict[C, tuple[bool, str]]:
    return {c.type: (c.status, c.reason) for c in conditions}


SETTINGS = Settings(parse_thresholds("memory.available<100Mi,nodefs.available<10%,pid.available<1000"), 60.0)


def run(s: Signals, pods: list[PodCandidate] | None = None, settings: Settings = SETTINGS, **kw: Any) -> Any:
    return plan(s, settings, pods or [], previous=kw.get("previous", {}), observed_at=kw.get("seen", {}),
                now=kw.get("now", 1000.0))  # fmt: skip


def test_a_healthy_node_reports_the_three_pressure_conditions_false_in_kubelet_words() -> None:
    result = run(signals())
    assert by_type(result.conditions) == {
        C.MEMORY_PRESSURE: (False, "KubeletHasSufficientMemory"),
        C.DISK_PRESSURE: (False, "KubeletHasNoDiskPressure"),
        C.PID_PRESSURE: (False, "KubeletHasSufficientPID"),
    }
    assert result.evict is None and result.reclaiming is None


@pytest.mark.parametrize(
    ("reading", "condition", "reason", "resource"),
    [
        (signals(memory=50 * Mi), C.MEMORY_PRESSURE, "KubeletHasInsufficientMemory", "memory"),
        (signals(disk=5 * Gi), C.DISK_PRESSURE, "KubeletHasDiskPressure", "ephemeral-storage"),
        (signals(pids=10), C.PID_PRESSURE, "KubeletHasInsufficientPID", "pids"),
    ],
)
def test_a_met_threshold_turns_its_condition_true_and_evicts_one_pod(
    reading: Signals, condition: C, reason: str, resource: str
) -> None:
    pods = [pod("g", QOSClass.GUARANTEED, 64 * Mi, 1 * Mi), pod("be", QOSClass.BEST_EFFORT, 0, 2 * Mi)]
    result = run(reading, pods)
    assert by_type(result.conditions)[condition] == (True, reason)
    assert sum(1 for c in result.conditions if c.status) == 1
    assert result.reclaiming == resource
    assert result.evict is not None and result.evict.name == "be"
    assert result.evict.message.startswith(f"The node was low on resource: {resource}. Threshold quantity: ")


def test_the_eviction_message_is_the_kubelets() -> None:
    result = run(signals(memory=50 * Mi), [pod("be", QOSClass.BEST_EFFORT, 0, 12 * Mi)])
    assert result.evict.message == (
        "The node was low on resource: memory. Threshold quantity: 100Mi, available: 50Mi. "
        "Container app was using 12Mi, request is 0, has larger consumption of memory."
    )


def test_memory_is_reclaimed_before_disk_when_both_are_short() -> None:
    result = run(signals(memory=1 * Mi, disk=1 * Gi), [pod("be", QOSClass.BEST_EFFORT)])
    assert result.reclaiming == "memory"
    assert by_type(result.conditions)[C.DISK_PRESSURE][0] is True


def test_no_pods_no_eviction_but_the_condition_holds() -> None:
    result = run(signals(memory=1 * Mi))
    assert result.evict is None
    assert by_type(result.conditions)[C.MEMORY_PRESSURE][0] is True


def test_a_condition_stays_true_for_the_transition_period_after_its_cause_went() -> None:
    first = run(signals(memory=1 * Mi), now=1000.0)
    previous = {c.type: c for c in first.conditions}
    held = run(signals(), previous=previous, seen=first.observed_at, now=1059.0)
    assert by_type(held.conditions)[C.MEMORY_PRESSURE] == (True, "KubeletHasInsufficientMemory")
    assert held.evict is None  # nothing is met now: no eviction while merely held
    cleared = run(signals(), previous=previous, seen=held.observed_at, now=1060.0)
    assert by_type(cleared.conditions)[C.MEMORY_PRESSURE] == (False, "KubeletHasSufficientMemory")


def test_a_zero_transition_period_clears_at_the_next_reading() -> None:
    settings = Settings(SETTINGS.thresholds, 0.0)
    first = run(signals(memory=1 * Mi), settings=settings)
    again = run(signals(), settings=settings, previous={c.type: c for c in first.conditions}, seen=first.observed_at)
    assert by_type(again.conditions)[C.MEMORY_PRESSURE][0] is False


@pytest.mark.parametrize(
    ("temperature", "flags", "thermal", "voltage"),
    [
        (None, None, None, None),  # not a Pi: no Pi conditions at all
        (45.0, None, (False, "SoCNotThrottled"), None),  # a thermal zone but no firmware flags
        (81.5, None, (True, "SoCTemperatureHigh"), None),
        (60.0, 0x0, (False, "SoCNotThrottled"), (False, "NoUnderVoltage")),
        (60.0, 0x50005, (True, "SoCThrottled"), (True, "UnderVoltageDetected")),
        (60.0, 0x50000, (False, "SoCNotThrottled"), (False, "UnderVoltageOccurred")),
        (70.0, 0x80008, (True, "SoCThrottled"), (False, "NoUnderVoltage")),
        (None, 0x20002, (True, "SoCThrottled"), (False, "NoUnderVoltage")),
        (None, 0x10001, (False, "SoCNotThrottled"), (True, "UnderVoltageDetected")),
    ],
)
def test_pi_conditions_follow_temperature_and_firmware_flags(
    temperature: float | None, flags: int | None, thermal: tuple[bool, str] | None, voltage: tuple[bool, str] | None
) -> None:
    throttle = ThrottleFlags(flags) if flags is not None else None
    conditions = by_type(run(signals(temperature=temperature, throttle=throttle)).conditions)
    assert conditions.get(C.THERMAL_THROTTLING) == thermal
    assert conditions.get(C.UNDER_VOLTAGE) == voltage


def test_pi_conditions_can_be_turned_off_and_the_temperature_limit_set() -> None:
    hot = signals(temperature=75.0, throttle=ThrottleFlags(0x1))
    off = Settings(SETTINGS.thresholds, 0.0, PiSettings(thermal_throttling=False, under_voltage=False))
    assert not {C.THERMAL_THROTTLING, C.UNDER_VOLTAGE} & set(by_type(run(hot, settings=off).conditions))
    low = Settings(SETTINGS.thresholds, 0.0, PiSettings(temperature_limit=70.0))
    assert by_type(run(hot, settings=low).conditions)[C.THERMAL_THROTTLING] == (True, "SoCTemperatureHigh")
    flags_only = Settings(SETTINGS.thresholds, 0.0, PiSettings(temperature_limit=0))
    assert by_type(run(hot, settings=flags_only).conditions)[C.THERMAL_THROTTLING][0] is False


def test_pi_conditions_never_evict() -> None:
    result = run(signals(temperature=90.0, throttle=ThrottleFlags(0x5)), [pod("be", QOSClass.BEST_EFFORT)])
    assert result.evict is None


def test_throttled_message_names_what_holds_and_the_reading() -> None:
    result = run(signals(temperature=82.25, throttle=ThrottleFlags(0x50005)))
    thermal = next(c for c in result.conditions if c.type is C.THERMAL_THROTTLING)
    assert thermal.message == (
        "the firmware slows the SoC down: throttled (get_throttled 0x50005); temperature 82.2°C (limit 80°C)"
    )
