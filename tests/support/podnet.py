"""A fleet whose nodes share a flat LAN, each with its Podman inside its own netns: pod network and Services tests.

What differs from tests/support/fleet.py's Fleet (which it extends): every node namespace also gets an interface
`lan0` on one Ethernet segment (edgekube.local.netns.Lan, as `edgekube up --network pod` uses), addressed
10.252.0.<n>/24: the LAN host-gw routing needs, where nodes reach each other directly. Each node's Podman service
runs *inside* the node's namespace (NetnsPodmanService) with its own network config directory, so the node's pod
bridge, netavark's rules, and the routes and nftables the agent installs are the node's alone.
The broker stays on the host, reached through the node's veth to the host (NetNode), as in the fault tests.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgekube.local.broker import Mosquitto
from edgekube.local.images import ensure_demo_image
from edgekube.local.netns import Lan, NetNode, NetnsPodmanService, run
from tests.support.fleet import Fleet, Proc


class LanFleet(Fleet):
    """Fleet on a LAN with the pod network on (`--pod-network true`); see the module docstring."""

    def __init__(self, root: Path, nodes: int = 3, **kwargs: Any) -> None:
        agent_args = ["--pod-network", "true", *kwargs.pop("agent_args", ())]
        super().__init__(root, nodes, netns=True, agent_args=agent_args, **kwargs)
        self.lan: Lan | None = None
        self.node_ip: dict[str, str] = {}

    def _start(self, timeout: float) -> None:
        self.lan = Lan()
        for index, node in enumerate(self.nodes, start=1):
            self.net[node] = NetNode.create()
            self.node_ip[node] = self.lan.join(self.net[node], index)
        self.broker = Mosquitto(
            None, self.root / "broker", persistence=True, extra_listeners=[n.host_address for n in self.net.values()]
        ).start()
        base = Path(f"/tmp/eknet-{os.getpid()}-{int(time.time())}")
        for node in self.nodes:
            self.podman[node] = NetnsPodmanService(base / node, self.net[node].path).start()
            ensure_demo_image(self.podman[node])
        self.master = Proc("master", self._master_argv, self.root / "logs" / "master.log")
        self.master.start()
        for node in self.nodes:
            argv = functools.partial(self._agent_argv, node)
            self.agents[node] = Proc(node, argv, self.root / "logs" / f"{node}.log")
            self.agents[node].start()
        self.wait_master(timeout)
        self.wait_ready(timeout=timeout)

    def _agent_argv(self, node: str) -> list[str]:
        argv = super()._agent_argv(node)
        return [*argv, "--node-ip", self.node_ip[node]]

    def close(self) -> None:
        super().close()  # not lent: destroys the services (they run in the namespaces it then deletes)
        if self.lan is not None:
            self.lan.delete()
            self.lan = None

    # -- helpers ---------------------------------------------------------------------------------------------
    def in_node(self, node: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(self.net[node].enter(list(argv)), check=check)

    def exec_in(self, node: str, pod: str, *argv: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
        """Run `argv` in the pod's first app container (podman exec on the node's store)."""
        container = self.containers_of(node, pod)[0].container_id
        return self.podman[node].podman("exec", container, *argv, check=False, timeout=timeout)


def wait_until(what: str, check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


# -- a Service over busybox httpd pods, and a client pod that asks it (test_pod_network, test_userspace_proxy) -------
CLUSTER_IP = "10.43.0.10"
NODE_PORT = 30080
SERVE = "touch /tmp/ready && echo $HOSTNAME > /www/index.html && exec httpd -f -p 8080 -h /www"
#: Ready while /tmp/ready exists (a test removes it to take a pod out of the Service). A removed file fails the
#: next probe at once; the long timeout only keeps a slow `podman exec` on a loaded machine from failing it.
READINESS = {
    "exec": {"command": ["cat", "/tmp/ready"]},
    "periodSeconds": 1,
    "failureThreshold": 1,
    "timeoutSeconds": 10,
}
SERVICE = json.dumps({
    "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
    "spec": {"type": "NodePort", "clusterIP": CLUSTER_IP, "selector": {"app": "web"},
             "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": NODE_PORT}]},
})  # fmt: skip


def pod_manifest(name: str, node: str, command: str) -> str:
    """A busybox pod on `node`, labelled app=<name up to its first dash>; `web…` pods serve port `http` (8080)."""
    container: dict[str, object] = {
        "name": "main",
        "image": "localhost/edgekube/busybox:1",
        "command": ["/bin/sh", "-c", command],
    }
    if name.startswith("web"):
        container.update(ports=[{"name": "http", "containerPort": 8080}], readinessProbe=READINESS)
    return json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name.split("-", maxsplit=1)[0]}},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0, "containers": [container]},
    })  # fmt: skip


def pod_ip(fleet: LanFleet, name: str) -> str:
    """The pod's IP once it is Running."""

    def ip() -> str | None:
        pods = fleet.try_list("Pod") or []
        pod = next((p for p in pods if p["metadata"]["name"] == name), None)
        status = (pod or {}).get("status") or {}
        return str(status["podIP"]) if status.get("phase") == "Running" and status.get("podIP") else None

    return str(wait_until(f"{name} Running with an IP", ip, timeout=90))


def resolve(fleet: LanFleet, name: str) -> str:
    """The name's address as the client pod (client-a on node-1) resolves it (cluster DNS, search path, ndots:5).

    busybox's own resolver (nslookup), so that the address the name gave is known apart from the connection's fate.
    """
    done = fleet.exec_in("node-1", "client-a", "nslookup", "-type=a", name)
    found = re.findall(r"^Address: (\S+)$", done.stdout, re.MULTILINE)
    return found[-1] if found else ""


def get_page(fleet: LanFleet, host: str, port: int = 80, attempts: int = 3) -> str:
    """The page the client pod (client-a on node-1) gets from host:port (a name is resolved first), or why not.

    A request that gets no answer at all is tried again (up to `attempts`): on a loaded test machine busybox's
    resolver and nc time out now and then, and which pod answers is what the tests look at, not the timeouts.
    """
    result = ""
    for _ in range(attempts):
        address = host if host[0].isdigit() else resolve(fleet, host)
        if not address:
            result = f"failed: {host} does not resolve"
            continue
        request = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {address} {port}"
        done = fleet.exec_in("node-1", "client-a", "sh", "-c", request)
        if "200 OK" in done.stdout:
            return done.stdout.rsplit("\n\n", 1)[-1].strip()
        result = f"failed: {done.stdout!r}"
    return result


def http_get(url: str) -> str:
    """The body at `url` from the host, stripped, or why not."""
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return str(response.read().decode().strip())
    except OSError as exc:
        return f"failed: {exc}"


@contextmanager
def web_fleet(root: Path, **kwargs: Any) -> Iterator[LanFleet]:
    """A started LanFleet (kwargs as LanFleet's) with the Service `web` over web-b (node-2) and web-c (node-3), and
    the client pod client-a on node-1, all three with their addresses."""
    with LanFleet(root, 3, **kwargs) as started:
        for name, node, command in (
            ("web-b", "node-2", SERVE),
            ("web-c", "node-3", SERVE),
            ("client-a", "node-1", "exec sleep 100000"),
        ):
            started.apply(pod_manifest(name, node, command))
        started.apply(SERVICE)
        for name in ("web-b", "web-c", "client-a"):
            pod_ip(started, name)
        yield started


def web_answers(url: str) -> bool:
    """`url`, asked from the host, is answered by one of the Service's pods (web-b, web-c)."""
    return http_get(url) in ("web-b", "web-c")
