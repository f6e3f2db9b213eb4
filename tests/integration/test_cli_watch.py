"""`ekctl get -w` end to end: a real Mosquitto, an in-process master, ekctl as its own process reading the watch
stream the master publishes on edgekube/v1/clients/<id>/streams/<stream>.

The exchange: ekctl subscribes its stream topic, sends verb watch (answered `opened`), lists and prints the table,
then prints one row per WatchEvent the master publishes after each group commit. It ends with a clear message when
the master's presence goes offline, and with exit status 130 on Ctrl-C, closing the watch at the master.
On the TLS broker with the generated ACL, a client reads its own stream and no other client's.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekube.bus import topics
from edgekube.bus.protocol import Message
from edgekube.cli.client import BusSession, Client
from edgekube.cli.config import Connection
from edgekube.cli.main import main
from edgekube.master.app import Master, MasterConfig
from edgekube.master.wiring import build_master
from edgekube.model.watch import WatchEvent
from edgekube.model.wire import ApiRequest, Verb
from tests.support.broker import AnyBroker
from tests.support.secure import SecureBroker

pytestmark = pytest.mark.integration

POD_YAML = "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: web}}}}\n"
POD_YAML += "spec: {{containers: [{{name: c, image: busybox}}]}}\n"


@pytest.fixture
def master(broker: AnyBroker, tmp_path: Path) -> Iterator[Master]:
    m = build_master(MasterConfig(mqtt_host="127.0.0.1", mqtt_port=broker.port, data_dir=tmp_path / "master"))
    m.start(wait=5)
    yield m
    m.stop()


class Ekctl:
    """ekctl in its own process; its stdout lines arrive on a queue as they are printed."""

    def __init__(self, port: int, *argv: str) -> None:
        command = [sys.executable, "-m", "edgekube.cli.main", "--mqtt-host", "127.0.0.1", "--mqtt-port", str(port)]
        self.proc = subprocess.Popen(
            [*command, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ}
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def line(self) -> str:
        return self.lines.get(timeout=20)

    def end(self) -> tuple[int, str]:
        code = self.proc.wait(timeout=20)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def apply(port: int, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(POD_YAML.format(name=name))
    assert main(["--mqtt-host", "127.0.0.1", "--mqtt-port", str(port), "apply", "-f", str(path)]) == 0


def ekctl(port: int, *argv: str) -> int:
    return main(["--mqtt-host", "127.0.0.1", "--mqtt-port", str(port), *argv])


def test_get_watch_prints_a_row_per_change_and_ends_when_the_master_goes_away(
    broker: AnyBroker, master: Master, tmp_path: Path
) -> None:
    apply(broker.port, tmp_path, "a")
    watch = Ekctl(broker.port, "get", "pods", "-w", "-L", "app")
    try:
        assert watch.line().split()[:2] == ["NAME", "READY"]
        assert watch.line().split()[0] == "a"
        apply(broker.port, tmp_path, "b")
        rows = [watch.line().split()]
        assert rows[0][0] == "b" and rows[0][-1] == "web"
        assert ekctl(broker.port, "label", "pod", "a", "tier=front") == 0
        while (row := watch.line().split())[0] != "a":
            rows.append(row)  # b's own updates (the scheduler's condition) may come first
        assert ekctl(broker.port, "delete", "pod", "b") == 0
        assert watch.line().split()[0] == "b"
        master.stop()  # its presence goes offline: the watch ends with a message, not a hang
        code, err = watch.end()
        assert code == 1
        assert "the master went offline" in err and "the watch ended" in err
    finally:
        watch.kill()


def test_ctrl_c_ends_a_watch_and_closes_it_at_the_master(broker: AnyBroker, master: Master, tmp_path: Path) -> None:
    apply(broker.port, tmp_path, "a")
    watch = Ekctl(broker.port, "get", "pod", "a", "-w", "-o", "name")
    try:
        assert watch.line() == "pod/a"
        assert len(master.watches) == 1
        watch.proc.send_signal(signal.SIGINT)
        code, _err = watch.end()
        assert code == 130
        assert len(master.watches) == 0  # closed by ekctl on its way out, not left to its lease
    finally:
        watch.kill()


def test_a_client_reads_its_own_watch_stream_and_no_other_clients(secure: SecureBroker, tmp_path: Path) -> None:
    """Two viewers watch pods; each gets its own events. The master publishes vic's event before admin's for the
    same write (vic's watch was opened first), so had admin's subscription to vic's stream been allowed, vic's
    event would have reached admin before admin's own."""
    files = secure.tls("edgekube-master")
    config = MasterConfig(
        mqtt_port=secure.port, data_dir=tmp_path / "m", tls_ca=files.ca, tls_cert=files.cert, tls_key=files.key
    )
    m = build_master(config).start(wait=10)
    sessions: list[BusSession] = []
    try:
        heard: dict[str, queue.Queue[Message]] = {}
        for name in ("vic", "admin"):
            tls = secure.tls(name)
            session = BusSession(Connection("127.0.0.1", secure.port, "test", tls.ca, tls.cert, tls.key), timeout=5)
            sessions.append(session)
            heard[name] = queue.Queue()
            session.subscribe(topics.client_stream(session.client_id, "s1"), heard[name].put)
        vic, ada = sessions
        ada.subscribe(topics.client_stream(vic.client_id, "#"), heard["admin"].put)  # refused by the ACL
        for session in sessions:
            assert Client(session).watch(ApiRequest(verb=Verb.WATCH, kind="Pod", stream="s1"))
        assert Client(ada).apply(POD_YAML.format(name="p"))[0].action == "created"
        assert WatchEvent.decode(heard["vic"].get(timeout=10).payload).object["metadata"]["name"] == "p"
        first = heard["admin"].get(timeout=10)
        assert first.topic == topics.client_stream(ada.client_id, "s1")
    finally:
        for session in sessions:
            session.close()
        m.stop()


def test_watch_of_a_kind_the_master_cannot_watch_is_refused_naming_the_kinds(broker: AnyBroker, master: Master) -> None:
    session = BusSession(Connection("127.0.0.1", broker.port, "test"), timeout=5)
    try:
        with pytest.raises(Exception, match="kind: Unsupported value: 'Event'"):
            Client(session).watch(ApiRequest(verb=Verb.WATCH, kind="Event", stream="s"))
    finally:
        session.close()
