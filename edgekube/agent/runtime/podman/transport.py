"""Podman REST transport for PodmanRuntime: libpod calls over the unix socket; errors and timeouts → RuntimeFailure.

HTTP/1.1 over `http.client` with a small pool of kept-alive connections. The agent used podman-py's APIClient
for this; it only ever sent plain requests through it, and podman-py with requests and urllib3 cost the agent
~11 MB of its ~48 MB (tests and the benchmark still use podman-py).
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import threading
import weakref
from collections.abc import Iterator
from typing import Any, NoReturn
from urllib.parse import unquote, urlencode, urlsplit

from edgekube.model.errors import RuntimeFailure

#: The libpod API version asked for: the specgen fields used here exist since Podman 4.0; later ones accept it.
API_PREFIX = "/v4.0.0/libpod"
#: Kept-alive connections held for reuse (the loop, creates, removals and probe workers share the transport).
_POOL = 8
#: A connection the server closed while it sat idle fails like this on its next use: retried once, fresh.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)

Timeout = float | tuple[float, float]  # seconds, or (connect, read)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, connect_timeout: float) -> None:
        super().__init__("localhost", timeout=connect_timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class Response:
    """What a call answered: status, and the body read at once or (stream=True) as it comes."""

    def __init__(self, raw: http.client.HTTPResponse, release: Any, *, stream: bool) -> None:
        self.status_code = raw.status
        self._raw = raw
        self._release = release  # gives the connection back (or closes it); called once the body is consumed
        self._content: bytes | None = None
        if not stream:
            try:
                self._content = raw.read()
            finally:
                self.close()

    @property
    def content(self) -> bytes:
        if self._content is None:
            try:
                self._content = self._raw.read()
            finally:
                self.close()
        return self._content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)

    def iter_lines(self) -> Iterator[bytes]:
        while line := self._raw.readline():
            yield line.rstrip(b"\r\n")

    def iter_content(self, chunk_size: int = 4096) -> Iterator[bytes]:
        while chunk := self._raw.read1(chunk_size):
            yield chunk

    def close(self) -> None:
        if self._release is not None:
            release, self._release = self._release, None
            release(self._raw)


class PodmanTransport:
    """Calls Podman's libpod API on `socket_url` (`unix:///…/podman.sock`); shared by every part of the runtime."""

    def __init__(self, socket_url: str, *, timeout: float = 60.0) -> None:
        self.socket_url = socket_url
        self.timeout = timeout
        parts = urlsplit(socket_url)
        self._path = unquote(parts.netloc + parts.path) if parts.scheme in ("unix", "http+unix") else ""
        self._idle: list[_UnixConnection] = []
        self._lock = threading.Lock()
        # A transport dropped without close() (an agent stopped, a test's runtime) closes what it kept, as
        # urllib3's pools do: left to the garbage collector, each socket would be a ResourceWarning.
        weakref.finalize(self, _close_all, self._idle)

    @property
    def socket_path(self) -> str:
        """The unix socket's path, for a connection of its own (an interactive exec takes the socket over)."""
        return self._path

    def close(self) -> None:
        with self._lock:
            idle = list(self._idle)
            self._idle.clear()
        _close_all(idle)

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: dict[str, Any] | None = None,
        body: Any = None,
        timeout: Timeout | None = None,
        stream: bool = False,
        headers: dict[str, str] | None = None,
        payload: bytes | None = None,
    ) -> Response:
        """One API call; transport failures become RuntimeFailure, HTTP errors are left to the caller.

        `payload`: a body sent as it is (a tar archive), instead of `body` as JSON.
        """
        if not self._path:
            raise RuntimeFailure(
                f"cannot use podman socket {self.socket_url}: only unix:// sockets are supported",
                reason="RuntimeUnavailable",
            )
        target = API_PREFIX + path + (f"?{urlencode(params, doseq=True)}" if params else "")  # a list: key repeated
        data = json.dumps(body).encode() if body is not None else None
        headers = {**({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})}
        if payload is not None:
            data, headers = payload, {**headers, "Content-Type": "application/x-tar"}
        connect_timeout, read_timeout = timeout if isinstance(timeout, tuple) else (timeout or self.timeout,) * 2
        for attempt in (1, 2):
            conn, reused = self._take(connect_timeout)
            try:
                conn.request(method.upper(), target, body=data, headers=headers)
                if conn.sock is not None:
                    conn.sock.settimeout(read_timeout)
                raw = conn.getresponse()
            except _STALE as exc:
                conn.close()
                if reused and attempt == 1:
                    continue
                raise self._failure(what, exc) from exc
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise self._failure(what, exc) from exc
            return Response(raw, lambda r, c=conn, t=connect_timeout: self._give_back(c, r, t), stream=stream)
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _take(self, connect_timeout: float) -> tuple[_UnixConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return _UnixConnection(self._path, connect_timeout), False

    def _give_back(self, conn: _UnixConnection, raw: http.client.HTTPResponse, connect_timeout: float) -> None:
        """Keep the connection for the next call if its answer was read to the end and it may stay open."""
        if raw.isclosed() and not raw.will_close and conn.sock is not None:
            conn.sock.settimeout(connect_timeout)
            with self._lock:
                if len(self._idle) < _POOL:
                    self._idle.append(conn)
                    return
        raw.close()
        conn.close()

    def _failure(self, what: str, exc: BaseException) -> RuntimeFailure:
        if isinstance(exc, TimeoutError):
            return RuntimeFailure(f"{what}: podman did not answer in time ({exc})", reason="Timeout")
        return RuntimeFailure(f"{what}: cannot reach podman at {self.socket_url}: {exc}", reason="RuntimeUnavailable")

    def json(
        self,
        method: str,
        path: str,
        *,
        what: str,
        reason: str = "RuntimeError",
        ok_missing: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Call and decode JSON; a 404 returns None if `ok_missing`, any other error raises RuntimeFailure."""
        response = self.request(method, path, what=what, **kwargs)
        if ok_missing and missing(response):
            return None
        if response.status_code >= 400:
            raise_http(response, what, reason)
        if response.status_code in (204, 304) or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise RuntimeFailure(f"{what}: podman sent invalid JSON: {exc}", reason=reason) from exc

    def list_volumes(self, labels: dict[str, str], what: str = "list volumes") -> list[dict[str, Any]]:
        """`GET /volumes/json` for the volumes carrying every one of `labels`.

        Podman 4.3 ORs several label filters on volumes (containers and pods AND them), so the filter only narrows
        the answer and every label is checked here: purging one pod once removed every volume of the node.
        """
        data = self.json("get", "/volumes/json", what=what, params=label_filters(labels)) or []
        return [v for v in data if all((v.get("Labels") or {}).get(k) == val for k, val in labels.items())]

    def list_containers(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """`GET /containers/json?all=true` with `params` (label filters): infra containers included."""
        data = self.json("get", "/containers/json", what="list containers", params={"all": "true", **params})
        return list(data or [])


def _close_all(connections: list[_UnixConnection]) -> None:
    for conn in list(connections):
        conn.close()
    connections.clear()


def error_body(response: Response) -> dict[str, Any]:
    """Podman's error document (`cause`, `message`, `response`), or {} if the body is not one."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def missing(response: Response) -> bool:
    """True when the object is gone: a 404, or Podman 4.3's 500 "does not exist in database" (removed mid-lookup)."""
    if response.status_code == 404:
        return True
    return response.status_code == 500 and "does not exist in database" in message(response)


def message(response: Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip() or f"HTTP {response.status_code}"
    if isinstance(data, dict):
        return str(data.get("message") or data.get("cause") or data)
    return str(data)


def label_filters(labels: dict[str, str]) -> dict[str, str]:
    """Query parameters of a libpod list call selecting objects by every one of `labels` (see list_volumes)."""
    return {"filters": json.dumps({"label": [f"{k}={v}" for k, v in labels.items()]})}


def raise_http(response: Response, what: str, reason: str) -> NoReturn:
    raise RuntimeFailure(f"{what}: {message(response)}", reason=reason)


def demux(payload: bytes) -> bytes:
    """Strip the Docker stream-multiplexing headers from a non-TTY log or exec payload."""
    out = bytearray()
    index = 0
    while index + 8 <= len(payload):
        kind, length = struct.unpack_from(">BxxxL", payload, index)
        if kind not in (0, 1, 2):
            return payload  # a TTY container's log is not multiplexed
        out += payload[index + 8 : index + 8 + length]
        index += 8 + length
    return bytes(out)
