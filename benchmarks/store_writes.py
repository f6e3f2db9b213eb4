"""Benchmark of the state store's write path: stock TinyDB vs edgekube per durable change, and bytes per storage.

Run: .venv/bin/python benchmarks/store_writes.py [--docs 1000] [--trials 30] [--dir /path/on/the/sd/card]

1. stock/edgekube, like for like.  Stock TinyDB (JSONStorage: it fsyncs every write) and edgekube's
   TinyStateStore (durable JournalStorage: it fdatasyncs every record) each hold the same --docs Pods of about
   1 KiB; each trial hands both the same new Pod (one Pod, its status changed) and times the one durable
   change it makes, as the caller waits for it.  Each subject runs in its own worker process (this script with
   --worker): no shared interpreter, heap or /proc/<pid>/io, nothing else running in it.  Trials are
   interleaved, the order alternating, so a change in the machine's load hits both; 2 warm-up changes each are
   not counted.  Printed: p50/p95 (nearest rank) of latency, CPU and bytes written, and stock/edgekube ratios.
2. The table: changes/s, CPU and bytes per change for each storage and table flavour, compaction included,
   each in a fresh directory of this process (one document changed per write).

Bytes come from /proc/<pid>/io: wchar counts bytes handed to write(), write_bytes the page-cache bytes the
process dirtied for the block device (whole 4 KiB pages; what an SD card has to absorb).  A directory on tmpfs
or ramfs is refused: fsync costs nothing there, so the figures would not be a disk's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tinydb import TinyDB
from tinydb.storages import JSONStorage

from edgekube.store import JournalStorage, TinyStateStore
from edgekube.store.table import InPlaceTinyDB

MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs", "devtmpfs"})
WARMUP = 2
SUBJECTS = {"stock": "stock TinyDB JSONStorage (fsync)", "edgekube": "edgekube TinyStateStore (durable)"}


def pod(number: int, step: int = 0) -> dict[str, Any]:
    """A Pod of about 1 KiB, like the master stores."""
    name = f"web-{number:05d}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"app": "web", "tier": "frontend", "pod-template-hash": "5d8f7c9b6"},
            "annotations": {"edgekube.io/scheduled-by": "default-scheduler", "note": "n" * 300},
        },
        "spec": {
            "nodeName": f"pi-{number % 24:02d}",
            "containers": [
                {
                    "name": "web",
                    "image": "registry.local/web:1.4.2",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "env": [{"name": "MODE", "value": "production"}, {"name": "REPLICA", "value": str(number)}],
                    "resources": {"limits": {"cpu": "250m", "memory": "128Mi"}},
                }
            ],
            "restartPolicy": "Always",
        },
        "status": {"phase": "Running", "restartCount": step, "message": "m" * 120},
    }


# -- where the files go ------------------------------------------------------------------------------------
def filesystem_type(path: Path, mountinfo: str | None = None) -> str:
    """The type of the file system holding ``path``: its longest mount point in /proc/self/mountinfo."""
    text = Path("/proc/self/mountinfo").read_text() if mountinfo is None else mountinfo
    target = os.path.realpath(path)
    best, found = "", "unknown"
    for line in text.splitlines():
        fields, sep, rest = line.partition(" - ")
        parts = fields.split()
        if not sep or len(parts) < 5 or not rest.split():
            continue
        mount_point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), parts[4])
        inside = mount_point == "/" or target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):  # a later mount on the same point hides the earlier one
            best, found = mount_point, rest.split()[0]
    return found


def disk_directory(requested: Path | None) -> Path:
    """The directory to measure in (--dir or $TMPDIR); exit with one line if it lives in memory."""
    root = requested if requested is not None else Path(tempfile.gettempdir())
    kind = filesystem_type(root)  # of the mount it would be created on, if it does not exist yet
    if kind in MEMORY_FILESYSTEMS:
        sys.exit(
            f"store_writes.py: refusing {root}: it is on {kind}, where fsync costs nothing and the figures would "
            "not be a disk's; pass --dir on a disk or the SD card"
        )
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextmanager
def scratch(root: Path | None) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="edgekube-bench-", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path)


def io_counters() -> tuple[int, int]:
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["wchar"]), int(fields["write_bytes"])


# -- 1. stock/edgekube, one durable change each, in worker processes ---------------------------------------
def open_subject(
    subject: str, directory: Path, docs: int
) -> tuple[Callable[[int, dict[str, Any]], None], Callable[[], None]]:
    """Fill ``subject`` with ``docs`` Pods; return (change Pod number n to obj durably, close)."""
    if subject == "stock":
        db = TinyDB(directory / "db.json", storage=JSONStorage)
        pods = db.table("pods")
        pods.insert_multiple(pod(number) for number in range(docs))

        def stock_change(number: int, obj: dict[str, Any]) -> None:
            pods.update(obj, doc_ids=[1 + number])

        return stock_change, db.close
    store = TinyStateStore(directory / "state", durable=True)
    for number in range(docs):
        store.create(pod(number))

    def edgekube_change(number: int, obj: dict[str, Any]) -> None:
        store.update(obj)  # no resourceVersion given: the change is applied as handed over, like stock's

    return edgekube_change, store.close


def worker(subject: str, directory: Path, docs: int) -> None:
    """Hold ``docs`` Pods; for each step read from stdin make one durable change and answer what it cost."""
    change, close = open_subject(subject, directory, docs)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        step = int(line)
        number = step % docs
        obj = pod(number, step)
        wchar, written = io_counters()
        cpu, wall = time.process_time(), time.perf_counter()
        change(number, obj)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        wchar_after, written_after = io_counters()
        cost = {"ms": wall * 1e3, "cpu_ms": cpu * 1e3, "wchar": wchar_after - wchar, "written": written_after - written}
        print(json.dumps(cost), flush=True)
    close()


class Worker:
    """One subject in its own process, driven a change at a time over its stdin/stdout."""

    def __init__(self, subject: str, directory: Path, docs: int) -> None:
        self.subject = subject
        command = [sys.executable, __file__, "--worker", subject, "--worker-dir", str(directory), "--docs", str(docs)]
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.costs: list[dict[str, float]] = []
        if json.loads(self._read()) != {"ready": True}:
            raise RuntimeError(f"the {subject} worker did not start")

    def _read(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.subject} worker exited with {self.process.wait()}")
        return line

    def change(self, step: int, *, count: bool) -> None:
        stdin: IO[str] | None = self.process.stdin
        assert stdin is not None
        stdin.write(f"{step}\n")
        stdin.flush()
        cost = json.loads(self._read())
        if count:
            self.costs.append(cost)

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def nearest_rank(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def compare(root: Path, docs: int, trials: int) -> list[str]:
    """Run both subjects side by side, trials interleaved; return the printed lines."""
    with scratch(root) as stock_dir, scratch(root) as edgekube_dir:
        workers = [Worker("stock", stock_dir, docs), Worker("edgekube", edgekube_dir, docs)]
        try:
            for step in range(WARMUP + trials):
                order = workers if step % 2 == 0 else workers[::-1]
                for subject in order:
                    subject.change(step, count=step >= WARMUP)
        finally:
            for subject in workers:
                subject.close()
    return report(docs, trials, {subject.subject: subject.costs for subject in workers})


def report(docs: int, trials: int, costs: dict[str, list[dict[str, float]]]) -> list[str]:
    """p50/p95 of latency, CPU and bytes written per subject, and the stock/edgekube ratio of each."""
    columns = [("ms", "latency ms", 1.0), ("cpu_ms", "CPU ms", 1.0), ("written", "written KiB", 1024.0)]
    figures: dict[str, list[float]] = {}
    for subject, subject_costs in costs.items():
        figures[subject] = []
        for key, _, unit in columns:
            values = [cost[key] / unit for cost in subject_costs]
            figures[subject] += [statistics.median(values), nearest_rank(values, 0.95)]
    ratios = [s / e if e else math.inf for s, e in zip(figures["stock"], figures["edgekube"], strict=True)]
    lines = [
        f"one durable change of one Pod among {docs} Pods of {len(json.dumps(pod(0)))} bytes, "
        f"{trials} interleaved trials per subject, each subject in its own process:",
        f"{'':<36}" + "".join(f"{name + ' p50':>17}{'p95':>9}" for _, name, _ in columns),
    ]
    for subject, row in figures.items():
        lines.append(f"{SUBJECTS[subject]:<36}" + "".join(f"{v:>17,.2f}{w:>9,.2f}" for v, w in pairs(row)))
    lines.append(f"{'stock/edgekube':<36}" + "".join(f"{v:>16,.1f}x{w:>8,.1f}x" for v, w in pairs(ratios)))
    return lines


def pairs(values: list[float]) -> list[tuple[float, float]]:
    """(p50, p95) pairs of a flat row."""
    return list(zip(values[::2], values[1::2], strict=True))


# -- 2. the table: each storage in this process ------------------------------------------------------------
@dataclass
class Result:
    label: str
    changes: int
    seconds: float
    cpu_seconds: float
    wchar: int
    write_bytes: int

    def row(self) -> str:
        per = self.changes
        return (
            f"{self.label:<44}{self.changes / self.seconds:>10,.0f}{self.cpu_seconds / per * 1e6:>10,.0f}"
            f"{self.wchar / per / 1024:>12,.1f}{self.write_bytes / per / 1024:>14,.1f}"
        )


HEADER = f"{'':<44}{'changes/s':>10}{'CPU µs':>10}{'wchar KiB':>12}{'written KiB':>14}"


def measure(label: str, changes: int, change: Callable[[int], None]) -> Result:
    wchar, written = io_counters()
    cpu, wall = time.process_time(), time.perf_counter()
    for step in range(changes):
        change(step)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    wchar_after, written_after = io_counters()
    return Result(label, changes, wall, cpu, wchar_after - wchar, written_after - written)


def bench_tinydb(label: str, db: TinyDB, docs: int, changes: int) -> Result:
    """One document updated per change through TinyDB's own Table API."""
    pods = db.table("pods")
    pods.insert_multiple(pod(number) for number in range(docs))

    def change(step: int) -> None:
        pods.update(pod(step % docs, step), doc_ids=[1 + step % docs])

    result = measure(label, changes, change)
    db.close()
    return result


