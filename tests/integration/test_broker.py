"""Integration tests of the broker launchers against real brokers and a paho-mqtt 2.x MQTTv5 client.

Tests taking `mqtt_broker` run on Mosquitto and on rumqttd (what the protocol needs from any MQTT 5 broker,
docs/protocol.md); tests taking `mosquitto*` cover what only the Mosquitto launcher does (its config file,
persistence to disk, pidfiles for `edgekube up`).
"""

from __future__ import annotations

import queue
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.bus.protocol import Message
from edgekube.local.broker import Mosquitto, pid_from_pidfile, start_detached, stop_pidfile
from edgekube.model.errors import BusError
from edgekube.model.wire import MAX_PAYLOAD_BYTES
from tests.support.broker import AnyBroker, MosquittoFactory
from tests.support.prerequisites import require_rumqttd
from tests.support.rumqttd import Rumqttd

pytestmark = pytest.mark.integration

TIMEOUT = 10.0


class Client:
    """A connected MQTTv5 client whose received messages land in a queue."""

    def __init__(self, broker: AnyBroker, client_id: str = "", *, persistent: bool = False) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._connected: queue.Queue[ReasonCode] = queue.Queue()
        self._subscribed: queue.Queue[int] = queue.Queue()
        self.mqtt = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or f"test-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        self.mqtt.on_connect = self._on_connect
        self.mqtt.on_subscribe = self._on_subscribe
        self.mqtt.on_message = self._on_message
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600 if persistent else 0
        self.mqtt.connect(broker.host, broker.port, keepalive=30, clean_start=not persistent, properties=props)
        self.mqtt.loop_start()
        reason = self._connected.get(timeout=TIMEOUT)
        assert not reason.is_failure, reason

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connected.put(reason_code)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        assert all(not code.is_failure for code in reason_codes), reason_codes
        self._subscribed.put(mid)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        self.messages.put(message)

    def subscribe(self, topic: str) -> None:
        result, mid = self.mqtt.subscribe(topic, qos=1)
        assert result == mqtt.MQTT_ERR_SUCCESS
        assert self._subscribed.get(timeout=TIMEOUT) == mid

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        info = self.mqtt.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=TIMEOUT)
        assert info.is_published()

    def close(self) -> None:
        self.mqtt.disconnect()
        self.mqtt.loop_stop()


@pytest.fixture
def connect() -> Iterator[type[Client]]:
    clients: list[Client] = []

    class Tracked(Client):
        def __init__(self, broker: AnyBroker, client_id: str = "", *, persistent: bool = False) -> None:
            super().__init__(broker, client_id, persistent=persistent)
            clients.append(self)

    yield Tracked
    for client in clients:
        client.close()


def test_qos1_publish_is_received(mqtt_broker: AnyBroker, connect: type[Client]) -> None:
    assert mqtt_broker.running and mqtt_broker.pid is not None
    client = connect(mqtt_broker)
    client.subscribe("edgekube/test/qos1")
    client.publish("edgekube/test/qos1", b"hello")
    message = client.messages.get(timeout=TIMEOUT)
    assert (message.topic, message.payload, message.qos) == ("edgekube/test/qos1", b"hello", 1)


def test_session_broker_is_shared(mosquitto_session: Mosquitto, connect: type[Client]) -> None:
    publisher, subscriber = connect(mosquitto_session), connect(mosquitto_session)
    topic = f"edgekube/test/{uuid.uuid4().hex}"
    subscriber.subscribe(topic)
    publisher.publish(topic, b"across clients")
    assert subscriber.messages.get(timeout=TIMEOUT).payload == b"across clients"


def test_config_is_what_we_promise(mosquitto: Mosquitto) -> None:
    conf = mosquitto.conf_path.read_text()
    assert f"listener {mosquitto.port} 127.0.0.1" in conf
    assert "allow_anonymous true" in conf
    assert "set_tcp_nodelay true" in conf
    assert "persistence false" in conf
    assert mosquitto.log_path.exists()


def test_restart_keeps_retained_message_with_persistence(
    mosquitto_factory: MosquittoFactory, connect: type[Client]
) -> None:
    broker = mosquitto_factory(persistence=True)
    port = broker.port
    first_pid = broker.pid
    connect(broker).publish("edgekube/test/retained", b"kept", retain=True)

    broker.restart()

    assert broker.port == port and broker.pid != first_pid
    assert (broker.workdir / "mosquitto.db").exists()
    client = connect(broker)
    client.subscribe("edgekube/test/retained")
    message = client.messages.get(timeout=TIMEOUT)
    assert (message.payload, message.retain) == (b"kept", True)


def test_restart_without_persistence_forgets_retained(mqtt_broker: AnyBroker, connect: type[Client]) -> None:
    connect(mqtt_broker).publish("edgekube/test/retained", b"lost", retain=True)
    mqtt_broker.restart()
    client = connect(mqtt_broker)
    client.subscribe("edgekube/test/retained")
    with pytest.raises(queue.Empty):
        client.messages.get(timeout=0.5)


def test_kill_then_start_on_the_same_port(mqtt_broker: AnyBroker) -> None:
    port = mqtt_broker.port
    mqtt_broker.kill()
    assert not mqtt_broker.running and mqtt_broker.pid is None
    with pytest.raises(OSError), socket.create_connection((mqtt_broker.host, port), timeout=1):
        pass
    mqtt_broker.start()
    assert mqtt_broker.running and mqtt_broker.port == port
    mqtt_broker.stop()
    mqtt_broker.stop()  # idempotent


