"""Fixtures for fault tests: session-wide Podman stores per node, one Fleet per module, reset between tests."""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from edgekube.local.podman_service import PodmanService
from tests.support.fleet import Fleet, destroy_services, node_names, podman_services
from tests.support.prerequisites import require_mosquitto, require_netns, require_podman

#: Every fault test runs on this many nodes.
NODES = 3
_FLEET_KEY = pytest.StashKey[Fleet]()


@pytest.fixture(scope="session")
def fleet_podman() -> Iterator[dict[str, PodmanService]]:
    """One Podman service per node for the whole session: the demo image is imported once, not per module."""
    require_podman()
    require_mosquitto()
    services = podman_services(node_names(NODES))
    try:
        yield services
    finally:
        destroy_services(services)


@pytest.fixture(scope="module")
def fleet(
    request: pytest.FixtureRequest, fleet_podman: dict[str, PodmanService], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    """A started fleet for the module; a module sets FLEET_NETNS = False to keep its agents in the host's network.

    Agents in their own namespace cannot reach pod addresses on Podman's host bridge, so modules that need
    the agent to reach a pod over the network (httpGet probes) opt out; only network cuts need namespaces.
    FLEET_AGENT_ARGS in a module adds command-line options to every agent of its fleet.
    """
    use_netns = bool(getattr(request.module, "FLEET_NETNS", True))
    agent_args = [str(a) for a in getattr(request.module, "FLEET_AGENT_ARGS", [])]
    if use_netns:
        require_netns()
    root = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    with Fleet(root, NODES, netns=use_netns, podman=fleet_podman, agent_args=agent_args) as started:
        yield started


@pytest.fixture(autouse=True)
def _fresh_fleet(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test: heal every fault and remove every controller and pod, so the next test starts clean."""
    if "fleet" not in request.fixturenames:
        yield
        return
    fleet: Fleet = request.getfixturevalue("fleet")
    request.node.stash[_FLEET_KEY] = fleet
    yield
    fleet.reset()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failing fault test's report carries the tail of every daemon's log."""
    report = yield
    fleet = item.stash.get(_FLEET_KEY, None)
    if report.failed and fleet is not None:
        report.sections.append(("fleet logs", fleet.log_tails()))
    return report
