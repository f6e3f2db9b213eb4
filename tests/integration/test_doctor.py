"""`edgekube doctor` run for real on this machine: its report must say what is true of the machine.

The Podman checks get the session's Podman service socket and the broker check a real Mosquitto, so those pass;
the host checks are compared with what the test itself reads from /dev, /proc and /sys.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edgekube.local.broker import Mosquitto
from edgekube.local.podman_service import PodmanService

pytestmark = pytest.mark.integration


def doctor(*args: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "edgekube.main", "doctor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.returncode, done.stdout


def by_check(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["check"]: c for c in report["checks"]}


def test_the_node_report_on_this_machine_is_honest(
    mosquitto: Mosquitto, podman_service: PodmanService, tmp_path: Path
) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        f'mqtt_port = {mosquitto.port}\npodman_url = "{podman_service.url}"\nstate_dir = "{tmp_path / "state"}"\n'
    )
    code, out = doctor("--config", str(config), "--json")
    report = json.loads(out)
    checks = by_check(report)
    assert checks["podman"]["status"] == "pass"
    assert checks["podman-socket"]["status"] == "pass"
    assert checks["oci-runtime"]["status"] == "pass"
    assert checks["oci-runtime"]["detail"].startswith(("runc", "crun"))
    assert checks["broker"] == {
        "check": "broker", "title": "MQTT broker reachable", "status": "pass",
        "detail": f"connected to 127.0.0.1:{mosquitto.port} (plain TCP)", "fix": "",
    }  # fmt: skip
    has_gpio = any(Path("/dev").glob("gpiochip*"))
    assert (checks["gpio"]["status"] == "pass") is has_gpio
    if not has_gpio:
        assert checks["gpio"]["fix"]
    v2 = Path("/sys/fs/cgroup/cgroup.controllers")
    memory_v2 = v2.exists() and "memory" in v2.read_text().split()
    assert (checks["cgroup-memory"]["status"] == "pass") is memory_v2
    swaps = Path("/proc/swaps").read_text().splitlines()[1:]
    assert (checks["swap"]["status"] == "pass") is (not swaps)
    assert all(c["fix"] for c in report["checks"] if c["status"] != "pass")
    statuses = {c["status"] for c in report["checks"]}
    assert code == report["exitStatus"] == (1 if "fail" in statuses else 2 if "warn" in statuses else 0)


def test_an_unreachable_broker_and_socket_fail_with_their_fixes_in_the_checklist(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'mqtt_port = 9\npodman_url = "unix://{tmp_path}/none.sock"\n')
    code, out = doctor("--config", str(config), "--timeout", "1")
    assert code == 1
    lines = out.splitlines()
    broker = next(i for i, line in enumerate(lines) if "MQTT broker reachable" in line)
    assert lines[broker].startswith("✗") and "127.0.0.1:9" in lines[broker]
    assert "fix: start the broker" in lines[broker + 1]
    socket = next(i for i, line in enumerate(lines) if "Podman API socket" in line)
    assert lines[socket].startswith("✗") and "podman.socket" in lines[socket + 1]


def test_a_bad_config_is_a_failed_check_not_a_crash(tmp_path: Path) -> None:
    config = tmp_path / "master.toml"
    config.write_text("mqtt_port = 1883\nno_such_setting = 1\n")
    code, out = doctor("--role", "master", "--config", str(config), "--json", "--timeout", "1")
    checks = by_check(json.loads(out))
    assert code == 1
    assert checks["config"]["status"] == "fail"
    assert "unknown setting(s) no_such_setting" in checks["config"]["detail"]
    assert "podman" not in checks and "gpio" not in checks  # a master runs no pods


def test_every_broker_of_a_two_master_node_is_checked(mosquitto: Mosquitto, tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'brokers = ["127.0.0.1:{mosquitto.port}", "127.0.0.1:9"]\n')
    code, out = doctor("--config", str(config), "--json", "--timeout", "1")
    checks = by_check(json.loads(out))
    assert checks["broker"]["status"] == "pass"
    assert checks["broker"]["detail"] == f"connected to 127.0.0.1:{mosquitto.port} (plain TCP)"
    assert checks["broker-2"]["status"] == "fail"
    assert "127.0.0.1:9" in checks["broker-2"]["detail"]
    assert code == 1


def test_a_bad_broker_in_the_config_is_a_failed_config_check(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('brokers = ["pi-1:http"]\n')
    code, out = doctor("--config", str(config), "--json", "--timeout", "1")
    checks = by_check(json.loads(out))
    assert code == 1
    assert checks["config"]["status"] == "fail"
    assert checks["config"]["detail"].startswith("brokers 'pi-1:http': Invalid value")
