"""One gRPC health check (grpc.health.v1.Health/Check) over HTTP/2 cleartext, for probe_checks' `grpc` probes.

Why not grpcio: the agent runs on Raspberry Pis with little RAM for everything. 20 checks through grpcio (a
channel and the grpc_health stub, with protobuf) grow the agent's RSS by ~17.7 MB, through this client by ~1.8 MB
(`benchmarks/grpc_probe_rss.py`); the pure-Python `h2` HTTP/2 state machine it uses is imported by the first gRPC
probe only. grpcio is also a native extension whose armv7 wheels lag behind.
A health check is a single unary call whose two messages each hold one field, so the client is small: HTTP/2
with prior knowledge (what grpc-go's insecure transport, and so the kubelet's prober, speaks), one stream, the
request framed as gRPC's length-prefixed message, the answer's `grpc-status` trailer and HealthCheckResponse.status
read back. Messages say what the kubelet's prober (pkg/probe/grpc) says for each outcome.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    TrailersReceived,
)
from h2.exceptions import ProtocolError

PATH = "/grpc.health.v1.Health/Check"
#: HealthCheckResponse.ServingStatus.
STATUSES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}
#: gRPC status codes by number, as grpc-go names them in "rpc error: code = ..." messages.
CODES = {
    0: "OK", 1: "Canceled", 2: "Unknown", 3: "InvalidArgument", 4: "DeadlineExceeded", 5: "NotFound",
    6: "AlreadyExists", 7: "PermissionDenied", 8: "ResourceExhausted", 9: "FailedPrecondition", 10: "Aborted",
    11: "OutOfRange", 12: "Unimplemented", 13: "Internal", 14: "Unavailable", 15: "DataLoss", 16: "Unauthenticated",
}  # fmt: skip
_UNIMPLEMENTED = 12
_DEADLINE_EXCEEDED = 4
_MAX_MESSAGE = 64 * 1024


@dataclass(frozen=True)
class HealthResult:
    ok: bool
    message: str


class _RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"rpc error: code = {CODES.get(code, str(code))} desc = {message}")
        self.code = code


def check(host: str, port: int, service: str, timeout: float, user_agent: str = "edgekube-probe/1") -> HealthResult:
    """Ask the server at host:port whether `service` ("" = the whole server) is SERVING; never raises."""
    address = f"{host}:{port}"
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        return HealthResult(False, f"timeout: failed to connect service {address!r} within {timeout:g}s: {exc}")
    try:
        status = _call(sock, address, service, deadline, user_agent)
    except _RpcError as exc:
        if exc.code == _UNIMPLEMENTED:
            return HealthResult(
                False, f"this server does not implement the grpc health protocol (grpc.health.v1.Health): {exc}"
            )
        if exc.code == _DEADLINE_EXCEEDED:
            return HealthResult(False, f"timeout: health rpc did not complete within {timeout:g}s")
        return HealthResult(False, f"error: health rpc probe failed: {exc}")
    except TimeoutError:
        return HealthResult(False, f"timeout: health rpc did not complete within {timeout:g}s")
    except (OSError, ProtocolError) as exc:
        return HealthResult(False, f"error: health rpc probe failed: {exc or type(exc).__name__}")
    finally:
        sock.close()
    if status != 1:
        return HealthResult(False, f"service unhealthy (responded with {STATUSES.get(status, str(status))!r})")
    return HealthResult(True, "service healthy")


def _call(sock: socket.socket, authority: str, service: str, deadline: float, user_agent: str) -> int:
    """One Check on a fresh connection: the HealthCheckResponse status, or _RpcError for a non-OK grpc-status."""
    conn = H2Connection(config=H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    stream = conn.get_next_available_stream_id()
    remaining = max(deadline - time.monotonic(), 0.001)
    conn.send_headers(
        stream,
        [
            (":method", "POST"), (":scheme", "http"), (":path", PATH), (":authority", authority),
            ("content-type", "application/grpc"), ("te", "trailers"), ("user-agent", user_agent),
            ("grpc-timeout", f"{max(int(remaining * 1000), 1)}m"),
        ],
    )  # fmt: skip
    request = _string_field(1, service) if service else b""
    conn.send_data(stream, b"\x00" + len(request).to_bytes(4, "big") + request, end_stream=True)
    sock.sendall(conn.data_to_send())
    body = bytearray()
    fields: dict[str, str] = {}
    ended = False
    while not ended:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed before the answer")
        for event in conn.receive_data(data):
            if isinstance(event, ResponseReceived | TrailersReceived):
                fields.update({str(k): str(v) for k, v in event.headers or ()})
            elif isinstance(event, DataReceived) and event.stream_id == stream:
                body += event.data or b""
                conn.acknowledge_received_data(event.flow_controlled_length, stream)
                if len(body) > _MAX_MESSAGE:
                    raise _RpcError(8, "answer too large")
            elif isinstance(event, StreamEnded) and event.stream_id == stream:
                ended = True
            elif isinstance(event, StreamReset) and event.stream_id == stream:
                raise _RpcError(14, f"stream reset by the server (HTTP/2 error {event.error_code})")
            elif isinstance(event, ConnectionTerminated):
                raise _RpcError(14, f"connection closed by the server (HTTP/2 error {event.error_code})")
        pending = conn.data_to_send()
        if pending:
            sock.sendall(pending)
    if fields.get(":status", "200") != "200":
        raise _RpcError(14, f"unexpected HTTP status code received from server: {fields[':status']}")
    code = int(fields.get("grpc-status", "2"))
    if code != 0:
        raise _RpcError(code, fields.get("grpc-message", ""))
    return _status(bytes(body))


def _status(body: bytes) -> int:
    """HealthCheckResponse.status out of one length-prefixed gRPC message (field 1, varint; absent = UNKNOWN)."""
    if len(body) < 5 or body[0] != 0:
        raise _RpcError(13, "malformed answer message")
    message = body[5 : 5 + int.from_bytes(body[1:5], "big")]
    at = 0
    while at < len(message):
        key, at = _varint(message, at)
        number, kind = key >> 3, key & 7
        if kind == 0:
            value, at = _varint(message, at)
            if number == 1:
                return value
        elif kind == 2:
            length, at = _varint(message, at)
            at += length
        elif kind in (1, 5):
            at += 8 if kind == 1 else 4
        else:
            raise _RpcError(13, "malformed HealthCheckResponse")
    return 0


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if at >= len(data) or shift > 63:
            raise _RpcError(13, "malformed HealthCheckResponse")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _string_field(number: int, text: str) -> bytes:
    raw = text.encode()
    length, out = len(raw), bytearray([number << 3 | 2])
    while True:
        byte = length & 0x7F
        length >>= 7
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out) + raw
