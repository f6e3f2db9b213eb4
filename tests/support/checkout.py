"""A scratch checkout for the e2e tests of `edgekube up`: examples/ in a temp dir, an MQTT port of its own."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgekube.local.broker import free_port

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def scratch_checkout(prefix: str, bin_dir: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """Yield (directory, environment) for `edgekube up` there; on leaving, `bin_dir/edgekube down` and remove it.

    The directory is short (/tmp/PREFIX-XXXXXX): Podman's API socket lives under it (unix socket paths are limited
    to 108 bytes).
    """
    work = Path(subprocess.check_output(["mktemp", "-d", f"/tmp/{prefix}-XXXXXX"], text=True).strip())
    shutil.copytree(ROOT / "examples", work / "examples")
    env = dict(os.environ, EDGEKUBE_MQTT_PORT=str(free_port()))
    try:
        yield work, env
    finally:
        with contextlib.suppress(Exception):
            subprocess.run(
                [str(bin_dir / "edgekube"), "down"], cwd=work, env=env, capture_output=True, timeout=120, check=False
            )
        shutil.rmtree(work, ignore_errors=True)
