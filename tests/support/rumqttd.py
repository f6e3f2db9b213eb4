"""rumqttd launcher for the protocol tests: the second MQTT 5 broker (PyPI `iotcore` bundles it), used by fixtures.

Same surface as edgekube.local.broker.Mosquitto where the protocol tests touch it (host, port, url, pid,
running, start, stop, kill, restart, close, log_tail, context manager), so a test parametrized over
`broker_kind` does not care which one it got. rumqttd is configured from a TOML file in `workdir` with one MQTT 5
listener on a loopback port; it keeps retained messages and persistent sessions in memory only (no persistence
to disk: a stop() or kill() forgets them), so tests of Mosquitto's persistence, TLS, ACL files and bridges stay
Mosquitto-only. The broker runs in a child Python process (rumqttd has no shutdown API) that ends on SIGTERM.
"""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

from edgekube.local.broker import DEFAULT_HOST, BrokerProcess
from edgekube.model.errors import BusError
from edgekube.model.wire import MAX_PAYLOAD_BYTES

__all__ = ["Rumqttd", "have_rumqttd"]

#: rumqttd refuses a PUBLISH over this (the connection is closed); edgekube's own limit is MAX_PAYLOAD_BYTES, and
#: a message is that plus the topic and properties. Mosquitto's default is the protocol maximum.
MAX_PACKET_BYTES = 4 * MAX_PAYLOAD_BYTES

# The child: rumqttd logs every routed packet as an ERROR-level tracing span (see iotcore._serve), so only
# warnings of everything else reach the log file. argv[1] is the TOML config.
_CHILD = (
    "import logging, sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "
    "logging.basicConfig(level=logging.WARNING, format='%(asctime)s %(levelname)s %(name)s: %(message)s'); "
    "logging.getLogger('rumqttd').setLevel(logging.CRITICAL); "
    "from iotcore.iotcore import IotCoreBroker; IotCoreBroker(config_path=sys.argv[1]).run_forever()"
)

# MQTT 5 CONNECT: protocol "MQTT", level 5, clean start, keepalive 60 s, no properties, client id "probe".
_PROBE_CONNECT = bytes([0x10, 18, 0, 4]) + b"MQTT" + bytes([5, 0x02, 0, 60, 0, 0, 5]) + b"probe"
_PROBE_DISCONNECT = bytes([0xE0, 0])


def have_rumqttd() -> bool:
    """True when the `iotcore` package (and with it rumqttd) can be imported by this interpreter."""
    return importlib.util.find_spec("iotcore") is not None


def _speaks_mqtt5(host: str, port: int, timeout: float) -> bool:
    """Tell whether an MQTT 5 CONNECT to host:port is answered with a CONNACK whose reason code is Success."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(_PROBE_CONNECT)
            answer = b""
            while len(answer) < 4:  # type, remaining length, flags, reason code
                chunk = sock.recv(64)
                if not chunk:
                    return False
                answer += chunk
            with contextlib.suppress(OSError):
                sock.sendall(_PROBE_DISCONNECT)
            return answer[0] == 0x20 and answer[3] == 0
    except OSError:
        return False


class Rumqttd(BrokerProcess):
    """One rumqttd broker process listening with MQTT 5 on host:port, configured from `workdir`/rumqttd.toml.

    The port is fixed at construction (a free one when None), so restart() and a start() after kill() come
    back on the same address, with no retained message and no session (rumqttd keeps them in memory only).
    """

    _workdir_prefix = "edgekube-rumqttd-"

    def __init__(
        self,
        port: int | None = None,
        workdir: Path | None = None,
        *,
        host: str = DEFAULT_HOST,
        start_timeout: float = 10.0,
    ) -> None:
        super().__init__(port, workdir, host=host, start_timeout=start_timeout)

    @property
    def persistence(self) -> bool:
        """Always False: rumqttd writes nothing to disk; retained messages and sessions die with the process."""
        return False

    @property
    def conf_path(self) -> Path:
        return self._workdir / "rumqttd.toml"

    @property
    def log_path(self) -> Path:
        """The broker's stdout/stderr: startup errors and warnings (rumqttd has no log file of its own)."""
        return self._workdir / "rumqttd.log"

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def config_text(self) -> str:
        """Render the rumqttd.toml this broker runs with: one MQTT 5 listener, limits at least Mosquitto's."""
        return "\n".join(
            [
                "# written by tests/support/rumqttd.py; regenerated on every start",
                "id = 0",
                "",
                "[router]",
                "id = 0",
                "max_connections = 10010",
                # Messages a connection may have outstanding; rumqttd's own default (200) is far below
                # Mosquitto's queue (edgekube.local.broker.MAX_QUEUED_MESSAGES).
                "max_outgoing_packet_count = 10000",
                "max_segment_size = 104857600",
                "max_segment_count = 10",
                "",
                "[v5.1]",
                'name = "v5-1"',
                f'listen = "{self._host}:{self._port}"',
                "next_connection_delay_ms = 1",
                "",
                "[v5.1.connections]",
                "connection_timeout_ms = 60000",
                f"max_payload_size = {MAX_PACKET_BYTES}",
                "max_inflight_count = 100",
                "dynamic_filters = true",
                "",
            ]
        )

    def start(self) -> Self:
        """Start the broker and wait until it answers an MQTT 5 CONNECT; no-op if it already runs.

        BusError when `iotcore` is missing, the port is taken, the child exits, or it does not answer in time.
        """
        if self.running:
            return self
        if not have_rumqttd():
            raise BusError("rumqttd is not installed", hint="pip install iotcore (a dev dependency of edgekube)")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self._host, self._port))
            except OSError:
                raise BusError(f"cannot start rumqttd: {self._host}:{self._port} is already in use") from None
        self._workdir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.config_text(), encoding="utf-8")
        with self.log_path.open("ab") as out:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                close_fds=True,
            )
        deadline = time.monotonic() + self._start_timeout
        while not _speaks_mqtt5(self._host, self._port, timeout=0.5):
            code = self._proc.poll()
            if code is not None or time.monotonic() > deadline:
                self.kill()
                what = f"exited with code {code}" if code is not None else "did not answer MQTT 5"
                raise BusError(f"rumqttd {what} on {self._host}:{self._port}", hint=self.log_tail() or "no output")
            time.sleep(0.02)
        return self
