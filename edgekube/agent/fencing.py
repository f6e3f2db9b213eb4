"""ReadWriteOnce fencing for the agent: a lease worker per volume (NFS I/O off the loop) and the loop's gate on pods.

The decisions are fencing_plan's; this module reads and writes the lease files (through `LeaseFiles`, on NFS an
`NfsClient` of the agent's own, not the pod's mount), runs one thread per volume so a dead server delays no other
volume, and turns the plan's statuses into what the reconcile pass needs: pods not to create, pods to stop, events.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Protocol

from edgekube.agent.events import EventRecorder, PodRef
from edgekube.agent.fencing_keeper import Order
from edgekube.agent.fencing_plan import (
    LEASE_FILE,
    REQUEST_FILE,
    Ask,
    Gate,
    Memory,
    Node,
    Read,
    State,
    Status,
    Take,
    Timing,
    Want,
    Write,
    asked,
    due,
    gate,
    step,
    taken,
    written,
)
from edgekube.agent.reconcile import DesiredPod
from edgekube.model.errors import StorageError
from edgekube.model.names import PodUID
from edgekube.nfs.target import NfsTarget

log = logging.getLogger(__name__)


class LeaseFiles(Protocol):
    """The few file operations the lease needs, in the volume's root directory; each raises StorageError."""

    def read(self, name: str) -> bytes | None:
        """The file's bytes, None when there is no such file."""
        ...

    def write(self, name: str, data: bytes) -> None:
        """Replace the file atomically (a temporary file renamed over it)."""
        ...

    def create_marker(self, name: str) -> bool:
        """Create `name` exclusively (a directory); False when it exists already."""
        ...

    def remove_marker(self, name: str) -> None: ...

    def remove(self, name: str) -> None:
        """Remove the file; no error when it is absent."""
        ...

    def close(self) -> None: ...


class NfsLeaseFiles:
    """LeaseFiles on an NFS export through edgekube's userspace client (works whatever mounts the pods use)."""

    def __init__(self, target: NfsTarget, *, timeout: float) -> None:
        from edgekube.nfs.client import NfsClient  # noqa: PLC0415 - libnfs is loaded only when a volume needs it

        self.client = NfsClient(target, timeout=timeout)

    def read(self, name: str) -> bytes | None:
        try:
            return self.client.read_bytes(name)
        except StorageError as exc:
            if getattr(exc, "errno", None) == errno.ENOENT:
                return None
            raise

    def write(self, name: str, data: bytes) -> None:
        self.client.write_bytes(name, data)

    def create_marker(self, name: str) -> bool:
        try:
            self.client.mkdir(name)
        except StorageError as exc:
            if getattr(exc, "errno", None) == errno.EEXIST:
                return False
            raise
        return True

    def remove_marker(self, name: str) -> None:
        try:
            self.client.rmdir(name)
        except StorageError as exc:
            if getattr(exc, "errno", None) != errno.ENOENT:
                raise

    def remove(self, name: str) -> None:
        try:
            self.client.remove(name)
        except StorageError as exc:
            if getattr(exc, "errno", None) != errno.ENOENT:
                raise

    def close(self) -> None:
        self.client.close()


class DirLeaseFiles:
    """LeaseFiles on a local directory (tests, and the same protocol on any shared filesystem)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _wrap(self, what: str, name: str, exc: OSError) -> StorageError:
        error = StorageError(f"{what} {self.root / name}: {exc.strerror or exc}")
        error.errno = exc.errno
        return error

    def read(self, name: str) -> bytes | None:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._wrap("read", name, exc) from None

    def write(self, name: str, data: bytes) -> None:
        tmp = self.root / f".{name}.tmp-{threading.get_ident()}"
        try:
            tmp.write_bytes(data)
            tmp.replace(self.root / name)
        except OSError as exc:
            raise self._wrap("write", name, exc) from None

    def create_marker(self, name: str) -> bool:
        try:
            (self.root / name).mkdir()
        except FileExistsError:
            return False
        except OSError as exc:
            raise self._wrap("mkdir", name, exc) from None
        return True

    def remove_marker(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.root / name).rmdir()

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.root / name).unlink()

    def close(self) -> None:
        pass


class Outcome(Enum):
    WON = "won"
    CHANGED = "changed"  # the lease changed before this node could write: someone else was faster
    BUSY = "busy"  # another node is taking it (its marker exists)
    FAILED = "failed"


def take(files: LeaseFiles, io: Take, clock: Callable[[], float]) -> tuple[Outcome, float]:
    """Replace the lease `io.expected` by `io.lease`, exclusively; (outcome, when the lease write began)."""
    if io.force:
        files.remove_marker(io.marker)
    if not files.create_marker(io.marker):
        return Outcome.BUSY, 0.0
    try:
        if files.read(LEASE_FILE) != io.expected:
            return Outcome.CHANGED, 0.0
        started = clock()
        data = io.lease.encode()
        files.write(LEASE_FILE, data)
        if files.read(LEASE_FILE) != data:
            return Outcome.CHANGED, 0.0
        # The waiting request is served (or, if it is another node's, that node writes it again).
        with contextlib.suppress(StorageError):
            files.remove(REQUEST_FILE)
        return Outcome.WON, started
    finally:
        with contextlib.suppress(StorageError):
            files.remove_marker(io.marker)


@dataclass(frozen=True)
class Volume:
    """One exclusive volume as the agent keys it: the NFS directory (two volumes naming one directory share it)."""

    key: str
    name: str
    target: NfsTarget


def exclusive_volumes(d: DesiredPod) -> list[Volume]:
    """The pod's volumes that need the lease: ReadWriteOnce(Pod), written, on NFS (ResolvedVolume.exclusive)."""
    out = []
    for resolved in d.volumes.values():
        if not resolved.exclusive() or resolved.nfs is None:
            continue
        try:
            target = NfsTarget.from_source(resolved.nfs.server, resolved.nfs.path, resolved.mount_options)
        except StorageError as exc:
            log.warning("volume %s: %s", resolved.volume_name, exc)
            continue
        out.append(Volume(target.source(), resolved.volume_name, target))
    return out


