"""The master's API as typed calls: one MQTT 5 request/response per verb; error answers become exceptions."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Protocol

from edgekube.bus import topics
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.cli.config import Connection
from edgekube.cli.kinds import Resource
from edgekube.model.errors import BusError, ConflictError, EdgekubeError, NotFoundError, ValidationError
from edgekube.model.wire import ApiRequest, ApiResponse, ErrorInfo, Outcome, Verb

Obj = dict[str, Any]
_ERRORS: dict[str, type[EdgekubeError]] = {
    "NotFound": NotFoundError,
    "Invalid": ValidationError,
    "BadRequest": ValidationError,
    "Conflict": ConflictError,
}


class Session(Protocol):
    """Sends one request and returns its answer; the real one is MQTT, tests pass fakes."""

    def call(self, request: ApiRequest) -> ApiResponse: ...

    def close(self) -> None: ...


Connector = Callable[[Connection, float], Session]


class BusSession:
    """An MQTT connection opened on the first call, so commands that fail locally never touch the network."""

    def __init__(self, connection: Connection, timeout: float) -> None:
        self.connection = connection
        self.timeout = timeout
        self._bus: PahoBus | None = None

    def _connect(self) -> PahoBus:
        if self._bus is None:
            config = BusConfig(
                host=self.connection.host,
                port=self.connection.port,
                client_id=f"ekctl-{uuid.uuid4().hex[:12]}",
            )
            bus = PahoBus(config)
            try:
                bus.start(wait=self.timeout)
            except BusError as exc:  # start() has already closed the bus
                origin = self.connection.origin
                where = "" if origin == "defaults" else f" (address from {origin})"
                raise BusError(f"{exc}{where}", hint=exc.hint) from None
            except BaseException:  # Ctrl-C while connecting: stop paho's threads before leaving
                bus.close()
                raise
            self._bus = bus
        return self._bus

    def call(self, request: ApiRequest) -> ApiResponse:
        reply = self._connect().request(topics.API_REQUEST, request.encode(), timeout=self.timeout)
        return ApiResponse.decode(reply.payload, what="answer from the master")

    def close(self) -> None:
        if self._bus is not None:
            self._bus.close()
            self._bus = None


def connect(connection: Connection, timeout: float) -> Session:
    return BusSession(connection, timeout)


def raise_error(error: ErrorInfo | None) -> None:
    if error is None:
        raise EdgekubeError("the master reported an error without details", hint="see the master's log")
    raise _ERRORS.get(error.reason, EdgekubeError)(error.message, hint=error.hint)


class Client:
    """Typed verbs over a Session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _call(self, request: ApiRequest) -> ApiResponse:
        response = self.session.call(request)
        if not response.ok:
            raise_error(response.error)
        return response

    def get(self, res: Resource, namespace: str, name: str) -> Obj:
        response = self._call(ApiRequest(verb=Verb.GET, kind=res.kind, namespace=namespace, name=name))
        if response.object is None:
            raise EdgekubeError(f"the master's answer to get {res.singular}/{name} has no object")
        return response.object

    def query(self, res: Resource, namespace: str | None, selector: str | None = None) -> list[Obj]:
        """`namespace` None lists every namespace."""
        request = ApiRequest(verb=Verb.LIST, kind=res.kind, namespace=namespace, selector=selector or None)
        return list(self._call(request).items or [])

    def apply(self, manifest: str) -> list[Outcome]:
        return list(self._call(ApiRequest(verb=Verb.APPLY, manifest=manifest)).outcomes or [])

    def delete(self, res: Resource, namespace: str, name: str) -> list[Outcome]:
        request = ApiRequest(verb=Verb.DELETE, kind=res.kind, namespace=namespace, name=name)
        return list(self._call(request).outcomes or [])

    def logs(self, namespace: str, name: str, container: str | None, tail: int | None) -> str:
        request = ApiRequest(
            verb=Verb.LOGS, kind="Pod", namespace=namespace, name=name, container=container, tail=tail
        )
        return self._call(request).text or ""

    def close(self) -> None:
        self.session.close()
