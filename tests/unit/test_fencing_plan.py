"""ReadWriteOnce fencing, the pure plan: every transition of one node's lease state after a read, and the gate."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from edgekube.agent.fencing_plan import (
    Ask,
    Lease,
    Memory,
    Node,
    Read,
    Request,
    State,
    Status,
    Step,
    Take,
    Timing,
    Want,
    Write,
    asked,
    due,
    gate,
    marker,
    step,
    taken,
    written,
)
from edgekube.model.names import PodUID

T = Timing(duration=12.0, renew=3.0, margin=2.0, poll=1.0)  # holds for 10 s, others wait 14 s
A = Node("node-a", "boot-a")
B = Node("node-b", "boot-b")
POD = PodUID("pod-1")
WANT = Want("pv-data", frozenset({POD}), frozenset())
RUNNING = replace(WANT, running=frozenset({POD}))


def lease_of(node: Node, term: int = 1, counter: int = 0, **fields: object) -> Lease:
    return Lease(holder=node.name, boot=node.boot, term=term, counter=counter, duration=T.duration, **fields)  # type: ignore[arg-type]


def seen(lease: Lease | None = None, request: Request | None = None) -> Read:
    return Read(ok=True, lease=lease.encode() if lease else None, request=request.encode() if request else None)


FAILED = Read(ok=False, error="nfs: Command timed out")


def go(mem: Memory, read: Read, now: float, *, node: Node = A, want: Want = WANT, connected: bool = True) -> Step:
    return step(mem, read, want, now, node=node, connected=connected, timing=T)


def holder(now: float = 0.0, node: Node = A) -> Memory:
    """Memory of `node` right after it took a free lease at `now`."""
    first = go(Memory(since=now), seen(None), now, node=node)
    assert isinstance(first.io, Take)
    return taken(first.memory, first.io, "won", now, now)


# -- acquiring ---------------------------------------------------------------------------------------------------
def test_a_free_volume_is_taken_at_once_with_term_one_and_held_for_duration_minus_margin() -> None:
    first = go(Memory(since=0.0), seen(None), 0.0)
    assert first.io == Take(None, Lease("node-a", "boot-a", 1, 0, 12.0, pods=(POD,)))
    assert not first.status.usable(0.0), "no pod runs before the take succeeded"
    mem = taken(first.memory, first.io, "won", 0.5, 0.6)
    again = go(mem, seen(first.io.lease), 0.7)
    assert again.status.state is State.HELD
    assert again.status.usable_until == 0.5 + 10.0 == again.status.fence_at
    assert again.io is None, "not due for renewal yet"


def test_a_released_lease_is_taken_at_once_and_one_released_to_another_node_is_waited_out() -> None:
    released = lease_of(B, term=4, counter=9, released=True)
    assert go(Memory(since=0.0), seen(released), 0.0).io == Take(released.encode(), lease_of(A, 5, pods=(POD,)))
    to_c = replace(released, to="node-c")
    waiting = go(Memory(since=0.0), seen(to_c), 0.0)
    assert waiting.io is None, "no take, and no request to a node that gave the volume away"
    assert waiting.status.state is State.WAITING
    assert "handed over to node-c (free in ≤ 14s)" in waiting.status.message
    assert isinstance(go(waiting.memory, seen(to_c), 14.0).io, Take), "unchanged for duration + margin: taken"
    assert isinstance(go(Memory(since=0.0), seen(to_c), 0.0, node=Node("node-c", "c")).io, Take)


def test_a_lease_held_by_another_node_is_waited_out_with_a_request_and_the_holder_named() -> None:
    held = lease_of(B, term=3, counter=7)
    first = go(Memory(since=0.0), seen(held), 0.0)
    assert first.io == Ask(Request("node-a", POD))
    assert first.status.state is State.WAITING and first.status.holder == "node-b"
    assert first.status.message == (
        "waiting for the ReadWriteOnce lease of volume pv-data held by node-b (free in ≤ 14s)"
    )
    assert first.status.fences(0.0), "a pod of this node must not run while another node holds the lease"
    mem = asked(first.memory, first.io, ok=True)
    later = go(mem, seen(held, Request("node-a", POD)), 5.2)
    assert later.io is None, "the request is there already: not written again"
    assert "(free in ≤ 9s)" in later.status.message


def test_the_lease_is_taken_over_only_after_its_content_was_seen_unchanged_for_duration_plus_margin() -> None:
    held = lease_of(B, term=3, counter=7)
    mem = go(Memory(since=0.0), seen(held), 0.0).memory
    assert not isinstance(go(mem, seen(held), 13.9).io, Take)
    takeover = go(mem, seen(held), 14.0).io
    assert takeover == Take(held.encode(), lease_of(A, term=4, pods=(POD,)))
    assert takeover.marker == marker(held.encode()) != marker(None)


def test_a_renewal_seen_while_waiting_starts_the_wait_over() -> None:
    mem = go(Memory(since=0.0), seen(lease_of(B, counter=1)), 0.0).memory
    renewed = go(mem, seen(lease_of(B, counter=2)), 10.0)
    assert renewed.memory.seen_since == 10.0
    assert not isinstance(go(renewed.memory, seen(lease_of(B, counter=2)), 23.9).io, Take)
    assert isinstance(go(renewed.memory, seen(lease_of(B, counter=2)), 24.0).io, Take)


def test_a_longer_duration_written_in_the_lease_is_waited_out_in_full() -> None:
    slow = replace(lease_of(B), duration=30.0)
    mem = go(Memory(since=0.0), seen(slow), 0.0).memory
    assert not isinstance(go(mem, seen(slow), 31.9).io, Take)
    assert isinstance(go(mem, seen(slow), 32.0).io, Take)


def test_an_unreadable_lease_content_is_waited_out_like_a_held_one() -> None:
    garbage = Read(ok=True, lease=b"{torn")
    first = go(Memory(since=0.0), garbage, 0.0)
    assert first.status.holder == "an unreadable lease" and not isinstance(first.io, Take)
    assert go(first.memory, garbage, 14.0).io == Take(b"{torn", lease_of(A, pods=(POD,)))


def test_a_take_that_lost_the_race_waits_again_and_a_dead_takers_marker_is_removed_after_a_whole_wait() -> None:
    held = lease_of(B)
    mem = go(Memory(since=0.0), seen(held), 0.0).memory
    io = go(mem, seen(held), 14.0).io
    assert isinstance(io, Take) and not io.force
    changed = taken(mem, io, "changed", 0.0, 14.1)
    assert changed.seen is None and changed.holding is None, "someone else won: the wait starts over"
    busy = taken(mem, io, "busy", 0.0, 14.1)
    retry = go(busy, seen(held), 15.0).io
    assert isinstance(retry, Take) and not retry.force, "another taker may be halfway: try again, never force"
    assert isinstance(forced := go(busy, seen(held), 14.1 + 14.0).io, Take) and forced.force


# -- holding -------------------------------------------------------------------------------------------------------
def test_the_holder_renews_every_renew_interval_and_each_success_moves_its_deadline() -> None:
    mem = holder(0.0)
    held = mem.holding
    assert held is not None
    renew = go(mem, seen(held.lease), 3.0)
    assert renew.io == Write(replace(held.lease, counter=1), not_after=10.0)
    assert due(mem, renew.status, 1.0, T) == 3.0
    mem = written(renew.memory, renew.io, ok=True, started=3.0)
    after = go(mem, seen(replace(held.lease, counter=1)), 3.2)
    assert after.status.usable_until == 13.0 and after.io is None


def test_the_holder_stops_its_pods_when_it_could_not_renew_for_duration_minus_margin() -> None:
    mem = holder(0.0)
    failing = go(mem, FAILED, 9.9)
    assert failing.status.state is State.HELD and failing.status.usable(9.9)
    assert due(failing.memory, failing.status, 9.9, T) == pytest.approx(10.9), "retried, not in a busy loop"
    assert gate({POD: ("v",)}, {"v": failing.status}, 10.0).fence, "the loop fences on its own clock, no read needed"
    lost = go(failing.memory, FAILED, 10.0)
    assert lost.status.state is State.LOST and lost.status.fences(10.0)
    assert "not renewed for 10.0s" in lost.status.reason
    assert lost.memory.holding is None, "it never renews again without taking the lease anew"


def test_a_renewal_is_never_started_after_the_deadline() -> None:
    mem = holder(0.0)
    assert mem.holding is not None
    late = go(mem, seen(mem.holding.lease), 9.5)
    assert isinstance(late.io, Write) and late.io.not_after == 10.0, "checked again before writing"
    assert written(late.memory, late.io, ok=False, started=10.0).holding == mem.holding, "a failed write gives no time"


def test_a_holder_that_reads_another_holder_stops_its_pods_at_once() -> None:
    mem = holder(0.0)
    taken_over = go(mem, seen(lease_of(B, term=2)), 4.0)
    assert taken_over.status.state is State.LOST and taken_over.status.fences(4.0)
    assert taken_over.status.reason == "the lease is now held by node-b"
    assert go(mem, seen(None), 4.0).status.reason == "the lease file was removed"
    assert taken_over.memory.holding is None
    assert go(taken_over.memory, seen(lease_of(B, term=2)), 4.1).status.fences(4.1), "and stays fenced"


def test_a_renewal_whose_answer_was_lost_but_which_landed_keeps_the_lease_with_the_old_deadline() -> None:
    mem = holder(0.0)
    assert mem.holding is not None
    landed = replace(mem.holding.lease, counter=1)
    later = go(mem, seen(landed), 4.0)
    assert later.status.state is State.HELD and later.status.usable_until == 10.0
    assert later.io == Write(replace(landed, counter=2), not_after=10.0)


def test_a_holder_connected_to_the_master_and_still_running_the_pod_keeps_the_lease_despite_a_request() -> None:
    mem = holder(0.0)
    assert mem.holding is not None
    kept = go(mem, seen(mem.holding.lease, Request("node-b", "pod-2")), 1.0, want=RUNNING, connected=True)
    assert kept.status.state is State.HELD and kept.io is None


def test_a_holder_cut_from_the_master_hands_over_to_the_requester_once_its_pods_are_stopped() -> None:
    mem = holder(0.0)
    assert mem.holding is not None
    request = Request("node-b", "pod-2")
    stopping = go(mem, seen(mem.holding.lease, request), 1.0, want=RUNNING, connected=False)
    assert stopping.status.state is State.HANDING_OVER and stopping.status.fences(1.0)
    assert stopping.io is None, "the lease stays while its pods still run"
    stopped = go(stopping.memory, seen(mem.holding.lease, request), 1.5, want=WANT, connected=False)
    release = replace(mem.holding.lease, counter=1, released=True, to="node-b", pods=())
    assert stopped.io == Write(release, not_after=10.0)
    after = written(stopped.memory, stopped.io, ok=True, started=1.5)
    assert after.holding is None
    # The requester takes it at once; the old holder (still wanting it) waits it out like anyone.
    assert isinstance(go(Memory(since=0.0), seen(release), 2.0, node=B).io, Take)
    assert go(after, seen(release), 2.0, want=WANT, connected=False).io is None


def test_a_holder_ignores_its_own_request() -> None:
    mem = holder(0.0)
    assert mem.holding is not None
    own = go(mem, seen(mem.holding.lease, Request("node-a", POD)), 1.0, connected=False)
    assert own.status.state is State.HELD


def test_a_holder_whose_pods_left_releases_the_lease_to_anyone_once_none_runs() -> None:
    mem = holder(0.0)
    assert mem.holding is not None
    leaving = go(mem, seen(mem.holding.lease), 1.0, want=Want("pv-data", frozenset(), frozenset({POD})))
    assert leaving.status.state is State.HANDING_OVER and leaving.io is None
    gone = go(leaving.memory, seen(mem.holding.lease), 2.0, want=Want("pv-data"))
    assert isinstance(gone.io, Write) and gone.io.lease.released and gone.io.lease.to == ""
    idle = go(written(gone.memory, gone.io, ok=True, started=2.0), seen(gone.io.lease), 2.1, want=Want("pv-data"))
    assert idle.status.state is State.IDLE and idle.io is None


# -- coming back -----------------------------------------------------------------------------------------------------
def test_a_restarted_agent_takes_its_nodes_lease_at_once_without_stopping_the_pods_still_running() -> None:
    former = Lease("node-a", "old-boot", term=6, counter=40, duration=12.0, pods=(POD,))
    first = go(Memory(since=100.0), seen(former), 100.0, want=RUNNING)
    assert first.io == Take(former.encode(), lease_of(A, term=7, pods=(POD,)))
    assert not first.status.fences(100.0) and first.status.fence_at == 110.0


def test_after_a_self_fence_the_node_takes_its_unchanged_lease_back_at_once() -> None:
    mem = holder(0.0)
    assert mem.holding is not None
    lost = go(mem, FAILED, 10.0).memory
    back = go(lost, seen(mem.holding.lease), 30.0)
    assert back.io == Take(mem.holding.lease.encode(), lease_of(A, term=2, pods=(POD,)))


def test_a_lease_naming_this_agent_that_it_never_saw_written_is_waited_out() -> None:
    stray = lease_of(A, term=9, counter=3)  # e.g. a take that failed after its write had gone out
    first = go(Memory(since=0.0), seen(stray), 0.0)
    assert not isinstance(first.io, Take)
    assert isinstance(go(first.memory, seen(stray), 14.0).io, Take)


def test_a_node_that_cannot_read_the_lease_starts_no_pod_and_stops_none_before_the_adoption_grace() -> None:
    first = go(Memory(since=0.0), FAILED, 0.0, want=RUNNING)
    assert first.status.state is State.UNKNOWN and not first.status.usable(0.0)
    assert "cannot read the ReadWriteOnce lease of volume pv-data" in first.status.message
    assert not first.status.fences(9.9) and first.status.fences(10.0)


# -- duplicates and the gate -------------------------------------------------------------------------------------
def test_the_same_read_twice_asks_for_nothing_more() -> None:
    mem = holder(0.0)
    assert mem.holding is not None
    once = go(mem, seen(mem.holding.lease), 1.0)
    twice = go(once.memory, seen(mem.holding.lease), 1.0)
    assert once.io is None and twice.io is None and once.status == twice.status
    held = lease_of(B)
    wait = go(Memory(since=0.0), seen(held, Request("node-a", POD)), 0.0)
    assert wait.io is None and go(wait.memory, seen(held, Request("node-a", POD)), 0.5).io is None


def test_the_gate_blocks_pods_without_a_usable_lease_and_fences_only_those_whose_status_says_so() -> None:
    held = Status(State.HELD, "v1", usable_until=10.0, fence_at=10.0, holder="node-a")
    waiting = Status(State.WAITING, "v2", fence_at=-math.inf, holder="node-b", message="waiting for v2")
    unknown = Status(State.UNKNOWN, "v3", fence_at=20.0, message="cannot read v3")
    users = {PodUID("p1"): ("k1",), PodUID("p2"): ("k1", "k2"), PodUID("p3"): ("k3",), PodUID("p4"): ("k4",)}
    result = gate(users, {"k1": held, "k2": waiting, "k3": unknown}, 5.0)
    assert result.blocked == {"p2": "waiting for v2", "p3": "cannot read v3", "p4": result.blocked[PodUID("p4")]}
    assert set(result.fence) == {"p2"}
    assert result.next_due == 10.0
    late = gate(users, {"k1": held, "k2": waiting, "k3": unknown}, 10.0)
    assert set(late.fence) == {"p1", "p2"} and "not renewed in time" in late.fence[PodUID("p1")]


def test_timing_defaults_and_refuses_a_holder_without_a_retry_before_it_stops() -> None:
    assert (Timing(15.0).renew, Timing(15.0).margin, Timing(15.0).holds_for) == (3.75, 5.0, 10.0)
    with pytest.raises(ValueError, match="one retry"):
        Timing(duration=10.0, renew=6.0, margin=2.0)


def test_the_lease_file_round_trips_and_refuses_another_format() -> None:
    lease = lease_of(A, term=2, counter=5, pods=("x", "y"), released=True, to="node-b")
    assert Lease.decode(lease.encode()) == lease
    assert Lease.decode(b'{"format": 2, "holder": "x"}') is None
    assert Request.decode(Request("node-b", "p").encode()) == Request("node-b", "p")
