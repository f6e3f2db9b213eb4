"""The master's API as typed calls: one MQTT 5 request/response per verb; error answers become exceptions."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from edgekube.bus import topics
from edgekube.bus.protocol import Message, MessageBus
from edgekube.cli.config import Connection
from edgekube.cli.kinds import Resource
from edgekube.cli.masters import MasterSightings
from edgekube.model.errors import BusError, EdgekubeError
from edgekube.model.types import Obj
from edgekube.model.wire import READ_VERBS, ApiRequest, ApiResponse, Outcome, Verb, raise_for

#: Items asked for per list request (kubectl asks for 500 too); the master may send fewer to stay in one message.
PAGE_SIZE = 500
Cascade = Literal["background", "orphan"]


@dataclass(frozen=True)
class Edited:
    """The answer to scale, label, annotate, cordon and uncordon."""

    object: Obj
    unchanged: bool  # the master's outcome said nothing needed changing


class Session(Protocol):
    """Sends one request and returns its answer; the real one is MQTT, tests pass fakes."""

    def call(self, request: ApiRequest, timeout: float | None = None) -> ApiResponse:
        """`timeout` overrides the session's wait for this one answer (drain may take longer)."""
        ...

    def close(self) -> None: ...


Connector = Callable[[Connection, float], Session]


def paho_bus(connection: Connection) -> MessageBus:
    """The CLI's MQTT client: a one-off client id, no session kept, no Last Will."""
    from edgekube.bus.paho import BusConfig, PahoBus  # noqa: PLC0415 - paho loads only when a command talks

    return PahoBus(
        BusConfig(
            host=connection.host,
            port=connection.port,
            fallbacks=connection.fallbacks,
            client_id=f"ekctl-{uuid.uuid4().hex[:12]}",
            tls_ca=connection.tls_ca,
            tls_cert=connection.tls_cert,
            tls_key=connection.tls_key,
            log_failures=False,  # start()'s BusError says why, in one line
        )
    )


class BusSession:
    """A connection to the master opened on the first call, so commands that fail locally never touch the network.

    `bus` makes the MessageBus (PahoBus by default; tests pass the contract-checked in-memory bus).
    """

    def __init__(
        self, connection: Connection, timeout: float, bus: Callable[[Connection], MessageBus] = paho_bus
    ) -> None:
        self.connection = connection
        self.timeout = timeout
        self._make_bus = bus
        self._bus: MessageBus | None = None
        #: Two-master clusters: what the masters say of themselves, for the hint when no answer comes.
        self.masters = MasterSightings()

    def _connect(self) -> MessageBus:
        if self._bus is None:
            bus = self._make_bus(self.connection)
            bus.subscribe(topics.ALL_MASTERS_ONLINE, self.masters.on_presence)
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

    def call(self, request: ApiRequest, timeout: float | None = None) -> ApiResponse:
        wait = self.timeout if timeout is None else timeout
        # Reads go to the read-only topic, so an identity the broker lets only read (a viewer) can send them; Secrets
        # are read only where writers may send (the master refuses them on the read-only topic, as Kubernetes' view
        # role does).
        read_only = request.verb in READ_VERBS and request.kind != "Secret"
        if request.verb is Verb.DASHBOARD and request.kind == "admin":
            read_only = False  # an admin's login is asked where only admins may write
        topic = topics.API_READ if read_only else topics.API_REQUEST
        bus = self._connect()
        try:
            reply = bus.request(topic, request.encode(), timeout=wait)
        except BusError as exc:
            seen = self.masters.hint()
            raise BusError(str(exc), hint=f"{seen}; {exc.hint}" if seen else exc.hint) from None
        return ApiResponse.decode(reply.payload, what="answer from the master")

    def close(self) -> None:
        if self._bus is not None:
            self._bus.close()
            self._bus = None

    # -- streams (`get -w`): the session's own topics ----------------------------------------------------------
    @property
    def client_id(self) -> str:
        """The MQTT client id of this connection (PahoBus keeps it in its config; the test buses as an attribute)."""
        bus = self._connect()
        config = getattr(bus, "config", None)
        return str(getattr(config, "client_id", None) or getattr(bus, "client_id", ""))

    def subscribe(self, topic_filter: str, handler: Callable[[Message], None]) -> None:
        """Hear `topic_filter` on this connection; subscribed before the next request is sent (MQTT keeps order)."""
        self._connect().subscribe(topic_filter, handler)


def connect(connection: Connection, timeout: float) -> Session:
    return BusSession(connection, timeout)


