"""Smoke test: `benchmarks/agent_cost.py --quick` on 2 pods runs end to end (subprocess) and prints its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.prerequisites import require_mosquitto, require_podman

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


@pytest.mark.timeout(240)
def test_agent_cost_benchmark_quick_measures_both_configurations() -> None:
    require_podman()
    require_mosquitto()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "agent_cost.py"), "--quick", "--pods", "2", "--window", "4",
         "--interval", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=220, check=False,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    lines = proc.stdout.splitlines()
    header = next((line for line in lines if line.lstrip().startswith("pods")), "")
    assert header.split() == [
        "pods",
        "config",
        "trials",
        "CPU",
        "%",
        "RSS",
        "MB",
        "writes",
        "B/h",
        "podman",
        "CPU",
        "%",
    ]
    rows = {tuple(line.split()[:2]): line.split() for line in lines if line.split()[:1] == ["2"]}
    configs = {"on", "telemetry", "off", "on-off", "telemetry-off"}
    assert set(rows) == {("2", config) for config in configs}, output
    for config in ("on", "telemetry", "off"):
        cpu, rss, writes = (float(v) for v in rows[("2", config)][3:6])
        assert cpu >= 0 and rss > 0
        assert writes == 0  # telemetry (and the agent at rest) write nothing to disk
    reports = next(line for line in lines if line.startswith("telemetry reports received"))
    assert int(reports.rsplit(":", 1)[1]) > 0  # the agents with telemetry published their samples
    assert "FAILED" not in output
