"""Node telemetry on real parts: Mosquitto, the master, one agent on real Podman; `ekctl top` and /metrics.

The agent samples every second (telemetry_interval 1) and serves /metrics; the master serves its own. A pod with a
busy container (a shell loop) and an idle one runs on the node: `ekctl top pods --containers` must show the busy
one using most of a core and the idle one next to nothing, from real Podman stats; `ekctl top nodes` shows the
node; `ekctl describe node` its recent usage; both /metrics endpoints answer a plain HTTP scrape.
"""

from __future__ import annotations

import socket
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgekube.agent.app import Agent
from edgekube.agent.telemetry import readers
from edgekube.cli.main import main
from edgekube.local.broker import Mosquitto
from edgekube.local.podman_service import PodmanService
from edgekube.master.app import Master
from edgekube.master.config import MasterConfig
from edgekube.master.wiring import build_master
from tests.support.cluster import ApiClient, start_agent, stop_agent, wait_for

pytestmark = pytest.mark.integration

Capture = pytest.CaptureFixture[str]
POD = """
apiVersion: v1
kind: Pod
metadata: {name: burner, labels: {app: burner}}
spec:
  containers:
  - {name: busy, image: %(image)s, command: [sh, -c, "trap 'exit 0' TERM; while :; do :; done"]}
  - {name: idle, image: %(image)s, command: [sh, -c, "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


@dataclass
class Env:
    master: Master
    agent: Agent
    node: str
    ekctl: list[str]
    master_metrics: int
    agent_metrics: int


@pytest.fixture
def env(mosquitto: Mosquitto, podman_service: PodmanService, demo_image: str, tmp_path: Path) -> Iterator[Env]:
    master_metrics, agent_metrics = free_port(), free_port()
    config = MasterConfig(
        mqtt_port=mosquitto.port, data_dir=tmp_path / "master", node_timeout=4.0,
        metrics_port=master_metrics, metrics_address="127.0.0.1",
    )  # fmt: skip
    master = build_master(config).start(wait=10)
    node = f"node-top-{uuid.uuid4().hex[:6]}"
    agent = start_agent(
        mosquitto.port, node, podman_service, tmp_path / "agent", fence_dir="", telemetry_interval=1.0,
        container_store=str(podman_service.root), metrics_port=agent_metrics, metrics_address="127.0.0.1",
    )  # fmt: skip
    client = ApiClient(mosquitto.port)
    try:
        response = client.apply(POD % {"image": demo_image})
        assert response.ok, response.error
        yield Env(master, agent, node, ["--mqtt-port", str(mosquitto.port), "--timeout", "10"], master_metrics,
                  agent_metrics)  # fmt: skip
    finally:
        client.close()
        master.stop()
        stop_agent(agent)


def top(env: Env, capsys: Capture, *args: str) -> list[list[str]]:
    capsys.readouterr()
    code = main([*env.ekctl, "top", *args])
    captured = capsys.readouterr()
    if code != 0:
        return [["error", captured.err.strip()]]
    return [line.split() for line in captured.out.splitlines()]


def millicores(text: str) -> int:
    assert text.endswith("m"), text
    return int(text[:-1])


def test_top_shows_the_busy_container_using_cpu_from_real_podman_stats(env: Env, capsys: Capture) -> None:
    def busy_seen() -> list[list[str]] | None:
        rows = top(env, capsys, "pods", "--containers")
        if rows[0][0] == "error" or len(rows) != 3:
            return None
        by_name = {row[1]: row for row in rows[1:]}
        return rows if millicores(by_name["busy"][2]) >= 300 else None

    rows = wait_for("the busy container's CPU in ekctl top", busy_seen, timeout=60)
    assert rows[0] == ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    by_name = {row[1]: row for row in rows[1:]}
    assert [row[0] for row in rows[1:]] == ["burner", "burner"]
    assert millicores(by_name["idle"][2]) < millicores(by_name["busy"][2]) / 4
    assert all(row[3].endswith("Mi") for row in rows[1:])

    pods = top(env, capsys, "pods")
    assert pods[0] == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert pods[1][0] == "burner" and millicores(pods[1][1]) > 0
    everywhere = top(env, capsys, "pods", "-A")
    assert everywhere[0] == ["NAMESPACE", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    assert everywhere[1][:2] == ["default", "burner"]

    nodes = wait_for("the node's CPU in ekctl top nodes", lambda: (r := top(env, capsys, "nodes"))[0][0] != "error"
                     and len(r) == 2 and r[1][1] != "<unknown>" and r)  # fmt: skip
    assert nodes[0] == ["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"]
    name, cpu, cpu_percent, memory, memory_percent = nodes[1]
    assert name == env.node
    assert millicores(cpu) > 0 and cpu_percent.endswith("%") and memory.endswith("Mi") and memory_percent.endswith("%")

    capsys.readouterr()
    assert main([*env.ekctl, "describe", "node", env.node]) == 0
    described = capsys.readouterr().out
    assert "Recent Usage:" in described
    assert "cpuCores:" in described  # the live usage from the heartbeat


def test_both_metrics_endpoints_answer_a_scrape(env: Env, capsys: Capture) -> None:
    busy = {"namespace": "default", "pod": "burner", "container": "busy"}

    def agent_sees_busy() -> dict[str, list[tuple[dict[str, str], float]]] | None:
        metrics = scrape(env.agent_metrics)
        used = [v for labels, v in metrics.get("edgekube_container_cpu_usage_seconds_total", []) if labels == busy]
        return metrics if used and used[0] > 0.5 else None

    agent = wait_for("the busy container in the agent's /metrics", agent_sees_busy, timeout=60)
    assert {labels["mode"] for labels, _ in agent["edgekube_node_cpu_seconds_total"]} >= {"user", "system", "idle"}
    assert agent["edgekube_node_memory_total_bytes"][0][1] > 0
    roles = {labels["role"] for labels, _ in agent["edgekube_node_filesystem_avail_bytes"]}
    assert roles == {"root", "containers"}
    assert next(v for labels, v in agent["edgekube_container_memory_working_set_bytes"] if labels == busy) > 0
    if readers.device_of(Path("/"), Path("/proc")) is not None:  # / on a block device (not overlay or tmpfs)
        assert agent["edgekube_node_disk_written_bytes_total"][0][1] > 0

    def master_sees_busy() -> dict[str, list[tuple[dict[str, str], float]]] | None:
        metrics = scrape(env.master_metrics)
        labelled = {**busy, "node": env.node}
        used = [v for labels, v in metrics.get("edgekube_container_cpu_usage_cores", []) if labels == labelled]
        return metrics if used and used[0] > 0.3 else None

    master = wait_for("the busy container in the master's /metrics", master_sees_busy, timeout=60)
    assert ({"node": env.node}, 1.0) in master["edgekube_node_ready"]
    assert next(v for labels, v in master["edgekube_node_cpu_usage_cores"] if labels == {"node": env.node}) > 0