def bench_state_store(label: str, store: TinyStateStore, docs: int, changes: int) -> Result:
    """The master's hot path: one Pod status change per change (get, modify, update with resourceVersion)."""
    for number in range(docs):
        store.create(pod(number))

    def change(step: int) -> None:
        obj = store.get("Pod", "default", f"web-{step % docs:05d}")
        obj["status"]["restartCount"] = step
        store.update(obj)

    result = measure(label, changes, change)
    store.close()
    return result


def table(root: Path, docs: int, changes: int) -> list[str]:
    """Changes/s, CPU and bytes per change for each storage, compaction included; return the printed lines."""
    json_changes = max(50, changes // 25)  # JSONStorage rewrites everything: fewer runs say enough
    results: list[Result] = []
    with scratch(root) as path:
        db = TinyDB(path / "db.json", storage=JSONStorage)
        results.append(bench_tinydb("TinyDB JSONStorage (stock, fsyncs)", db, docs, json_changes))
    # Stock TinyDB rebuilds the whole table dict per write, so the storage parses and compares every document
    # (O(table) CPU, still O(change) bytes written): fewer runs. InPlaceTinyDB (what TinyStateStore uses) edits
    # the storage's view of the table and costs O(change).
    for durable in (True, False):
        with scratch(root) as path:
            db = TinyDB(path, storage=JournalStorage, durable=durable)
            results.append(bench_tinydb(f"TinyDB JournalStorage durable={durable}", db, docs, json_changes * 2))
    for durable in (True, False):
        with scratch(root) as path:
            db = InPlaceTinyDB(path, storage=JournalStorage, durable=durable)
            results.append(bench_tinydb(f"InPlaceTinyDB JournalStorage durable={durable}", db, docs, changes))
    results.append(bench_state_store("TinyStateStore MemoryStorage", TinyStateStore(None), docs, changes))
    for durable in (True, False):
        with scratch(root) as path:
            store = TinyStateStore(path / "state", durable=durable)
            results.append(bench_state_store(f"TinyStateStore JournalStorage durable={durable}", store, docs, changes))
    lines = [f"{docs} documents of {len(json.dumps(pod(0)))} bytes; figures per change, compaction included:", HEADER]
    return lines + [result.row() for result in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--docs", type=int, default=1000, help="documents in the store (default 1000)")
    parser.add_argument("--trials", type=int, default=30, help="interleaved trials per subject (default 30, min 20)")
    parser.add_argument("--changes", type=int, default=5000, help="changes per JournalStorage run in the table")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the files (default: $TMPDIR)")
    parser.add_argument("--only", choices=["ratio", "table"], default=None, help="run one part only")
    parser.add_argument("--worker", choices=sorted(SUBJECTS), help=argparse.SUPPRESS)
    parser.add_argument("--worker-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args.worker_dir, args.docs)
        return
    if args.trials < 20:
        parser.error("--trials must be at least 20: a p95 needs them")
    root = disk_directory(args.dir)
    print(f"files in {root} ({filesystem_type(root)})")
    if args.only != "table":
        print("\n".join(compare(root, args.docs, args.trials)), flush=True)
    if args.only != "ratio":
        print("\n" + "\n".join(table(root, args.docs, args.changes)))


if __name__ == "__main__":
    main()
