"""Spec of benchmarks/store_writes.py's guards: it refuses memory file systems and ranks percentiles as it says."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "store_writes.py"

# Shaped like /proc/self/mountinfo: an ext4 root, tmpfs on /ek-shm and on "/ek-run/user x" (the space escaped as
# \040), and a ramfs mounted over an ext4 mount on the same point (the later line hides the earlier one).  The
# mount points do not exist, so resolving symlinks cannot move them on any machine.
MOUNTINFO = """\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
25 24 0:23 / /ek-shm rw,relatime - tmpfs tmpfs rw,size=24683584k
60 27 0:40 / /ek-run/user\\040x rw,relatime shared:5 - tmpfs tmpfs rw
61 27 254:1 / /ek-srv/cache rw,relatime - ext4 /dev/vdb rw
62 61 0:41 / /ek-srv/cache rw,relatime - ramfs ramfs rw
"""


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("store_writes", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/ek-var/lib/edgekube", "ext4"),
        ("/ek-shm", "tmpfs"),
        ("/ek-shm/bench/not-yet-created", "tmpfs"),
        ("/ek-shmx", "ext4"),  # a sibling whose name starts like the mount point is not inside it
        ("/ek-run/user x/tmp", "tmpfs"),
        ("/ek-srv/cache/run", "ramfs"),
    ],
)
def test_filesystem_type_is_that_of_the_longest_and_latest_mount_point_holding_the_path(
    bench: ModuleType, path: str, kind: str
) -> None:
    assert bench.filesystem_type(Path(path), MOUNTINFO) == kind


def test_a_tmpfs_directory_is_refused_with_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or "tmpfs" not in Path("/proc/self/mountinfo").read_text():
        pytest.skip("no tmpfs at /dev/shm on this machine")
    target = shm / f"edgekube-bench-{tmp_path.name}"

    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--dir", str(target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"store_writes.py: refusing {target}: it is on tmpfs, where fsync costs nothing and the figures would "
        "not be a disk's; pass --dir on a disk or the SD card"
    ]
    assert not target.exists()


def test_p95_is_the_nearest_rank_value(bench: ModuleType) -> None:
    values = [float(v) for v in range(1, 21)]  # 20 trials: the 19th value is the 95th percentile

    assert bench.nearest_rank(values[::-1], 0.95) == 19.0
    assert bench.nearest_rank(values, 0.5) == 10.0


def test_the_report_divides_stock_by_edgekube_for_each_percentile(bench: ModuleType) -> None:
    stock = [{"ms": 20.0 + i, "cpu_ms": 10.0, "wchar": 0.0, "written": 1024.0 * 1024} for i in range(20)]
    edgekube = [{"ms": 1.0, "cpu_ms": 0.5, "wchar": 0.0, "written": 4096.0} for _ in range(20)]

    lines = bench.report(1000, 20, {"stock": stock, "edgekube": edgekube})

    ratio = lines[-1].split()
    assert ratio[0] == "stock/edgekube"
    # latency p50 (median of 20..39 = 29.5) and p95 (38), CPU p50/p95, written KiB p50/p95 (1024 / 4)
    assert ratio[1:] == ["29.5x", "38.0x", "20.0x", "20.0x", "256.0x", "256.0x"]
