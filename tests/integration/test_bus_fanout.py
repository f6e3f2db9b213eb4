"""FanoutBus on two real brokers (Mosquitto, and Mosquitto with rumqttd): what a master on every broker relies on.

The exchange: a master-like client is on both brokers at once (edgekube/bus/fanout.py); plain clients are on one
broker each, as agents and ekctl are. What the fan-out client publishes must reach a client on either broker,
retained too; what a client on either broker publishes must reach its handlers, one at a time; a request sent to
it from either broker gets its answer there; its Will fires on the broker where its connection dies; and when
one broker is killed it carries on with the other, then subscribes again and reruns its hooks on the broker
that comes back.
"""

from __future__ import annotations

import queue
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekube.bus.brokers import Broker
from edgekube.bus.fanout import FanoutBus
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.bus.protocol import Message, Will
from tests.support.broker import AnyBroker, make_broker

pytestmark = pytest.mark.integration

WAIT = 20.0
PAIRS = [("mosquitto", "mosquitto"), ("mosquitto", "rumqttd")]


@pytest.fixture(params=PAIRS, ids=["+".join(p) for p in PAIRS])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[AnyBroker, AnyBroker]]:
    first, second = request.param
    with make_broker(first, tmp_path / "b1") as b1, make_broker(second, tmp_path / "b2") as b2:
        yield b1, b2


class Clients:
    """Every bus a test makes, closed at the end."""

    def __init__(self) -> None:
        self.buses: list[PahoBus | FanoutBus] = []

    def plain(self, broker: AnyBroker) -> PahoBus:
        bus = PahoBus(BusConfig(port=broker.port, log_failures=False))
        self.buses.append(bus)
        return bus

    def fanout(self, *brokers: AnyBroker, will: Will | None = None) -> FanoutBus:
        config = BusConfig.on(
            tuple(Broker(b.host, b.port) for b in brokers), client_id=f"fan-{uuid.uuid4().hex[:8]}",
            persistent=True, will=will, log_failures=False,
        )  # fmt: skip
        bus = FanoutBus.of(config)
        self.buses.append(bus)
        return bus


@pytest.fixture
def clients() -> Iterator[Clients]:
    made = Clients()
    yield made
    for bus in made.buses:
        bus.close()


def topic(name: str) -> str:
    return f"fanout/{uuid.uuid4().hex[:8]}/{name}"


def heard_on_every_broker(master: FanoutBus, clients: Clients, *brokers: AnyBroker) -> None:
    """Return once a probe from each broker reached `master`: its earlier subscriptions are in place there too.

    A broker handles one client's packets in order, so a subscription made after the others and working means
    they work; a client's publish right after the master connected could otherwise overtake its SUBSCRIBE.
    """
    probe = topic("probe")
    heard: queue.Queue[bytes] = queue.Queue()
    master.subscribe(probe, lambda msg: heard.put(msg.payload))
    for broker in brokers:
        sender = clients.plain(broker).start(wait=WAIT)
        name = f"{broker.port}".encode()
        for _ in range(int(WAIT / 0.1)):
            sender.publish(probe, name)
            try:
                while heard.get(timeout=0.1) != name:
                    pass
                break
            except queue.Empty:
                continue
        else:
            raise AssertionError(f"nothing published on {broker.port} reached the fan-out client")


def test_what_it_publishes_reaches_clients_on_every_broker_retained_too(
    pair: tuple[AnyBroker, AnyBroker], clients: Clients
) -> None:
    b1, b2 = pair
    name = topic("presence")
    master = clients.fanout(b1, b2).start(wait=WAIT)  # returns once one broker is up: wait for both
    assert all(bus.wait_connected(WAIT) for bus in master.buses)
    master.publish(name, b"online", retain=True)
    for broker in (b1, b2):  # subscribing afterwards: only the retained copy can reach them
        got: queue.Queue[Message] = queue.Queue()
        late = clients.plain(broker)
        late.subscribe(name, got.put)
        late.start(wait=WAIT)
        msg = got.get(timeout=WAIT)
        assert (msg.payload, msg.retain) == (b"online", True)


def test_it_hears_every_broker_one_handler_call_at_a_time(pair: tuple[AnyBroker, AnyBroker], clients: Clients) -> None:
    b1, b2 = pair
    name = topic("status")
    master = clients.fanout(b1, b2)
    seen: list[bytes] = []
    inside = threading.Lock()
    overlapped = threading.Event()
    done = threading.Event()

    def handler(msg: Message) -> None:
        if not inside.acquire(blocking=False):
            overlapped.set()
            return
        try:
            seen.append(msg.payload)
            if len(seen) == 100:
                done.set()
        finally:
            inside.release()

    master.subscribe(name, handler)
    master.start(wait=WAIT)
    heard_on_every_broker(master, clients, b1, b2)
    node1, node2 = clients.plain(b1).start(wait=WAIT), clients.plain(b2).start(wait=WAIT)
    for i in range(50):
        node1.publish(name, f"b1-{i}".encode())
        node2.publish(name, f"b2-{i}".encode())
    assert done.wait(WAIT), f"got {len(seen)} of 100"
    assert not overlapped.is_set()
    assert [p for p in seen if p.startswith(b"b1")] == [f"b1-{i}".encode() for i in range(50)]  # each in order
    assert [p for p in seen if p.startswith(b"b2")] == [f"b2-{i}".encode() for i in range(50)]


