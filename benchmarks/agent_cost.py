"""Benchmark: what node telemetry (and the status LEDs) cost the agent — CPU, RSS, bytes written to disk.

Run: .venv/bin/python benchmarks/agent_cost.py [--pods 10,50] [--trials N] [--window S] [--interval S] [--quick]

Mosquitto, a Podman service on a store of its own and the busybox demo image. The test plays the master: it
publishes the node's desired state (retained) with P idle pods; one agent creates them, then every trial starts a
fresh `edgekube agent` process on that node (it adopts the running pods), lets it settle, and measures it over a
window of S seconds (from `--warmup` seconds after its first heartbeat):
  CPU      utime + stime of the agent process over the window (/proc/<pid>/stat), as % of one core
  RSS      VmRSS at the end of the window (/proc/<pid>/status)
  writes   write_bytes of the agent process over the window (/proc/<pid>/io: page-cache pages it dirtied),
           scaled to bytes per hour (goal: 0 — telemetry keeps its history in memory)
  podman   CPU of the Podman API service over the same window (the stats calls are served there)
Three configurations, each its own processes, trials interleaved (the order rotates each trial):
  on         telemetry every `--interval` s (default 10, the agent's default) + LEDs (two pins on gpiozero's
             MockFactory, when edgekube.agent.indicators exists)
  telemetry  telemetry as above, no LEDs
  off        telemetry_interval 0, no LEDs
Everything else is the agent's defaults (heartbeats every 0.5 s, resync every 2 s, node health every 10 s,
/metrics off). The agents run with PYTHONDONTWRITEBYTECODE=1: in a development tree a process may rewrite a stale
.pyc while measured, which is no write of the agent's (an installed wheel ships its bytecode).
Only steady state counts: a window in which the agent re-created pods (their spec hash changed, e.g. the code under
measure was edited between two trials) is measured again. `--quick` (a few minutes): one trial of 20 s per
configuration and pod count.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from edgekube.agent.runtime.podman import PodmanRuntime
from edgekube.agent.runtime.protocol import ContainerRunState
from edgekube.bus import topics
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.local.broker import Mosquitto
from edgekube.local.images import DEMO_IMAGE, ensure_demo_image
from edgekube.local.podman_service import PodmanService
from edgekube.model.names import NodeName
from edgekube.model.wire import NodeDesired

ROOT = Path(__file__).resolve().parents[1]
EDGEKUBE = str(Path(sys.executable).parent / "edgekube")
NODE = NodeName("bench-node")
IDLE = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 5 & wait $!; done"]
TICKS = os.sysconf("SC_CLK_TCK")
LEDS = importlib.util.find_spec("edgekube.agent.indicators") is not None
CONFIGS = ("on", "telemetry", "off")


def pod(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"idle-{index:03d}", "namespace": "default", "uid": str(uuid.UUID(int=index + 1))},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": DEMO_IMAGE, "command": IDLE}],
        },
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15 of the whole line)


def write_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Trial:
    pods: int
    config: str
    cpu_percent: float
    rss_mb: float
    write_bytes_per_hour: float
    podman_percent: float
    samples: int  # telemetry reports the agent published during the window


class Bench:
    def __init__(self, work: Path, interval: float) -> None:
        self.work = work
        self.interval = interval
        self.broker = Mosquitto(workdir=work / "broker")
        self.service = PodmanService(work / "podman")
        self.generation = 0
        self.epoch = uuid.uuid4().hex
        self.reports = 0
        self.heartbeats = 0

    def start(self) -> None:
        self.broker.start()
        self.service.start()
        ensure_demo_image(self.service)
        self.master = PahoBus(BusConfig(port=self.broker.port, client_id="bench-master"))
        self.master.subscribe(topics.node_metrics(NODE), self._on_metrics, qos=0)
        self.master.subscribe(topics.node_heartbeat(NODE), self._on_heartbeat, qos=0)
        self.master.start(wait=10)
        self.runtime = PodmanRuntime(self.service.url, NODE)

    def _on_metrics(self, _msg: Any) -> None:
        self.reports += 1

    def _on_heartbeat(self, _msg: Any) -> None:
        self.heartbeats += 1

    def want(self, count: int) -> None:
        self.generation += 1
        desired = NodeDesired(
            node=NODE, generation=self.generation, epoch=self.epoch, pods=[pod(i) for i in range(count)]
        )
        self.master.publish(topics.node_desired(NODE), desired.encode(), retain=True)

    def running(self) -> int:
        return sum(
            1
            for p in self.runtime.list_pods()
            if p.containers and all(c.state is ContainerRunState.RUNNING for c in p.containers)
        )

    def agent(self, config: str) -> subprocess.Popen[bytes]:
        args = [
            EDGEKUBE, "agent", "--node", NODE, "--mqtt-port", str(self.broker.port), "--podman-url", self.service.url,
            "--state-dir", str(self.work / "agent"), "--fence-dir", "", "--container-store", str(self.service.root),
            "--telemetry-interval", str(0 if config == "off" else self.interval),
        ]  # fmt: skip
        if config == "on" and LEDS:
            args += ["--led-pins", "17,27", "--led-pin-factory", "mock"]
        log = (self.work / f"agent-{config}.log").open("ab")
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)

    def settle(self, count: int, timeout: float = 300) -> None:
        """Run an agent (telemetry off) until `count` pods run; stop it (the pods stay)."""
        self.want(count)
        proc = self.agent("off")
        try:
            deadline = time.monotonic() + timeout
            while self.running() < count:
                if time.monotonic() > deadline:
                    raise SystemExit(f"FAILED: {self.running()}/{count} pods running after {timeout:g}s")
                time.sleep(0.5)
        finally:
            stop(proc)

    def pod_ids(self) -> dict[str, str]:
        return {p.uid: p.pod_id for p in self.runtime.list_pods()}

    def trial(self, pods: int, config: str, window: float, warmup: float) -> Trial:
        """One measured window; measured again if the agent re-created pods in it (only steady state counts)."""
        for _ in range(3):
            trial = self._measure(pods, config, window, warmup)
            if trial is not None:
                return trial
            print(f"note: pods were re-created during a {config} trial at {pods} pods; measuring it again")
        raise SystemExit(f"FAILED: pods re-created in every {config} trial; see {self.work}/agent-{config}.log")

    def _measure(self, pods: int, config: str, window: float, warmup: float) -> Trial | None:
        proc = self.agent(config)
        # The Podman service object keeps its process private; the benchmark needs only its pid.
        service_pid = self.service._process.pid if self.service._process else 0
        try:
            # Up (imported, connected: its first heartbeat), then `warmup` more: start-up is not measured.
            beats, deadline = self.heartbeats, time.monotonic() + 60
            while self.heartbeats == beats and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(warmup)
            deadline = time.monotonic() + 300
            while self.running() < pods:  # e.g. the agent re-creates pods whose spec hash changed
                if proc.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            if proc.poll() is not None:
                raise SystemExit(f"FAILED: the agent exited ({proc.returncode}); see {self.work}/agent-{config}.log")
            ids = self.pod_ids()
            cpu0, io0, podman0 = cpu_seconds(proc.pid), write_bytes(proc.pid), cpu_seconds(service_pid)
            reports0, start = self.reports, time.monotonic()
            time.sleep(window)
            took = time.monotonic() - start
            cpu1, io1, podman1 = cpu_seconds(proc.pid), write_bytes(proc.pid), cpu_seconds(service_pid)
            rss = rss_mb(proc.pid)
            steady = self.pod_ids() == ids and self.running() == pods
        finally:
            stop(proc)
        if not steady:
            return None
        return Trial(
            pods=pods, config=config, cpu_percent=100 * (cpu1 - cpu0) / took, rss_mb=rss,
            write_bytes_per_hour=(io1 - io0) * 3600 / took, podman_percent=100 * (podman1 - podman0) / took,
            samples=self.reports - reports0,
        )  # fmt: skip

    def close(self) -> None:
        with contextlib.suppress(Exception):
            for p in self.runtime.list_pods():
                self.runtime.remove_pod(p.uid, grace_seconds=0)
            self.runtime.close()
        with contextlib.suppress(Exception):
            self.master.close()
        self.service.destroy()
        self.broker.stop()


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pods", default="10,50", help="pod counts, comma-separated (default 10,50)")
    parser.add_argument("--trials", type=int, default=3, help="trials per configuration and pod count (default 3)")
    parser.add_argument("--window", type=float, default=60.0, help="seconds measured per trial (default 60)")
    parser.add_argument("--interval", type=float, default=10.0, help="telemetry interval when on (default 10)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring (default 5)")
    parser.add_argument("--quick", action="store_true", help="one 20 s trial per configuration and pod count")
    parser.add_argument("--json", action="store_true", help="also print the trials as JSON")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.window, args.warmup = 1, min(args.window, 20.0), min(args.warmup, 3.0)
    counts = sorted({int(c) for c in args.pods.split(",")})
    work = Path(tempfile.mkdtemp(prefix="ek-cost-", dir="/tmp"))
    bench = Bench(work, args.interval)
    trials: list[Trial] = []
    try:
        bench.start()
        print(f"agent cost: pods {counts}, {args.trials} trial(s) x {args.window:g} s, telemetry every "
              f"{args.interval:g} s, LEDs {'on MockFactory' if LEDS else 'not available'}; work {work}")  # fmt: skip
        for count in counts:
            bench.settle(count)
            for n in range(args.trials):
                for k in range(len(CONFIGS)):
                    config = CONFIGS[(n + k) % len(CONFIGS)]
                    trials.append(bench.trial(count, config, args.window, args.warmup))
    finally:
        bench.close()
    print(
        f"{'pods':>5} {'config':<13} {'trials':>6} {'CPU %':>7} {'RSS MB':>7} {'writes B/h':>11} {'podman CPU %':>13}"
    )
    for count in counts:
        mean: dict[str, tuple[float, float, float]] = {}
        for config in CONFIGS:
            mine = [t for t in trials if t.pods == count and t.config == config]
            mean[config] = (
                statistics.mean(t.cpu_percent for t in mine),
                statistics.mean(t.rss_mb for t in mine),
                statistics.mean(t.podman_percent for t in mine),
            )
            cpu, rss, podman = mean[config]
            writes = max(t.write_bytes_per_hour for t in mine)
            print(f"{count:>5} {config:<13} {len(mine):>6} {cpu:>7.2f} {rss:>7.1f} {writes:>11.0f} {podman:>13.2f}")
        for config in CONFIGS[:-1]:
            d = [a - b for a, b in zip(mean[config], mean["off"], strict=True)]
            print(f"{count:>5} {config + '-off':<13} {'':>6} {d[0]:>+7.2f} {d[1]:>+7.1f} {'':>11} {d[2]:>+13.2f}")
    reports = sum(t.samples for t in trials if t.config != "off")
    print(f"telemetry reports received while measuring 'on' and 'telemetry': {reports}")
    if args.json:
        print(json.dumps([t.__dict__ for t in trials]))


if __name__ == "__main__":
    main()
