"""Benchmark: apply → Running of examples/hello-pod.yaml on edgekube vs `podman kube play` vs bare podman-py,
plus the master→agent command round trip and a raw MQTT QoS 1 round trip with and without TCP_NODELAY.

Run: .venv/bin/python benchmarks/apply_to_running.py [--trials N]
Everything runs on this machine: its own Mosquitto on a free port, its own Podman service and store.
"""

from __future__ import annotations

import argparse
import socket
import statistics
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
from edgekube.model.wire import ApiRequest, Verb
from tests.support.cluster import ApiClient, phase, start_agent, start_master, wait_for

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "examples" / "hello-pod.yaml"
IMAGE = "localhost/edgekube/busybox:1"


def _stats(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(ordered) * 1000:8.1f} ms   p95 {p95 * 1000:8.1f} ms   (n={len(ordered)})"


def kube_play(service: PodmanService) -> float:
    started = time.perf_counter()
    service.podman("kube", "play", str(MANIFEST))
    elapsed = time.perf_counter() - started
    service.podman("kube", "down", str(MANIFEST))
    return elapsed


def bare_podman_py(service: PodmanService, n: int) -> float:
    with PodmanClient(base_url=service.url) as client:
        started = time.perf_counter()
        pod = client.pods.create(name=f"bare-{n}", portmappings=[])
        client.containers.create(
            IMAGE, command=["httpd", "-f", "-p", "8080", "-h", "/www"], pod=pod.id, name=f"bare-{n}-web"
        )
        client.containers.create(IMAGE, command=["sh", "-c", "sleep 3600"], pod=pod.id, name=f"bare-{n}-client")
        pod.start()
        elapsed = time.perf_counter() - started
        pod.remove(force=True)
    return elapsed


def edgekube_apply(client: ApiClient) -> float:
    started = time.perf_counter()
    assert client.apply(MANIFEST.read_text()).ok
    wait_for("hello Running", lambda: phase(client, "hello") == "Running", timeout=60, interval=0.01)
    elapsed = time.perf_counter() - started
    assert client.delete("Pod", "hello").ok
    wait_for("hello gone", lambda: not client.pods(), timeout=60, interval=0.05)
    return elapsed


def wait_podman_empty(service: PodmanService) -> None:
    wait_for("podman pods removed", lambda: not service.podman("pod", "ps", "-q").stdout.strip(), timeout=60)


def rpc_round_trip(bus: PahoBus, node: str) -> float:
    # An rpc the agent must decode, validate and answer: the master→agent command path without Podman work.
    payload = ApiRequest(verb=Verb.GET, kind="Pod", name="x").encode()
    started = time.perf_counter()
    bus.request(topics.node_rpc(node), payload, timeout=5)
    return time.perf_counter() - started


def mqtt_round_trip(port: int, nodelay: bool, count: int) -> list[float]:
    """Echo QoS 1 messages between two paho clients; `nodelay=False` undoes TCP_NODELAY for comparison."""
    a = PahoBus(BusConfig(port=port))
    b = PahoBus(BusConfig(port=port))
    if not nodelay:
        for bus in (a, b):
            bus._client.on_socket_open = _nagle
    a.start(wait=5)
    b.start(wait=5)
    b.subscribe("bench/ping", lambda m: b.publish(m.response_topic or "", m.payload, correlation=m.correlation))
    time.sleep(0.3)
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        a.request("bench/ping", b"x" * 200, timeout=5)
        samples.append(time.perf_counter() - started)
    a.close()
    b.close()
    return samples


def _nagle(client: Any, userdata: Any, sock: Any) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)


def measure(label: str, fn: Callable[[int], float], trials: int) -> list[float]:
    samples = []
    for i in range(trials):
        samples.append(fn(i))
        print(f"  {label} trial {i + 1}/{trials}: {samples[-1] * 1000:.0f} ms", flush=True)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ek-bench-"))
    with Mosquitto(None, work / "broker") as broker, PodmanService(work / "p") as service:
        ensure_demo_image(service)
        master = start_master(broker.port, work / "master")
        agent = start_agent(broker.port, "bench-1", service, work / "agent")
        client = ApiClient(broker.port)
        wait_for(
            "node ready",
            lambda: any(
                c["status"] == "True" for n in client.nodes() for c in n["status"]["conditions"] if c["type"] == "Ready"
            ),
        )
        try:
            kube = measure("podman kube play", lambda i: kube_play(service), args.trials)
            bare = measure("bare podman-py", lambda i: bare_podman_py(service, i), args.trials)
            ek = measure("edgekube apply→Running", lambda i: edgekube_apply(client), args.trials)
            wait_podman_empty(service)
            rpc = [rpc_round_trip(client.bus, "bench-1") for _ in range(200)]
        finally:
            client.close()
            agent.stop()
            master.stop()
            service.destroy()
        fast = mqtt_round_trip(broker.port, True, 200)
        slow = mqtt_round_trip(broker.port, False, 50)
    k, b, e = statistics.median(kube), statistics.median(bare), statistics.median(ek)
    print()
    print("apply → Running, two-container pod (examples/hello-pod.yaml), same Podman store, same run:")
    print(f"  podman kube play        {_stats(kube)}")
    print(f"  bare podman-py          {_stats(bare)}")
    print(f"  edgekube apply→Running  {_stats(ek)}")
    print(f"  ratio edgekube / kube play = {e / k:.2f}   edgekube / bare podman-py = {e / b:.2f}")
    print("round trips over Mosquitto on loopback:")
    print(f"  master→agent rpc (QoS 1, decode+validate+reply)  {_stats(rpc)}")
    print(f"  raw paho QoS 1 request/reply, TCP_NODELAY on     {_stats(fast)}")
    print(f"  raw paho QoS 1 request/reply, TCP_NODELAY off    {_stats(slow)}")


if __name__ == "__main__":
    main()
