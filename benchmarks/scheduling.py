"""Benchmark: pods/s from apply to bound, dispatched and Running on simulated nodes; master RSS; bytes per change."""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere: tests.support

from benchmarks.store_writes import MEMORY_FILESYSTEMS, WARMUP, Worker, filesystem_type, nearest_rank, scratch
from edgekube.bus import topics
from edgekube.local.broker import Mosquitto
from edgekube.model.errors import BusError
from edgekube.model.wire import MAX_PAYLOAD_BYTES, ApiRequest, ApiResponse, Verb
from tests.support.cluster import ApiClient
from tests.support.simnodes import SimNodes

USAGE = """\
Run: .venv/bin/python benchmarks/scheduling.py [--quick] [--only rc|list] [--dir /path/on/the/sd/card]

Each run starts its own Mosquitto, the master as a subprocess (`python -m edgekube.main master`: its RSS and disk
writes are its own, from /proc/<pid>/status and /proc/<pid>/io) and simulated nodes in this process
(tests/support/simnodes.py: every node on one MQTT connection, no Podman, pods Running as soon as they arrive).
Variants: `rc` applies ReplicationControllers (one apply request), `list` applies bare pods as `kind: List`
manifests in chunks. Times run from the first apply request to (a) every pod bound (spec.nodeName, by API list),
(b) every pod in a desired state the sim nodes received (measured on the sim side) and (c) every pod Running.
pods/s = pods / time to dispatched. KiB/chg = the master's write_bytes delta over the run / the store writes in
it (the store-wide resourceVersion delta): what the master wrote, group commits and journal compaction included.

stock/ek compares like with like, as benchmarks/store_writes.py does: stock TinyDB (JSONStorage, fsync per
write) and edgekube's TinyStateStore (durable journal) each hold as many ~1 KiB Pods as the scenario has pods,
each in its own worker process (no master, broker or simulated node in it), and make one durable change per
trial, trials interleaved with the order alternating (--baseline-trials, default 20). "stock KiB" and "ek KiB"
are the p50 bytes written per durable change; stock/ek is their ratio.
"""

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "default"
#: Pods per label group polled with one API list (keeps every list answer far below the 1 MiB payload limit).
GROUP_SIZE = 250
#: Bare pods per `kind: List` apply request (about 0.4 MB of JSON).
CHUNK_SIZE = 1000
CONTAINER: dict[str, Any] = {
    "name": "app",
    "image": "registry.local/bench/app:1",
    "command": ["sleep", "infinity"],
    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
}
GOAL_PODS_PER_S = 500.0
GOAL_RSS_MB_AT_1000 = 80.0
GOAL_KIB_PER_CHANGE = 16.0
PR_SET_PDEATHSIG = 1
#: Fewer trials than this give no p95 worth printing.
MIN_TRIALS = 20


# -- workload ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scenario:
    pods: int
    nodes: int
    controllers: int  # the rc variant: pods / controllers replicas each
    variant: str  # "rc" | "list"

    @property
    def label(self) -> str:
        return f"{self.variant}-{self.pods}x{self.nodes}"


@dataclass
class Group:
    """Pods listed with one selector; `items` is the last list answer."""

    selector: str
    expected: int
    items: list[dict[str, Any]] = field(default_factory=list)


def rc_object(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"app": name},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [CONTAINER]}},
        },
    }


def pod_object(number: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"bench-{number:05d}",
            "namespace": NAMESPACE,
            "labels": {"app": "bench-list", "group": f"g{number // GROUP_SIZE:03d}"},
        },
        "spec": {"containers": [CONTAINER]},
    }


def as_list(items: Sequence[dict[str, Any]]) -> str:
    text = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(items)}, separators=(",", ":"))
    size = len(ApiRequest(verb=Verb.APPLY, manifest=text).encode())
    assert size < MAX_PAYLOAD_BYTES, f"apply request of {size} bytes exceeds {MAX_PAYLOAD_BYTES}"
    return text


