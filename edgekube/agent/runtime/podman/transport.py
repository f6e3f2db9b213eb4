"""Podman REST transport for PodmanRuntime: one podman-py API client, calls, errors and timeouts → RuntimeFailure."""

from __future__ import annotations

import json
import struct
import threading
from typing import Any, NoReturn

import requests
from podman import PodmanClient
from podman.api.uds import UDSSocket
from podman.errors import APIError, PodmanError

from edgekube.model.errors import RuntimeFailure


class PodmanTransport:
    """Calls Podman's libpod API on `socket_url` (`unix:///…/podman.sock`); shared by every part of the runtime.

    The connection is opened on first use and kept (the loop, creates, removals and probe workers share it).
    """

    def __init__(self, socket_url: str, *, timeout: float = 60.0) -> None:
        self.socket_url = socket_url
        self.timeout = timeout
        self._client: PodmanClient | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> PodmanClient:
        with self._lock:
            if self._client is None:
                try:
                    self._client = PodmanClient(base_url=self.socket_url, timeout=self.timeout)
                except (PodmanError, ValueError) as exc:
                    raise RuntimeFailure(
                        f"cannot use podman socket {self.socket_url}: {exc}", reason="RuntimeUnavailable"
                    ) from exc
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.api.close()
                self._client = None

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: dict[str, Any] | None = None,
        body: Any = None,
        timeout: float | tuple[float, float] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """One API call; transport failures become RuntimeFailure, HTTP errors are left to the caller."""
        api = self.client.api
        kwargs: dict[str, Any] = {"params": params, "timeout": timeout or self.timeout, "stream": stream}
        if body is not None:
            kwargs["data"] = json.dumps(body)
            kwargs["headers"] = {"content-type": "application/json"}
        try:
            response: requests.Response = getattr(api, method)(path, **kwargs)
        except APIError as exc:  # podman-py wraps every OSError (requests' included) in APIError
            _close_failed_sockets(exc)
            cause = exc.__cause__ or exc
            if isinstance(cause, requests.Timeout):
                raise RuntimeFailure(f"{what}: podman did not answer in time ({cause})", reason="Timeout") from exc
            raise RuntimeFailure(
                f"{what}: cannot reach podman at {self.socket_url}: {cause}", reason="RuntimeUnavailable"
            ) from exc
        except (requests.RequestException, PodmanError, OSError) as exc:
            raise RuntimeFailure(f"{what}: {exc}", reason="RuntimeUnavailable") from exc
        return response

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
        if response.status_code == 404 and ok_missing:
            return None
        if response.status_code >= 400:
            raise_http(response, what, reason)
        if response.status_code in (204, 304) or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise RuntimeFailure(f"{what}: podman sent invalid JSON: {exc}", reason=reason) from exc

    def list_containers(self, params: dict[str, str]) -> list[dict[str, Any]]:
        """`GET /containers/json?all=true` with `params` (label filters): infra containers included."""
        data = self.json("get", "/containers/json", what="list containers", params={"all": "true", **params})
        return list(data or [])


def _close_failed_sockets(exc: BaseException) -> None:
    """Close the socket podman-py (5.8) leaves open when connecting to the API socket fails.

    UDSConnection.connect() drops its UDSSocket without closing it, so every failed attempt would leak a
    file descriptor until garbage collection (and trip ResourceWarning); the socket is still reachable
    from the frames in the exception chain.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        tb = current.__traceback__
        while tb is not None:
            for value in list(tb.tb_frame.f_locals.values()):
                if isinstance(value, UDSSocket):
                    value.close()
            tb = tb.tb_next
        current = current.__cause__ or current.__context__


def error_body(response: requests.Response) -> dict[str, Any]:
    """Podman's error document (`cause`, `message`, `response`), or {} if the body is not one."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def message(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip() or f"HTTP {response.status_code}"
    if isinstance(data, dict):
        return str(data.get("message") or data.get("cause") or data)
    return str(data)


def raise_http(response: requests.Response, what: str, reason: str) -> NoReturn:
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
