"""`ekctl port-forward` throughput (MB/s each way) and round-trip latency, on real parts, beside a direct connection.

Mosquitto, the master (TinyDB store) and one agent on Podman in this process; a busybox pod runs an echo server
(`nc -ll -p 7000 -e cat`); ekctl port-forward runs as its own process, as a user runs it. Measured through the
forward: the round trip of a 64-byte message (one request to the node through the master and one chunk back), and
the time to echo N MiB (sent while read back: both directions at once, so MB/s is per direction); the same
against the pod's IP directly gives the baseline of the same run.

    .venv/bin/python benchmarks/port_forward.py [--trials 200] [--mib 8]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere: tests.support

from edgekube.local.broker import Mosquitto
from edgekube.local.images import ensure_demo_image
from edgekube.local.podman_service import PodmanService
from tests.support.cluster import ApiClient, start_agent, start_master, wait_for

ECHO = """\
apiVersion: v1
kind: Pod
metadata: {{name: echo}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
    - name: c
      image: {image}
      command: ["nc", "-ll", "-p", "7000", "-e", "cat"]
      ports: [{{name: echo, containerPort: 7000}}]
"""


def round_trips(host: str, port: int, trials: int) -> list[float]:
    times = []
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(trials):
            start = time.perf_counter()
            sock.sendall(b"x" * 64)
            got = 0
            while got < 64:
                got += len(sock.recv(64 - got))
            times.append(time.perf_counter() - start)
    return times


def echo_rate(host: str, port: int, mib: int) -> float:
    """MB/s of an echo of `mib` MiB, written while read back."""
    block = bytes(range(256)) * 256  # 64 KiB
    total = mib * 1024 * 1024
    with socket.create_connection((host, port), timeout=60) as sock:

        def write() -> None:
            for _ in range(total // len(block)):
                sock.sendall(block)
            sock.shutdown(socket.SHUT_WR)

        start = time.perf_counter()
        threading.Thread(target=write, daemon=True).start()
        got = 0
        while chunk := sock.recv(1 << 16):
            got += len(chunk)
        spent = time.perf_counter() - start
    assert got == total, f"echoed {got} of {total} bytes"
    return total / spent / 1e6


def report(what: str, times: list[float], rate: float) -> None:
    times.sort()
    p50, p99 = statistics.median(times), times[int(len(times) * 0.99) - 1]
    print(f"{what:<26} round trip p50 {p50 * 1000:6.2f} ms  p99 {p99 * 1000:6.2f} ms   echo {rate:7.2f} MB/s each way")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="round trips measured")
    parser.add_argument("--mib", type=int, default=8, help="MiB echoed for the throughput")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ek-bench-pf-", dir="/tmp"))
    service = PodmanService(work / "podman")
    service.start()
    try:
        image = ensure_demo_image(service)
        with Mosquitto(workdir=work / "mosquitto") as broker:
            master = start_master(broker.port, work / "master")
            agent = start_agent(broker.port, "bench", service, work / "agent", device_dir="", fence_dir="")
            client = ApiClient(broker.port)
            proc = None
            try:
                assert client.apply(ECHO.format(image=image)).ok
                wait_for("the pod running", lambda: client.pod("echo").get("status", {}).get("phase") == "Running")
                pod_ip = client.pod("echo")["status"]["podIP"]
                cmd = [sys.executable, "-m", "edgekube.cli.main", "--mqtt-host", "127.0.0.1"]
                cmd += ["--mqtt-port", str(broker.port), "port-forward", "pod/echo", ":echo"]
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
                assert proc.stdout is not None
                local = int(proc.stdout.readline().split(":")[1].split()[0])
                threading.Thread(target=proc.stdout.read, daemon=True).start()
                round_trips("127.0.0.1", local, 10)  # warm up
                report("port-forward (ekctl)", round_trips("127.0.0.1", local, args.trials),
                       echo_rate("127.0.0.1", local, args.mib))  # fmt: skip
                report("direct to the pod IP", round_trips(pod_ip, 7000, args.trials),
                       echo_rate(pod_ip, 7000, args.mib))  # fmt: skip
            finally:
                if proc is not None:
                    proc.kill()
                    proc.wait()
                client.close()
                master.stop()
                for observed in agent.runtime.list_pods():
                    agent.runtime.remove_pod(observed.uid, 0)
                agent.stop()
    finally:
        service.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
