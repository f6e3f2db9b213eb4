"""Benchmark: time to roll a 30-replica Deployment from image A to image B over 3 nodes, for several strategies.

Run:
    .venv/bin/python benchmarks/rollout.py [--nodes sim|podman] [--replicas 30] [--trials 3]
        [--ready-delay 1.0] [--strategy 25%/25% --strategy 100%/0 ...]

One Mosquitto and an in-process master (resync 0.5 s). Nodes: `sim` (default) are three simulated agents
(tests/support/simnodes.py) that report each pod Running and Ready `--ready-delay` seconds after they get it (a
container start plus a readiness probe's first success); `podman` are three real agents on one Podman service,
image A the busybox demo image and image B the same image under a second name. Each strategy is `maxSurge/
maxUnavailable`; the first is kubectl's default, 25%/25%.

A trial, per strategy: apply the Deployment on image A and wait until every replica is Ready; then `set image` to B
(the same apply `ekctl set image` makes) and time until the Deployment reports every replica updated and available
and no old pod is left in the store. A listener on the master's cache samples every Pod write during the rollout:
the peak number of pods and the lowest number of Ready ones are reported beside the time (the bounds the strategy
promises: peak <= replicas + maxSurge, lowest >= replicas - maxUnavailable). The Deployment is then deleted and its
pods waited out. Strategies alternate in order from trial to trial (load on the machine hits them all alike); the
median over trials is printed, with every sample.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere: tests.support

from edgekube.local.broker import Mosquitto
from edgekube.master.app import Master
from edgekube.master.config import MasterConfig
from edgekube.master.wiring import build_master
from edgekube.model.deployment import fenceposts
from edgekube.model.wire import ApiRequest, Verb
from tests.support.cluster import ApiClient, wait_for

NODES = ["node-1", "node-2", "node-3"]
MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: bench}
spec:
  replicas: %(replicas)d
  selector: {matchLabels: {app: bench}}
  strategy: {rollingUpdate: {maxSurge: %(surge)s, maxUnavailable: %(unavailable)s}}
  template:
    metadata: {labels: {app: bench}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: app, image: "%(image)s", command: [sleep, "3600"]}]
"""


