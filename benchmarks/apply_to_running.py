"""Benchmark: apply → Running of examples/hello-pod.yaml on edgekube against the local `podman kube play` CLI.

Run: .venv/bin/python benchmarks/apply_to_running.py [--trials N] [--quick] [--py-spy DIR]

Subjects, interleaved trial by trial (the order rotates each trial), each on the same Podman store and each
ending at the same point: every container of the pod Running as Podman reports it (checked over the API socket):
  podman kube play      the local CLI (the baseline), its own process
  bare podman-py        pod + 2 containers + start from a worker process of its own (no edgekube in it)
  edgekube in-process   apply request from this process → master → agent → Podman → status back → API Running
  ekctl apply --wait    the CLI a user types, wall time of the whole process
plus `ekctl --help` wall time (start-up) and the agent's idle RSS; --round-trips adds MQTT round trips.
Master and agent run as their own processes, as on a node (`edgekube master`, `edgekube agent`); the broker and
the Podman service are private to the run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from podman import PodmanClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere: tests.support

from edgekube.bus import topics
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.local.broker import Mosquitto
from edgekube.local.images import ensure_demo_image
from edgekube.local.podman_service import PodmanService
from edgekube.model.errors import BusError
from edgekube.model.wire import ApiRequest, Verb
from tests.support.cluster import ApiClient, phase, wait_for

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "examples" / "hello-pod.yaml"
IMAGE = "localhost/edgekube/busybox:1"
EKCTL = str(Path(sys.executable).with_name("ekctl"))
RSS_GOAL_MB = 40.0
STARTUP_GOAL_S = 0.15

#: The bare podman-py worker: creates the same two-container pod on a "go" line, answers with the seconds it took.
BARE_WORKER = """
import sys, time
from podman import PodmanClient
url, image = sys.argv[1], sys.argv[2]
web = ["sh", "-c", "trap 'exit 0' TERM; httpd -f -v -p 8080 -h /www & wait"]
client_cmd = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 2 & wait $!; done"]
with PodmanClient(base_url=url) as client:
    for line in sys.stdin:
        name = line.strip()
        started = time.perf_counter()
        pod = client.pods.create(name=name)
        # The limits of examples/hello-pod.yaml, as kube play and edgekube apply them.
        client.containers.create(image, command=web, pod=pod.id, name=f"{name}-web",
                                 mem_limit="32m", cpu_period=100000, cpu_quota=25000, cpu_shares=51)
        client.containers.create(image, command=client_cmd, pod=pod.id, name=f"{name}-client",
                                 mem_limit="16m", cpu_period=100000, cpu_quota=10000, cpu_shares=10)
        pod.start()
        print(time.perf_counter() - started, flush=True)
