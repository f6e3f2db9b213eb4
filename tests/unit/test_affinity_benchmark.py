"""Smoke test: `benchmarks/affinity.py` runs (subprocess, small sizes) and places every pod of every kind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_affinity_benchmark_prints_one_line_per_kind_with_every_pod_placed() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "affinity.py"), "--pods", "40", "--nodes", "8"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if "µs/pod" in line]
    kinds = ("plain", "node affinity Gt", "anti-affinity (host)", "spread (zone)")
    assert [line.split("  ")[1].strip() for line in lines] == list(kinds), proc.stdout
    assert all(line.endswith("(40 placed)") for line in lines), proc.stdout  # 4 replicas per group, 8 nodes