class Sampler:
    """Peak pods and lowest Ready pods of the Deployment, over every Pod write since `reset`."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], bool] = {}
        self.peak, self.lowest = 0, 10**9
        self.lock = threading.Lock()

    def __call__(self, key: tuple[str, str], pod: dict[str, Any] | None) -> None:
        with self.lock:
            if pod is None or (pod["metadata"].get("labels") or {}).get("app") != "bench":
                self.pods.pop(key, None)
            else:
                conditions = (pod.get("status") or {}).get("conditions") or ()
                self.pods[key] = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
            self.peak = max(self.peak, len(self.pods))
            self.lowest = min(self.lowest, sum(self.pods.values()))

    def reset(self) -> None:
        with self.lock:
            self.peak, self.lowest = len(self.pods), sum(self.pods.values())


def _yaml(value: int | str) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def _value(text: str) -> int | str:
    return text if text.endswith("%") else int(text)


def strategy(text: str) -> tuple[int | str, int | str]:
    surge, _, unavailable = text.partition("/")
    return _value(surge), _value(unavailable)


@contextmanager
def sim_nodes(port: int, ready_delay: float) -> Iterator[tuple[str, str]]:
    from tests.support.simnodes import SimNodes  # noqa: PLC0415 - only for this mode

    sims = SimNodes(port, NODES, start_delay=ready_delay, heartbeat_interval=0.5).start()
    try:
        yield "img:a", "img:b"
    finally:
        sims.close()


@contextmanager
def podman_nodes(port: int, work: Path) -> Iterator[tuple[str, str]]:
    from edgekube.local.images import ensure_demo_image  # noqa: PLC0415 - only for this mode
    from edgekube.local.podman_service import PodmanService  # noqa: PLC0415
    from tests.support.cluster import start_agent, stop_agent  # noqa: PLC0415

    service = PodmanService(Path(tempfile.mkdtemp(prefix="ek-bench-podman-", dir="/tmp"))).start()
    agents = []
    try:
        image_a = ensure_demo_image(service)
        image_b = ensure_demo_image(service, "localhost/edgekube/busybox-b:1")
        for name in NODES:
            agents.append(start_agent(port, name, service, work / name, device_dir="", fence_dir=""))
        yield image_a, image_b
    finally:
        for agent in agents:
            stop_agent(agent)
        service.stop()


def rolled_out(client: ApiClient, replicas: int, image: str) -> bool:
    deployment = client.call(ApiRequest(verb=Verb.GET, kind="Deployment", name="bench")).object or {}
    status = deployment.get("status") or {}
    counts = (status.get("replicas"), status.get("updatedReplicas"), status.get("availableReplicas"))
    if counts != (replicas, replicas, replicas):
        return False
    pods = client.call(ApiRequest(verb=Verb.LIST, kind="Pod", selector="app=bench")).items or []
    return len(pods) == replicas and all(p["spec"]["containers"][0]["image"] == image for p in pods)


def one_rollout(
    client: ApiClient,
    sampler: Sampler,
    replicas: int,
    surge: int | str,
    unavailable: int | str,
    images: tuple[str, str],
) -> tuple[float, int, int]:
    """(seconds from `set image` to rolled out, peak pods, lowest Ready pods) for one strategy."""

    def text(image: str) -> str:
        fields = {"replicas": replicas, "surge": _yaml(surge), "unavailable": _yaml(unavailable), "image": image}
        return MANIFEST % fields

    assert client.apply(text(images[0])).ok
    wait_for("image A rolled out", lambda: rolled_out(client, replicas, images[0]), timeout=600, interval=0.1)
    sampler.reset()
    started = time.monotonic()
    assert client.apply(text(images[1])).ok
    wait_for("image B rolled out", lambda: rolled_out(client, replicas, images[1]), timeout=600, interval=0.05)
    elapsed = time.monotonic() - started
    peak, lowest = sampler.peak, sampler.lowest
    assert client.delete("Deployment", "bench").ok
    gone = ApiRequest(verb=Verb.LIST, kind="Pod", selector="app=bench")
    wait_for("the pods gone", lambda: not client.call(gone).items, timeout=300)
    return elapsed, peak, lowest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nodes", choices=("sim", "podman"), default="sim")
    parser.add_argument("--replicas", type=int, default=30)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--ready-delay", type=float, default=1.0, help="sim: seconds from a pod's arrival to Ready")
    parser.add_argument("--strategy", action="append", type=strategy, metavar="SURGE/UNAVAILABLE")
    args = parser.parse_args()
    strategies: list[tuple[int | str, int | str]] = args.strategy or [("25%", "25%"), ("100%", 0)]
    if ("25%", "25%") not in strategies:
        strategies.insert(0, ("25%", "25%"))
    results: dict[tuple[int | str, int | str], list[tuple[float, int, int]]] = {s: [] for s in strategies}
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ek-bench-rollout-")))
        broker = stack.enter_context(Mosquitto(workdir=work / "broker"))
        config = MasterConfig(mqtt_port=broker.port, data_dir=work / "master", node_timeout=4.0, resync_interval=0.5)
        master: Master = build_master(config).start(wait=10)
        stack.callback(master.stop)
        sampler = Sampler()
        with master._lock:
            master.store.listen("Pod", sampler)
        nodes = sim_nodes(broker.port, args.ready_delay) if args.nodes == "sim" else podman_nodes(broker.port, work)
        images = stack.enter_context(nodes)
        client = ApiClient(broker.port)
        stack.callback(client.close)
        wait_for("three nodes", lambda: len(client.call(ApiRequest(verb=Verb.LIST, kind="Node")).items or []) == 3)
        for trial in range(args.trials):
            order = strategies if trial % 2 == 0 else list(reversed(strategies))
            for surge, unavailable in order:
                sample = one_rollout(client, sampler, args.replicas, surge, unavailable, images)
                results[(surge, unavailable)].append(sample)
                print(f"trial {trial + 1} {surge}/{unavailable}: {sample[0]:.2f} s, peak {sample[1]}, lowest ready "
                      f"{sample[2]}", flush=True)  # fmt: skip
    print(f"\n{args.replicas} replicas over 3 {args.nodes} nodes, {args.trials} trial(s) each, median seconds:")
    for (surge, unavailable), samples in results.items():
        spec = {
            "replicas": args.replicas,
            "strategy": {"rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}},
        }
        max_surge, max_unavailable = fenceposts(spec)
        times = [s[0] for s in samples]
        print(
            f"  maxSurge {surge!s:>4} ({max_surge:2d} pods) "
            f"maxUnavailable {unavailable!s:>4} ({max_unavailable:2d} pods): "
            f"{statistics.median(times):6.2f} s  (samples {', '.join(f'{t:.2f}' for t in times)}); "
            f"peak pods {max(s[1] for s in samples)}, lowest Ready {min(s[2] for s in samples)}"
        )


if __name__ == "__main__":
    main()