class Client:
    """Typed verbs over a Session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def _call(self, request: ApiRequest, timeout: float | None = None) -> ApiResponse:
        response = self.session.call(request) if timeout is None else self.session.call(request, timeout)
        if not response.ok:
            raise_for(response.error)
        return response

    def _edit(self, request: ApiRequest) -> Edited:
        """Send a verb that answers with the updated object (and an outcome telling if anything changed)."""
        response = self._call(request)
        if response.object is None:
            raise EdgekubeError(
                f"the master's answer to {request.verb.value} {request.kind}/{request.name} has no object",
                hint="the master may be older than this ekctl",
            )
        unchanged = any(o.action == "unchanged" for o in response.outcomes or [])
        return Edited(response.object, unchanged=unchanged)

    def get(self, res: Resource, namespace: str, name: str) -> Obj:
        response = self._call(ApiRequest(verb=Verb.GET, kind=res.kind, namespace=namespace, name=name))
        if response.object is None:
            raise EdgekubeError(f"the master's answer to get {res.qualified}/{name} has no object")
        return response.object

    def query(
        self,
        res: Resource,
        namespace: str | None,
        selector: str | None = None,
        *,
        progress: Callable[[int, int], None] | None = None,
        annotation_selector: str | None = None,
    ) -> list[Obj]:
        """List objects; `namespace` None lists every namespace.

        Asked for in pages of PAGE_SIZE (each answer must fit in one MQTT message); `progress(listed, total)` is
        called after every page but the last of a list longer than one.
        """
        found: list[Obj] = []
        token: str | None = None
        while True:
            request = ApiRequest(
                verb=Verb.LIST,
                kind=res.kind,
                namespace=namespace,
                selector=selector or None,
                annotation_selector=annotation_selector or None,
                limit=PAGE_SIZE,
                continue_token=token,
            )
            response = self._call(request)
            found += response.items or []
            token = response.continue_token
            if not token:
                return found
            if progress is not None:
                progress(len(found), len(found) + (response.remaining_item_count or 0))

    def apply(self, manifest: str) -> list[Outcome]:
        return list(self._call(ApiRequest(verb=Verb.APPLY, manifest=manifest)).outcomes or [])

    def delete(self, res: Resource, namespace: str, name: str, cascade: Cascade = "background") -> list[Outcome]:
        request = ApiRequest(verb=Verb.DELETE, kind=res.kind, namespace=namespace, name=name, cascade=cascade)
        return list(self._call(request).outcomes or [])

    def scale(self, res: Resource, namespace: str, name: str, replicas: int) -> Edited:
        return self._edit(ApiRequest(verb=Verb.SCALE, kind=res.kind, namespace=namespace, name=name, replicas=replicas))

    def relabel(
        self, verb: Verb, res: Resource, namespace: str, name: str, changes: dict[str, str | None], *, overwrite: bool
    ) -> Edited:
        """Verb label or annotate: a value of None removes the key."""
        request = ApiRequest(
            verb=verb, kind=res.kind, namespace=namespace, name=name, labels=changes, overwrite=overwrite
        )
        return self._edit(request)

    def cordon(self, name: str, *, schedulable: bool = False) -> Edited:
        return self._edit(ApiRequest(verb=Verb.UNCORDON if schedulable else Verb.CORDON, kind="Node", name=name))

    def drain(self, name: str, timeout: float | None = None) -> list[Outcome]:
        return list(self._call(ApiRequest(verb=Verb.DRAIN, kind="Node", name=name), timeout).outcomes or [])

    def identify(self, name: str, seconds: float) -> Obj:
        """Blink the node's LEDs for `seconds` (0: stop); the node answers with what its LEDs show now."""
        return self._call(ApiRequest(verb=Verb.IDENTIFY, kind="Node", name=name, seconds=seconds)).object or {}

    def logs(
        self,
        namespace: str,
        name: str,
        container: str | None,
        tail: int | None,
        *,
        since_time: str | None = None,
        since_seconds: int | None = None,
        until_time: str | None = None,
        timestamps: bool = False,
    ) -> str:
        """A container's lines: the last `tail`, within the window (ApiRequest's logs fields), with their times."""
        request = ApiRequest(
            verb=Verb.LOGS, kind="Pod", namespace=namespace, name=name, container=container, tail=tail,
            since_time=since_time, since_seconds=since_seconds, until_time=until_time, timestamps=timestamps,
        )  # fmt: skip
        return self._call(request).text or ""

    def exec(
        self, namespace: str, name: str, container: str | None, command: list[str], seconds: float
    ) -> tuple[int, str]:
        """Run `command` in the container, given `seconds` to finish; (exit code, output)."""
        request = ApiRequest(
            verb=Verb.EXEC, kind="Pod", namespace=namespace, name=name, container=container, command=command,
            seconds=seconds,
        )  # fmt: skip
        response = self._call(request, timeout=seconds + self._slack())
        return int((response.object or {}).get("exitCode", 1)), response.text or ""

    def _slack(self) -> float:
        """The session's own wait, added to a command's time (the forwarding and Podman's exec set-up)."""
        return float(getattr(self.session, "timeout", 10.0))

    def stream_call(self, request: ApiRequest) -> ApiResponse:
        """Any request answered by the pod's node (cp); its answer, or the error it carried, raised."""
        return self._call(request)

    def follow(self, request: ApiRequest) -> bool:
        """Start, renew or acknowledge a `logs -f` stream (answered by the node); True when it started anew."""
        return bool((self._call(request).object or {}).get("opened"))

    def watch(self, request: ApiRequest, timeout: float | None = None) -> bool:
        """Open, renew (or with seconds 0, close) a watch stream; True when the master opened it anew."""
        return bool((self._call(request, timeout).object or {}).get("opened"))

    def dashboard_login(self, *, admin: bool) -> Obj:
        """A one-time login for the master's dashboard: scheme, host, port, path (with the token), role."""
        request = ApiRequest(verb=Verb.DASHBOARD, kind="admin" if admin else "viewer")
        return self._call(request).object or {}

    def top(self, kind: str, namespace: str | None, selector: str | None = None) -> list[Obj]:
        """Verb top: current usage of nodes or pods (namespace None: every namespace), from the master's memory."""
        request = ApiRequest(verb=Verb.TOP, kind=kind, namespace=namespace, selector=selector or None)
        return list(self._call(request).items or [])

    def close(self) -> None:
        self.session.close()
