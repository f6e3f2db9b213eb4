"""benchmarks/dashboard.py runs end to end (a few trials): Mosquitto, master, simulated nodes, headless Chromium."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.browser import require_browser
from tests.support.prerequisites import require_mosquitto

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(180)
def test_dashboard_benchmark_prints_p50_and_p95_after_ack_and_after_send() -> None:
    require_mosquitto()
    require_browser()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "dashboard.py"), "--trials", "3", "--nodes", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=150, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line.split()[:2] for line in proc.stdout.splitlines() if "p50" in line and "p95" in line]
    assert rows == [["after", "ack"], ["after", "send"]], proc.stdout