def test_a_payload_at_edgekube_s_size_limit_gets_through(mqtt_broker: AnyBroker, connect: type[Client]) -> None:
    """edgekube sends payloads up to MAX_PAYLOAD_BYTES (1 MiB): the broker must pass them (rumqttd's default: 20 KB)."""
    publisher, subscriber = connect(mqtt_broker), connect(mqtt_broker)
    subscriber.subscribe("edgekube/test/big")
    payload = b"x" * MAX_PAYLOAD_BYTES
    publisher.publish("edgekube/test/big", payload)
    assert subscriber.messages.get(timeout=TIMEOUT).payload == payload


def test_a_resumed_persistent_session_gets_what_was_queued_without_subscribing_again(
    mqtt_broker: AnyBroker, connect: type[Client]
) -> None:
    """The broker keeps an offline client's subscriptions and queues its QoS 1 messages, in order."""
    client_id = f"persistent-{uuid.uuid4().hex[:8]}"
    first = connect(mqtt_broker, client_id, persistent=True)
    first.subscribe("edgekube/test/queued")
    first.close()
    publisher = connect(mqtt_broker)
    sent = [str(i).encode() for i in range(50)]
    for payload in sent:
        publisher.publish("edgekube/test/queued", payload)
    again = connect(mqtt_broker, client_id, persistent=True)
    assert [again.messages.get(timeout=TIMEOUT).payload for _ in sent] == sent


def test_a_bus_subscribes_again_when_the_broker_comes_back_without_its_session(mqtt_broker: AnyBroker) -> None:
    """PahoBus subscribes again on every connect, whatever `session_present` says; a restarted broker forgot all."""
    received: queue.Queue[Message] = queue.Queue()
    config = BusConfig(port=mqtt_broker.port, persistent=True, keepalive=5)
    bus, publisher = PahoBus(config), PahoBus(BusConfig(port=mqtt_broker.port))
    try:
        bus.subscribe("edgekube/test/again", received.put)
        bus.start(wait=TIMEOUT)
        publisher.start(wait=TIMEOUT)
        publisher.publish("edgekube/test/again", b"before")
        assert received.get(timeout=TIMEOUT).payload == b"before"
        mqtt_broker.restart()
        assert _wait(lambda: bus.connected and publisher.connected)
        publisher.publish("edgekube/test/again", b"after")
        assert received.get(timeout=TIMEOUT * 2).payload == b"after"
    finally:
        bus.close()
        publisher.close()


def _wait(condition: Callable[[], bool]) -> bool:
    """Poll `condition` until it holds or TIMEOUT passes (paho reconnects every 1-2 s after a broker restart)."""
    deadline = threading.Event()
    timer = threading.Timer(TIMEOUT, deadline.set)
    timer.start()
    try:
        while not condition():
            if deadline.wait(0.02):
                return condition()
        return True
    finally:
        timer.cancel()


def test_taken_port_is_a_readable_bus_error(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        with pytest.raises(BusError, match="already in use") as caught:
            Mosquitto(port, tmp_path).start()
    assert "EDGEKUBE_MQTT_PORT" in caught.value.hint


def test_rumqttd_on_a_taken_port_is_a_readable_bus_error(tmp_path: Path) -> None:
    require_rumqttd()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        broker = Rumqttd(squatter.getsockname()[1], tmp_path)
        with pytest.raises(BusError, match="already in use"):
            broker.start()
    assert not broker.running


def test_rumqttd_that_exits_at_start_reports_its_output(tmp_path: Path) -> None:
    require_rumqttd()

    class Broken(Rumqttd):
        def config_text(self) -> str:
            return "this is not toml ["

    broker = Broken(workdir=tmp_path, start_timeout=10)
    with pytest.raises(BusError, match="exited with code") as caught:
        broker.start()
    assert not broker.running and broker.pid is None
    assert "TOML parse error" in caught.value.hint


def test_broker_that_exits_at_start_reports_its_output(tmp_path: Path) -> None:
    class Broken(Mosquitto):
        def config_text(self) -> str:
            return super().config_text() + "no_such_option 1\n"

    broker = Broken(workdir=tmp_path, start_timeout=5)
    with pytest.raises(BusError, match="exited with code") as caught:
        broker.start()
    assert not broker.running and broker.pid is None
    assert "no_such_option" in caught.value.hint


def test_detached_broker_is_stopped_through_its_pidfile(tmp_path: Path) -> None:
    broker = start_detached(tmp_path / "cluster", persistence=True)
    pidfile = tmp_path / "cluster" / "mosquitto.pid"
    try:
        assert pid_from_pidfile(pidfile) == broker.pid
        with pytest.raises(BusError, match="already runs"):
            start_detached(tmp_path / "cluster")
        assert stop_pidfile(pidfile)
        assert not pidfile.exists()
        assert pid_from_pidfile(pidfile) is None
        assert not stop_pidfile(pidfile)
    finally:
        broker.stop()  # reaps the child (already gone) so no zombie outlives the test


def test_stale_pidfile_is_ignored(tmp_path: Path) -> None:
    pidfile = tmp_path / "mosquitto.pid"
    pidfile.write_text("999999999\n")
    assert pid_from_pidfile(pidfile) is None
    assert not stop_pidfile(pidfile)
    assert not pidfile.exists()
