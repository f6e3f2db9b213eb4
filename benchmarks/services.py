"""Benchmark: the pod network's data path — pod→Service→pod against pod→pod, and how fast rules follow endpoints.

Run (root: network namespaces):
    .venv/bin/python benchmarks/services.py [--seconds 5] [--rounds 3] [--concurrency 4] [--changes 30]
        [--rules-only | --rate-only]

On three nodes, each its own network namespace, Podman store and pod CIDR on one LAN (tests/support/podnet.py),
real master, agents, Mosquitto, routes and nftables:

1. Request rate and latency. Two busybox httpd pods (node-2, node-3) behind the Service `web` (NodePort, real
   Endpoints from the master); the load runs in the client pod's network namespace on node-1 (the host's Python
   entered with nsenter, so packets leave from the pod's address through its bridge, routes and the node's
   nftables): `--concurrency` threads, each a new TCP connection per request (the NAT path is paid per
   connection), `GET /`, for `--seconds`. Rounds alternate direct (the two pod IPs in turn) and Service (the
   clusterIP), so a change in the machine's load hits both; reported: the median rate of each, their ratio, p50
   and p99 latency over all requests of each kind (nearest rank). A third path in the same rounds: the userspace
   proxy (agent/network/userspace.py, `--proxy-mode userspace`), its code run in node-1's namespace as a process
   of its own (USERSPACE) for a second address of the same Service, USERSPACE_IP, which nftables leaves alone.
2. Endpoint change -> rules applied on every node, at 100 NodePort Services x 10 endpoints, the whole path: the
   1,000 endpoint pods run on 10 simulated nodes (tests/support/simnodes.py, 100 pods each, reporting over MQTT
   as agents do) under the real master; `--changes` times pod p0-0 is reported not ready, then ready again (a
   readiness probe flapping), and the sample is the time from that report to its endpoint chain being deleted
   (added) in every node's table. The nodes are not polled: `nft monitor chains`, one per node, hears each
   committed transaction. Also given: the master's share (report -> the ServiceTable arriving at a subscriber of
   edgekube/v1/services, as the agents get it) and the agents' (the rest), and the load average.
3. CPU per change: the master's and each agent's CPU time (its own and its `nft` children's) over those
   changes, less what it spends idle over as long, per change.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere: tests.support

from edgekube.bus import topics
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.local.netns import LAN_SUBNET
from edgekube.model.netstate import EndpointEntry, ServiceEntry, ServicePortEntry, ServiceTable
from tests.support.podnet import LanFleet, wait_until
from tests.support.simnodes import SimNodes

IMAGE = "localhost/edgekube/busybox:1"
SERVE = "echo $HOSTNAME > /www/index.html && exec httpd -f -p 8080 -h /www"
CLUSTER_IP = "10.43.0.10"
#: The userspace proxy's address for the same two pods (a /32 on node-1's loopback, as in proxy_mode userspace).
USERSPACE_IP = "10.43.0.99"
USERSPACE = r"""
import sys, time
from edgekube.agent.network.loopback import IpLoopback
from edgekube.agent.network.relay import Relays
from edgekube.agent.network.userspace import UserspaceProxy
from edgekube.model.netstate import EndpointEntry, ServiceEntry, ServicePortEntry, ServiceTable
print(UserspaceProxy(IpLoopback(), Relays().start()).sync(ServiceTable.decode(sys.argv[1].encode())), flush=True)
time.sleep(1e9)
"""

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


def userspace_proxy(fleet: LanFleet, backends: list[str]) -> subprocess.Popen[str]:
    """The userspace proxy in node-1's namespace, serving USERSPACE_IP:80 from `backends` (ip:port)."""
    endpoints = [EndpointEntry(ip=b.split(":")[0], ports={"http": int(b.split(":")[1])}) for b in backends]
    table = ServiceTable(services=[ServiceEntry(
        namespace="default", name="web-userspace", cluster_ip=USERSPACE_IP,
        ports=[ServicePortEntry(name="http", port=80)], endpoints=endpoints,
    )])  # fmt: skip
    argv = fleet.net["node-1"].enter([sys.executable, "-c", USERSPACE, table.encode().decode()])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    assert proc.stdout is not None
    failures = proc.stdout.readline().strip()
    if failures != "[]":
        proc.kill()
        raise RuntimeError(f"userspace proxy: {failures or 'exited'}")
    return proc


