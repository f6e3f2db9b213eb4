"""The MessageBus contract: one suite run on PahoBus over real Mosquitto and rumqttd, and on the in-memory bus.

PahoBus runs it on both MQTT 5 brokers (tests/support/broker.py, `broker_kind`): what passes here is what the
protocol needs from any broker (docs/protocol.md, "What edgekube needs from a broker").

Each test states one promise master, agent and CLI rely on. The exchange is always the same: clients of one
broker subscribe, publish and request; a client can vanish (its connection breaks without a DISCONNECT, so the
broker publishes its Last Will) and come back. Delivery is asynchronous on PahoBus and on the threaded memory
bus, synchronous on the inline one: every test waits for what it expects, up to a timeout, and asserts the
outcome and the order, never how long it took.
"""

from __future__ import annotations

import itertools
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import pytest

from edgekube.bus.brokers import Broker
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.bus.protocol import Message, MessageBus, Will
from edgekube.local.broker import free_port
from edgekube.model.errors import BusError
from tests.support.broker import AnyBroker, make_broker
from tests.support.membus import MemoryBroker, MemoryBus

WAIT = 10.0


class Net(Protocol):
    """One broker and a way to make its clients, for one implementation of MessageBus."""

    def client(self, *, will: Will | None = None, persistent: bool = False, name: str = "") -> MessageBus: ...

    def vanish(self, bus: MessageBus) -> None:
        """Break the client's connection without a DISCONNECT; it reconnects by itself a little later."""


@dataclass
class PahoNet:
    broker: AnyBroker
    buses: list[PahoBus] = field(default_factory=list)
    #: A broker address listed first that nobody listens on: every client gets to the real one by failing over.
    dead_first: Broker | None = None

    def client(self, *, will: Will | None = None, persistent: bool = False, name: str = "") -> MessageBus:
        real = Broker(self.broker.host, self.broker.port)
        config = BusConfig.on(
            (self.dead_first, real) if self.dead_first is not None else (real,),
            client_id=name or f"contract-{uuid.uuid4().hex[:8]}",
            will=will,
            persistent=persistent,
            keepalive=5,
            log_failures=self.dead_first is None,
        )
        bus = PahoBus(config)
        self.buses.append(bus)
        return bus

    def vanish(self, bus: MessageBus) -> None:
        assert isinstance(bus, PahoBus)
        sock = bus._client.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)  # the broker sees the connection drop: no DISCONNECT, so the Will goes out
        assert wait_for(lambda: not bus.connected), "paho did not notice the broken connection"


@dataclass
class MemoryNet:
    broker: MemoryBroker
    buses: list[MemoryBus] = field(default_factory=list)

    def client(self, *, will: Will | None = None, persistent: bool = False, name: str = "") -> MessageBus:
        bus = self.broker.client(name or f"contract-{uuid.uuid4().hex[:8]}", will=will, persistent=persistent)
        self.buses.append(bus)
        return bus

    def vanish(self, bus: MessageBus) -> None:
        assert isinstance(bus, MemoryBus)
        self.broker.drop(bus.client_id)
        timer = threading.Timer(0.2, self.broker.reconnect, args=(bus.client_id,))
        timer.daemon = True
        timer.start()


@pytest.fixture(
    params=["paho+mosquitto", "paho+rumqttd", "paho-failover+mosquitto", "memory-threaded", "memory-inline"]
)
def net(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Net]:
    """`paho-failover+…`: every client lists a dead broker first (bus/brokers.py), so it works through its fallback."""
    made: PahoNet | MemoryNet
    if request.param.startswith("paho"):
        kind = request.param.partition("+")[2]
        with make_broker(kind, tmp_path_factory.mktemp(kind)) as broker:
            dead = Broker("127.0.0.1", free_port("127.0.0.1")) if request.param.startswith("paho-failover") else None
            made = PahoNet(broker, dead_first=dead)
            yield made
            for paho in made.buses:
                paho.close()
        return
    made = MemoryNet(MemoryBroker(inline=request.param == "memory-inline"))
    yield made
    for memory in made.buses:
        memory.close()


