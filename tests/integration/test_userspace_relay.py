"""The userspace proxy's relays (agent/network/relay.py) on real sockets on the host's loopback, to two backends.

Each backend answers a request with its name once it has read the client's end (so half-closes must be passed on).
"""

from __future__ import annotations

import errno
import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from edgekube.agent.network.relay import Relays
from edgekube.agent.network.userspace import Frontend, Target
from edgekube.model.errors import RuntimeFailure


class _Named(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), _Answer)
        self.name = name


class _Answer(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        received = b""
        while chunk := self.request.recv(65536):
            received += chunk
        assert isinstance(self.server, _Named)
        self.request.sendall(f"{self.server.name} {len(received)}".encode())


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, tuple[str, int]]]:
    servers = [_Named("b"), _Named("c")]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {s.name: ("127.0.0.1", int(s.server_address[1])) for s in servers}
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def relays() -> Iterator[Relays]:
    started = Relays(connect_timeout=1.0).start()
    yield started
    started.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ask(frontend: Frontend, payload: bytes = b"GET /") -> str:
    with socket.create_connection((frontend.address, frontend.port), timeout=5) as conn:
        conn.sendall(payload)
        conn.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer.decode()


def _refused(frontend: Frontend) -> bool:
    """The connection is closed without an answer.

    The close may be seen as an empty read, as a reset (the close found the request unread), or, when it lands
    before the client's half-close, as ENOTCONN from `shutdown` or EPIPE from `sendall`.
    """
    try:
        return _ask(frontend) == ""
    except OSError as exc:
        if exc.errno in (errno.ECONNRESET, errno.ENOTCONN, errno.EPIPE):
            return True
        raise


def test_connections_go_to_the_endpoints_in_turn_with_the_bytes_both_ways(
    relays: Relays, backends: dict[str, tuple[str, int]]
) -> None:
    frontend = Frontend("127.0.0.11", _free_port())
    relays.listen(frontend, Target("default/web:http", (backends["b"], backends["c"])))
    assert [_ask(frontend) for _ in range(4)] == ["b 5", "c 5", "b 5", "c 5"]
    assert _ask(frontend, b"x" * 1_000_000) in ("b 1000000", "c 1000000")


def test_client_ip_affinity_keeps_the_client_on_one_endpoint(
    relays: Relays, backends: dict[str, tuple[str, int]]
) -> None:
    frontend = Frontend("127.0.0.12", _free_port())
    relays.listen(frontend, Target("default/sticky:http", (backends["b"], backends["c"]), affinity_seconds=60))
    assert len({_ask(frontend) for _ in range(6)}) == 1


def test_an_endpoint_that_does_not_accept_is_skipped_for_the_next(
    relays: Relays, backends: dict[str, tuple[str, int]]
) -> None:
    frontend = Frontend("127.0.0.13", _free_port())
    gone = ("127.0.0.1", _free_port())  # nothing listens there: refused
    relays.listen(frontend, Target("default/web:http", (gone, backends["c"])))
    assert [_ask(frontend) for _ in range(3)] == ["c 5", "c 5", "c 5"]


def test_new_endpoints_apply_to_the_next_connection_and_a_closed_listener_refuses_at_once(
    relays: Relays, backends: dict[str, tuple[str, int]]
) -> None:
    frontend = Frontend("127.0.0.14", _free_port())
    relays.listen(frontend, Target("default/web:http", (backends["b"],)))
    assert _ask(frontend) == "b 5"
    relays.retarget(frontend, Target("default/web:http", (backends["c"],)))
    assert _ask(frontend) == "c 5"
    assert relays.targets() == {frontend: Target("default/web:http", (backends["c"],))}
    relays.close(frontend)
    with pytest.raises(ConnectionRefusedError):
        _ask(frontend)
    assert relays.targets() == {}


def test_a_port_already_taken_is_a_failure_naming_the_service_and_address(
    relays: Relays, backends: dict[str, tuple[str, int]]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.15", 0))
        taken.listen()
        frontend = Frontend("127.0.0.15", int(taken.getsockname()[1]))
        with pytest.raises(RuntimeFailure, match=rf"^default/web:http: cannot listen on {frontend}: "):
            relays.listen(frontend, Target("default/web:http", (backends["b"],)))
    assert relays.targets() == {}


def test_connections_beyond_the_limit_are_closed_at_once(backends: dict[str, tuple[str, int]]) -> None:
    relays = Relays(max_connections=1).start()
    try:
        frontend = Frontend("127.0.0.16", _free_port())
        relays.listen(frontend, Target("default/web:http", (backends["b"],)))
        with socket.create_connection((frontend.address, frontend.port), timeout=5) as held:
            held.sendall(b"held open")  # the backend waits for its end: the one relayed connection stays
            assert _refused(frontend)
            held.shutdown(socket.SHUT_WR)
            assert held.recv(100) == b"b 9"
        assert _ask(frontend) == "b 5"
    finally:
        relays.stop()
