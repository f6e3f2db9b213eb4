"""Benchmark: the pod network's data path — pod→Service→pod against pod→pod, and how fast rules follow endpoints.

Run (root: network namespaces):
    .venv/bin/python benchmarks/services.py [--seconds 5] [--rounds 3] [--concurrency 4] [--changes 10]

On three nodes, each its own network namespace, Podman store and pod CIDR on one LAN (tests/support/podnet.py),
real master, agents, Mosquitto, routes and nftables:

1. Request rate and latency. Two busybox httpd pods (node-2, node-3) behind the Service `web` (NodePort, real
   Endpoints from the master); the load runs in the client pod's network namespace on node-1 (the host's Python
   entered with nsenter, so packets leave from the pod's address through its bridge, routes and the node's
   nftables): `--concurrency` threads, each a new TCP connection per request (the NAT path is paid per
   connection), `GET /`, for `--seconds`. Rounds alternate direct (the two pod IPs in turn) and Service (the
   clusterIP), so a change in the machine's load hits both; reported: the median rate of each, their ratio, p50
   and p99 latency over all requests of each kind (nearest rank).
2. Endpoint change → rules applied on every node, at 100 Services x 10 endpoints: a ServiceTable of that size is
   published (retained, as the master does), then `--changes` times one endpoint of one Service moves; the
   sample is the time from the publish to the moment the new endpoint's chain exists in every node's table (each
   node polled by `nft list chain` every 10 ms). The master's own step (Endpoints, table) is not included.
3. Rule-sync CPU: each agent's CPU time (its own and its `nft` children's) over those changes, less what it
   spends idle over as long, per change.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere: tests.support

from edgekube.bus import topics
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.model.netstate import EndpointEntry, ServiceEntry, ServicePortEntry, ServiceTable
from tests.support.podnet import LanFleet, wait_until

IMAGE = "localhost/edgekube/busybox:1"
SERVE = "echo $HOSTNAME > /www/index.html && exec httpd -f -p 8080 -h /www"
CLUSTER_IP = "10.43.0.10"

LOAD = r"""
import json, socket, sys, threading, time
targets = [(t.split(":")[0], int(t.split(":")[1])) for t in sys.argv[1].split(",")]
seconds, threads = float(sys.argv[2]), int(sys.argv[3])
lat, errors, lock = [], [0], threading.Lock()
stop = time.monotonic() + seconds
def run(k):
    i = k
    mine = []
    while time.monotonic() < stop:
        target = targets[i % len(targets)]; i += 1
        t = time.perf_counter()
        try:
            with socket.create_connection(target, timeout=3) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                while s.recv(4096):
                    pass
            mine.append(time.perf_counter() - t)
        except OSError:
            with lock:
                errors[0] += 1
    with lock:
        lat.extend(mine)
