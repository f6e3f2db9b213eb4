"""Pytest fixtures that run a real MQTT broker on a free loopback port for a test or a session.

Mosquitto is the broker edgekube ships with. Tests whose subject is the MQTT protocol itself (not Podman, not
Mosquitto's TLS/ACL files or persistence) take `mqtt_broker` instead, which runs them once on Mosquitto and once
on rumqttd (tests/support/rumqttd.py), the second MQTT 5 implementation: see docs/protocol.md, "What edgekube
needs from a broker".
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.local.broker import Mosquitto
from tests.support.prerequisites import require_mosquitto, require_rumqttd
from tests.support.rumqttd import Rumqttd

MosquittoFactory = Callable[..., Mosquitto]
#: What a protocol test may do with either broker: host, port, url, pid, running, start, stop, kill, restart.
AnyBroker = Mosquitto | Rumqttd
#: The broker implementations the protocol tests run on (the `broker_kind` fixture's params).
BROKER_KINDS = ("mosquitto", "rumqttd")


def make_broker(kind: str, workdir: Path) -> AnyBroker:
    """An unstarted broker of `kind` (one of BROKER_KINDS) on a free loopback port; skip/fail if it is missing."""
    if kind == "mosquitto":
        require_mosquitto()
        return Mosquitto(workdir=workdir)
    if kind == "rumqttd":
        require_rumqttd()
        return Rumqttd(workdir=workdir)
    raise ValueError(f"broker_kind: {kind!r} is not one of {', '.join(BROKER_KINDS)}")


@pytest.fixture(params=BROKER_KINDS)
def broker_kind(request: pytest.FixtureRequest) -> str:
    """Which MQTT 5 broker a protocol test runs on; each such test runs once per kind."""
    kind: str = request.param
    return kind


@pytest.fixture
def mqtt_broker(broker_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnyBroker]:
    """A started broker of `broker_kind` for one test (no persistence), stopped afterwards whatever its state."""
    with make_broker(broker_kind, tmp_path_factory.mktemp(broker_kind)) as broker:
        yield broker


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


@pytest.fixture
def broker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnyBroker]:
    """A started Mosquitto for one test; a test marked `on_every_broker` gets it once per kind in BROKER_KINDS.

    For fixtures shared by many tests of which only a few are about the protocol end to end (e.g. ekctl against
    a master): those few run on every broker, the rest once, on Mosquitto.
    """
    kind: str = getattr(request, "param", "mosquitto")
    with make_broker(kind, tmp_path_factory.mktemp(kind)) as started:
        yield started


#: Run a test that uses the `broker` fixture (directly or through its fixtures) once on each broker kind.
on_every_broker = pytest.mark.parametrize("broker", BROKER_KINDS, indirect=True)
