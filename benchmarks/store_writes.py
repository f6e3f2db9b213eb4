"""Benchmark of the state store's write path: bytes written and changes/s, JSONStorage vs JournalStorage.

Run: .venv/bin/python benchmarks/store_writes.py [--docs 1000] [--dir /path/on/the/sd/card]
Bytes come from /proc/self/io: wchar counts bytes handed to write(), write_bytes the page-cache bytes
the process dirtied for the block device (whole 4 KiB pages; what an SD card has to absorb).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.storages import JSONStorage

from edgekube.store import JournalStorage, TinyStateStore
from edgekube.store.table import InPlaceTinyDB


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


def io_counters() -> tuple[int, int]:
    fields = dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())
    return int(fields["wchar"]), int(fields["write_bytes"])


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


@contextmanager
def scratch(root: Path | None) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="edgekube-bench-", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--docs", type=int, default=1000, help="documents in the store (default 1000)")
    parser.add_argument("--changes", type=int, default=5000, help="changes per JournalStorage run")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the files (default: $TMPDIR)")
    args = parser.parse_args()
    docs, changes = args.docs, args.changes
    json_changes = max(50, changes // 25)  # JSONStorage rewrites everything: fewer runs say enough

    results: list[Result] = []
    with scratch(args.dir) as path:
        db = TinyDB(path / "db.json", storage=JSONStorage)
        results.append(bench_tinydb("TinyDB JSONStorage (stock, fsyncs)", db, docs, json_changes))
    # Stock TinyDB rebuilds the whole table dict per write, so the storage parses and compares every document
    # (O(table) CPU, still O(change) bytes written): fewer runs. InPlaceTinyDB (what TinyStateStore uses) edits
    # the storage's view of the table and costs O(change).
    for durable in (True, False):
        with scratch(args.dir) as path:
            db = TinyDB(path, storage=JournalStorage, durable=durable)
            results.append(bench_tinydb(f"TinyDB JournalStorage durable={durable}", db, docs, json_changes * 2))
    for durable in (True, False):
        with scratch(args.dir) as path:
            db = InPlaceTinyDB(path, storage=JournalStorage, durable=durable)
            results.append(bench_tinydb(f"InPlaceTinyDB JournalStorage durable={durable}", db, docs, changes))
    results.append(bench_state_store("TinyStateStore MemoryStorage", TinyStateStore(None), docs, changes))
    for durable in (True, False):
        with scratch(args.dir) as path:
            store = TinyStateStore(path / "state", durable=durable)
            results.append(bench_state_store(f"TinyStateStore JournalStorage durable={durable}", store, docs, changes))

    print(f"{docs} documents of {len(json.dumps(pod(0)))} bytes; figures per change, compaction included:")
    print(HEADER)
    for result in results:
        print(result.row())


if __name__ == "__main__":
    main()