def wait_for(condition: Callable[[], bool], timeout: float = WAIT) -> bool:
    done = threading.Event()
    deadline = threading.Timer(timeout, done.set)
    deadline.daemon = True
    deadline.start()
    try:
        while not done.is_set():
            if condition():
                return True
            done.wait(0.01)
        return condition()
    finally:
        deadline.cancel()


class Inbox:
    """A handler that keeps what it receives, in order."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._lock = threading.Lock()

    def __call__(self, message: Message) -> None:
        with self._lock:
            self.messages.append(message)

    def payloads(self) -> list[bytes]:
        with self._lock:
            return [m.payload for m in self.messages]

    def wait(self, count: int) -> list[bytes]:
        assert wait_for(lambda: len(self.payloads()) >= count), f"got {self.payloads()}, wanted {count} messages"
        return self.payloads()


def topic(name: str) -> str:
    return f"contract/{uuid.uuid4().hex[:8]}/{name}"


def test_start_connects_and_wait_connected_says_so(net: Net) -> None:
    bus = net.client().start(wait=WAIT)
    assert bus.connected
    assert bus.wait_connected(WAIT)


def test_a_subscriber_gets_exactly_the_topics_its_filter_matches(net: Net) -> None:
    base = topic("")
    sub, pub = net.client(), net.client()
    plus, hash_, exact = Inbox(), Inbox(), Inbox()
    sub.subscribe(f"{base}+/x", plus)
    sub.subscribe(f"{base}#", hash_)
    sub.subscribe(f"{base}a/x", exact)
    sub.start(wait=WAIT)
    pub.start(wait=WAIT)
    for name in ("a/x", "b/y", "b/x", "last"):
        pub.publish(f"{base}{name}", name.encode())
    assert hash_.wait(4) == [b"a/x", b"b/y", b"b/x", b"last"]
    assert plus.wait(2) == [b"a/x", b"b/x"]
    assert exact.wait(1) == [b"a/x"]


def test_messages_from_one_publisher_arrive_in_the_order_sent(net: Net) -> None:
    name = topic("order")
    sub, pub = net.client(), net.client()
    inbox = Inbox()
    sub.subscribe(name, inbox)
    sub.start(wait=WAIT)
    pub.start(wait=WAIT)
    sent = [str(i).encode() for i in range(100)]
    for payload in sent:
        pub.publish(name, payload)
    assert inbox.wait(100) == sent


def test_a_retained_message_reaches_a_later_subscriber_marked_retained(net: Net) -> None:
    name = topic("retained")
    pub = net.client().start(wait=WAIT)
    pub.publish(name, b"first", retain=True)
    pub.publish(name, b"second", retain=True)
    marker = topic("marker")  # a round trip through the broker: both publishes have been handled after it
    probe = Inbox()
    pub.subscribe(marker, probe)
    pub.publish(marker, b"m")
    probe.wait(1)
    late, inbox = net.client(), Inbox()
    late.subscribe(name, inbox)
    late.start(wait=WAIT)
    assert inbox.wait(1) == [b"second"]
    assert inbox.messages[0].retain


def test_an_empty_retained_payload_clears_the_retained_message(net: Net) -> None:
    name, marker = topic("cleared"), topic("marker")
    pub = net.client().start(wait=WAIT)
    pub.publish(name, b"state", retain=True)
    pub.publish(name, b"", retain=True)
    pub.publish(marker, b"after", retain=True)
    late, inbox = net.client(), Inbox()
    late.subscribe(name, inbox)
    late.subscribe(marker, inbox)
    late.start(wait=WAIT)
    assert inbox.wait(1) == [b"after"]  # the marker came; the cleared message did not


def test_a_request_gets_the_answer_sent_to_its_response_topic_with_its_correlation(net: Net) -> None:
    service = topic("service")
    server, caller = net.client(), net.client()
    seen: list[Message] = []

    def answer(msg: Message) -> None:
        seen.append(msg)
        assert msg.response_topic is not None
        server.publish(msg.response_topic, b"re: " + msg.payload, correlation=msg.correlation)

    server.subscribe(service, answer)
    server.start(wait=WAIT)
    caller.start(wait=WAIT)
    assert caller.request(service, b"one", timeout=WAIT).payload == b"re: one"
    assert caller.request(service, b"two", timeout=WAIT).payload == b"re: two"
    assert [m.payload for m in seen] == [b"one", b"two"]
    assert seen[0].correlation != seen[1].correlation


def test_a_request_nobody_answers_raises_bus_error(net: Net) -> None:
    caller = net.client().start(wait=WAIT)
    with pytest.raises(BusError, match="no answer"):
        caller.request(topic("nobody"), b"hello?", timeout=0.3)


def test_connect_hooks_run_after_start_and_at_once_when_added_while_connected(net: Net) -> None:
    bus = net.client()
    calls: list[str] = []
    bus.on_connect(lambda: calls.append("before start"))
    bus.start(wait=WAIT)
    assert wait_for(lambda: calls == ["before start"])
    bus.on_connect(lambda: calls.append("while connected"))
    assert wait_for(lambda: calls == ["before start", "while connected"])


def test_a_vanished_client_s_will_is_published_and_its_hooks_run_again_on_reconnect(net: Net) -> None:
    presence = topic("presence")
    watcher, inbox = net.client(), Inbox()
    watcher.subscribe(presence, inbox)
    watcher.start(wait=WAIT)
    bus = net.client(will=Will(presence, b"offline", retain=False))
    connects: list[int] = []
    bus.on_connect(lambda: connects.append(1))
    bus.on_connect(lambda: bus.publish(presence, b"online"))
    bus.start(wait=WAIT)
    assert inbox.wait(1) == [b"online"]
    net.vanish(bus)
    assert wait_for(lambda: len(connects) == 2)
    # QoS 1 is at least once (once on rumqttd the watcher got "online" twice after the reconnect): a payload may
    # come twice in a row; the order is the contract.
    assert wait_for(
        lambda: [p for p, _ in itertools.groupby(inbox.payloads())] == [b"online", b"offline", b"online"]
    ), inbox.payloads()


def test_a_clean_close_does_not_publish_the_will(net: Net) -> None:
    presence, marker = topic("presence"), topic("marker")
    watcher, inbox = net.client(), Inbox()
    watcher.subscribe(presence, inbox)
    watcher.subscribe(marker, inbox)
    watcher.start(wait=WAIT)
    bus = net.client(will=Will(presence, b"offline", retain=False)).start(wait=WAIT)
    bus.close()
    other = net.client().start(wait=WAIT)
    other.publish(marker, b"after close")
    assert inbox.wait(1) == [b"after close"]


def test_a_qos1_publish_made_while_disconnected_is_sent_after_reconnect(net: Net) -> None:
    name = topic("queued")
    sub, inbox = net.client(), Inbox()
    sub.subscribe(name, inbox)
    sub.start(wait=WAIT)
    pub = net.client().start(wait=WAIT)
    net.vanish(pub)
    assert not pub.connected
    pub.publish(name, b"sent while away", qos=1)
    assert inbox.wait(1) == [b"sent while away"]


def test_a_persistent_client_gets_the_qos1_messages_sent_while_it_was_away(net: Net) -> None:
    name, client_id = topic("missed"), f"persistent-{uuid.uuid4().hex[:8]}"
    first = net.client(persistent=True, name=client_id)
    first.subscribe(name, Inbox())
    first.start(wait=WAIT)
    first.close()
    pub = net.client().start(wait=WAIT)
    pub.publish(name, b"while away", qos=1)
    marker, probe = topic("marker"), Inbox()
    pub.subscribe(marker, probe)
    pub.publish(marker, b"m")
    probe.wait(1)  # the broker has handled the first publish
    again, inbox = net.client(persistent=True, name=client_id), Inbox()
    again.subscribe(name, inbox)
    again.start(wait=WAIT)
    assert inbox.wait(1) == [b"while away"]


def test_a_handler_that_raises_does_not_stop_later_deliveries(net: Net) -> None:
    name = topic("faulty")
    sub, inbox = net.client(), Inbox()

    def faulty(msg: Message) -> None:
        inbox(msg)
        if msg.payload == b"boom":
            raise RuntimeError("handler bug")

    sub.subscribe(name, faulty)
    sub.start(wait=WAIT)
    pub = net.client().start(wait=WAIT)
    pub.publish(name, b"boom")
    pub.publish(name, b"still delivered")
    assert inbox.wait(2) == [b"boom", b"still delivered"]