def rate_and_latency(fleet: LanFleet, args: argparse.Namespace) -> None:
    for name, node in (("web-b", "node-2"), ("web-c", "node-3")):
        fleet.apply(pod(name, node, SERVE, {"app": "web"}))
    fleet.apply(pod("client", "node-1", "exec sleep 1000000", {"app": "client"}))
    fleet.apply(SERVICE)
    direct = [f"{pod_ip(fleet, 'web-b')}:8080", f"{pod_ip(fleet, 'web-c')}:8080"]
    pod_ip(fleet, "client")
    pid = infra_pid(fleet, "node-1", "client")
    wait_until("the Service answering", lambda: not load(pid, [f"{CLUSTER_IP}:80"], 0.5, 1)["errors"], timeout=60)
    results: dict[str, list[dict[str, object]]] = {"direct": [], "service": [], "userspace": []}
    paths = {"direct": direct, "service": [f"{CLUSTER_IP}:80"], "userspace": [f"{USERSPACE_IP}:80"]}
    relay = userspace_proxy(fleet, direct)
    try:
        wait_until("the userspace proxy answering", lambda: not load(pid, paths["userspace"], 0.5, 1)["errors"])
        relay_cpu = cpu_seconds(relay.pid)
        for i in range(args.rounds):
            kinds = list(paths)[i % 3 :] + list(paths)[: i % 3]  # each path first, second, third in turn
            for kind in kinds:
                results[kind].append(load(pid, paths[kind], args.seconds, args.concurrency))
        relay_cpu = cpu_seconds(relay.pid) - relay_cpu
    finally:
        relay.kill()
        relay.wait()
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
    print(f"   userspace proxy / direct rate: {rates['userspace'] / rates['direct']:.2f}")
    relayed = sum(len(r["latencies"]) for r in results["userspace"])  # type: ignore[arg-type, misc]
    print(f"   userspace proxy CPU: {relay_cpu * 1e6 / max(relayed, 1):.0f} µs per relayed connection")


SIMS = 10  #: simulated nodes holding the 1,000 endpoint pods (100 each, a full Pi's worth)


class ChainWatch:
    """`nft monitor chains` in one node's namespace: when a chain event (`add chain ...`, `delete chain ...`) came.

    One process per node that the kernel tells of each committed transaction, so the measurement polls nothing.
    """

    def __init__(self, fleet: LanFleet, node: str) -> None:
        argv = fleet.net[node].enter(["stdbuf", "-oL", "nft", "monitor", "chains"])
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._cond = threading.Condition()
        self._wanted = ""
        self._seen: float | None = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.rstrip("\n") == self._wanted:  # a plain read: the lock only when it matters
                with self._cond:
                    if line.rstrip("\n") == self._wanted and self._seen is None:
                        self._seen = time.monotonic()
                        self._cond.notify_all()

    def expect(self, line: str) -> None:
        with self._cond:
            self._wanted, self._seen = line, None

    def wait(self, timeout: float) -> float | None:
        with self._cond:
            self._cond.wait_for(lambda: self._seen is not None, timeout)
            return self._seen

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


class TableArrivals:
    """When each ServiceTable came on edgekube/v1/services (as the agents get it): the master's share of a change."""

    def __init__(self, port: int) -> None:
        self.arrivals: list[tuple[float, bytes]] = []
        self._bus = PahoBus(BusConfig(port=port, client_id="bench-services-tables"))
        self._bus.subscribe(topics.SERVICES, lambda m: self.arrivals.append((time.monotonic(), m.payload)))
        self._bus.start(wait=10)

    def latest(self) -> ServiceTable | None:
        return ServiceTable.decode(self.arrivals[-1][1]) if self.arrivals else None

    def first_after(self, moment: float) -> float | None:
        return next((t for t, _ in list(self.arrivals) if t >= moment), None)

    def close(self) -> None:
        self._bus.close()


def endpoint_pods() -> list[str]:
    """100 NodePort Services `s<i>` selecting 10 pods each, the pods bound to the simulated nodes (10 per apply)."""
    services = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{i}"},
         "spec": {"type": "NodePort", "selector": {"app": f"s{i}"},
                  "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
        for i in range(100)
    ]  # fmt: skip
    batches = [json.dumps({"apiVersion": "v1", "kind": "List", "items": services})]
    for i in range(100):
        pods = [
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}-{j}", "labels": {"app": f"s{i}"}},
             "spec": {"nodeName": f"sim-{j % SIMS}", "containers": [
                 {"name": "main", "image": IMAGE, "ports": [{"name": "http", "containerPort": 8080}]}]}}
            for j in range(10)
        ]  # fmt: skip
        batches.append(json.dumps({"apiVersion": "v1", "kind": "List", "items": pods}))
    return batches


def _succeeds(run: Callable[[], subprocess.CompletedProcess[str]]) -> bool:
    return run().returncode == 0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[11:15]) / 100.0  # utime stime cutime cstime, clock ticks (USER_HZ 100)


