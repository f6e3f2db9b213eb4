"""Fixtures for end-to-end tests: a real broker, a real Podman service per node, master and agents in-process."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekube.agent.app import Agent
from edgekube.local.broker import Mosquitto
from edgekube.local.images import ensure_demo_image
from edgekube.local.podman_service import PodmanService
from edgekube.master.app import Master
from tests.support.cluster import ApiClient, start_agent, start_master
from tests.support.prerequisites import require_mosquitto, require_podman


@pytest.fixture(scope="session")
def e2e_podman() -> Iterator[PodmanService]:
    require_podman()
    # Short path: the API socket path must stay under the 108-byte unix socket limit.
    workdir = Path(tempfile.mkdtemp(prefix="ek-e2e-"))
    service = PodmanService(workdir / "p").start()
    ensure_demo_image(service)
    try:
        yield service
    finally:
        service.destroy()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    require_mosquitto()
    with Mosquitto(None, tmp_path / "broker", persistence=True) as mosquitto:
        yield mosquitto


@pytest.fixture
def master(broker: Mosquitto, tmp_path: Path) -> Iterator[Master]:
    m = start_master(broker.port, tmp_path / "master")
    yield m
    m.stop()


@pytest.fixture
def agent(broker: Mosquitto, master: Master, e2e_podman: PodmanService, tmp_path: Path) -> Iterator[Agent]:
    a = start_agent(broker.port, "node-1", e2e_podman, tmp_path / "agent")
    yield a
    a.stop()
    e2e_podman.cleanup()


@pytest.fixture
def client(broker: Mosquitto) -> Iterator[ApiClient]:
    c = ApiClient(broker.port)
    yield c
    c.close()
