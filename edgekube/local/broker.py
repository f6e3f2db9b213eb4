"""Mosquitto launcher for the local cluster and the tests: writes a config, starts, waits, stops, restarts."""

from __future__ import annotations

import atexit
import contextlib
import errno
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from edgekube.local import processes
from edgekube.local.processes import live_pid, stop_child, write_pidfile
from edgekube.model.errors import BusError

__all__ = [
    "DEFAULT_HOST",
    "BrokerTls",
    "Mosquitto",
    "find_mosquitto",
    "free_port",
    "pid_from_pidfile",
    "reload_pidfile",
    "start_detached",
    "stop_pidfile",
]

DEFAULT_HOST = "127.0.0.1"
PIDFILE_NAME = "mosquitto.pid"
#: QoS 1 messages queued per client (Mosquitto's default is 1,000), capped in bytes too so a client that stops
#: reading costs the broker at most MAX_QUEUED_BYTES.
MAX_QUEUED_MESSAGES = 100_000
MAX_QUEUED_BYTES = 64 << 20

# Debian installs the broker in /usr/sbin, which is not on a normal user's PATH.
_EXTRA_BIN_DIRS = ("/usr/sbin", "/usr/local/sbin", "/sbin")
# MQTT 3.1.1 CONNECT: protocol "MQTT", level 4, clean session, keepalive 60 s, empty client id.
_PROBE_CONNECT = bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 0x02, 0, 60, 0, 0])
_PROBE_CONNACK_OK = bytes([0x20, 2, 0, 0])
_PROBE_DISCONNECT = bytes([0xE0, 0])
_AUTO_PORT_TRIES = 3

# Attached (not detached) brokers still running; stopped when the interpreter exits so none is orphaned.
_ATTACHED: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _stop_attached() -> None:
    for proc in list(_ATTACHED):
        stop_child(proc, timeout=5)
    _ATTACHED.clear()


@dataclass(frozen=True)
class BrokerTls:
    """The broker's side of TLS: the fleet's CA, its own certificate and key, the CRL and the generated ACL.

    With it the broker's listeners speak TLS only, demand a client certificate signed by the CA and not on the
    CRL, take its CN as the username and allow it only what the ACL grants; anonymous clients are refused.
    """

    ca: Path
    cert: Path
    key: Path
    crl: Path | None = None
    acl: Path | None = None

    def listener_lines(self) -> list[str]:
        """What follows each `listener` line (Mosquitto's TLS settings are per listener)."""
        lines = [
            f"cafile {self.ca}",
            f"certfile {self.cert}",
            f"keyfile {self.key}",
            "require_certificate true",
            "use_identity_as_username true",
        ]
        if self.crl is not None:
            lines.append(f"crlfile {self.crl}")
        return lines


def free_port(host: str = DEFAULT_HOST) -> int:
    """Return a TCP port on `host` that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def find_mosquitto() -> str:
    """Path of the `mosquitto` binary, looking in the sbin directories too; BusError if it is missing."""
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path=os.pathsep.join(_EXTRA_BIN_DIRS))
    if found is None:
        raise BusError(
            "the mosquitto broker is not installed",
            hint="run scripts/install.sh (or: apt-get install mosquitto)",
        )
    return found


def _port_in_use(host: str, port: int) -> bool:
    """Whether host:port is taken in this network namespace.

    An address this namespace does not have is not taken: a broker started inside another namespace (as
    tests/support/netns.py does) binds it there, and one that cannot bind it says so itself.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            return error.errno == errno.EADDRINUSE
        return False


