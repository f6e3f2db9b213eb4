"""Pure ReadWriteOnce fencing: the lease file on the volume and what a node does after each read of it (no I/O).

The protocol (docs/storage.md, "ReadWriteOnce fencing"): a node writes `.edgekube-lease` in the volume's root and
renews it every `renew` seconds; it stops its pods once it has not renewed for `duration - margin` on its own
monotonic clock. Another node takes the lease when it is free (absent, released, or naming that node itself), or
once it has seen its content unchanged for `duration + margin` on its own clock. A taker first creates the marker
`.edgekube-lease.take-<digest of the content it replaces>` (an exclusive create: of several takers of the same
content one wins), reads the lease again (still that content, or it gives up), writes its own and reads it back.
A waiting node writes `.edgekube-lease.request`; a holder cut from the master (or no longer running a pod of the
volume) stops its pods and releases the lease to the requester, who takes it at once.

`step()` is one node's decision for one volume after one read; `taken()`, `written()` and `asked()` fold in what
the I/O it asked for did; `gate()` tells the agent's loop which pods may run. Times are the node's monotonic clock.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from edgekube.model.names import PodUID

LEASE_FILE = ".edgekube-lease"
REQUEST_FILE = ".edgekube-lease.request"
TAKE_PREFIX = ".edgekube-lease.take-"
#: The lease file's format version (a reader refuses to interpret another: it waits the content out instead).
FORMAT = 1


@dataclass(frozen=True)
class Timing:
    """Lease durations in seconds; `renew` and `margin` default to a quarter and a third of `duration`."""

    duration: float = 15.0
    renew: float = 0.0
    margin: float = 0.0
    #: How often a node that waits for a lease reads it again.
    poll: float = 1.0

    def __post_init__(self) -> None:
        if self.duration <= 0:
            raise ValueError("lease duration must be greater than 0")
        if self.renew <= 0:
            object.__setattr__(self, "renew", self.duration / 4)
        if self.margin <= 0:
            object.__setattr__(self, "margin", self.duration / 3)
        if self.renew + self.margin >= self.duration - self.margin:
            raise ValueError(
                f"lease renew ({self.renew:g}s) plus margin ({self.margin:g}s) must be less than duration minus "
                f"margin ({self.duration - self.margin:g}s): a holder must get one retry before it stops its pods"
            )

    @property
    def holds_for(self) -> float:
        """How long after the start of its last successful write a holder may keep its pods running."""
        return self.duration - self.margin

    def waits_for(self, lease_duration: float) -> float:
        """How long a content must be seen unchanged before another node takes it (the longer duration wins)."""
        return max(self.duration, lease_duration) + self.margin


@dataclass(frozen=True)
class Lease:
    """The content of `.edgekube-lease`: who holds it, the acquisition (`term`) and renewal (`counter`) numbers."""

    holder: str
    boot: str
    term: int
    counter: int
    duration: float
    pods: tuple[str, ...] = ()
    released: bool = False
    #: A released lease with `to` set goes to that node at once; anyone else waits it out (hand-over).
    to: str = ""

    def encode(self) -> bytes:
        body: dict[str, Any] = {
            "format": FORMAT,
            "holder": self.holder,
            "boot": self.boot,
            "term": self.term,
            "counter": self.counter,
            "duration": self.duration,
            "pods": list(self.pods),
        }
        if self.released:
            body["released"] = True
            body["to"] = self.to
        return json.dumps(body, sort_keys=True).encode() + b"\n"

    @classmethod
    def decode(cls, raw: bytes) -> Lease | None:
        """The lease, or None for content this version cannot read (torn, foreign, another format)."""
        try:
            body = json.loads(raw)
            if not isinstance(body, dict) or body.get("format") != FORMAT:
                return None
            return cls(
                holder=str(body["holder"]),
                boot=str(body["boot"]),
                term=int(body["term"]),
                counter=int(body["counter"]),
                duration=float(body["duration"]),
                pods=tuple(str(p) for p in body.get("pods", [])),
                released=bool(body.get("released", False)),
                to=str(body.get("to", "")),
            )
        except (ValueError, TypeError, KeyError):
            return None


@dataclass(frozen=True)
class Request:
    """The content of `.edgekube-lease.request`: a node waiting for the lease, for one of its pods."""

    node: str
    pod: str

    def encode(self) -> bytes:
        return json.dumps({"format": FORMAT, "node": self.node, "pod": self.pod}, sort_keys=True).encode() + b"\n"

    @classmethod
    def decode(cls, raw: bytes | None) -> Request | None:
        if not raw:
            return None
        try:
            body = json.loads(raw)
            if not isinstance(body, dict) or body.get("format") != FORMAT:
                return None
            return cls(node=str(body["node"]), pod=str(body["pod"]))
        except (ValueError, TypeError, KeyError):
            return None


def marker(expected: bytes | None) -> str:
    """The name of the marker that makes replacing `expected` (None: no lease file) exclusive."""
    digest = hashlib.sha256(b"absent" if expected is None else b"lease:" + expected).hexdigest()[:20]
    return TAKE_PREFIX + digest


# -- inputs -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Want:
    """How the node uses one volume: `pods` desired here (not finished), `running` present in Podman here."""

    volume: str  # the PersistentVolume's name, for messages
    pods: frozenset[str] = frozenset()
    running: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Read:
    """One read of the lease files: `ok` with their content (None: no such file), or the error."""

    ok: bool
    lease: bytes | None = None
    request: bytes | None = None
    error: str = ""


@dataclass(frozen=True)
class Holding:
    """The lease as this node holds it: what it last wrote, and when the write that succeeded last was started."""

    lease: Lease
    raw: bytes
    anchor: float


@dataclass(frozen=True)
class Memory:
    """What the worker remembers of one volume between reads (start: `Memory(since=now)`)."""

    since: float  # when this node started to care about the volume (the adoption grace counts from it)
    holding: Holding | None = None
    #: The foreign lease content being waited out, and since when it has been seen unchanged.
    seen: bytes | None = None
    seen_since: float | None = None
    asked: bytes | None = None  # the request this node last wrote
    lost: str = ""  # why this node last lost the lease (kept until it holds it again)
    taken_at: float | None = None  # when it last became the holder
    reads: int = 0
    #: The last lease content this node wrote as the holder: found unchanged later, nobody took it meanwhile.
    last_own: bytes | None = None
    #: Since when another node's take marker has been in the way (a taker that died halfway leaves it).
    busy_since: float | None = None


# -- outputs ----------------------------------------------------------------------------------------------------
class State(StrEnum):
    HELD = "Held"
    HANDING_OVER = "HandingOver"
    WAITING = "Waiting"
    LOST = "Lost"
    UNKNOWN = "Unknown"
    IDLE = "Idle"


@dataclass(frozen=True)
class Status:
    """What the loop needs about one volume: until when its pods may run, from when present pods must be stopped."""

    state: State
    volume: str
    #: Pods may be created and keep running until then (None: not now).
    usable_until: float | None = None
    #: From then on, pods of the volume present on this node are stopped (None: never on this status).
    fence_at: float | None = None
    holder: str = ""
    message: str = ""
    #: Why this node lost the lease (for the Fenced event), empty while it holds it.
    reason: str = ""

    def usable(self, now: float) -> bool:
        return self.usable_until is not None and now < self.usable_until

    def fences(self, now: float) -> bool:
        return self.fence_at is not None and now >= self.fence_at


@dataclass(frozen=True)
class Take:
    """Replace `expected` (None: no lease file) with `lease`: marker, check, write, read back."""

    expected: bytes | None
    lease: Lease
    #: Remove a marker left by a taker that has not finished for a whole wait (it died halfway).
    force: bool = False

    @property
    def marker(self) -> str:
        return marker(self.expected)


@dataclass(frozen=True)
class Write:
    """Write `lease` over this node's own (renewal or release); not started at or after `not_after`."""

    lease: Lease
    not_after: float