def test_a_request_from_a_client_on_either_broker_is_answered_there(
    pair: tuple[AnyBroker, AnyBroker], clients: Clients
) -> None:
    b1, b2 = pair
    api = topic("api")
    master = clients.fanout(b1, b2)

    def answer(msg: Message) -> None:
        assert msg.response_topic is not None
        master.publish(msg.response_topic, b"re: " + msg.payload, correlation=msg.correlation)

    master.subscribe(api, answer)
    master.start(wait=WAIT)
    heard_on_every_broker(master, clients, b1, b2)
    for broker in (b1, b2):
        ekctl = clients.plain(broker).start(wait=WAIT)
        assert ekctl.request(api, b"get pods", timeout=WAIT).payload == b"re: get pods"


def test_its_will_fires_on_the_broker_whose_connection_dies(
    pair: tuple[AnyBroker, AnyBroker], clients: Clients
) -> None:
    b1, b2 = pair
    online = topic("online")
    master = clients.fanout(b1, b2, will=Will(online, b"offline")).start(wait=WAIT)
    assert all(bus.wait_connected(WAIT) for bus in master.buses)
    watch: queue.Queue[Message] = queue.Queue()
    watcher = clients.plain(b2)
    watcher.subscribe(online, watch.put)
    watcher.start(wait=WAIT)
    inner = master.buses[1]
    assert isinstance(inner, PahoBus)
    sock = inner._client.socket()
    assert isinstance(sock, socket.socket)
    sock.shutdown(socket.SHUT_RDWR)  # no DISCONNECT: the broker publishes the Will
    assert watch.get(timeout=WAIT).payload == b"offline"


def test_with_one_broker_killed_it_carries_on_and_catches_up_when_it_returns(
    pair: tuple[AnyBroker, AnyBroker], clients: Clients
) -> None:
    b1, b2 = pair
    name, presence = topic("in"), topic("presence")
    master = clients.fanout(b1, b2)
    got: queue.Queue[bytes] = queue.Queue()
    master.subscribe(name, lambda msg: got.put(msg.payload))
    master.on_connect(lambda: master.publish(presence, b"online", retain=True))  # as a master's presence
    master.start(wait=WAIT)
    heard_on_every_broker(master, clients, b1, b2)
    b2.kill()
    assert master.connected
    clients.plain(b1).start(wait=WAIT).publish(name, b"via b1 while b2 is down")
    assert got.get(timeout=WAIT) == b"via b1 while b2 is down"

    b2.start()  # forgot everything (no persistence): the subscription and the presence must come back
    seen: queue.Queue[Message] = queue.Queue()
    late = clients.plain(b2)
    late.subscribe(presence, seen.put)
    late.start(wait=WAIT)
    assert seen.get(timeout=WAIT).payload == b"online"
    heard_on_every_broker(master, clients, b2)  # subscribed again on the broker that came back
    late.publish(name, b"via b2 again")
    assert got.get(timeout=WAIT) == b"via b2 again"


def test_a_merged_presence_is_offline_only_when_every_broker_says_so(
    pair: tuple[AnyBroker, AnyBroker], clients: Clients
) -> None:
    """A node that failed over leaves its Will on the broker it left: "offline" there, "online" on the other."""
    b1, b2 = pair
    base = topic("nodes") + "/"
    presence = f"{base}node-1/online"
    config = BusConfig.on((Broker(b1.host, b1.port), Broker(b2.host, b2.port)), log_failures=False)
    master = FanoutBus.of(config, merged=[f"{base}+/online"])
    clients.buses.append(master)
    seen: queue.Queue[bytes] = queue.Queue()
    master.subscribe(f"{base}+/online", lambda msg: seen.put(msg.payload))
    master.start(wait=WAIT)
    heard_on_every_broker(master, clients, b1, b2)
    on1, on2 = clients.plain(b1).start(wait=WAIT), clients.plain(b2).start(wait=WAIT)
    on1.publish(presence, b'{"online":true,"on":"b1"}', retain=True)
    assert seen.get(timeout=WAIT) == b'{"online":true,"on":"b1"}'
    on2.publish(presence, b'{"online":true,"on":"b2"}', retain=True)  # the node moved to b2
    assert seen.get(timeout=WAIT) == b'{"online":true,"on":"b2"}'
    on1.publish(presence, b'{"online":false,"on":"b1"}', retain=True)  # its Will, on the broker it left
    heard_on_every_broker(master, clients, b1)  # b1's messages are handled in order: its "offline" is past
    assert seen.empty()  # ... and it never showed: b2 still says online
    on2.publish(presence, b'{"online":false,"on":"b2"}', retain=True)  # now it is gone everywhere
    assert seen.get(timeout=WAIT) == b'{"online":false,"on":"b2"}'
