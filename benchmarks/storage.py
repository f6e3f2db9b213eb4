"""Benchmark: NFS volumes — I/O via the agent's mount vs libnfs directly vs a local directory; claim apply → Running.

Run: .venv/bin/python benchmarks/storage.py [--trials N] [--size-mib M] [--files F] [--part io|apply] [--quick]

Part 1, I/O. Three subjects, each a worker process of its own, trials interleaved (the order rotates each trial):
  local dir      a directory on the disk that holds the NFS export (the baseline: no NFS at all)
  libnfs direct  edgekube.nfs.NfsClient on the export (the userspace NFSv4 client, no FUSE)
  agent's mount  the export mounted by the agent's mount helper (edgekube-nfs-mount: libnfs + FUSE), plain file I/O
Every trial of every subject does the same work and ends at the same point: a sequential write of SIZE MiB in
64 KiB writes followed by fsync; the page cache dropped (all subjects); a sequential read of that file; then F files
of 1 KiB each created, stat'ed and removed (ops/s counts the three operations per file).

Part 2, apply → Running. Mosquitto, NFS-Ganesha, the master and one agent as processes; a StorageClass on the
Ganesha export. Interleaved trials of: a pod with an emptyDir (the baseline) and a new claim + a pod using it
(provisioning a sub-directory, binding, the FUSE mount). Same end point: the pod Running as the API reports it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere: tests.support

from edgekube.local.nfs import Ganesha
from edgekube.nfs.target import NfsTarget
from tests.support.cluster import wait_for
from tests.support.fleet import Fleet
from tests.support.nfs import mount_export

CHUNK = 64 * 1024

#: The I/O worker: one subject, commands on stdin ("write MiB", "read", "small N"), seconds on stdout.
WORKER = r"""
import os, sys, time
subject, where = sys.argv[1], sys.argv[2]
CHUNK = 64 * 1024
block = os.urandom(CHUNK)
if subject == "libnfs":
    from edgekube.nfs.client import NfsClient
    from edgekube.nfs.target import NfsTarget
    client = NfsClient(NfsTarget.parse(where), timeout=30.0)
    client.connect()

    def write(name, mib):
        f = client.open_file(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        for i in range(mib * 1024 * 1024 // CHUNK):
            f.pwrite(block, i * CHUNK)
        f.fsync()
        f.close()

    def read(name):
        f = client.open_file(name, os.O_RDONLY)
        offset = 0
        while True:
            data = f.pread(CHUNK, offset)
            if not data:
                break
            offset += len(data)
        f.close()
        return offset

    def small(n):
        for i in range(n):
            client.write_bytes(f"small-{i}", block[:1024])
        for i in range(n):
            client.stat(f"small-{i}")
        for i in range(n):
            client.remove(f"small-{i}")
else:
    def write(name, mib):
        with open(os.path.join(where, name), "wb", buffering=0) as f:
            for _ in range(mib * 1024 * 1024 // CHUNK):
                f.write(block)
            os.fsync(f.fileno())

    def read(name):
        total = 0
        with open(os.path.join(where, name), "rb", buffering=0) as f:
            while chunk := f.read(CHUNK):
                total += len(chunk)
        return total

    def small(n):
        for i in range(n):
            with open(os.path.join(where, f"small-{i}"), "wb") as f:
                f.write(block[:1024])
        for i in range(n):
            os.stat(os.path.join(where, f"small-{i}"))
        for i in range(n):
            os.remove(os.path.join(where, f"small-{i}"))

print("ready", flush=True)
for line in sys.stdin:
    verb, _, arg = line.strip().partition(" ")
    started = time.perf_counter()
    if verb == "write":
        write("big", int(arg))
    elif verb == "read":
        read("big")
    elif verb == "small":
        small(int(arg))
    print(time.perf_counter() - started, flush=True)
"""


class Worker:
    """One subject's worker process; `run(command)` returns the seconds it took."""

    def __init__(self, subject: str, where: str) -> None:
        self.subject = subject
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, subject, where],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"{subject} worker did not start (said {line!r})")

    def run(self, command: str) -> float:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise RuntimeError(f"{self.subject} worker died during {command!r}")
        return float(answer)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def drop_caches() -> None:
    """Reads must come from the server (or the disk), not from memory: the same for every subject."""
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def io_part(trials: int, size_mib: int, files: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="ek-bench-nfs-", dir="/tmp"))
    server = Ganesha(base / "server", base / "export").start()
    local = base / "local"
    local.mkdir()
    for sub in ("libnfs", "mount"):
        (server.export_dir / sub).mkdir()
    results: dict[str, dict[str, list[float]]] = {}
    try:
        with mount_export(server.target("mount"), base / "mnt") as mountpoint:
            workers = [
                Worker("local", str(local)),
                Worker("libnfs", server.target("libnfs").source()),
                Worker("mount", str(mountpoint)),
            ]
            names = {"local": "local dir", "libnfs": "libnfs direct", "mount": "agent's mount"}
            for trial in range(trials):
                order = workers[trial % 3 :] + workers[: trial % 3]
                for worker in order:
                    row = results.setdefault(names[worker.subject], {"write": [], "read": [], "small": []})
                    row["write"].append(size_mib / worker.run(f"write {size_mib}"))
                    drop_caches()
                    row["read"].append(size_mib / worker.run("read"))
                    row["small"].append(3 * files / worker.run(f"small {files}"))
                print(f"  I/O trial {trial + 1}/{trials} done", file=sys.stderr, flush=True)
            for worker in workers:
                worker.close()
    finally:
        server.stop()
        subprocess.run(["rm", "-rf", "--one-file-system", str(base)], check=False)
    print(f"\nI/O, {trials} trials each, interleaved; {size_mib} MiB sequential, {files} x 1 KiB files (p50 [p10-p90])")
    print(f"{'subject':<16}{'write MB/s':>22}{'read MB/s':>22}{'small-file ops/s':>24}")
    for subject, row in results.items():
        cells = [f"{pct(v, 0.5):.1f} [{pct(v, 0.1):.1f}-{pct(v, 0.9):.1f}]" for v in row.values()]
        print(f"{subject:<16}{cells[0]:>22}{cells[1]:>22}{cells[2]:>24}")
    base_row = results["local dir"]
    for subject in ("libnfs direct", "agent's mount"):
        ratios = [pct(results[subject][k], 0.5) / pct(base_row[k], 0.5) for k in ("write", "read", "small")]
        print(f"{subject} / local dir (p50): write {ratios[0]:.2f}, read {ratios[1]:.2f}, small files {ratios[2]:.3f}")