def rule_sync(fleet: LanFleet, args: argparse.Namespace) -> None:
    addresses = {f"sim-{k}": f"{LAN_SUBNET}.{100 + k}" for k in range(SIMS)}  # on the LAN: their routes are valid
    sims = SimNodes(fleet.port, list(addresses), pod_ips=True, tick=0.005, host_ips=addresses).start()
    tables = TableArrivals(fleet.port)
    watches = {n: ChainWatch(fleet, n) for n in fleet.nodes}
    try:
        for batch in endpoint_pods():
            fleet.apply(batch)

        def all_ready() -> ServiceTable | None:
            table = tables.latest()
            ready = sum(e.ready for s in table.services for e in s.endpoints) if table else 0
            return table if ready >= 1000 else None

        table = wait_until("1,000 ready endpoints in the ServiceTable", all_ready, timeout=300, interval=1)
        s0 = next(s for s in table.services if s.name == "s0")
        ip = next(e.ip for e in s0.endpoints if e.node == "sim-0")
        chain = f"chain ip edgekube endpoint-default/s0/tcp/http/{ip}/8080"
        for node in fleet.nodes:
            listed = functools.partial(fleet.in_node, node, "nft", "list", *chain.split(), check=False)
            wait_until(f"{node}'s rules", functools.partial(_succeeds, listed), timeout=120, interval=1)
        time.sleep(2)

        def change(ready: bool) -> tuple[float, float]:
            for watch in watches.values():
                watch.expect(f"{'add' if ready else 'delete'} {chain}")
            start = time.monotonic()
            sims.set_ready("default", "p0-0", ready)
            seen = [w.wait(30) for w in watches.values()]
            published = tables.first_after(start)
            if published is None or any(s is None for s in seen):
                raise RuntimeError(f"{chain} not {'added' if ready else 'deleted'} on every node within 30 s")
            return max(s or 0.0 for s in seen) - start, published - start

        assert fleet.master is not None
        pids = {"master": fleet.master.pid, **{n: fleet.agents[n].pid for n in fleet.nodes}}
        loads = [os.getloadavg()[0]]
        before = {n: cpu_seconds(p) for n, p in pids.items()}
        began = time.monotonic()
        results = []
        for k in range(args.changes):
            results.append(change(ready=k % 2 == 1))
            time.sleep(args.gap)
        busy = time.monotonic() - began
        busy_cpu = {n: cpu_seconds(p) - before[n] for n, p in pids.items()}
        loads.append(os.getloadavg()[0])
        quiet = {n: cpu_seconds(p) for n, p in pids.items()}
        time.sleep(busy)
        idle_cpu = {n: cpu_seconds(p) - quiet[n] for n, p in pids.items()}
    finally:
        for watch in watches.values():
            watch.close()
        tables.close()
        sims.close()
    total = [r[0] for r in results]
    master = [r[1] for r in results]
    agents = [t - m for t, m in results]

    def figures(samples: list[float]) -> str:
        return (f"p50 {nearest_rank(samples, 0.5) * 1000:.0f} ms  p95 {nearest_rank(samples, 0.95) * 1000:.0f} ms  "
                f"max {max(samples) * 1000:.0f} ms")  # fmt: skip

    print(f"\n2. endpoint change -> rules on all 3 nodes, 100 NodePort Services x 10 endpoints, {args.changes} changes "
          f"(pod p0-0 reported not ready / ready in turn), load average {loads[0]:.1f} -> {loads[1]:.1f}")  # fmt: skip
    print(f"   whole path (readiness report -> rules on the last node): {figures(total)}")
    print(f"   master (report -> ServiceTable received):                {figures(master)}")
    print(f"   agents (ServiceTable received -> rules on the last node): {figures(agents)}")
    print(f"   all: {', '.join(f'{s * 1000:.0f}' for s in total)} ms")
    print("\n3. CPU per change (its own and its children's, less idle over as long)")
    for name in pids:
        per = (busy_cpu[name] - idle_cpu[name]) / args.changes
        spent = f"busy {busy_cpu[name]:.2f} s, idle {idle_cpu[name]:.2f} s over {busy:.1f} s"
        print(f"   {name}: {per * 1000:.0f} ms  ({spent})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--changes", type=int, default=30)
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between two endpoint changes")
    parser.add_argument("--rules-only", action="store_true", help="only the endpoint change figures (2, 3)")
    parser.add_argument("--rate-only", action="store_true", help="only the request rate figures (1)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ek-bench-services-") as tmp, LanFleet(Path(tmp), 3) as fleet:
        if not args.rules_only:
            rate_and_latency(fleet, args)
        if not args.rate_only:
            rule_sync(fleet, args)


if __name__ == "__main__":
    main()