class VolumeWorker:
    """The lease of one volume: reads, decides (fencing_plan.step), writes, on a thread of its own."""

    def __init__(
        self,
        volume: Volume,
        files: LeaseFiles,
        *,
        node: Node,
        timing: Timing,
        clock: Callable[[], float],
        on_change: Callable[[], None],
        on_order: Callable[[Order | None], None] = lambda order: None,
    ) -> None:
        self.volume = volume
        self.on_order = on_order
        self._order: Order | None = None
        self.files = files
        self.node = node
        self.timing = timing
        self.clock = clock
        self.on_change = on_change
        self._lock = threading.Lock()
        self._poke = threading.Event()
        self._stop = threading.Event()
        self._want = Want(volume.name)
        self._connected = True
        self._failing = 0  # reads failed in a row
        self.memory = Memory(since=clock())
        self.status = Status(State.UNKNOWN, volume.name, fence_at=self.memory.since + timing.holds_for)
        self._thread = threading.Thread(target=self._run, name=f"lease-{volume.name[:20]}", daemon=True)

    def start(self) -> VolumeWorker:
        self._thread.start()
        return self

    def update(self, want: Want, connected: bool) -> None:
        with self._lock:
            changed = want != self._want or connected != self._connected
            self._want, self._connected = want, connected
        if changed:
            self._poke.set()

    def current(self) -> Status:
        with self._lock:
            return self.status

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._poke.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _read(self) -> Read:
        try:
            lease = self.files.read(LEASE_FILE)
            request = self.files.read(REQUEST_FILE)
        except StorageError as exc:
            return Read(ok=False, error=str(exc))
        return Read(ok=True, lease=lease, request=request)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                next_at = self._once()
                if next_at is None:
                    return  # nothing held, nothing wanted
                self._poke.wait(max(next_at - self.clock(), 0.0))
                self._poke.clear()
        except Exception:
            log.exception("lease worker of volume %s failed", self.volume.name)
        finally:
            with contextlib.suppress(Exception):
                self.files.close()
            if self.memory.holding is None:
                self._tell_keeper()

    def _tell_keeper(self) -> None:
        """The fence keeper's order: stop the present pods at this node's deadline (none: nothing held or present)."""
        with self._lock:
            held, present = self.memory.holding, self._want.running
        order = None
        if held is not None and present:
            order = Order(self.volume.name, held.anchor + self.timing.holds_for, tuple(sorted(present)))
        if order != self._order:
            try:
                self.on_order(order)
                self._order = order
            except OSError as exc:
                log.error("cannot write the fence keeper's order for volume %s: %s", self.volume.name, exc)

    def _once(self) -> float | None:
        read = self._read()
        if not read.ok and not self._failing:
            log.warning("cannot read the lease of volume %s: %s", self.volume.name, read.error)
        elif read.ok and self._failing:
            log.info(
                "the lease of volume %s is readable again after %d failed read(s)", self.volume.name, self._failing
            )
        self._failing = 0 if read.ok else self._failing + 1
        with self._lock:
            want, connected = self._want, self._connected
            result = step(
                self.memory, read, want, self.clock(), node=self.node, connected=connected, timing=self.timing
            )
            before, self.memory, self.status = self.status, result.memory, result.status
        if before.state is not result.status.state or before.message != result.status.message:
            self._log(before, result.status)
        self.on_change()
        io = result.io
        if io is not None:
            self._do(io)
            self._tell_keeper()
            self.on_change()
            if self.memory.holding is not None or isinstance(io, Write):
                return self.clock()  # read again at once: a take or release shows in the next status
            return self.clock() + self.timing.poll  # a take that lost, or a request: no busy loop on the server
        self._tell_keeper()
        if result.status.state is State.IDLE and self.memory.holding is None:
            return None
        return due(self.memory, result.status, self.clock(), self.timing)

    def _do(self, io: Take | Write | Ask) -> None:
        if isinstance(io, Take):
            try:
                outcome, started = take(self.files, io, self.clock)
            except StorageError as exc:
                log.warning("taking the lease of volume %s failed: %s", self.volume.name, exc)
                outcome, started = Outcome.FAILED, 0.0
            with self._lock:
                self.memory = taken(self.memory, io, outcome.value, started, self.clock())
            if outcome is Outcome.WON:
                log.info("holding the ReadWriteOnce lease of volume %s (term %d)", self.volume.name, io.lease.term)
        elif isinstance(io, Write):
            started = self.clock()
            ok = started < io.not_after
            if ok:
                try:
                    self.files.write(LEASE_FILE, io.lease.encode())
                except StorageError as exc:
                    log.warning("renewing the lease of volume %s failed: %s", self.volume.name, exc)
                    ok = False
            with self._lock:
                self.memory = written(self.memory, io, ok, started)
            if io.lease.released:
                log.info(
                    "released the lease of volume %s%s", self.volume.name, f" to {io.lease.to}" if io.lease.to else ""
                )
        else:
            try:
                self.files.write(REQUEST_FILE, io.request.encode())
                ok = True
            except StorageError as exc:
                log.warning("asking for the lease of volume %s failed: %s", self.volume.name, exc)
                ok = False
            with self._lock:
                self.memory = asked(self.memory, io, ok)

    def _log(self, before: Status, after: Status) -> None:
        level = logging.WARNING if after.state in (State.LOST, State.HANDING_OVER) else logging.INFO
        log.log(level, "volume %s lease: %s -> %s %s", self.volume.name, before.state.value, after.state.value,
                after.message)  # fmt: skip


