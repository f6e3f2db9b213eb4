"""Pytest fixtures that run a real Mosquitto broker on a free loopback port for a test or a session."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from edgekube.local.broker import Mosquitto
from tests.support.prerequisites import require_mosquitto

MosquittoFactory = Callable[..., Mosquitto]


@pytest.fixture
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A started broker of its own for one test (no persistence), stopped afterwards.

    The test may stop(), kill(), restart() or start() it; teardown stops it whatever its state.
    """
    require_mosquitto()
    with Mosquitto(workdir=tmp_path_factory.mktemp("mosquitto")) as broker:
        yield broker


@pytest.fixture(scope="session")
def mosquitto_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One started broker shared by the whole session; tests must not stop it and should use unique topics."""
    require_mosquitto()
    with Mosquitto(workdir=tmp_path_factory.mktemp("mosquitto-session")) as broker:
        yield broker


@pytest.fixture
def mosquitto_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoFactory]:
    """Make started brokers with any Mosquitto keyword (e.g. persistence=True); all stopped afterwards."""
    require_mosquitto()
    brokers: list[Mosquitto] = []

    def make(**kwargs: Any) -> Mosquitto:
        kwargs.setdefault("workdir", tmp_path_factory.mktemp("mosquitto"))
        broker = Mosquitto(**kwargs)
        brokers.append(broker)
        return broker.start()

    yield make
    for broker in reversed(brokers):
        broker.close()
