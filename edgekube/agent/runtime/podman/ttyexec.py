"""An interactive exec with a TTY for PodmanRuntime (`ekctl exec -it`): libpod's exec start on a hijacked socket.

Called by PodmanRuntime.exec_tty. The exec session is created with a TTY and stdin attached; `POST
/exec/{id}/start` is then sent by hand on a unix socket of its own asking for `Upgrade: tcp`, after which the same
socket carries the terminal both ways (raw bytes, no multiplexing with a TTY). Resizes go through
`/exec/{id}/resize`; the exit code is read from the session once the socket closes.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time

from edgekube.agent.runtime.podman.naming import run_state
from edgekube.agent.runtime.podman.observe import Observer
from edgekube.agent.runtime.podman.transport import API_PREFIX, PodmanTransport
from edgekube.agent.runtime.protocol import LABEL_CONTAINER, ContainerRunState
from edgekube.model.errors import NotFoundError, RuntimeFailure
from edgekube.model.names import PodUID


class PodmanTty:
    """One running exec session with a terminal: `read` its output, `write` its input, `resize`, `exit_code`."""

    def __init__(self, transport: PodmanTransport, exec_id: str, sock: socket.socket, early: bytes) -> None:
        self._transport = transport
        self._exec_id = exec_id
        self._sock = sock
        self._early = early

    def read(self) -> bytes:
        """The next output (blocking); b"" once the command ended."""
        if self._early:
            data, self._early = self._early, b""
            return data
        try:
            return self._sock.recv(65536)
        except OSError:
            return b""

    def write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):  # the command ended: its output's end tells the caller
            self._sock.sendall(data)

    def resize(self, rows: int, cols: int) -> None:
        what = f"resize exec {self._exec_id[:12]}"
        self._transport.request("post", f"/exec/{self._exec_id}/resize", what=what, params={"h": rows, "w": cols})

    def exit_code(self) -> int:
        deadline = time.monotonic() + 2.0
        while True:  # the socket can close a moment before Podman records the exit code
            state = self._transport.json("get", f"/exec/{self._exec_id}/json", what="exec exit code") or {}
            if not state.get("Running") or time.monotonic() > deadline:
                return int(state.get("ExitCode") or 0)
            time.sleep(0.02)

    def close(self) -> None:
        """Hang up: the command's terminal gets SIGHUP, as when an ssh session drops."""
        with contextlib.suppress(OSError):
            self._sock.close()


def open_tty(
    transport: PodmanTransport,
    observer: Observer,
    uid: PodUID,
    container: str,
    command: list[str],
    *,
    size: tuple[int, int],
) -> PodmanTty:
    found = observer.containers(uid, **{LABEL_CONTAINER: container})
    if not found:
        raise NotFoundError(f"container {container!r} of pod {uid} not found on node {observer.node}")
    entry = found[0]
    what = f"exec -it {command[:1]} in {container} of pod {uid}"
    if run_state(entry.get("State")) is not ContainerRunState.RUNNING:
        raise RuntimeFailure(f"{what}: container is not running", reason="ContainerNotRunning")
    body = {"Cmd": command, "AttachStdin": True, "AttachStdout": True, "AttachStderr": True, "Tty": True}
    created = transport.json("post", f"/containers/{entry['Id']}/exec", what=what, reason="ExecError", body=body)
    exec_id = str(created["Id"])
    rows, cols = size
    payload = json.dumps({"Detach": False, "Tty": True, "h": rows, "w": cols}).encode()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(10.0)
        sock.connect(transport.socket_path)
        head = (
            f"POST {API_PREFIX}/exec/{exec_id}/start HTTP/1.1\r\nHost: d\r\nContent-Type: application/json\r\n"
            f"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        sock.sendall(head.encode() + payload)
        received = b""
        while b"\r\n\r\n" not in received:
            more = sock.recv(4096)
            if not more:
                raise RuntimeFailure(f"{what}: Podman closed the connection", reason="ExecError")
            received += more
        headers, _, early = received.partition(b"\r\n\r\n")
        status = headers.split(b" ", 2)[1] if b" " in headers else b""
        if status not in (b"101", b"200"):
            raise RuntimeFailure(f"{what}: Podman answered {headers.splitlines()[0].decode()}", reason="ExecError")
        sock.settimeout(None)
    except OSError as exc:
        sock.close()
        raise RuntimeFailure(f"{what}: {exc}", reason="ExecError") from None
    except BaseException:
        sock.close()
        raise
    return PodmanTty(transport, exec_id, sock, early)
