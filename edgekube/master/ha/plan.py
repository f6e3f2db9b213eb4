"""Pure decisions of two-master HA (docs/ha.md): take over, step down, start role, what a replication frame is.

No I/O and no clock: the supervisor (supervisor.py) and the standby's copy (standby.py) gather what they see and
act on the answer; the unit tests are tables of these functions.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from edgekube.model.ha import FrameHeader, Replication, ReplicationFlag, Witness


@dataclass(frozen=True)
class TakeoverView:
    """What a standby sees when it considers taking over."""

    me: str
    #: The highest term this standby knows (its store's, or seen announced) and the master that holds it.
    term: int
    active: str
    #: That master's presence (masters/<active>/online) as this standby sees it.
    active_online: bool
    #: That master's retained replication state (masters/<active>/replication); None: never seen.
    flag: ReplicationFlag | None
    #: Nodes whose Ready condition is True in the replicated store: the electorate.
    ready_nodes: Collection[str]
    witnesses: Mapping[str, Witness]
    #: The active handed over cleanly: it stopped, announced so, and this standby holds everything it wrote.
    handover: bool = False
    #: This standby is connected to every broker of the cluster and the active's presence is offline on each: the
    #: active cannot be answering anyone (its last "unreplicated", if any, is on a broker this standby reads).
    gone_everywhere: bool = True
    #: How long (seconds) the witness majority has held so far (0: it just appeared or does not hold), and how long
    #: it must hold when the active is not seen gone everywhere: by then an active cut off from those nodes has
    #: stopped acknowledging alone (it needs a majority of Ready nodes, whose heartbeats time out in that time).
    majority_for: float = 0.0
    grace: float = 0.0


@dataclass(frozen=True)
class Decision:
    take_over: bool
    #: The term to take over with (view.term + 1) when take_over; else the current one.
    term: int
    #: Why (logged, and shown in this master's presence while it waits).
    reason: str
    #: A majority of the Ready nodes sees the active gone (whether or not the grace has passed).
    majority: bool = False


def plan_takeover(view: TakeoverView) -> Decision:
    """May this standby raise the term and become active? Only with everything acknowledged, and the active gone.

    "Everything acknowledged" is the active's own word: its retained flag names this standby as the peer holding
    every acknowledged write (the active publishes "unreplicated", and sees it back from the broker, before it
    acknowledges any write alone). "Gone" is the fleet's word: a majority of the Ready nodes report the active of
    this very term offline — or the active said so itself, handing over on a clean stop. When this standby cannot
    see the active offline on every broker (a partition), the majority must also have held for `grace`.
    """
    wait = Decision(take_over=False, term=view.term, reason="")
    if not view.active or view.active == view.me:
        return _why(wait, f"no active master is known to follow (term {view.term})")
    if view.flag is None or view.flag.term != view.term or view.flag.master_id != view.active:
        return _why(wait, f"no replication state of {view.active} for term {view.term}: this copy may miss writes")
    if view.flag.state is not Replication.REPLICATED or view.flag.peer != view.me:
        return _why(
            wait,
            f"{view.active} acknowledged writes without this copy ({view.flag.state.value} since seq {view.flag.seq})",
        )
    if view.handover and not view.active_online:
        return Decision(take_over=True, term=view.term + 1, reason=f"{view.active} handed over (term {view.term})")
    if view.active_online:
        return _why(wait, f"{view.active} is online (term {view.term})")
    ready = set(view.ready_nodes)
    if not ready:
        return _why(wait, "no Ready node to witness that the active is gone")
    newer = sorted(node for node, w in view.witnesses.items() if w.term > view.term)
    if newer:
        return _why(wait, f"node(s) {', '.join(newer)} accepted a term above {view.term}: this master is behind")
    gone = sorted(
        node
        for node in ready
        if (w := view.witnesses.get(node)) is not None
        and w.term == view.term
        and w.active == view.active
        and not w.active_online
    )
    if 2 * len(gone) <= len(ready):
        return _why(wait, f"{len(gone)} of {len(ready)} Ready node(s) see {view.active} gone; a majority is needed")
    seen = f"{len(gone)} of {len(ready)} Ready node(s) see {view.active} (term {view.term}) gone"
    if not view.gone_everywhere and view.majority_for < view.grace:
        reason = f"{seen}; not offline on every broker: waiting {view.grace:g}s for a cut-off active to stop"
        return Decision(take_over=False, term=view.term, reason=reason, majority=True)
    return Decision(take_over=True, term=view.term + 1, reason=seen, majority=True)


def _why(decision: Decision, reason: str) -> Decision:
    return Decision(take_over=decision.take_over, term=decision.term, reason=reason)


def must_step_down(term: int, seen: Iterable[int]) -> bool:
    """An active that has seen any higher term (a presence, a Will, a witness, a flag) is deposed."""
    return any(other > term for other in seen)


def start_role(configured: str, term: int, seen: Iterable[int], other_active_online: bool) -> str:
    """The role a master starts in: its configured one, unless another master holds a term this high or higher."""
    if must_step_down(term, seen) or other_active_online:
        return "standby"
    return configured


class Step(StrEnum):
    """What the standby does with a replication frame."""

    #: Records that follow on (a prefix already held is skipped).
    APPLY = "apply"
    #: Nothing new: acknowledge again what is held (QoS 1 delivers twice).
    DUPLICATE = "duplicate"
    #: Records or a beat beyond what is held: something was lost; ask for what follows the held seq.
    GAP = "gap"
    #: Another stream (an older term, or a restarted active): ask to follow the current one.
    FOREIGN = "foreign"
    #: A chunk of a snapshot to assemble and install.
    SNAPSHOT = "snapshot"


def classify(stream: str, applied: int, header: FrameHeader) -> Step:
    """What a frame is to a standby holding records up to `applied` of `stream` ("" after a start)."""
    if header.kind == "snapshot":
        return Step.SNAPSHOT
    if header.stream != stream:
        return Step.FOREIGN
    if header.kind == "beat":
        return Step.GAP if header.last > applied else Step.DUPLICATE
    if header.last <= applied:
        return Step.DUPLICATE
    if header.first > applied + 1:
        return Step.GAP
    return Step.APPLY