@dataclass(frozen=True)
class Ask:
    """Write the hand-over request."""

    request: Request


Io = Take | Write | Ask


@dataclass(frozen=True)
class Step:
    memory: Memory
    status: Status
    io: Io | None = None


@dataclass(frozen=True)
class Node:
    """Who this node is: its name and the agent's boot id (a restarted agent has a new one)."""

    name: str
    boot: str


def _free_in(seconds: float) -> str:
    return f"free in ≤ {max(math.ceil(seconds), 0)}s"


def _holder_of(lease: Lease | None, raw: bytes | None) -> str:
    if raw is None:
        return ""
    return lease.holder if lease is not None else "an unreadable lease"


def step(mem: Memory, read: Read, want: Want, now: float, *, node: Node, connected: bool, timing: Timing) -> Step:
    """One node's decision for one volume after reading its lease files at `now`; at most one I/O to do."""
    mem = replace(mem, reads=mem.reads + 1)
    if mem.holding is not None:
        return _as_holder(mem, mem.holding, read, want, now, node=node, connected=connected, timing=timing)
    return _as_other(mem, read, want, now, node=node, timing=timing)


def _lose(mem: Memory, want: Want, why: str, holder: str = "") -> Step:
    last = mem.holding.raw if mem.holding is not None else mem.last_own
    memory = replace(mem, holding=None, seen=None, seen_since=None, lost=why, taken_at=None, last_own=last)
    message = f"lost the ReadWriteOnce lease of volume {want.volume}: {why}"
    return Step(memory, Status(State.LOST, want.volume, fence_at=-math.inf, holder=holder, message=message, reason=why))


