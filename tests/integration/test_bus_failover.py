"""Broker failover of PahoBus on two real brokers: Mosquitto + Mosquitto, and Mosquitto with rumqttd either way.

The exchange: a client (its own process, tests/support/failover_client.py) is given two brokers. It connects to
the first with a persistent session and a retained Last Will, and announces itself (retained `online: true`) after
every connect. The first broker is killed (SIGKILL, no goodbye): the client must be on the second one, announce
itself there, get what is published to its subscription there (it subscribed again: the second broker never had
its session), and when the client itself is killed, its Will must go out on the broker it was on.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekube.bus.brokers import Broker
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.bus.protocol import Message
from edgekube.local.broker import free_port
from edgekube.model.errors import BusError
from tests.support.broker import AnyBroker, make_broker
from tests.support.failover_client import inbox_topic, online_topic

WAIT = 20.0  # a failover is immediate; a broker that went silent takes keep-alive x 1.5 to be noticed
ROOT = Path(__file__).resolve().parents[2]


class Child:
    """The client under test: its stdout lines in a queue, killed with SIGKILL at the end."""

    def __init__(self, name: str, brokers: list[AnyBroker | Broker]) -> None:
        self.name = name
        addresses = [f"{b.host}:{b.port}" for b in brokers]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.failover_client", name, *addresses],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def next_line(self, prefix: str) -> str:
        """The next output line starting with `prefix` (other lines are skipped)."""
        while True:
            line = self.lines.get(timeout=WAIT)
            if line.startswith(prefix):
                return line

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._reader.join(timeout=10)  # the pipe ends with the process
        assert self.proc.stdout is not None
        self.proc.stdout.close()


class Watcher:
    """A plain client on one broker that records what arrives on the topics it watches."""

    def __init__(self, broker: AnyBroker, *topics: str) -> None:
        self.messages: queue.Queue[Message] = queue.Queue()
        self.bus = PahoBus(BusConfig(port=broker.port, log_failures=False))
        for topic in topics:
            self.bus.subscribe(topic, self.messages.put)
        self.bus.start(wait=WAIT)

    def next_payload(self, topic: str) -> bytes:
        while True:
            msg = self.messages.get(timeout=WAIT)
            if msg.topic == topic:
                return msg.payload


@pytest.fixture
def children() -> Iterator[list[Child]]:
    made: list[Child] = []
    yield made
    for child in made:
        child.kill()


@pytest.fixture
def watchers() -> Iterator[list[Watcher]]:
    made: list[Watcher] = []
    yield made
    for watcher in made:
        watcher.bus.close()


PAIRS = [("mosquitto", "mosquitto"), ("mosquitto", "rumqttd"), ("rumqttd", "mosquitto")]


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=["+".join(p) for p in PAIRS])
def test_a_client_whose_broker_dies_carries_on_at_the_next_one_and_its_will_fires_there(
    first: str, second: str, tmp_path: Path, children: list[Child], watchers: list[Watcher]
) -> None:
    name = f"c-{first}-{second}"
    with make_broker(first, tmp_path / "b1") as b1, make_broker(second, tmp_path / "b2") as b2:
        child = Child(name, [b1, b2])
        children.append(child)
        assert child.next_line("connected") == f"connected 127.0.0.1:{b1.port}"

        b1.kill()
        assert child.next_line("connected") == f"connected 127.0.0.1:{b2.port}"

        watcher = Watcher(b2, online_topic(name))
        watchers.append(watcher)
        assert watcher.next_payload(online_topic(name)) == b'{"online": true}'  # announced again, retained
        watcher.bus.publish(inbox_topic(name), b"hello on the second broker")
        assert child.next_line("got") == "got hello on the second broker"  # subscribed again there

        child.kill()
        assert watcher.next_payload(online_topic(name)) == b'{"online": false}'  # its Will, on the second broker


def test_a_client_stays_on_the_broker_it_failed_over_to_and_returns_when_that_one_dies(
    tmp_path: Path, children: list[Child], watchers: list[Watcher]
) -> None:
    with make_broker("mosquitto", tmp_path / "b1") as b1, make_broker("mosquitto", tmp_path / "b2") as b2:
        child = Child("back", [b1, b2])
        children.append(child)
        assert child.next_line("connected") == f"connected 127.0.0.1:{b1.port}"
        b1.kill()
        assert child.next_line("connected") == f"connected 127.0.0.1:{b2.port}"

        b1.start()  # the preferred broker is back: the client stays where it works
        watcher2 = Watcher(b2)
        watchers.append(watcher2)
        watcher2.bus.publish(inbox_topic("back"), b"still here")
        assert child.next_line("") == "got still here"  # no "connected" line came before it

        b2.kill()
        assert child.next_line("connected") == f"connected 127.0.0.1:{b1.port}"
        watcher1 = Watcher(b1)
        watchers.append(watcher1)
        watcher1.bus.publish(inbox_topic("back"), b"back on the first")
        assert child.next_line("got") == "got back on the first"


def test_a_client_whose_broker_hangs_moves_to_the_next_once_its_keep_alive_runs_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGSTOP: the connection stays open and silent (a hung board). paho reports that keep-alive timeout twice;
    it must count once, or the client skips the second broker and tries the hung one again first (a failed
    attempt, logged as a warning, and a keep-alive's worth of time lost)."""
    caplog.set_level(logging.WARNING, logger="edgekube.bus.paho")
    with make_broker("mosquitto", tmp_path / "b1") as b1, make_broker("mosquitto", tmp_path / "b2") as b2:
        first, second = Broker(b1.host, b1.port), Broker(b2.host, b2.port)
        bus = PahoBus(BusConfig.on((first, second), keepalive=2))
        connects: queue.Queue[Broker] = queue.Queue()
        bus.on_connect(lambda: connects.put(bus.broker))
        pid = b1.pid
        assert pid is not None
        try:
            bus.start(wait=WAIT)
            assert connects.get(timeout=WAIT) == first
            os.kill(pid, signal.SIGSTOP)
            assert connects.get(timeout=WAIT) == second
            assert [r.getMessage() for r in caplog.records] == []  # no attempt failed on the way
        finally:
            os.kill(pid, signal.SIGCONT)
            bus.close()


def test_a_client_whose_first_broker_is_down_at_start_connects_to_the_second(tmp_path: Path) -> None:
    with make_broker("mosquitto", tmp_path / "b2") as b2:
        down = Broker("127.0.0.1", free_port("127.0.0.1"))
        bus = PahoBus(BusConfig.on((down, Broker(b2.host, b2.port)), log_failures=False))
        try:
            bus.start(wait=WAIT)
            assert bus.broker == Broker(b2.host, b2.port)
        finally:
            bus.close()


def test_a_client_that_reaches_no_broker_names_every_one_it_tried() -> None:
    brokers = (Broker("127.0.0.1", free_port("127.0.0.1")), Broker("127.0.0.1", free_port("127.0.0.1")))
    bus = PahoBus(BusConfig.on(brokers, log_failures=False))
    with pytest.raises(BusError, match=f"any of {brokers[0]}, {brokers[1]}"):
        bus.start(wait=2.0)