def workload(sc: Scenario) -> tuple[list[str], list[Group]]:
    """The apply requests' manifests and the label groups to poll."""
    if sc.variant == "rc":
        sizes = [sc.pods // sc.controllers + (1 if i < sc.pods % sc.controllers else 0) for i in range(sc.controllers)]
        names = [f"bench-rc-{i:03d}" for i in range(sc.controllers)]
        rcs = [rc_object(n, r) for n, r in zip(names, sizes, strict=True)]
        return [as_list(rcs)], [Group(f"app={n}", r) for n, r in zip(names, sizes, strict=True)]
    pods = [pod_object(i) for i in range(sc.pods)]
    manifests = [as_list(pods[i : i + CHUNK_SIZE]) for i in range(0, sc.pods, CHUNK_SIZE)]
    groups = [
        Group(f"app=bench-list,group=g{g:03d}", min(GROUP_SIZE, sc.pods - g * GROUP_SIZE))
        for g in range((sc.pods + GROUP_SIZE - 1) // GROUP_SIZE)
    ]
    return manifests, groups


# -- the master as a process ----------------------------------------------------------------------------------
_LIBC = ctypes.CDLL(None, use_errno=True)  # resolved before any fork: the child only makes one call


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the benchmark dies, even by SIGKILL (no orphaned master)."""
    _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class MasterProcess:
    """`python -m edgekube.main master` with its log in a file; counters from /proc/<pid>."""

    def __init__(self, port: int, data_dir: Path, log_path: Path, node_timeout: float) -> None:
        self.log_path = log_path
        self.argv = [
            sys.executable,
            "-m",
            "edgekube.main",
            "master",
            "--mqtt-port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--node-timeout",
            str(node_timeout),
        ]
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MasterProcess:
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=_die_with_parent,  # noqa: PLW1509  # one prctl call, no lock taken in the child
            )
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    @property
    def pid(self) -> int:
        assert self._proc is not None
        if self._proc.poll() is not None:
            raise RuntimeError(f"the master exited ({self._proc.returncode}); log:\n{self.log_tail()}")
        return self._proc.pid

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def _proc_fields(self, name: str) -> dict[str, str]:
        text = Path(f"/proc/{self.pid}/{name}").read_text()
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def io(self) -> tuple[int, int]:
        """(wchar, write_bytes): bytes handed to write(), bytes dirtied for the block device."""
        fields = self._proc_fields("io")
        return int(fields["wchar"]), int(fields["write_bytes"])

    def memory_mb(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) in MB."""
        fields = self._proc_fields("status")
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

    def cpu_seconds(self) -> float:
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        utime, stime = stat.rsplit(")", 1)[1].split()[11:13]
        return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")


# -- heartbeats as the broker saw them --------------------------------------------------------------------------
class HeartbeatWatch:
    """`mosquitto_sub` (a separate C process, so not slowed by this one) logs when each heartbeat reached the broker.

    Tells the harness' fault from the master's: a node the master declares NotReady while its heartbeats reached
    the broker on time was misjudged; a gap in what the broker saw means the simulated node was late.
    """

    def __init__(self, port: int, path: Path) -> None:
        self.path = path
        self.argv = [
            "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", f"{topics.NODES}/+/heartbeat", "-F", "%U %t",
        ]  # fmt: skip
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> HeartbeatWatch:
        if shutil.which("mosquitto_sub"):
            with self.path.open("wb") as out:
                self._proc = subprocess.Popen(
                    self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.DEVNULL
                )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)

    def gaps(self, since: float, until: float) -> list[float]:
        """Every node's longest silence (seconds) between `since` and `until` (unix time); [] without the tool."""
        last: dict[str, float] = {}
        worst: dict[str, float] = {}
        if self._proc is None or not self.path.exists():
            return []
        for line in self.path.read_text(errors="replace").splitlines():
            stamp, _, topic = line.partition(" ")
            try:
                moment = float(stamp)
            except ValueError:
                continue
            if moment < since or moment > until:
                continue
            previous = last.get(topic, since)
            worst[topic] = max(worst.get(topic, 0.0), moment - previous)
            last[topic] = moment
        for topic, moment in last.items():
            worst[topic] = max(worst[topic], until - moment)
        return sorted(worst.values(), reverse=True)


def dropped_for(broker_log: Path) -> list[str]:
    """Clients Mosquitto logged "Outgoing messages are being dropped for client X" about."""
    marker = "Outgoing messages are being dropped for client "
    with contextlib.suppress(OSError):
        lines = broker_log.read_text(errors="replace").splitlines()
        return sorted({line.split(marker, 1)[1].rstrip(".") for line in lines if marker in line})
    return []


# -- waiting ----------------------------------------------------------------------------------------------------
class Abort(Exception):
    """The run cannot finish: the master died, or it evicted bare pods, which nothing recreates."""


@dataclass
class Guard:
    """Every wait checks it: the run's deadline, the master alive, and evictions in the master's log."""

    deadline: float
    master: MasterProcess
    bare_pods: bool
    offset: int = 0
    evicted: int = 0
    #: API requests that got no answer (e.g. dropped by a full broker queue) and were sent again.
    lost: int = 0

    def remaining(self) -> float:
        return max(1.0, self.deadline - time.monotonic())

    def call(self, client: ApiClient, req: ApiRequest, what: str) -> ApiResponse:
        """The request, sent again when no answer comes within a minute (every verb used here is idempotent)."""
        while True:
            try:
                return client.call(req, timeout=min(60.0, self.remaining()))
            except BusError:
                self.lost += 1
                self.check(what)

    def objects(self, client: ApiClient, kind: str, selector: str | None = None) -> list[dict[str, Any]]:
        resp = self.call(client, ApiRequest(verb=Verb.LIST, kind=kind, selector=selector), f"list {kind} {selector}")
        assert resp.ok, resp.error
        return resp.items or []

    def check(self, what: str) -> None:
        try:
            self.master.pid  # noqa: B018  # raises if the master exited
        except RuntimeError as exc:
            raise Abort(str(exc)) from None
        with self.master.log_path.open("rb") as log:
            log.seek(self.offset)
            chunk = log.read()
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self.offset += len(complete)
        self.evicted += complete.count(b"evicted pod ")
        if self.bare_pods and self.evicted:
            raise Abort(f"the master evicted {self.evicted} bare pod(s), which nothing recreates, waiting for {what}")
        if time.monotonic() > self.deadline:
            raise TimeoutError(f"timed out waiting for {what}")


#: What ends a run with a FAILED row instead of ending the benchmark.
FAILURES = (TimeoutError, BusError, AssertionError, Abort)


def wait_until(what: str, check: Callable[[], object], guard: Guard, interval: float = 0.01) -> None:
    while not check():
        guard.check(what)
        time.sleep(interval)


def connect(port: int, master: MasterProcess, deadline: float) -> ApiClient:
    """An API client once the master answers."""
    client = ApiClient(port)
    try:
        while time.monotonic() < deadline:
            master.pid  # noqa: B018  # raises if the master died
            with contextlib.suppress(BusError):
                if client.call(ApiRequest(verb=Verb.LIST, kind="Node"), timeout=1).ok:
                    return client
        raise TimeoutError("the master did not answer")
    except BaseException:
        client.close()
        raise


def ready_nodes(client: ApiClient, guard: Guard) -> int:
    return sum(
        1
        for n in guard.objects(client, "Node")
        for c in n["status"].get("conditions", [])
        if c["type"] == "Ready" and c["status"] == "True"
    )


def wait_groups(
    client: ApiClient, groups: list[Group], done: Callable[[dict[str, Any]], bool], guard: Guard, interval: float
) -> float:
    """When the last group listed `expected` pods that are all `done`.

    One group is polled at a time, the last created first (the likeliest to finish last), and a finished group is
    not listed again: the poll costs the master one list per `interval` and one more per group at the end.
    """
    for group in reversed(groups):
        while True:
            group.items = guard.objects(client, "Pod", group.selector)
            if len(group.items) == group.expected and all(done(p) for p in group.items):
                break
            guard.check(f"{group.selector}: {sum(map(done, group.items))} of {group.expected} pods")
            time.sleep(interval)
    return time.monotonic()


def high_water(client: ApiClient, groups: list[Group], guard: Guard) -> int:
    """The store-wide resourceVersion: the highest of any stored object's."""
    objects = [*guard.objects(client, "Node"), *guard.objects(client, "ReplicationController")]
    for group in groups:
        objects.extend(guard.objects(client, "Pod", group.selector))
    return max((int(o["metadata"]["resourceVersion"]) for o in objects), default=0)


# -- one run ----------------------------------------------------------------------------------------------------
@dataclass
class Result:
    """Seconds from the first apply request; None: not reached (see `failure`)."""

    scenario: Scenario
    baseline: Baseline
    node_timeout: float
    applied: float | None = None
    bound: float | None = None
    dispatched: float | None = None
    running: float | None = None
    rss_before_mb: float = 0.0
    rss_after_mb: float = 0.0
    rss_peak_mb: float = 0.0
    writes: int | None = None
    wchar: int = 0
    write_bytes: int = 0
    cpu_seconds: float = 0.0
    log_bytes: int = 0
    failure: str = ""
    progress: str = ""
    #: The master's log lines about nodes going NotReady and pods evicted during the run.
    not_ready: int = 0
    evicted: int = 0
    #: The machine's 1-minute load average at the start and at the end of the run (other work skews figures).
    load: tuple[float, float] = (0.0, 0.0)
    #: Each node's longest silence between heartbeats as the broker saw them, longest first.
    heartbeat_gaps: list[float] = field(default_factory=list)
    #: Clients Mosquitto dropped outgoing messages for (its queue for a slow reader was full): lost messages.
    dropped_for: list[str] = field(default_factory=list)
    lost_requests: int = 0

    @property
    def pods_per_s(self) -> float | None:
        return None if self.dispatched is None else self.scenario.pods / self.dispatched

    @property
    def kib_per_change(self) -> float | None:
        return None if not self.writes else self.write_bytes / self.writes / 1024


@dataclass
class Counters:
    rv: int
    wchar: int
    write_bytes: int
    cpu: float
    log_size: int

    @classmethod
    def read(cls, master: MasterProcess, rv: int) -> Counters:
        wchar, written = master.io()
        return cls(rv, wchar, written, master.cpu_seconds(), master.log_path.stat().st_size)


def measure(
    result: Result,
    master: MasterProcess,
    client: ApiClient,
    sims: SimNodes,
    manifests: list[str],
    groups: list[Group],
    guard: Guard,
) -> int:
    """Apply, then wait for bound, dispatched, Running and a settled store; fills `result` as it goes."""
    sc = result.scenario
    cpu = master.cpu_seconds()
    started = time.monotonic()
    for number, text in enumerate(manifests):
        resp = guard.call(client, ApiRequest(verb=Verb.APPLY, manifest=text), f"apply request {number}")
        assert resp.ok, resp.error
    result.applied = time.monotonic() - started

    def dispatched() -> None:  # measured on the simulated nodes: known even when the API fails
        wait_until("every pod dispatched", lambda: len(sims.seen()) >= sc.pods, guard, 0.05)
        result.dispatched = sorted(sims.seen().values())[sc.pods - 1] - started

    try:
        result.bound = wait_groups(client, groups, lambda p: bool(p["spec"].get("nodeName")), guard, 0.1) - started
    except FAILURES:
        with contextlib.suppress(*FAILURES):
            dispatched()
        raise
    dispatched()
    running = wait_groups(client, groups, lambda p: p.get("status", {}).get("phase") == "Running", guard, 0.2)
    result.running = running - started
    result.cpu_seconds = master.cpu_seconds() - cpu  # up to Running: the settling polls below are not counted
    # The last writes (e.g. the controllers' status) follow the pods' Running: wait for the store to settle.
    rv, settle_deadline = high_water(client, groups, guard), time.monotonic() + 15
    while time.monotonic() < settle_deadline:
        time.sleep(1.0)
        now = high_water(client, groups, guard)
        if now == rv:
            break
        rv = now
    return rv


def run(sc: Scenario, work: Path, args: argparse.Namespace, baseline: Baseline) -> Result:
    manifests, groups = workload(sc)
    run_dir = work / sc.label
    run_dir.mkdir()
    deadline = time.monotonic() + (args.timeout or max(300.0, 0.06 * sc.pods))
    result = Result(sc, baseline, args.node_timeout)
    with (
        Mosquitto(None, run_dir / "broker") as broker,
        MasterProcess(broker.port, run_dir / "master", run_dir / "master.log", args.node_timeout) as master,
        HeartbeatWatch(broker.port, run_dir / "heartbeats.log") as watch,
    ):
        client = connect(broker.port, master, deadline)
        try:
            with SimNodes(broker.port, sc.nodes, start_delay=0.0) as sims:
                guard = Guard(deadline, master, bare_pods=sc.variant == "list")
                wait_until("every node Ready", lambda: ready_nodes(client, guard) == sc.nodes, guard, 0.1)
                time.sleep(0.5)  # let the first reports' writes land before the counters are read
                before = Counters.read(master, high_water(client, [], guard))
                guard.offset = before.log_size
                result.rss_before_mb = master.memory_mb()[0]
                load_before, wall_before = os.getloadavg()[0], time.time()
                rv_after: int | None = None
                with profiler(master.pid, args.py_spy, sc.label):
                    try:
                        rv_after = measure(result, master, client, sims, manifests, groups, guard)
                    except FAILURES as exc:
                        result.failure = f"{type(exc).__name__}: {exc}"
                        result.progress = (
                            f"{len(sims.seen()):,} of {sc.pods:,} pods ever dispatched, "
                            f"{sum(sims.counts().values()):,} on the nodes now"
                        )
                        with contextlib.suppress(*FAILURES):
                            guard.deadline = time.monotonic() + 30
                            rv_after = high_water(client, groups, guard)
                # Read everything before the simulated nodes go offline (which the master rightly reacts to).
                after = Counters.read(master, rv_after if rv_after is not None else before.rv)
                result.rss_after_mb, result.rss_peak_mb = master.memory_mb()
                result.load = (load_before, os.getloadavg()[0])
                result.heartbeat_gaps = watch.gaps(wall_before, time.time())
                result.dropped_for = dropped_for(broker.log_path)
                result.lost_requests = guard.lost
                with master.log_path.open("rb") as log:
                    log.seek(before.log_size)
                    text = log.read(after.log_size - before.log_size).decode(errors="replace")
        finally:
            client.close()
    result.writes = None if rv_after is None else after.rv - before.rv
    result.wchar = after.wchar - before.wchar
    result.write_bytes = after.write_bytes - before.write_bytes
    if result.running is None:
        result.cpu_seconds = after.cpu - before.cpu
    result.log_bytes = after.log_size - before.log_size
    result.not_ready = text.count(" is NotReady (")
    result.evicted = text.count("evicted pod ")
    return result


@dataclass(frozen=True)
class Baseline:
    """KiB written per durable change, p50 and p95, by each subject of benchmarks/store_writes.py's workers."""

    stock_kib: float
    ek_kib: float
    stock_p95: float
    ek_p95: float
    trials: int

    @property
    def ratio(self) -> float | None:
        return self.stock_kib / self.ek_kib if self.ek_kib else None


def like_for_like(docs: int, root: Path | None, trials: int) -> Baseline:
    """One durable change each: stock TinyDB vs TinyStateStore holding `docs` Pods, in their own processes."""
    with scratch(root) as stock_dir, scratch(root) as ek_dir:
        workers = [Worker("stock", stock_dir, docs), Worker("edgekube", ek_dir, docs)]
        try:
            for step in range(WARMUP + trials):
                for subject in workers if step % 2 == 0 else workers[::-1]:
                    subject.change(step, count=step >= WARMUP)
        finally:
            for subject in workers:
                subject.close()
    stock, ek = ([c["written"] / 1024 for c in w.costs] for w in workers)
    return Baseline(
        statistics.median(stock), statistics.median(ek), nearest_rank(stock, 0.95), nearest_rank(ek, 0.95), trials
    )


# -- report -------------------------------------------------------------------------------------------------
COLUMNS = (
    ("scenario", 16),
    ("pods", 6),
    ("nodes", 6),
    ("apply s", 8),
    ("bound s", 8),
    ("dispatch s", 11),
    ("running s", 10),
    ("pods/s", 8),
    ("RSS MB", 7),
    ("peak MB", 8),
    ("writes", 7),
    ("KiB/chg", 8),
    ("wchar KiB", 10),
    ("stock KiB", 10),
    ("ek KiB", 8),
    ("stock/ek", 9),
)


def header() -> str:
    return "".join(f"{name:>{width}}" if i else f"{name:<{width}}" for i, (name, width) in enumerate(COLUMNS))


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def row(r: Result) -> str:
    kib = r.kib_per_change
    cells = (
        r.scenario.label,
        f"{r.scenario.pods}",
        f"{r.scenario.nodes}",
        _num(r.applied, ".2f"),
        _num(r.bound, ".2f"),
        _num(r.dispatched, ".2f"),
        _num(r.running, ".2f"),
        _num(r.pods_per_s, ",.0f"),
        f"{r.rss_after_mb:.1f}",
        f"{r.rss_peak_mb:.1f}",
        _num(r.writes, ","),
        _num(kib, ".2f"),
        _num(r.wchar / r.writes / 1024 if r.writes else None, ".2f"),
        f"{r.baseline.stock_kib:,.0f}",
        f"{r.baseline.ek_kib:,.1f}",
        _num(r.baseline.ratio, ",.0f") + "x",
    )
    return "".join(f"{c:>{w}}" if i else f"{c:<{w}}" for i, (c, (_, w)) in enumerate(zip(cells, COLUMNS, strict=True)))


def goals(r: Result) -> str:
    speed, kib = r.pods_per_s, r.kib_per_change
    checks = [
        f"pods/s {_num(speed, ',.0f')} (>= {GOAL_PODS_PER_S:.0f})",
        f"KiB/change {_num(kib, '.2f')} (<= {GOAL_KIB_PER_CHANGE:.0f})",
    ]
    ok = speed is not None and speed >= GOAL_PODS_PER_S and kib is not None and kib <= GOAL_KIB_PER_CHANGE
    if r.scenario.pods == 1000:
        checks.append(f"master RSS peak {r.rss_peak_mb:.1f} MB (<= {GOAL_RSS_MB_AT_1000:.0f})")
        ok = ok and r.rss_peak_mb <= GOAL_RSS_MB_AT_1000
    verdict = "FAILED" if r.failure else "met   " if ok else "MISSED"
    if any(gap > r.node_timeout for gap in r.heartbeat_gaps):
        checks.append("NOT A FAIR RUN: the simulated nodes' heartbeats reached the broker late (see details)")
    return f"  {r.scenario.label:<16} {verdict}  " + "; ".join(checks)


def details(r: Result) -> str:
    pods = r.scenario.pods
    text = (
        f"  {r.scenario.label:<16} RSS before pods {r.rss_before_mb:.1f} MB; master CPU apply→Running "
        f"{r.cpu_seconds:.1f} s ({r.cpu_seconds / pods * 1000:.2f} ms/pod); "
        f"writes/pod {_num(r.writes and r.writes / pods, '.2f')}; "
        f"written {r.write_bytes / 2**20:.1f} MiB (master log: {r.log_bytes / 1024:.0f} KiB); "
        f"load average {r.load[0]:.1f} → {r.load[1]:.1f} on {os.cpu_count()} CPUs"
    )
    b = r.baseline
    text += (
        f"\n  {'':<16} stock/ek: one durable change per trial, {b.trials} interleaved trials per subject, each in "
        f"its own process; written KiB p50/p95: stock {b.stock_kib:,.1f}/{b.stock_p95:,.1f}, "
        f"ek {b.ek_kib:,.1f}/{b.ek_p95:,.1f}"
    )
    gaps = r.heartbeat_gaps
    if gaps:
        text += (
            f"\n  {'':<16} heartbeats at the broker: longest silence {gaps[0]:.2f} s, "
            f"{sum(g > r.node_timeout for g in gaps)} node(s) silent > {r.node_timeout:g} s (the node timeout)"
        )
    if r.dropped_for or r.lost_requests:
        text += (
            f"\n  {'':<16} Mosquitto dropped messages (queue full) for: {', '.join(r.dropped_for) or '-'}; "
            f"API requests sent again after no answer: {r.lost_requests}"
        )
    if r.not_ready or r.evicted:
        text += f"\n  {'':<16} master log: {r.not_ready} node(s) went NotReady, {r.evicted} pod(s) evicted"
    if r.failure:
        text += f"\n  {'':<16} FAILED after {_num(r.applied, '.2f')} s apply: {r.failure} ({r.progress})"
    return text


# -- profiling --------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def profiler(pid: int, out: Path | None, label: str) -> Iterator[None]:
    """With `out`: py-spy samples the master while the block runs; its hottest lines are printed afterwards."""
    if out is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out.mkdir(parents=True, exist_ok=True)
    raw = out / f"{label}.txt"
    # --nonblocking: py-spy reads the master's memory without stopping it (stopping it 100 times a second halved
    # its throughput and made the profile describe a different program).
    command = [spy, "record", "--pid", str(pid), "--rate", "100", "--gil", "--nonblocking", "--format", "raw"]
    command += ["--output", str(raw)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)  # py-spy attaches
        yield
    finally:
        proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    if raw.exists():
        print(hotspots(raw, label), flush=True)


def hotspots(raw: Path, label: str, top: int = 12) -> str:
    """Self and inclusive sample counts per source line from py-spy's raw (collapsed stack) output."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = polls = 0
    for line in raw.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        total += int(samples)
        if "Requests.on_api " in stack and "Api.list " in stack:
            polls += int(samples)  # this benchmark's own list requests: counted, not profiled
            continue
        frames = [f for f in stack.split(";") if "(" in f]
        if frames:
            own[frames[-1]] = own.get(frames[-1], 0) + int(samples)
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + int(samples)
    lines = [
        f"py-spy {label}: {total} samples of the master's GIL holder ({raw}); "
        f"{100 * polls / max(1, total):.0f}% answer this benchmark's API list polls, shares below are of the rest:",
        "  self:",
    ]
    total -= polls
    for frame, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {100 * count / max(1, total):5.1f}%  {frame}")
    lines.append("  inclusive (edgekube code):")
    ours = [(f, c) for f, c in inclusive.items() if "edgekube/" in f and "threading.py" not in f]
    for frame, count in sorted(ours, key=lambda kv: -kv[1])[: top * 2]:
        lines.append(f"  {100 * count / max(1, total):5.1f}%  {frame}")
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------------------------
def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C: every `with` and `finally` runs


@contextlib.contextmanager
def workdir(root: Path | None, keep: bool) -> Iterator[Path]:
    if root is not None:
        root.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="ek-bench-sched-", dir=root))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def scenarios(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[Scenario]:
    if args.pods is not None:
        sizes = [(args.pods, args.nodes or 50, args.controllers or max(1, args.pods // 100))]
        if args.pods > 2 * GROUP_SIZE * sizes[0][2]:
            parser.error(f"at most {2 * GROUP_SIZE} pods per controller (each one's pods are listed at once)")
    elif args.quick:
        sizes = [(200, 10, 4)]
    else:
        sizes = [(1000, 50, 10), (10000, 200, 40)]
    variants = [args.only] if args.only else ["rc", "list"]
    return [Scenario(p, n, c, v) for p, n, c in sizes for v in variants]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 pods on 10 nodes")
    parser.add_argument("--only", choices=("rc", "list"), help="one variant (default: both)")
    parser.add_argument("--pods", type=int, help="a custom scenario: this many pods ...")
    parser.add_argument("--nodes", type=int, help="... on this many nodes (default 50) ...")
    parser.add_argument("--controllers", type=int, help="... from this many RCs (default pods/100)")
    parser.add_argument("--node-timeout", type=float, default=2.0, help="the master's --node-timeout (default 2)")
    parser.add_argument(
        "--timeout", type=float, help="give up a run after this many seconds (default: 0.06 s/pod, 300 s at least)"
    )
    parser.add_argument(
        "--baseline-trials",
        type=int,
        default=MIN_TRIALS,
        help=f"durable changes per subject for stock/ek (default {MIN_TRIALS})",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (master logs, stores)")
    parser.add_argument("--dir", type=Path, default=None, help="where the master's store goes (default: $TMPDIR)")
    parser.add_argument("--py-spy", type=Path, metavar="DIR", help="profile the master with py-spy into DIR")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)

    plan = scenarios(args, parser)
    results: list[Result] = []
    try:
        where = args.dir if args.dir is not None else Path(tempfile.gettempdir())
        if filesystem_type(where) in MEMORY_FILESYSTEMS:
            print(f"warning: {where} is in memory: fsync costs nothing there, bytes are not a disk's", file=sys.stderr)
        if args.baseline_trials < MIN_TRIALS:
            print(f"warning: {args.baseline_trials} baseline trials: p95 needs at least {MIN_TRIALS}", file=sys.stderr)
        baselines = {
            docs: like_for_like(docs, args.dir, args.baseline_trials) for docs in sorted({sc.pods for sc in plan})
        }
        with workdir(args.dir, args.keep) as work:
            for sc in plan:
                print(f"running {sc.label} ...", flush=True)
                results.append(run(sc, work, args, baselines[sc.pods]))
                print(row(results[-1]), flush=True)
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130
    print()
    print("apply → bound / dispatched / Running, simulated nodes; master RSS and bytes written per store write:")
    print(header())
    for r in results:
        print(row(r))
    print("details:")
    for r in results:
        print(details(r))
    print("goals:")
    for r in results:
        print(goals(r))
    return 1 if any(r.failure for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
