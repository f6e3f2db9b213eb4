"""`edgekube up --masters 2` (make up MASTERS=2): two brokers, an active and a standby master, agents on both brokers.

The command runs as a user runs it, in a scratch directory: its processes, pidfiles and cluster.json are checked,
then `ekctl` (which finds the brokers in cluster.json) lists the nodes; the first broker is killed and ekctl still
gets an answer and every node stays Ready (the agents preferring it failed over to the second one). `edgekube
down` stops it all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekube.local import processes
from edgekube.local.broker import free_port, pid_from_pidfile
from tests.support.prerequisites import require_mosquitto, require_podman

pytestmark = pytest.mark.integration

NODES = ("node-1", "node-2")


def two_free_ports() -> int:
    """A port P with P+1 free too (the second broker's)."""
    for _ in range(50):
        port = free_port("127.0.0.1")
        if port < 65535 and free_port_is(port + 1):
            return port
    raise AssertionError("no two consecutive free ports")


def free_port_is(port: int) -> bool:
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def run(cwd: Path, env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    require_mosquitto()
    require_podman()
    env = dict(os.environ, EDGEKUBE_MQTT_PORT=str(two_free_ports()))
    env.pop("EDGEKUBE_MQTT_HOST", None)
    env.pop("EDGEKUBE_BROKERS", None)
    bin_dir = Path(sys.executable).parent
    up = run(tmp_path, env, str(bin_dir / "edgekube"), "up", "--masters", "2", "--nodes", "2", "--no-example")
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        yield tmp_path, env
    finally:
        down = run(tmp_path, env, str(bin_dir / "edgekube"), "down")
        assert down.returncode == 0, down.stderr[-2000:]


def ready_nodes(cwd: Path, env: dict[str, str]) -> set[str]:
    ekctl = str(Path(sys.executable).parent / "ekctl")
    # Without EDGEKUBE_MQTT_PORT, which would name one broker and win over cluster.json's list.
    env = {k: v for k, v in env.items() if k != "EDGEKUBE_MQTT_PORT"}
    done = run(cwd, env, ekctl, "--timeout", "5", "get", "nodes", "-o", "json", timeout=30)
    if done.returncode != 0:
        return set()
    items = json.loads(done.stdout).get("items", [])
    return {
        n["metadata"]["name"]
        for n in items
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))
    }


def wait_ready(cwd: Path, env: dict[str, str], timeout: float = 60) -> set[str]:
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        seen = ready_nodes(cwd, env)
        if seen == set(NODES):
            return seen
        time.sleep(0.5)
    return seen


def test_two_masters_two_brokers_and_the_nodes_carry_on_when_the_first_broker_dies(
    cluster: tuple[Path, dict[str, str]],
) -> None:
    cwd, env = cluster
    root = cwd / ".edgekube"
    port = int(env["EDGEKUBE_MQTT_PORT"])
    described = json.loads((root / "cluster.json").read_text())
    assert described["brokers"] == [f"127.0.0.1:{port}", f"127.0.0.1:{port + 1}"]
    assert [m["id"] for m in described["masters"]] == ["m1", "m2"]
    for name in ("mosquitto", "mosquitto-2"):
        assert pid_from_pidfile(root / "run" / f"{name}.pid") is not None, f"{name} is not running"
    for name in ("master-m1", "master-m2", *NODES):
        assert processes.live_pid(root / "run" / f"{name}.pid") is not None, f"{name} is not running"
    assert wait_ready(cwd, env) == set(NODES)

    first = pid_from_pidfile(root / "run" / "mosquitto.pid")
    assert first is not None
    os.kill(first, signal.SIGKILL)
    assert wait_ready(cwd, env) == set(NODES)  # ekctl through the second broker, every node still Ready
    node1_log = (root / "logs" / "node-1.log").read_text()
    assert f"connected to 127.0.0.1:{port + 1} (failed over from 127.0.0.1:{port})" in node1_log
