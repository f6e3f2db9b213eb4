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


@pytest.mark.timeout(400)
def test_storage_benchmark_quick_prints_the_io_and_the_apply_tables() -> None:
    """Both parts, so a stall like Podman's volume deadlock (the apply part never finished) fails here."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "storage.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=380,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    lines = proc.stdout.splitlines()
    for subject in ("pod + emptyDir", "claim + pod (nfs)"):
        row = next((line for line in lines if line.startswith(subject)), "")
        figures = row[len(subject) :].split()
        assert len(figures) == 3 and all(float(f) > 0 for f in figures), output[-4000:]
    assert any("agent" in line and "mount" in line for line in lines), output[-4000:]


@pytest.mark.timeout(120)
def test_broker_failover_benchmark_quick_prints_a_row_per_pair() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "broker_failover.py"), "--quick", "--fault", "kill"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    rows = [line.split() for line in proc.stdout.splitlines() if " kill " in line]
    assert [r[0] for r in rows] == ["mosquitto+mosquitto", "mosquitto+rumqttd"], output
