"""The dashboard of the cluster `make up` starts: `edgekube up --nodes 2` in a scratch checkout (its own MQTT port),
then `ekctl dashboard` as a user types it there (the admin identity from .edgekube/cluster.json), and the URL it
prints opened in a real headless Chromium: both nodes are on the page, Ready, with their pods. A screenshot is saved
under test-artifacts/ for review.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.browser import artifact, chromium, require_browser
from tests.support.checkout import scratch_checkout
from tests.support.prerequisites import require_mosquitto, require_podman

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"


@pytest.fixture
def checkout() -> Iterator[tuple[Path, dict[str, str]]]:
    require_podman()
    require_mosquitto()
    require_browser()
    with scratch_checkout("ek-dash", BIN) as (work, env):
        yield work, env


@pytest.mark.timeout(400)
def test_ekctl_dashboard_after_make_up_opens_a_page_with_every_node_ready(
    checkout: tuple[Path, dict[str, str]],
) -> None:
    work, env = checkout
    up = subprocess.run(
        [str(BIN / "edgekube"), "up", "--nodes", "2", "--example", "examples/hello-pod.yaml"],
        cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert up.returncode == 0, up.stdout + up.stderr
    assert "ekctl dashboard" in up.stderr  # its progress lines

    login = subprocess.run(
        [str(BIN / "ekctl"), "dashboard"], cwd=work, env=env, capture_output=True, text=True, timeout=60, check=False
    )

    assert login.returncode == 0, login.stderr
    assert "as admin" in login.stderr
    with chromium() as browser:
        page = browser.new_page()
        page.goto(login.stdout.strip())
        for node in ("node-1", "node-2"):
            page.wait_for_selector(f"[data-node='{node}'] [data-ready='Ready']")
        page.wait_for_selector("[data-pod] >> text=Running")
        page.screenshot(path=str(artifact("dashboard-make-up.png")), full_page=True)