def _as_holder(
    mem: Memory, held: Holding, read: Read, want: Want, now: float, *, node: Node, connected: bool, timing: Timing
) -> Step:
    deadline = held.anchor + timing.holds_for
    if not read.ok:
        if now >= deadline:
            return _lose(mem, want, f"not renewed for {now - held.anchor:.1f}s: {read.error}")
        status = Status(State.HELD, want.volume, usable_until=deadline, fence_at=deadline, holder=node.name)
        return Step(mem, status)
    if read.lease != held.raw:
        other = Lease.decode(read.lease) if read.lease is not None else None
        if (
            other is not None
            and read.lease is not None
            and (other.holder, other.boot, other.term) == (node.name, node.boot, held.lease.term)
            and other.counter > held.lease.counter
        ):
            # Our own renewal whose answer was lost: it landed. Its start is unknown, so the old anchor stays.
            held = Holding(other, read.lease, held.anchor)
            mem = replace(mem, holding=held)
            return _as_holder(mem, held, read, want, now, node=node, connected=connected, timing=timing)
        if read.lease is None:
            why = "the lease file was removed"
        elif other is not None and other.holder != node.name:
            why = f"the lease is now held by {other.holder}"
        else:
            why = "the lease file was changed by someone else"
        return _lose(mem, want, why, holder=other.holder if other is not None else "")
    if now >= deadline:
        return _lose(mem, want, f"not renewed for {now - held.anchor:.1f}s")
    request = Request.decode(read.request)
    asker = request.node if request is not None and request.node != node.name else ""
    if not want.pods or (asker and not connected):
        # Hand over: stop the pods first; release once none is left (to the asker, who takes it at once).
        why = (
            f"handing the volume over to {asker} (this node is cut off from the master)"
            if want.pods
            else "no pod on this node uses the volume any more"
        )
        status = Status(State.HANDING_OVER, want.volume, fence_at=-math.inf, holder=node.name, message=why, reason=why)
        if not want.running:
            release = replace(held.lease, counter=held.lease.counter + 1, released=True, to=asker, pods=())
            return Step(mem, status, Write(release, not_after=deadline))
        return Step(mem, status, _renewal(held, want, now, deadline, timing))
    status = Status(State.HELD, want.volume, usable_until=deadline, fence_at=deadline, holder=node.name)
    return Step(mem, status, _renewal(held, want, now, deadline, timing))


def _renewal(held: Holding, want: Want, now: float, deadline: float, timing: Timing) -> Write | None:
    pods = tuple(sorted(want.pods)) or held.lease.pods
    if now < held.anchor + timing.renew and pods == held.lease.pods:
        return None
    return Write(replace(held.lease, counter=held.lease.counter + 1, pods=pods), not_after=deadline)


def _as_other(mem: Memory, read: Read, want: Want, now: float, *, node: Node, timing: Timing) -> Step:
    adopting_until = mem.since + timing.holds_for
    if not want.pods:
        return Step(replace(mem, seen=None, seen_since=None), Status(State.IDLE, want.volume))
    if not read.ok:
        message = f"cannot read the ReadWriteOnce lease of volume {want.volume}: {read.error}"
        state = State.LOST if mem.lost else State.UNKNOWN
        return Step(mem, Status(state, want.volume, fence_at=adopting_until, message=message, reason=mem.lost))
    lease = Lease.decode(read.lease) if read.lease is not None else None
    if read.lease != mem.seen or mem.seen_since is None:
        mem = replace(mem, seen=read.lease, seen_since=now)
    assert mem.seen_since is not None
    pods = tuple(sorted(want.pods))
    term = lease.term + 1 if lease is not None else 1
    mine = Lease(holder=node.name, boot=node.boot, term=term, counter=0, duration=timing.duration, pods=pods)
    holder = _holder_of(lease, read.lease)
    free = (
        read.lease is None
        or (lease is not None and lease.released and lease.to in ("", node.name))
        or (lease is not None and not lease.released and _ours(lease, read.lease, mem, node))
    )
    waited = now - mem.seen_since
    wait_for = timing.waits_for(lease.duration if lease is not None else timing.duration)
    if free or waited >= wait_for:
        message = f"acquiring the ReadWriteOnce lease of volume {want.volume}"
        # Our own lease (a restarted agent, or after a self-fence): pods left running are not stopped meanwhile.
        own = lease is not None and not lease.released and _ours(lease, read.lease, mem, node)
        fence_at = adopting_until if own or mem.reads <= 1 else -math.inf
        status = Status(State.WAITING, want.volume, fence_at=fence_at, holder=holder, message=message, reason=mem.lost)
        force = mem.busy_since is not None and now - mem.busy_since >= wait_for
        return Step(mem, status, Take(read.lease, mine, force=force))
    message = (
        f"waiting for the ReadWriteOnce lease of volume {want.volume} held by {holder} ({_free_in(wait_for - waited)})"
    )
    if lease is not None and lease.released:
        message = (
            f"waiting for the ReadWriteOnce lease of volume {want.volume}, handed over to {lease.to} "
            f"({_free_in(wait_for - waited)})"
        )
    why = mem.lost or f"the ReadWriteOnce lease of volume {want.volume} is held by {holder}"
    status = Status(State.WAITING, want.volume, fence_at=-math.inf, holder=holder, message=message, reason=why)
    request = Request(node.name, sorted(want.pods)[0])
    if read.request != request.encode() and not (lease is not None and lease.released):
        return Step(mem, status, Ask(request))
    return Step(mem, status)