STORAGE_CLASS = """
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {{name: bench}}
provisioner: edgekube.io/nfs
parameters: {{server: "{server}", share: "{share}", port: "{port}"}}
reclaimPolicy: Delete
"""
CLAIM = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {name}}}
spec:
  storageClassName: bench
  accessModes: [ReadWriteOnce]
  resources: {{requests: {{storage: 10Mi}}}}
---
"""
POD = """
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  containers:
    - name: c
      image: localhost/edgekube/busybox:1
      command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait; done"]
      volumeMounts: [{{name: data, mountPath: /data}}]
  volumes:
    - name: data
      {source}
"""


def running_part(trials: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="ek-bench-run-", dir="/tmp"))
    results: dict[str, list[float]] = {"pod + emptyDir": [], "claim + pod (nfs)": []}
    with Fleet(root, 1, netns=False, nfs=True) as fleet:
        target: NfsTarget = fleet.nfs_target()
        fleet.apply(STORAGE_CLASS.format(server=target.server, share=target.path, port=target.port))
        api = fleet.api

        def phase(name: str) -> str:
            try:
                pod = api.get("Pod", name)
            except Exception:
                return ""
            return str((pod.get("status") or {}).get("phase", ""))

        def one(subject: str, name: str) -> float:
            if subject == "pod + emptyDir":
                text = POD.format(name=name, source="emptyDir: {}")
            else:
                text = CLAIM.format(name=name) + POD.format(
                    name=name, source=f"persistentVolumeClaim: {{claimName: {name}}}"
                )
            started = time.perf_counter()
            fleet.apply(text)
            wait_for(f"{name} Running", lambda: phase(name) == "Running", timeout=120, interval=0.01)
            return time.perf_counter() - started

        subjects: list[tuple[str, Callable[[int], str]]] = [
            ("pod + emptyDir", lambda i: f"e{i}"),
            ("claim + pod (nfs)", lambda i: f"c{i}"),
        ]
        for trial in range(trials):
            order = subjects if trial % 2 == 0 else subjects[::-1]
            for subject, name_of in order:
                name = name_of(trial)
                results[subject].append(one(subject, name))
                api.delete("Pod", name)
                if subject.startswith("claim"):
                    api.delete("PersistentVolumeClaim", name)
            print(f"  apply trial {trial + 1}/{trials} done", file=sys.stderr, flush=True)
    subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False)
    print(f"\napply → Running, one agent, {trials} trials each, interleaved (seconds)")
    print(f"{'subject':<22}{'p50':>8}{'p90':>8}{'mean':>8}")
    for subject, values in results.items():
        print(f"{subject:<22}{pct(values, 0.5):>8.3f}{pct(values, 0.9):>8.3f}{statistics.mean(values):>8.3f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--part", choices=("io", "apply"), help="run only this part (default: both)")
    parser.add_argument("--quick", action="store_true", help="3 trials, 8 MiB, 50 files (smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.size_mib, args.files = 3, 8, 50
    if args.part in (None, "io"):
        io_part(args.trials, args.size_mib, args.files)
    if args.part in (None, "apply"):
        running_part(args.trials)
    return 0


if __name__ == "__main__":
    sys.exit(main())