ts = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
[t.start() for t in ts]; [t.join() for t in ts]
print(json.dumps({"latencies": lat, "errors": errors[0], "seconds": seconds}))
"""


def pod(name: str, node: str, command: str, labels: dict[str, str]) -> str:
    container: dict[str, object] = {"name": "main", "image": IMAGE, "command": ["/bin/sh", "-c", command]}
    if name.startswith("web"):
        container["ports"] = [{"name": "http", "containerPort": 8080}]
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0, "containers": [container]},
    })  # fmt: skip


SERVICE = json.dumps({
    "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
    "spec": {"clusterIP": CLUSTER_IP, "selector": {"app": "web"},
             "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
})  # fmt: skip


def nearest_rank(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 1)) - 1))]


def pod_ip(fleet: LanFleet, name: str) -> str:
    def ip() -> str | None:
        found = [p for p in fleet.try_list("Pod") or [] if p["metadata"]["name"] == name]
        status = (found[0].get("status") or {}) if found else {}
        return status.get("podIP") if status.get("phase") == "Running" else None

    return str(wait_until(f"{name} running", ip, timeout=120))


def infra_pid(fleet: LanFleet, node: str, pod_name: str) -> int:
    pod_id = next(p.pod_id for p in fleet.pods_on(node) if p.name == pod_name)
    infra = json.loads(fleet.podman[node].podman("pod", "inspect", pod_id).stdout)
    infra_id = (infra[0] if isinstance(infra, list) else infra)["InfraContainerID"]
    return int(fleet.podman[node].podman("inspect", "--format", "{{.State.Pid}}", infra_id).stdout.strip())


def load(pid: int, targets: list[str], seconds: float, threads: int) -> dict[str, object]:
    argv = ["nsenter", "-t", str(pid), "-n", sys.executable, "-c", LOAD, ",".join(targets), str(seconds), str(threads)]
    return dict(json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout))


def rate_and_latency(fleet: LanFleet, args: argparse.Namespace) -> None:
    for name, node in (("web-b", "node-2"), ("web-c", "node-3")):
        fleet.apply(pod(name, node, SERVE, {"app": "web"}))
    fleet.apply(pod("client", "node-1", "exec sleep 1000000", {"app": "client"}))
    fleet.apply(SERVICE)
    direct = [f"{pod_ip(fleet, 'web-b')}:8080", f"{pod_ip(fleet, 'web-c')}:8080"]
    pod_ip(fleet, "client")
    pid = infra_pid(fleet, "node-1", "client")
    wait_until("the Service answering", lambda: not load(pid, [f"{CLUSTER_IP}:80"], 0.5, 1)["errors"], timeout=60)
    results: dict[str, list[dict[str, object]]] = {"direct": [], "service": []}
    for i in range(args.rounds):
        kinds = ["direct", "service"] if i % 2 == 0 else ["service", "direct"]
        for kind in kinds:
            targets = direct if kind == "direct" else [f"{CLUSTER_IP}:80"]
            results[kind].append(load(pid, targets, args.seconds, args.concurrency))
    rates = {}
    print(f"\n1. pod -> pod vs pod -> Service -> pod, node-1 to node-2/node-3, {args.concurrency} threads, "
          f"a new connection per request, {args.rounds} rounds of {args.seconds:g} s each")  # fmt: skip
    for kind, runs in results.items():
        samples = [s for r in runs for s in r["latencies"]]  # type: ignore[attr-defined]
        per_round = [len(r["latencies"]) / float(r["seconds"]) for r in runs]  # type: ignore[arg-type]
        rates[kind] = statistics.median(per_round)
        errors = sum(int(r["errors"]) for r in runs)  # type: ignore[call-overload]
        print(f"   {kind:8} {rates[kind]:8.0f} req/s (rounds: {', '.join(f'{x:.0f}' for x in per_round)})  "
              f"p50 {nearest_rank(samples, 0.5) * 1000:.2f} ms  p99 {nearest_rank(samples, 0.99) * 1000:.2f} ms  "
              f"errors {errors}")  # fmt: skip
    print(f"   Service / direct rate: {rates['service'] / rates['direct']:.2f}")


def big_table(generation: int, moved: str) -> ServiceTable:
    services = []
    for i in range(100):
        endpoints = [EndpointEntry(ip=f"10.42.{j}.{i + 2}", ports={"http": 8080}) for j in range(10)]
        if i == 0:
            endpoints[0] = EndpointEntry(ip=moved, ports={"http": 8080})
        services.append(ServiceEntry(
            namespace="bench", name=f"s{i}", cluster_ip=f"10.43.1.{i + 1}", type="NodePort",
            ports=[ServicePortEntry(name="http", port=80, node_port=31000 + i)], endpoints=endpoints,
        ))  # fmt: skip
    return ServiceTable(generation=generation, services=services)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / 100.0  # utime stime cutime cstime, clock ticks (USER_HZ 100)


def rule_sync(fleet: LanFleet, args: argparse.Namespace) -> None:
    bus = PahoBus(BusConfig(port=fleet.port, client_id="bench-services"))
    bus.start(wait=10)

    def applied_everywhere(moved: str) -> float:
        chain = f"endpoint-bench/s0/tcp/http/{moved}/8080"
        done: dict[str, float] = {}

        def watch(node: str, start: float) -> None:
            while time.monotonic() - start < 30:
                if fleet.in_node(node, "nft", "list", "chain", "ip", "edgekube", chain, check=False).returncode == 0:
                    done[node] = time.monotonic() - start
                    return
                time.sleep(0.01)

        start = time.monotonic()
        bus.publish(topics.SERVICES, big_table(int(time.time() * 1000), moved).encode(), retain=True)
        watchers = [threading.Thread(target=watch, args=(n, start)) for n in fleet.nodes]
        for thread in watchers:
            thread.start()
        for thread in watchers:
            thread.join()
        if len(done) != len(fleet.nodes):
            raise RuntimeError(f"rules not applied on {sorted(set(fleet.nodes) - set(done))} within 30 s")
        return max(done.values())

    applied_everywhere("10.42.250.1")  # the first table of that size
    pids = {n: fleet.agents[n].pid for n in fleet.nodes}
    idle_start = {n: cpu_seconds(p) for n, p in pids.items()}
    began = time.monotonic()
    samples = [applied_everywhere(f"10.42.250.{k + 2}") for k in range(args.changes)]
    busy = time.monotonic() - began
    busy_cpu = {n: cpu_seconds(p) - idle_start[n] for n, p in pids.items()}
    quiet = {n: cpu_seconds(p) for n, p in pids.items()}
    time.sleep(busy)
    idle_cpu = {n: cpu_seconds(p) - quiet[n] for n, p in pids.items()}
    bus.close()
    print(f"\n2. endpoint change -> rules applied on all 3 nodes, 100 Services x 10 endpoints, {args.changes} changes")
    print(f"   p50 {nearest_rank(samples, 0.5) * 1000:.0f} ms  max {max(samples) * 1000:.0f} ms  "
          f"(all: {', '.join(f'{s * 1000:.0f}' for s in samples)} ms)")  # fmt: skip
    print("\n3. agent CPU per change (agent + nft, less idle)")
    for node in fleet.nodes:
        per = (busy_cpu[node] - idle_cpu[node]) / args.changes
        spent = f"busy {busy_cpu[node]:.2f} s, idle {idle_cpu[node]:.2f} s over {busy:.1f} s"
        print(f"   {node}: {per * 1000:.0f} ms  ({spent})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--changes", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ek-bench-services-") as tmp, LanFleet(Path(tmp), 3) as fleet:
        rate_and_latency(fleet, args)
        rule_sync(fleet, args)


if __name__ == "__main__":
    main()