def _ours(lease: Lease, raw: bytes | None, mem: Memory, node: Node) -> bool:
    """A lease of this node nobody else can have taken: a former agent's, or the very content this agent wrote last.

    (A lease naming this agent that it never saw succeed — a take that failed halfway, a renewal whose answer was
    lost — is waited out like anyone's.)
    """
    if lease.holder != node.name:
        return False
    return lease.boot != node.boot or (raw is not None and raw == mem.last_own)


# -- what the I/O did -------------------------------------------------------------------------------------------
def taken(mem: Memory, take: Take, outcome: str, started: float, now: float) -> Memory:
    """After a Take: the holder from `started` (when its write began) if it `won`; else waiting again.

    `busy` (another taker's marker is there) keeps the wait, so the next read tries again and a marker left by a
    dead taker is removed after a whole wait; `changed` or `failed` start the wait over from the next read.
    """
    if outcome == "won":
        raw = take.lease.encode()
        return replace(
            mem, holding=Holding(take.lease, raw, started), seen=None, seen_since=None, lost="", taken_at=started,
            asked=None, busy_since=None, last_own=raw,
        )  # fmt: skip
    if outcome == "busy":
        return replace(mem, busy_since=mem.busy_since if mem.busy_since is not None else now)
    return replace(mem, seen=None, seen_since=None, busy_since=None)


def written(mem: Memory, write: Write, ok: bool, started: float) -> Memory:
    """After a renewal (its start counts, so a write that lands late gives no extra time) or a release."""
    if mem.holding is None:
        return mem
    if write.lease.released:
        # Released (or, failing that, stopped renewing: it ends by itself): either way no longer ours.
        return replace(mem, holding=None, seen=None, seen_since=None, lost="", taken_at=None)
    if not ok:
        return mem
    raw = write.lease.encode()
    return replace(mem, holding=Holding(write.lease, raw, started), last_own=raw)


def asked(mem: Memory, ask: Ask, ok: bool) -> Memory:
    return replace(mem, asked=ask.request.encode()) if ok else mem


def due(mem: Memory, status: Status, now: float, timing: Timing) -> float:
    """When to read this volume's lease files again."""
    if mem.holding is not None and status.state is State.HELD:
        renew_at = mem.holding.anchor + timing.renew
        # Overdue: the last renewal failed; try again after a poll interval, not in a busy loop.
        return renew_at if renew_at > now else now + min(timing.poll, timing.renew)
    return now + timing.poll


# -- the loop's side ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Gate:
    """For the reconcile pass: pods not to create now (with the status message), and present pods to stop now."""

    blocked: dict[PodUID, str] = field(default_factory=dict)
    fence: dict[PodUID, str] = field(default_factory=dict)
    #: The earliest future moment at which the answer may change without a new read (a lease running out).
    next_due: float | None = None


def gate(users: Mapping[PodUID, tuple[str, ...]], statuses: Mapping[str, Status], now: float) -> Gate:
    """Which pods may run: each pod's exclusive volumes (by key) against the latest status of each volume.

    A volume without a status yet blocks creation but stops nothing (the first read is under way).
    """
    blocked: dict[PodUID, str] = {}
    fence: dict[PodUID, str] = {}
    dues: list[float] = []
    for uid, keys in users.items():
        for key in keys:
            status = statuses.get(key)
            if status is None:
                blocked.setdefault(uid, "waiting for the ReadWriteOnce lease of its volume")
                continue
            for moment in (status.usable_until, status.fence_at):
                if moment is not None and moment > now:
                    dues.append(moment)
            if status.usable(now):
                continue
            blocked.setdefault(uid, status.message or f"waiting for the ReadWriteOnce lease of volume {status.volume}")
            if status.fences(now):
                reason = status.reason or status.message or "the lease ran out"
                if status.state is State.HELD:
                    reason = f"the ReadWriteOnce lease of volume {status.volume} was not renewed in time"
                fence.setdefault(uid, f"volume {status.volume}: {reason}")
    return Gate(blocked, fence, min(dues) if dues else None)