"""


class Bench:
    def __init__(self, work: Path, broker: Mosquitto, service: PodmanService, py_spy: Path | None) -> None:
        self.work = work
        self.broker = broker
        self.service = service
        self.podman = PodmanClient(base_url=service.url)
        self.daemons: dict[str, subprocess.Popen[bytes]] = {}
        self.spies: list[subprocess.Popen[bytes]] = []
        self.py_spy = py_spy
        self.bare = subprocess.Popen(
            [sys.executable, "-c", BARE_WORKER, service.url, IMAGE],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.client: ApiClient | None = None

    # -- the cluster ------------------------------------------------------------------------------------
    def start_cluster(self) -> None:
        port = str(self.broker.port)
        self._daemon("master", ["master", "--mqtt-port", port, "--data-dir", str(self.work / "master")])
        self._daemon(
            "agent",
            ["agent", "--node", "bench-1", "--mqtt-port", port, "--podman-url", self.service.url,
             "--state-dir", str(self.work / "agent")],
        )  # fmt: skip
        self.client = ApiClient(self.broker.port)
        wait_for("node Ready", self._node_ready, timeout=60, interval=0.1)

    def _daemon(self, name: str, args: list[str]) -> None:
        log = (self.work / f"{name}.log").open("ab")
        self.daemons[name] = subprocess.Popen(
            [sys.executable, "-m", "edgekube.main", "--log-level", "WARNING", *args],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )  # fmt: skip
        log.close()

    def _node_ready(self) -> bool:
        assert self.client is not None
        try:  # the first requests may go out before the master has subscribed: nobody answers them
            nodes = self.client.objects("Node", timeout=1)
        except BusError:
            return False
        return any(c["status"] == "True" for n in nodes for c in n["status"]["conditions"] if c["type"] == "Ready")

    def spy(self) -> None:
        """py-spy the master and the agent for the rest of the run (flame graphs in --py-spy DIR)."""
        if self.py_spy is None:
            return
        self.py_spy.mkdir(parents=True, exist_ok=True)
        for name, proc in self.daemons.items():
            out = self.py_spy / f"{name}.svg"
            cmd = [
                str(Path(sys.executable).with_name("py-spy")),
                "record",
                "-p",
                str(proc.pid),
                "-o",
                str(out),
                "-r",
                "250",
            ]
            self.spies.append(
                subprocess.Popen([*cmd, "--threads"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )

    def stop(self) -> None:
        for spy in self.spies:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=30)
        if self.client is not None:
            self.client.close()
        for proc in self.daemons.values():
            proc.terminate()
            proc.wait(timeout=30)
        if self.bare.stdin is not None:
            self.bare.stdin.close()
        self.bare.wait(timeout=10)
        self.podman.api.close()

    # -- what every subject ends on ------------------------------------------------------------------------
    def running(self, pod_name_prefix: str) -> bool:
        """Podman shows a pod named `prefix…` whose containers (infra included) all run: the common end point."""
        data = self.podman.api.get("/containers/json", params={"all": "true"}).json()
        mine = [c for c in data if str(c.get("PodName", "")).startswith(pod_name_prefix)]
        return len(mine) == 3 and all(c.get("State") == "running" for c in mine)

    def until_running(self, prefix: str, started: float) -> float:
        wait_for(f"{prefix} running in podman", lambda: self.running(prefix), timeout=60, interval=0.005)
        return time.perf_counter() - started

    def clear(self) -> None:
        """Remove every pod at once (no grace), so no removal competes with the next subject."""
        for pod in self.podman.api.get("/pods/json").json() or []:
            self.podman.api.delete(f"/pods/{pod['Id']}", params={"force": "true", "t": "0"}).close()

    # -- subjects ----------------------------------------------------------------------------------------
    def kube_play(self, n: int) -> float:
        started = time.perf_counter()
        self.service.podman("kube", "play", str(MANIFEST))
        elapsed = self.until_running("hello", started)
        self.clear()
        return elapsed

    def bare_podman_py(self, n: int) -> float:
        assert self.bare.stdin is not None and self.bare.stdout is not None
        self.bare.stdin.write(f"bare{n}\n")
        self.bare.stdin.flush()
        inside = float(self.bare.stdout.readline())
        # The worker's own clock covers its calls; the end point check is added the same way as for the others.
        started = time.perf_counter()
        elapsed = inside + self.until_running(f"bare{n}", started)
        self.clear()
        return elapsed

    def edgekube(self, n: int) -> float:
        assert self.client is not None
        client = self.client
        started = time.perf_counter()
        assert client.apply(MANIFEST.read_text()).ok
        wait_for("hello Running", lambda: phase(client, "hello") == "Running", timeout=60, interval=0.01)
        elapsed = self.until_running("ek_default_hello_", started)
        self._edgekube_delete()
        return elapsed

    def ekctl_apply(self, n: int) -> float:
        port = str(self.broker.port)
        started = time.perf_counter()
        subprocess.run([EKCTL, "--mqtt-port", port, "apply", "-f", str(MANIFEST), "--wait"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        elapsed = self.until_running("ek_default_hello_", started)
        self._edgekube_delete()
        return elapsed

    def _edgekube_delete(self) -> None:
        assert self.client is not None
        client = self.client
        assert client.delete("Pod", "hello").ok
        wait_for("hello gone", lambda: not client.pods(), timeout=60, interval=0.02)
        wait_for("podman empty", lambda: not self.podman.api.get("/pods/json").json(), timeout=60, interval=0.02)

    def agent_rss_mb(self) -> float:
        status = Path(f"/proc/{self.daemons['agent'].pid}/status").read_text()
        kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        return kb / 1024


def rpc_round_trips(port: int, count: int) -> list[float]:
    """master→agent command path without Podman work: a logs request the agent decodes, validates and answers."""
    bus = PahoBus(BusConfig(port=port)).start(wait=5)
    payload = ApiRequest(verb=Verb.LOGS, name="no-such-pod").encode()
    samples = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            bus.request(topics.node_rpc("bench-1"), payload, timeout=5)
            samples.append(time.perf_counter() - started)
    finally:
        bus.close()
    return samples


def mqtt_round_trips(port: int, nodelay: bool, count: int) -> list[float]:
    """Echo QoS 1 messages between two paho clients; `nodelay=False` undoes TCP_NODELAY for comparison."""
    a, b = PahoBus(BusConfig(port=port)), PahoBus(BusConfig(port=port))
    if not nodelay:
        for bus in (a, b):
            bus._client.on_socket_open = _nagle
    a.start(wait=5)
    b.start(wait=5)
    b.subscribe("bench/ping", lambda m: b.publish(m.response_topic or "", m.payload, correlation=m.correlation))
    time.sleep(0.3)
    samples = []
    try:
        for _ in range(count):
            started = time.perf_counter()
            a.request("bench/ping", b"x" * 200, timeout=5)
            samples.append(time.perf_counter() - started)
    finally:
        a.close()
        b.close()
    return samples


def _nagle(client: Any, userdata: Any, sock: Any) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)


def ekctl_startup() -> float:
    started = time.perf_counter()
    subprocess.run([EKCTL, "--help"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def line(name: str, samples: list[float], base: list[float] | None) -> str:
    p50, p95 = statistics.median(samples), pct(samples, 0.95)
    text = (
        f"  {name:<24} p50 {p50 * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms  "
        f"min {min(samples) * 1000:7.1f}  max {max(samples) * 1000:7.1f}  (n={len(samples)})"
    )
    if base is not None:
        text += f"   x kube play: p50 {p50 / statistics.median(base):.2f}  p95 {p95 / pct(base, 0.95):.2f}"
    return text


#: Every subject, in the order of the first trial (later trials rotate it), with what it measures.
SUBJECTS = (
    ("podman kube play", "the baseline: local CLI"),
    ("bare podman-py", "worker process"),
    ("edgekube in-process", "API request from this process"),
    ("ekctl apply --wait", "whole ekctl process"),
    ("ekctl start-up", "ekctl --help"),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20, help="trials per subject (default 20)")
    parser.add_argument("--quick", action="store_true", help="3 trials each: a smoke run, not a measurement")
    parser.add_argument("--round-trips", action="store_true", help="also: MQTT round trips (rpc, TCP_NODELAY on/off)")
    parser.add_argument("--py-spy", type=Path, metavar="DIR", help="record flame graphs of master and agent here")
    args = parser.parse_args()
    trials = 3 if args.quick else args.trials
    work = Path(tempfile.mkdtemp(prefix="ek-bench-"))
    results: dict[str, list[float]] = {}
    with Mosquitto(None, work / "broker") as broker, PodmanService(work / "p") as service:
        ensure_demo_image(service)
        bench = Bench(work, broker, service, args.py_spy)
        try:
            bench.start_cluster()
            time.sleep(2.0)
            rss_start = bench.agent_rss_mb()
            run = {
                "podman kube play": bench.kube_play,
                "bare podman-py": bench.bare_podman_py,
                "edgekube in-process": bench.edgekube,
                "ekctl apply --wait": bench.ekctl_apply,
                "ekctl start-up": lambda n: ekctl_startup(),
            }
            subjects: list[tuple[str, Callable[[int], float]]] = [(name, run[name]) for name, _ in SUBJECTS]
            for _name, fn in subjects:  # one warm-up each: first image use, first pod, imports in the page cache
                fn(-1)
            bench.spy()
            for i in range(trials):
                shift = i % len(subjects)
                for name, fn in subjects[shift:] + subjects[:shift]:
                    results.setdefault(name, []).append(fn(i))
                done = "  ".join(f"{name} {results[name][-1] * 1000:.0f}" for name, _ in subjects)
                print(f"trial {i + 1}/{trials} (ms): {done}", flush=True)
            time.sleep(3.0)  # idle: no pods, a resync or two since the last removal
            rss_idle = []
            for _ in range(3):
                time.sleep(0.5)
                rss_idle.append(bench.agent_rss_mb())
            if args.round_trips:
                results["master→agent rpc"] = rpc_round_trips(broker.port, 200)
                results["paho QoS 1, NODELAY on"] = mqtt_round_trips(broker.port, True, 200)
                results["paho QoS 1, NODELAY off"] = mqtt_round_trips(broker.port, False, 50)
        finally:
            bench.stop()
            service.destroy()
    kube = results["podman kube play"]
    print()
    print(f"apply → Running, examples/hello-pod.yaml (2 containers), {trials} trials, subjects interleaved;")
    print("end point for all: every container of the pod Running as Podman reports it")
    print(line("podman kube play", kube, None))
    spread = pct(kube, 0.95) - pct(kube, 0.05)
    iqr = pct(kube, 0.75) - pct(kube, 0.25)
    cv = statistics.stdev(kube) / statistics.mean(kube) if len(kube) > 1 else 0.0
    print(f"    baseline spread: p5-p95 {spread * 1000:.0f} ms, IQR {iqr * 1000:.0f} ms, stdev/mean {cv:.0%}")
    for name in ("bare podman-py", "edgekube in-process", "ekctl apply --wait"):
        print(line(name, results[name], kube))
    startup = results["ekctl start-up"]
    goal = "met" if statistics.median(startup) <= STARTUP_GOAL_S else "NOT met"
    print(line("ekctl start-up (--help)", startup, None) + f"   goal ≤ {STARTUP_GOAL_S} s: {goal}")
    idle = statistics.median(rss_idle)
    goal = "met" if idle <= RSS_GOAL_MB else "NOT met"
    print(
        f"  agent RSS idle           {idle:.1f} MB after the trials ({rss_start:.1f} MB before)"
        f"   goal ≤ {RSS_GOAL_MB:g} MB: {goal}"
    )
    if args.round_trips:
        print("round trips over Mosquitto on loopback (request → answer):")
        for name in ("master→agent rpc", "paho QoS 1, NODELAY on", "paho QoS 1, NODELAY off"):
            print(line(name, results[name], None))
    apply_samples = {name: [round(x, 4) for x in results[name]] for name, _ in SUBJECTS}
    print("json: " + json.dumps(apply_samples | {"rss_idle_mb": round(idle, 1), "rss_start_mb": round(rss_start, 1)}))
    if os.environ.get("EK_BENCH_KEEP"):
        print(f"work dir kept: {work}")


if __name__ == "__main__":
    main()
