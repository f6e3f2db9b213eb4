"""`ekctl port-forward` on a real cluster: Mosquitto, a master and an agent in-process, real Podman.

A busybox pod runs an echo server (`nc -ll -p 7000 -e cat`, a process per connection); ekctl (its own process)
forwards a free local port to it by the container port's name, and through a Service by its port (targetPort by
name). Bytes sent come back through master, agent and pod; two connections at once each get their own; a local
half-close reaches the pod (cat ends, its side closes); deleting the pod ends the forward with the reason. A
hostNetwork pod is reached on the node's own 127.0.0.1.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekube.agent.app import Agent
from edgekube.local.broker import Mosquitto
from edgekube.local.images import DEMO_IMAGE
from edgekube.local.podman_service import PodmanService
from tests.integration.test_cli_logs import ekctl
from tests.support.cluster import ApiClient, start_agent, start_master, stop_agent, wait_for

pytestmark = pytest.mark.integration

ECHO = f"""\
apiVersion: v1
kind: Pod
metadata: {{name: echo, labels: {{app: echo}}}}
spec:
  containers:
    - name: c
      image: {DEMO_IMAGE}
      command: ["nc", "-ll", "-p", "7000", "-e", "cat"]
      ports: [{{name: echo, containerPort: 7000}}]
---
apiVersion: v1
kind: Service
metadata: {{name: echo}}
spec:
  selector: {{app: echo}}
  ports: [{{name: tcp, port: 80, targetPort: echo}}]
"""


@pytest.fixture
def cluster(
    mosquitto: Mosquitto, podman_service: PodmanService, demo_image: str, tmp_path: Path
) -> Iterator[ApiClient]:
    master = start_master(mosquitto.port, tmp_path / "master")
    agent: Agent = start_agent(mosquitto.port, f"node-{uuid.uuid4().hex[:6]}", podman_service, tmp_path / "agent")
    client = ApiClient(mosquitto.port)
    try:
        manifest = tmp_path / "echo.yaml"
        manifest.write_text(ECHO)
        assert ekctl(mosquitto.port, "apply", "-f", str(manifest)) == 0
        wait_for("echo running", lambda: client.pod("echo").get("status", {}).get("phase") == "Running", timeout=60)
        yield client
    finally:
        client.close()
        stop_agent(agent)
        master.stop()


def forward(port: int, *argv: str) -> tuple[subprocess.Popen[str], int]:
    """ekctl port-forward as its own process, and the local port it says it listens on."""
    cmd = [sys.executable, "-m", "edgekube.cli.main", "--mqtt-host", "127.0.0.1", "--mqtt-port", str(port)]
    proc = subprocess.Popen([*cmd, "port-forward", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()
    assert line.startswith("Forwarding from 127.0.0.1:"), (line, proc.stderr.read() if proc.poll() else "")
    local = int(line.split(":")[1].split()[0])
    return proc, local


def echo(local: int, data: bytes) -> bytes:
    """Send `data`, half-close, read until the pod closes its side."""
    with socket.create_connection(("127.0.0.1", local), timeout=20) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        got = bytearray()
        while chunk := sock.recv(65536):
            got += chunk
        return bytes(got)


def test_port_forward_to_a_pod_echoes_bytes_on_two_connections_at_once_and_ends_when_the_pod_is_deleted(
    cluster: ApiClient, mosquitto: Mosquitto
) -> None:
    proc, local = forward(mosquitto.port, "pod/echo", ":echo")
    try:
        with (
            socket.create_connection(("127.0.0.1", local), timeout=20) as a,
            socket.create_connection(("127.0.0.1", local), timeout=20) as b,
        ):
            a.sendall(b"first ")
            b.sendall(b"second")
            assert b.recv(100) == b"second"
            assert a.recv(100) == b"first "
        big = bytes(range(256)) * 1024  # 256 KiB: many chunks, past the node's window
        back = echo(local, big)
        assert len(back) == len(big) and back == big

        assert ekctl(mosquitto.port, "delete", "pod", "echo") == 0
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1
        assert "error: lost connection to pod default/echo: the pod" in err
    finally:
        proc.kill()
        proc.communicate()


def test_port_forward_to_a_service_reaches_a_ready_endpoint_pod_by_its_target_port_name(
    cluster: ApiClient, mosquitto: Mosquitto
) -> None:
    wait_for("a ready endpoint", lambda: (cluster.get("Endpoints", "echo").get("subsets") or [{}])[0].get("addresses"))
    proc, local = forward(mosquitto.port, "svc/echo", ":80")
    try:
        assert echo(local, b"through the service") == b"through the service"
    finally:
        proc.kill()
        proc.communicate()


def test_port_forward_to_a_host_network_pod_connects_to_the_node_itself(
    cluster: ApiClient, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    with socket.socket() as probe:  # a port free on this machine, which is the node
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    manifest = tmp_path / "host.yaml"
    manifest.write_text(
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: host-echo}}\nspec:\n  hostNetwork: true\n  containers:\n"
        f"    - {{name: c, image: {DEMO_IMAGE}, command: [nc, -ll, -p, '{port}', -e, cat]}}\n"
    )
    assert ekctl(mosquitto.port, "apply", "-f", str(manifest)) == 0
    wait_for("host-echo running", lambda: cluster.pod("host-echo").get("status", {}).get("phase") == "Running")
    proc, local = forward(mosquitto.port, "host-echo", f":{port}")
    try:
        assert local != port
        assert echo(local, b"on the node") == b"on the node"
    finally:
        proc.kill()
        proc.communicate()
        assert ekctl(mosquitto.port, "delete", "pod", "host-echo") == 0
