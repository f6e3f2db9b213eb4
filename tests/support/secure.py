"""A TLS Mosquitto with per-identity certificates, the generated ACL and the CRL, for tests that use the secure path."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.bus.protocol import Message
from edgekube.bus.tls import TlsFiles
from edgekube.local.broker import Mosquitto
from edgekube.local.pki import ADMIN, MASTER, LocalPki
from edgekube.security.ca import Role
from tests.support.prerequisites import require_mosquitto


class SecureBroker:
    """A TLS broker on a free loopback port and the PKI it trusts; `connect(name)` opens a bus as that identity."""

    def __init__(self, root: Path, identities: dict[str, Role]) -> None:
        self.pki = LocalPki(root / "pki").ensure(identities)
        self.broker = Mosquitto(workdir=root / "broker", tls=self.pki.broker_tls(), persistence=True)
        self._buses: list[PahoBus] = []

    @property
    def port(self) -> int:
        return self.broker.port

    def tls(self, name: str) -> TlsFiles:
        return self.pki.files(name)

    def config(self, name: str, **kw: object) -> BusConfig:
        files = self.tls(name)
        return BusConfig(port=self.port, tls_ca=files.ca, tls_cert=files.cert, tls_key=files.key, **kw)  # type: ignore[arg-type]

    def connect(self, name: str, wait: float = 10, **kw: object) -> PahoBus:
        bus = PahoBus(self.config(name, **kw))
        self._buses.append(bus)
        return bus.start(wait=wait)

    def reload(self, timeout: float = 10) -> None:
        """SIGHUP, and wait until the broker's log says it read its configuration again."""
        before = self.broker.log_path.read_text().count("Reloading config.")
        self.broker.reload()
        deadline = time.monotonic() + timeout
        while self.broker.log_path.read_text().count("Reloading config.") == before:
            if time.monotonic() > deadline:
                raise AssertionError(f"the broker did not log a reload within {timeout}s:\n{self.broker.log_tail()}")
            time.sleep(0.05)

    def close(self) -> None:
        for bus in self._buses:
            bus.close()
        self.broker.close()


class RawClient:
    """A bare paho MQTT 5 client with an identity, for asserting the broker's PUBACK reason codes."""

    def __init__(self, secure: SecureBroker, name: str) -> None:
        self._acks: queue.Queue[tuple[int, str]] = queue.Queue()
        connected: queue.Queue[str] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{name}", protocol=mqtt.MQTTv5)
        self.client.tls_set_context(secure.tls(name).context())
        self.client.on_connect = lambda c, u, f, rc, p: connected.put(str(rc))
        self.client.on_publish = lambda c, u, mid, rc, p: self._acks.put((mid, str(rc)))
        self.client.connect("127.0.0.1", secure.port)
        self.client.loop_start()
        assert connected.get(timeout=10) == "Success"

    def publish(self, topic: str) -> str:
        """Publish at QoS 1 and return the reason code of the broker's PUBACK ("Success", "Not authorized")."""
        mid = self.client.publish(topic, b"{}", qos=1).mid
        got, reason = self._acks.get(timeout=10)
        assert got == mid
        return reason

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Inbox:
    """Messages a bus received on some filters, in arrival order."""

    def __init__(self, bus: PahoBus, *filters: str) -> None:
        self._queue: queue.Queue[Message] = queue.Queue()
        for topic_filter in filters:
            bus.subscribe(topic_filter, self._queue.put)

    def until(self, topic: str, timeout: float = 10) -> list[str]:
        """Topics received up to and including the first message on `topic` (the positive control)."""
        seen: list[str] = []
        while not seen or seen[-1] != topic:
            seen.append(self._queue.get(timeout=timeout).topic)
        return seen


def secure_broker(root: Path, nodes: list[str], **more: Role) -> Iterator[SecureBroker]:
    require_mosquitto()
    identities = {MASTER: Role.MASTER, ADMIN: Role.ADMIN, **dict.fromkeys(nodes, Role.NODE), **more}
    secure = SecureBroker(root, identities)
    secure.broker.start()
    try:
        yield secure
    finally:
        secure.close()


@pytest.fixture
def secure(tmp_path: Path) -> Iterator[SecureBroker]:
    """A started TLS broker with identities for the master, an admin, node-1, node-2 and a viewer `vic`."""
    yield from secure_broker(tmp_path, ["node-1", "node-2"], vic=Role.VIEWER)
