"""Fixtures of the fleet tests: the machines' private Podman, the cached machine image, and the timings report.

Every test here is marked `fleet` (pytest -m fleet runs only them, -m 'not fleet' skips them). Timings of the
slow steps (image build, playbook runs) are collected in `timings` and printed at the end of the run, for
docs/performance.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.machines import ImageBuild, MachineHost
from tests.support.prerequisites import require_machines

HERE = Path(__file__).parent
#: What each timed step took in this run, in seconds, in the order they finished.
TIMINGS: dict[str, float] = {}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(HERE):
            item.add_marker(pytest.mark.fleet)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.section("fleet timings")
        for step, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{seconds:8.1f} s  {step}")


@pytest.fixture(scope="session")
def machine_host() -> Iterator[MachineHost]:
    """The private Podman of the machines; leftovers of a killed earlier run are removed first."""
    require_machines()
    host = MachineHost()
    host.remove_leftovers()
    yield host


@pytest.fixture(scope="session")
def machine_image(machine_host: MachineHost) -> ImageBuild:
    build = machine_host.ensure_image()
    TIMINGS[f"machine image ({'cached' if build.cached else 'built with mmdebstrap + podman import'})"] = build.seconds
    return build
