"""TaintNodesByCondition: a Ready node's True pressure and Pi conditions taint it NoSchedule, until they clear."""

from __future__ import annotations

from typing import Any

import pytest

from edgekube.master.controllers.nodeinputs import NodeState, true_conditions
from edgekube.master.controllers.nodelifecycle import SetTaints, plan, rfc3339
from edgekube.master.liveness import Health
from edgekube.model.taints import TAINT_UNREACHABLE, Taint, TaintEffect

T0 = 1_800_000_000.0


def state(health: Health, *conditions: str, taints: tuple[Taint, ...] = ()) -> NodeState:
    return NodeState("pi-1", health, taints, frozenset(conditions))


def sched(key: str) -> Taint:
    return Taint(key=key, effect=TaintEffect.NO_SCHEDULE)


def changes(actions: list[Any]) -> list[tuple[list[tuple[str, str]], bool]]:
    return [([(t.key, t.effect.value) for t in a.taints], a.announce) for a in actions if isinstance(a, SetTaints)]


@pytest.mark.parametrize(
    ("condition", "key"),
    [
        ("MemoryPressure", "node.kubernetes.io/memory-pressure"),
        ("DiskPressure", "node.kubernetes.io/disk-pressure"),
        ("PIDPressure", "node.kubernetes.io/pid-pressure"),
        ("ThermalThrottling", "edgekube.io/thermal-throttling"),
        ("UnderVoltage", "edgekube.io/under-voltage"),
    ],
)
def test_each_true_condition_taints_the_node_noschedule(condition: str, key: str) -> None:
    result = plan([state(Health.READY, condition)], {}, T0, judging=True)
    assert changes(result.actions) == [([(key, "NoSchedule")], False)]


def test_the_taint_goes_when_the_condition_is_false_again_and_others_stay() -> None:
    user = sched("dedicated")
    tainted = (user, sched("edgekube.io/thermal-throttling"), sched("node.kubernetes.io/disk-pressure"))
    result = plan([state(Health.READY, "DiskPressure", taints=tainted)], {}, T0, judging=True)
    assert changes(result.actions) == [
        ([("dedicated", "NoSchedule"), ("node.kubernetes.io/disk-pressure", "NoSchedule")], False)
    ]


def test_nothing_changes_when_the_taints_already_match() -> None:
    tainted = (sched("edgekube.io/under-voltage"), sched("node.kubernetes.io/memory-pressure"))
    result = plan([state(Health.READY, "MemoryPressure", "UnderVoltage", taints=tainted)], {}, T0, judging=True)
    assert result.actions == []
    assert plan([state(Health.READY, "Ready", "NFSReachable")], {}, T0, judging=True).actions == []


def test_a_notready_node_keeps_its_condition_taints_and_gets_the_lifecycle_one() -> None:
    tainted = (sched("edgekube.io/thermal-throttling"),)
    result = plan([state(Health.UNREACHABLE, taints=tainted)], {}, T0, judging=True)
    assert changes(result.actions) == [
        ([("edgekube.io/thermal-throttling", "NoSchedule"), (TAINT_UNREACHABLE, "NoExecute")], True)
    ]


def test_ready_again_drops_the_lifecycle_taint_and_sets_condition_taints_in_one_write() -> None:
    unreachable = Taint(key=TAINT_UNREACHABLE, effect=TaintEffect.NO_EXECUTE, time_added=rfc3339(T0))
    result = plan([state(Health.READY, "DiskPressure", taints=(unreachable,))], {}, T0 + 5, judging=True)
    assert changes(result.actions) == [([("node.kubernetes.io/disk-pressure", "NoSchedule")], True)]


def test_true_conditions_reads_the_stored_status() -> None:
    node = {"status": {"conditions": [
        {"type": "MemoryPressure", "status": "True"}, {"type": "DiskPressure", "status": "False"},
        {"type": "ThermalThrottling", "status": "Unknown"},
    ]}}  # fmt: skip
    assert true_conditions(node) == frozenset({"MemoryPressure"})
    assert true_conditions({}) == frozenset()