@dataclass(frozen=True)
class _Shown:
    """What the agent last told about one pod and volume (events are recorded on changes only)."""

    blocked: str = ""  # holder named in the last FailedAttachVolume ("" = not blocked)
    fenced: bool = False
    attached: bool = False  # SuccessfulAttachVolume told since the last block or fence


class Fencing:
    """The agent's side: keeps a VolumeWorker per exclusive volume in use and answers the reconcile pass."""

    def __init__(
        self,
        node: Node,
        timing: Timing,
        events: EventRecorder,
        *,
        clock: Callable[[], float] = time.monotonic,
        wake: Callable[[], None] = lambda: None,
        files: Callable[[NfsTarget], LeaseFiles] | None = None,
        io_timeout: float | None = None,
        keeper: Callable[[str, Order | None], None] | None = None,
        startup_grace: float = 5.0,
    ) -> None:
        """`keeper(key, order)` hands the fence keeper each volume's order (None: withdrawn); None: no keeper.

        For `startup_grace` seconds the agent counts as connected to the master even before its first CONNACK,
        so a restarted agent does not hand its volume to a waiting node (keeping is the safe side).
        """
        self.node = node
        self.timing = timing
        self.events = events
        self.clock = clock
        self._wake = wake
        #: Safety needs every lease I/O to end (or fail) well within the margin: see docs/storage.md.
        timeout = io_timeout if io_timeout is not None else max(1.0, math.floor(timing.margin / 2))
        self._files = files or (lambda target: NfsLeaseFiles(target, timeout=timeout))
        self._keeper = keeper
        self._connected_until = clock() + startup_grace
        self._workers: dict[str, VolumeWorker] = {}
        self._shown: dict[tuple[PodUID, str], _Shown] = {}
        #: The exclusive volumes of every pod seen desired here, kept while the pod is still present: a pod no
        #: longer desired may still run (its removal takes a grace period), and the lease must outlive it.
        self._known: dict[PodUID, tuple[Volume, ...]] = {}
        self._lock = threading.Lock()

    def statuses(self) -> dict[str, Status]:
        with self._lock:
            return {key: w.current() for key, w in self._workers.items()}

    def sync(
        self,
        desired: Iterable[DesiredPod],
        present: Iterable[PodUID],
        *,
        finished: Iterable[PodUID] = (),
        connected: bool,
    ) -> Gate:
        """Tell each volume's worker what this node wants of it; the gate for this pass (cheap: no I/O here)."""
        connected = connected or self.clock() < self._connected_until
        present_set, finished_set = set(present), set(finished)
        users: dict[PodUID, tuple[str, ...]] = {}
        volumes: dict[str, Volume] = {}
        pods: dict[str, set[str]] = {}
        running: dict[str, set[str]] = {}
        refs: dict[PodUID, PodRef] = {}
        wanted: set[PodUID] = set()
        for d in desired:
            wanted.add(d.uid)
            mine = exclusive_volumes(d)
            if not mine:
                continue
            self._known[d.uid] = tuple(mine)
            refs[d.uid] = PodRef(d.pod.metadata.namespace, d.pod.metadata.name, d.uid)
            for v in mine:
                volumes.setdefault(v.key, v)
                pods.setdefault(v.key, set())
                if d.uid not in finished_set:
                    pods[v.key].add(d.uid)
            if d.uid not in finished_set:
                users[d.uid] = tuple(sorted({v.key for v in mine}))
        for uid in [u for u in self._known if u not in wanted and u not in present_set]:
            del self._known[uid]
        for uid, known in self._known.items():
            if uid in present_set:
                for v in known:
                    volumes.setdefault(v.key, v)
                    running.setdefault(v.key, set()).add(uid)
        with self._lock:
            for key, worker in list(self._workers.items()):
                if worker.done:
                    del self._workers[key]
            for key, volume in volumes.items():
                if key not in self._workers:
                    self._workers[key] = VolumeWorker(
                        volume, self._files(volume.target), node=self.node, timing=self.timing, clock=self.clock,
                        on_change=self._wake, on_order=self._order_for(key),
                    ).start()  # fmt: skip
            for key, worker in self._workers.items():
                # A volume no pod here wants any more: its worker releases the lease once nothing runs, then ends.
                # Pods gone from the desired state are not in `present` as users of it: the reconcile removes them.
                name = worker.volume.name
                worker.update(Want(name, frozenset(pods.get(key, ())), frozenset(running.get(key, ()))), connected)
            statuses = {key: w.current() for key, w in self._workers.items()}
        result = gate(users, statuses, self.clock())
        # Only a pod present here can be stopped (and told so); the others are merely not created.
        result = replace(result, fence={uid: why for uid, why in result.fence.items() if uid in present_set})
        self._tell(users, statuses, result, refs)
        return result

    def _tell(
        self,
        users: Mapping[PodUID, tuple[str, ...]],
        statuses: Mapping[str, Status],
        result: Gate,
        refs: Mapping[PodUID, PodRef],
    ) -> None:
        """Events on changes: FailedAttachVolume (Multi-Attach), Fenced, SuccessfulAttachVolume."""
        seen: set[tuple[PodUID, str]] = set()
        for uid, keys in users.items():
            ref = refs[uid]
            for key in keys:
                seen.add((uid, key))
                status = statuses.get(key)
                shown = self._shown.get((uid, key), _Shown())
                if status is None:
                    continue
                volume = status.volume
                now_usable = uid not in result.blocked or status.usable(self.clock())
                if uid in result.fence and not shown.fenced:
                    self.events.record(ref, "Fenced", f"Stopping pod: {result.fence[uid]}", "Warning")
                    shown = _Shown(blocked=shown.blocked, fenced=True)
                if now_usable and status.state is State.HELD:
                    if not shown.attached:
                        self.events.record(ref, "SuccessfulAttachVolume",
                                           f'AttachVolume.Attach succeeded for volume "{volume}"')  # fmt: skip
                    shown = _Shown(attached=True)
                elif (
                    status.state is State.WAITING
                    and status.holder not in ("", self.node.name)
                    and shown.blocked != status.holder
                ):
                    self.events.record(
                        ref, "FailedAttachVolume",
                        f'Multi-Attach error for volume "{volume}": the ReadWriteOnce lease is held by node '
                        f"{status.holder}; waiting until it is released or runs out",
                        "Warning",
                    )  # fmt: skip
                    shown = _Shown(blocked=status.holder, fenced=shown.fenced)
                self._shown[(uid, key)] = shown
        for gone in [k for k in self._shown if k not in seen]:
            del self._shown[gone]

    def _order_for(self, key: str) -> Callable[[Order | None], None]:
        keeper = self._keeper
        if keeper is None:
            return lambda order: None
        return lambda order: keeper(key, order)

    def stop(self) -> None:
        """Stop the workers; leases are not released (the pods keep running, a restarted agent takes them again)."""
        with self._lock:
            workers = list(self._workers.values())
            self._workers.clear()
        for worker in workers:
            worker.stop()
