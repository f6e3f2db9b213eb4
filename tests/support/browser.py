"""A real headless Chromium for the dashboard's tests and benchmark: Debian's `chromium`, driven by Playwright.

Playwright's own browser download is not used (no internet here, and CI installs `chromium` with
scripts/install.sh): `executable_path` points Playwright at the system browser. Screenshots go under
ARTIFACTS (`test-artifacts/` at the repository root, or $EDGEKUBE_TEST_ARTIFACTS) for review.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.prerequisites import missing

if TYPE_CHECKING:
    from playwright.sync_api import Browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("EDGEKUBE_TEST_ARTIFACTS") or ROOT / "test-artifacts")


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def require_browser() -> str:
    """The system Chromium's path, after checking Playwright is installed (skip or fail, see prerequisites)."""
    path = chromium_path()
    if path is None:
        missing("Debian's chromium (the dashboard's browser tests)")
    try:
        import playwright  # noqa: F401, PLC0415
    except ImportError:
        missing("Playwright (pip install -e '.[dev]')")
    return path


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium (no sandbox: tests run as root), closed afterwards."""
    path = require_browser()
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=["--no-sandbox"], headless=True)
        try:
            yield browser
        finally:
            browser.close()


def artifact(name: str) -> Path:
    """Where a test saves `name` for review (the directory is made)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name
