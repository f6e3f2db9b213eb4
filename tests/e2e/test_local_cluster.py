"""`edgekube up`/`down` as a newcomer runs them: the README's storage lines work after `up`; data outlives `down`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.checkout import scratch_checkout
from tests.support.cluster import wait_for
from tests.support.prerequisites import require_mosquitto, require_nfs, require_podman

BIN = Path(sys.executable).parent
#: The two lines of the README's "Storage" example, run as written there (from the repository's root).
README_LINES = (
    ".venv/bin/ekctl apply -f examples/data-claim.yaml -f examples/counter-pod.yaml --wait",
    "cat .edgekube/nfs/export/default-data-*/visits",
)

pytestmark = pytest.mark.integration


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 180) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture
def checkout() -> Iterator[tuple[Path, dict[str, str]]]:
    """A directory laid out like the repository for the README's relative paths: examples/ and .venv/bin."""
    require_podman()
    require_mosquitto()
    require_nfs()
    with scratch_checkout("ek-up", BIN) as (work, env):
        (work / ".venv").mkdir()
        (work / ".venv" / "bin").symlink_to(BIN)
        yield work, env


@pytest.mark.timeout(400)
def test_the_readme_storage_example_works_right_after_up_and_its_data_outlives_down(
    checkout: tuple[Path, dict[str, str]],
) -> None:
    work, env = checkout
    _run([str(BIN / "edgekube"), "up", "--nodes", "2", "--no-example"], work, env)
    cluster = json.loads((work / ".edgekube" / "cluster.json").read_text())
    export = Path(cluster["nfs"]["exportDir"])
    assert cluster["nfs"]["server"] == "127.0.0.1"
    assert export == work / ".edgekube" / "nfs" / "export"
    classes = _run([str(BIN / "ekctl"), "get", "sc"], work, env)
    assert "nfs (default)" in classes

    _run(["sh", "-c", README_LINES[0]], work, env)
    visits = wait_for(
        "the counter pod's first line on the NFS export",
        lambda: _run(["sh", "-c", README_LINES[1]], work, env).strip(),
    )
    assert visits.splitlines()[0] == "visit 1 from counter"
    volume_dirs = [p.name for p in export.iterdir()]
    assert len(volume_dirs) == 1
    assert volume_dirs[0].startswith("default-data-pvc-")

    _run([str(BIN / "edgekube"), "down"], work, env)
    assert (export / volume_dirs[0] / "visits").read_text().startswith("visit 1 from counter")
    assert sorted(p.name for p in (work / ".edgekube").iterdir()) == ["nfs"]