def _speaks_mqtt(host: str, port: int, timeout: float) -> bool:
    """Tell whether a CONNECT to host:port is answered with an accepting CONNACK."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(_PROBE_CONNECT)
            answer = b""
            while len(answer) < len(_PROBE_CONNACK_OK):
                chunk = sock.recv(len(_PROBE_CONNACK_OK) - len(answer))
                if not chunk:
                    return False
                answer += chunk
            with contextlib.suppress(OSError):
                sock.sendall(_PROBE_DISCONNECT)
            return answer == _PROBE_CONNACK_OK
    except OSError:
        return False


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def _is_mosquitto(pid: int) -> bool:
    try:
        comm = Path(f"/proc/{pid}/comm").read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return True  # no procfs: cannot tell, trust the pidfile
    return comm == "mosquitto"


def pid_from_pidfile(pidfile: Path) -> int | None:
    """Pid of the live Mosquitto recorded in `pidfile`, or None (missing, stale or not a broker)."""
    return live_pid(pidfile, is_ours=_is_mosquitto)


def stop_pidfile(pidfile: Path, *, timeout: float = 10.0) -> bool:
    """Stop the broker recorded in `pidfile` (SIGTERM, then SIGKILL); False if none was running.

    Used by `edgekube down` for a broker that an earlier `edgekube up` left running.
    The pidfile is removed either way.
    """
    return processes.stop_pidfile(pidfile, timeout, is_ours=_is_mosquitto)


class BrokerProcess:
    """A broker child process on host:port run from files in `workdir`: the lifecycle every launcher shares.

    Subclasses write their configuration and start the process (`start`, setting `_proc`); this class stops,
    kills, restarts and closes it, and answers where it listens. The port is fixed at construction (a free one
    when None), so restart() and a start() after kill() come back on the same address.
    """

    _workdir_prefix = "edgekube-broker-"

    def __init__(self, port: int | None, workdir: Path | None, *, host: str, start_timeout: float) -> None:
        self._auto_port = port is None
        self._port = free_port(host) if port is None else port
        self._host = host
        self._own_workdir = workdir is None
        self._workdir = Path(tempfile.mkdtemp(prefix=self._workdir_prefix)) if workdir is None else workdir
        self._start_timeout = start_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"mqtt://{self._host}:{self._port}"

    @property
    def pid(self) -> int | None:
        """Pid of the broker process while it runs, else None."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def workdir(self) -> Path:
        return self._workdir

    def start(self) -> Self:
        raise NotImplementedError

    def _terminate(self, sig: signal.Signals, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_child(proc, timeout, sig)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait (a broker with persistence saves it then); SIGKILL after `timeout`. No-op if stopped."""
        self._terminate(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL, as in a crash: nothing is saved beyond what the broker already wrote."""
        self._terminate(signal.SIGKILL, timeout=10.0)

    def restart(self) -> Self:
        """stop() then start() on the same host, port and workdir."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """stop() and remove the workdir if this object created it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"{type(self).__name__}({self._host}:{self._port}, {state}, workdir={str(self._workdir)!r})"


class Mosquitto(BrokerProcess):
    """One Mosquitto broker process listening on host:port, configured from files in `workdir`.

    Use as a context manager (start on enter, stop on exit) or call start()/stop() yourself.
    The port is fixed at construction (a free one when None), so restart() and a start() after
    kill() come back on the same address; with persistence on, retained messages and persistent
    sessions survive a stop()/restart() (saved on SIGTERM and every `autosave_interval` seconds).
    An attached broker (the default) is stopped at the latest when this interpreter exits;
    `detached=True` starts it in its own session so it outlives the launching process, and
    the pid goes to `pidfile` (default workdir/mosquitto.pid when detached) for stop_pidfile().
    `extra_listeners` are more addresses to listen on with the same port (e.g. the host ends of veth
    pairs, so agents in their own network namespaces reach the broker and a link cut isolates them).
    """

    _workdir_prefix = "edgekube-mosquitto-"

    def __init__(
        self,
        port: int | None = None,
        workdir: Path | None = None,
        *,
        persistence: bool = False,
        host: str = DEFAULT_HOST,
        detached: bool = False,
        pidfile: Path | None = None,
        start_timeout: float = 10.0,
        autosave_interval: int = 5,
        binary: str | None = None,
        extra_listeners: list[str] | None = None,
        tls: BrokerTls | None = None,
    ) -> None:
        super().__init__(port, workdir, host=host, start_timeout=start_timeout)
        self._extra_listeners = list(extra_listeners or [])
        self._persistence = persistence
        self._detached = detached
        self._pidfile = pidfile if pidfile is not None or not detached else self._workdir / PIDFILE_NAME
        self._autosave_interval = autosave_interval
        self._binary = binary
        self._tls = tls

    # -- addresses and files -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{'mqtts' if self._tls else 'mqtt'}://{self._host}:{self._port}"

    @property
    def tls(self) -> BrokerTls | None:
        return self._tls

    @property
    def persistence(self) -> bool:
        return self._persistence

    @property
    def conf_path(self) -> Path:
        return self._workdir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self._workdir / "mosquitto.log"

    @property
    def output_path(self) -> Path:
        """The broker's stdout/stderr (startup errors land here, before logging is set up)."""
        return self._workdir / "mosquitto.out"

    @property
    def pidfile(self) -> Path | None:
        return self._pidfile

    def log_tail(self, lines: int = 20) -> str:
        """Last lines of the broker's log and output, for error messages."""
        parts = [_tail(self.log_path, lines), _tail(self.output_path, lines)]
        return "\n".join(part for part in parts if part)

    def config_text(self) -> str:
        """Render the mosquitto.conf this broker runs with."""
        tls = self._tls.listener_lines() if self._tls is not None else []
        listeners: list[str] = []
        for address in (self._host, *self._extra_listeners):
            listeners += [f"listener {self._port} {address}", *tls]
        if self._tls is None:
            access = ["allow_anonymous true"]
        else:
            access = ["allow_anonymous false"]
            if self._tls.acl is not None:
                access.append(f"acl_file {self._tls.acl}")
        lines = [
            "# written by edgekube.local.broker; regenerated on every start",
            "per_listener_settings false",
            *listeners,
            *access,
            "set_tcp_nodelay true",
            # max_packet_size stays unset (= protocol maximum); edgekube enforces its own payload limits.
            # Mosquitto drops a client's QoS 1 messages beyond 1,000 queued ("Outgoing messages are being
            # dropped"): a master busy with a 10,000-pod burst falls that far behind 200 nodes' reports.
            f"max_queued_messages {MAX_QUEUED_MESSAGES}",
            f"max_queued_bytes {MAX_QUEUED_BYTES}",
            f"user {pwd.getpwuid(os.geteuid()).pw_name}",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            "connection_messages true",
        ]
        if self._persistence:
            lines += [
                "persistence true",
                f"persistence_location {self._workdir}/",
                "persistence_file mosquitto.db",
                f"autosave_interval {self._autosave_interval}",
            ]
        else:
            lines.append("persistence false")
        return "\n".join(lines) + "\n"

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the broker and wait until it answers MQTT; no-op if it already runs.

        Raises BusError when the port is taken, mosquitto exits, or it does not answer within
        `start_timeout` seconds; the message carries the tail of the broker's log.
        """
        if self.running:
            return self
        binary = self._binary or find_mosquitto()
        self._workdir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, _AUTO_PORT_TRIES + 1):
            try:
                self._start_once(binary)
                return self
            except BusError as error:
                # A free port picked for us can be taken by someone else before mosquitto binds it.
                port_taken = "already in use" in f"{error}\n{error.hint}"
                if not (self._auto_port and port_taken) or attempt == _AUTO_PORT_TRIES:
                    raise
                self._port = free_port(self._host)
        raise AssertionError("unreachable")  # pragma: no cover

    def _start_once(self, binary: str) -> None:
        if _port_in_use(self._host, self._port):
            raise BusError(
                f"cannot start mosquitto: {self._host}:{self._port} is already in use",
                hint="another broker listens there (Debian's mosquitto.service? scripts/install.sh stops it) "
                "or pick another port (EDGEKUBE_MQTT_PORT)",
            )
        self.conf_path.write_text(self.config_text(), encoding="utf-8")
        with self.output_path.open("ab") as out:
            self._proc = subprocess.Popen(
                [binary, "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=self._detached,
                close_fds=True,
            )
        if not self._detached:
            _ATTACHED.add(self._proc)
        try:
            self._wait_ready()
        except BusError:
            self._terminate(signal.SIGKILL, timeout=5.0)
            raise
        if self._pidfile is not None:
            write_pidfile(self._pidfile, self._proc.pid)

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self._start_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise BusError(
                    f"mosquitto exited with code {code} while starting on {self._host}:{self._port}",
                    hint=self._hint(),
                )
            if self._answers(timeout=0.5) and self._proc.poll() is None:
                return
            if time.monotonic() > deadline:
                raise BusError(
                    f"mosquitto did not accept MQTT connections on {self._host}:{self._port} "
                    f"within {self._start_timeout:g}s",
                    hint=self._hint(),
                )
            time.sleep(0.02)

    def _answers(self, timeout: float) -> bool:
        """Plain: an accepting CONNACK. TLS: the port accepts connections (it opens once certificates are loaded)."""
        if self._tls is None:
            return _speaks_mqtt(self._host, self._port, timeout=timeout)
        try:
            with socket.create_connection((self._host, self._port), timeout=timeout):
                return True
        except OSError:
            return False

    def _hint(self) -> str:
        tail = self.log_tail()
        return f"mosquitto log ({self.log_path}):\n{tail}" if tail else f"no log in {self._workdir}"

    def _terminate(self, sig: signal.Signals, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        _ATTACHED.discard(proc)
        stop_child(proc, timeout, sig)
        if self._pidfile is not None:
            with contextlib.suppress(FileNotFoundError):
                self._pidfile.unlink()

    def reload(self) -> None:
        """SIGHUP: Mosquitto reads its configuration again, the ACL file among it (see docs/security.md)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGHUP)


def reload_pidfile(pidfile: Path) -> bool:
    """SIGHUP the broker recorded in `pidfile` (it re-reads its config, ACL and CRL); False if none runs."""
    pid = pid_from_pidfile(pidfile)
    if pid is None:
        return False
    os.kill(pid, signal.SIGHUP)
    return True


def start_detached(
    workdir: Path,
    port: int | None = None,
    *,
    host: str = DEFAULT_HOST,
    persistence: bool = True,
    pidfile: Path | None = None,
) -> Mosquitto:
    """Start a broker that keeps running after this process exits (for `edgekube up`).

    Refuses (BusError) if the pidfile already names a live broker. Stop it later with
    `stop_pidfile(workdir / "mosquitto.pid")` (or the `pidfile` given here).
    """
    target = pidfile if pidfile is not None else workdir / PIDFILE_NAME
    running = pid_from_pidfile(target)
    if running is not None:
        raise BusError(
            f"a mosquitto started from {workdir} already runs (pid {running})",
            hint="stop it first (edgekube down)",
        )
    broker = Mosquitto(port, workdir, host=host, persistence=persistence, detached=True, pidfile=target)
    return broker.start()
