"""Smoke test: `benchmarks/scheduling.py --quick` runs end to end (subprocess) and prints its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


@pytest.mark.timeout(60)
def test_scheduling_benchmark_quick_prints_the_table() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "scheduling.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    header = next((line for line in proc.stdout.splitlines() if line.startswith("scenario")), "")
    for column in (
        "pods",
        "nodes",
        "bound s",
        "dispatch s",
        "running s",
        "pods/s",
        "RSS MB",
        "KiB/chg",
        "stock KiB",
        "ek KiB",
        "stock/ek",
    ):
        assert column in header, output
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith(("rc-200x10", "list-200x10"))]
    assert {r[0] for r in rows} == {"rc-200x10", "list-200x10"}, output
    assert all("-" not in r[1:] for r in rows), output  # every figure measured, no stage left unreached
    assert "FAILED" not in output
