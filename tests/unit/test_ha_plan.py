"""The pure decisions of two-master HA (edgekube/master/ha/plan.py), as tables."""

from __future__ import annotations

import dataclasses

import pytest

from edgekube.master.ha.plan import Step, TakeoverView, classify, must_step_down, plan_takeover, start_role
from edgekube.model.ha import FrameHeader, Replication, ReplicationFlag, Witness


def gone(node: str, term: int = 3, active: str = "m1") -> Witness:
    return Witness(node=node, term=term, active=active, active_online=False)


def seen(node: str, term: int = 3, active: str = "m1") -> Witness:
    return Witness(node=node, term=term, active=active, active_online=True)


FLAG = ReplicationFlag(master_id="m1", term=3, state=Replication.REPLICATED, peer="m2", seq=40)
VIEW = TakeoverView(
    me="m2",
    term=3,
    active="m1",
    active_online=False,
    flag=FLAG,
    ready_nodes={"a", "b", "c"},
    witnesses={"a": gone("a"), "b": gone("b"), "c": seen("c")},
)


def test_a_majority_of_ready_nodes_seeing_the_active_gone_lets_the_standby_take_over_with_the_next_term() -> None:
    decision = plan_takeover(VIEW)
    assert (decision.take_over, decision.term) == (True, 4)
    assert "2 of 3" in decision.reason


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"witnesses": {"a": gone("a"), "b": seen("b"), "c": seen("c")}}, "a majority is needed"),
        ({"witnesses": {"a": gone("a"), "b": gone("b"), "c": seen("c"), "d": seen("d")}, "ready_nodes": set("abcd")},
         "a majority is needed"),  # 2 of 4 is not a majority
        ({"witnesses": {"a": gone("a"), "d": gone("d"), "e": gone("e")}}, "a majority is needed"),  # d, e not Ready
        ({"witnesses": {"a": gone("a", term=2), "b": gone("b", term=2)}}, "a majority is needed"),  # an older term
        ({"witnesses": {"a": gone("a", active="m3"), "b": gone("b", active="m3")}}, "a majority is needed"),
        ({"active_online": True}, "is online"),
        ({"ready_nodes": set()}, "no Ready node"),
        ({"witnesses": {"a": gone("a"), "b": gone("b"), "c": gone("c", term=4)}}, "accepted a term above 3"),
        ({"flag": None}, "no replication state"),
        ({"flag": FLAG.model_copy(update={"term": 2})}, "no replication state"),
        ({"flag": FLAG.model_copy(update={"state": Replication.UNREPLICATED})}, "without this copy (unreplicated"),
        ({"flag": FLAG.model_copy(update={"state": Replication.CATCHING_UP})}, "without this copy (catching-up"),
        ({"flag": FLAG.model_copy(update={"peer": "m3"})}, "without this copy"),
        ({"active": ""}, "no active master"),
        ({"active": "m2"}, "no active master"),
    ],
)  # fmt: skip
def test_the_standby_waits_without_everything_acknowledged_or_without_a_majority_of_witnesses(
    change: dict[str, object], why: str
) -> None:
    decision = plan_takeover(dataclasses.replace(VIEW, **change))  # type: ignore[arg-type]
    assert (decision.take_over, decision.term) == (False, 3)
    assert why in decision.reason


def test_three_of_four_ready_nodes_are_a_majority() -> None:
    witnesses = {n: gone(n) for n in "abc"} | {"d": seen("d")}
    assert plan_takeover(dataclasses.replace(VIEW, ready_nodes=set("abcd"), witnesses=witnesses)).take_over


def test_a_clean_handover_needs_no_witness_but_still_everything_acknowledged() -> None:
    handover = dataclasses.replace(VIEW, handover=True, ready_nodes=set(), witnesses={})
    assert (plan_takeover(handover).take_over, plan_takeover(handover).term) == (True, 4)
    unreplicated = dataclasses.replace(handover, flag=FLAG.model_copy(update={"state": Replication.UNREPLICATED}))
    assert not plan_takeover(unreplicated).take_over


def test_a_handover_announced_while_still_online_is_not_one() -> None:
    assert not plan_takeover(dataclasses.replace(VIEW, handover=True, active_online=True)).take_over


@pytest.mark.parametrize(
    ("term", "seen_terms", "deposed"),
    [(3, [], False), (3, [1, 2, 3], False), (3, [2, 4], True), (0, [1], True)],
)
def test_an_active_is_deposed_by_any_higher_term_it_sees(term: int, seen_terms: list[int], deposed: bool) -> None:
    assert must_step_down(term, seen_terms) is deposed


@pytest.mark.parametrize(
    ("configured", "term", "seen_terms", "other_active", "role"),
    [
        ("active", 3, [3], False, "active"),  # its standby announces the same term: it resumes
        ("active", 3, [4], False, "standby"),  # deposed while it was away
        ("active", 3, [3], True, "standby"),  # another master is active
        ("standby", 3, [], False, "standby"),
        ("active", 0, [], False, "active"),  # a new cluster
    ],
)
def test_a_master_starts_in_its_configured_role_unless_another_holds_the_term(
    configured: str, term: int, seen_terms: list[int], other_active: bool, role: str
) -> None:
    assert start_role(configured, term, seen_terms, other_active) == role


def header(kind: str = "records", stream: str = "m1.3.x", first: int = 0, last: int = 0) -> FrameHeader:
    return FrameHeader.model_validate({"kind": kind, "stream": stream, "term": 3, "first": first, "last": last})


@pytest.mark.parametrize(
    ("stream", "applied", "frame", "step"),
    [
        ("m1.3.x", 10, header(first=11, last=12), Step.APPLY),
        ("m1.3.x", 10, header(first=9, last=12), Step.APPLY),  # overlaps what is held: the rest is applied
        ("m1.3.x", 10, header(first=9, last=10), Step.DUPLICATE),  # QoS 1 delivered it twice
        ("m1.3.x", 10, header(first=12, last=14), Step.GAP),  # 11 is missing
        ("m1.3.x", 10, header(kind="beat", last=10), Step.DUPLICATE),
        ("m1.3.x", 10, header(kind="beat", last=11), Step.GAP),  # idle active has more than we hold
        ("", 10, header(first=11, last=12), Step.FOREIGN),  # just started: nothing is current
        ("m1.2.y", 10, header(first=11, last=12), Step.FOREIGN),  # an older stream
        ("", 0, header(kind="snapshot", last=40), Step.SNAPSHOT),
        ("m1.3.x", 50, header(kind="snapshot", last=40), Step.SNAPSHOT),  # asked for: it replaces what is held
    ],
)
def test_the_standby_classifies_each_frame_by_stream_and_sequence(
    stream: str, applied: int, frame: FrameHeader, step: Step
) -> None:
    assert classify(stream, applied, frame) is step


def test_a_standby_that_cannot_see_the_active_gone_everywhere_waits_the_grace_with_its_majority() -> None:
    cut = dataclasses.replace(VIEW, gone_everywhere=False, grace=2.0)
    early = plan_takeover(dataclasses.replace(cut, majority_for=1.5))
    assert (early.take_over, early.majority) == (False, True)
    assert "waiting 2s" in early.reason
    late = plan_takeover(dataclasses.replace(cut, majority_for=2.0))
    assert (late.take_over, late.term, late.majority) == (True, 4, True)
    assert not plan_takeover(dataclasses.replace(cut, witnesses={})).majority
