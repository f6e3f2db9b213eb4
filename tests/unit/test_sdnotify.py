"""sd_notify: the datagrams systemd receives from the daemons, read from a real unix socket standing in for systemd.

The daemons' side: READY=1 once they serve (master: after a pass while connected; agent: after its first pass,
broker or not), STATUS= lines when what they do changes, WATCHDOG=1 from the reconcile loop, STOPPING=1.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekube.agent.app import Agent, AgentConfig
from edgekube.agent.runtime.fake import FakeRuntime
from edgekube.master.app import Master
from edgekube.master.cache import CachedStore
from edgekube.master.config import MasterConfig
from edgekube.model.names import NodeName
from edgekube.sdnotify import SdNotify
from edgekube.store.state import TinyStateStore
from tests.support.membus import MemoryBroker


class Systemd:
    """The receiving end of NOTIFY_SOCKET: every datagram, as its lines."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + path[1:] if path.startswith("@") else path)
        self.sock.settimeout(10)

    def next(self) -> list[str]:
        return self.sock.recv(4096).decode().split("\n")

    def until(self, line: str, limit: int = 200) -> list[list[str]]:
        """Every message up to and including the first one holding `line`."""
        seen = []
        for _ in range(limit):
            message = self.next()
            seen.append(message)
            if line in message:
                return seen
        raise AssertionError(f"{line} not received in {limit} messages: {seen}")

    def quiet(self) -> bool:
        self.sock.settimeout(0.05)
        try:
            self.sock.recv(4096)
        except TimeoutError:
            return True
        return False


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[Systemd]:
    receiver = Systemd(str(tmp_path / "notify"))
    yield receiver
    receiver.sock.close()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_without_notify_socket_nothing_is_sent_and_nothing_fails() -> None:
    notify = SdNotify.from_environ({})
    assert not notify.enabled
    notify.ready("serving")
    notify.status("x")
    notify.watchdog()
    notify.stopping()


def test_ready_is_sent_once_with_its_status_and_status_only_when_it_changes(systemd: Systemd) -> None:
    notify = SdNotify.from_environ({"NOTIFY_SOCKET": systemd.path})
    notify.ready("serving: 1 node(s)")
    notify.ready("serving: 1 node(s)")
    notify.status("serving: 1 node(s)")
    notify.status("serving: 2 node(s)")
    notify.status("serving: 2 node(s)")
    notify.stopping()
    assert [systemd.next() for _ in range(3)] == [
        ["READY=1", "STATUS=serving: 1 node(s)"],
        ["STATUS=serving: 2 node(s)"],
        ["STOPPING=1"],
    ]
    assert systemd.quiet()


def test_an_abstract_socket_address_works() -> None:
    name = f"@edgekube-test-{uuid.uuid4().hex}"
    receiver = Systemd(name)
    try:
        SdNotify.from_environ({"NOTIFY_SOCKET": name}).ready()
        assert receiver.next() == ["READY=1"]
    finally:
        receiver.sock.close()


def test_watchdog_pings_at_most_every_quarter_of_the_watchdog_period(systemd: Systemd) -> None:
    clock = Clock()
    notify = SdNotify(systemd.path, watchdog_usec=4_000_000, clock=clock)  # WatchdogSec=4 -> at most every 1 s
    notify.watchdog()
    clock.now += 0.5
    notify.watchdog()  # too soon: not sent
    clock.now += 0.6
    notify.watchdog()
    assert [systemd.next(), systemd.next()] == [["WATCHDOG=1"], ["WATCHDOG=1"]]
    assert systemd.quiet()


def test_a_watchdog_meant_for_another_process_is_not_ours() -> None:
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000"}
    assert SdNotify.from_environ({**env, "WATCHDOG_PID": str(os.getpid())}).watchdog_usec == 30_000_000
    assert SdNotify.from_environ({**env, "WATCHDOG_PID": "1"}, pid=os.getpid()).watchdog_usec is None
    assert SdNotify.from_environ({**env}).watchdog_usec == 30_000_000


def test_a_gone_systemd_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    SdNotify(str(tmp_path / "nobody-listens")).ready()
    assert "sd_notify" in caplog.text


def test_the_master_is_ready_only_once_connected_and_its_loop_feeds_the_watchdog(
    systemd: Systemd, tmp_path: Path
) -> None:
    broker = MemoryBroker()
    broker.outage()  # the broker is down when the master starts
    notify = SdNotify(systemd.path, watchdog_usec=40_000)  # a ping every 10 ms at most
    store = CachedStore(TinyStateStore(tmp_path / "state"))
    config = MasterConfig(data_dir=tmp_path, resync_interval=0.05)
    master = Master(config, bus=broker.client("edgekube-master", persistent=True), store=store, notify=notify)
    master.start()
    try:
        waiting = "STATUS=waiting for the MQTT broker at 127.0.0.1:1883"
        before = systemd.until(waiting) + systemd.until("WATCHDOG=1")  # the loop runs and pings, broker away...
        assert not any("READY=1" in m for m in before)
        broker.recover()
        ready = systemd.until("READY=1")[-1]  # ...and is ready once it is connected
        assert ready == ["READY=1", "STATUS=serving: 0 node(s), 0 pod(s)"]
        assert systemd.until("WATCHDOG=1")  # and keeps pinging
    finally:
        master.stop()
    assert ["STOPPING=1"] in systemd.until("STOPPING=1")


def test_the_agent_is_ready_after_its_first_pass_even_without_a_broker(systemd: Systemd, tmp_path: Path) -> None:
    broker = MemoryBroker()
    broker.outage()
    runtime = FakeRuntime(NodeName("pi-1"))
    config = AgentConfig(node_name="pi-1", state_dir=tmp_path, resync_interval=0.05)
    agent = Agent(config, runtime, broker.client("edgekube-agent-pi-1"), notify=SdNotify(systemd.path))
    agent.start()
    try:
        ready = systemd.until("READY=1")[-1]
        assert ready == ["READY=1", "STATUS=0 pod(s) desired; broker not connected (running pods from the local copy)"]
        broker.recover()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if systemd.next() == ["STATUS=0 pod(s) desired; broker connected"]:
                break
        else:
            raise AssertionError("no status saying the broker is connected")
    finally:
        agent.stop()
