"""The master's live dashboard (`--dashboard HOST:PORT`, docs/dashboard.md); built by master.app when it is on.

Parts: `auth.py` (one-time login tokens from `ekctl dashboard`, session cookies, roles), `feed.py` (snapshot and
changes from the store's listeners and the master's memory), `view.py` (the rows, pure), `server.py` (HTTP and
server-sent events), `static/` (the page and the bundle built from web/dashboard by `make dashboard`).
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable

from edgekube.bus import topics
from edgekube.bus.protocol import MessageBus
from edgekube.master.cache import CachedStore
from edgekube.master.dashboard.auth import Logins, Role
from edgekube.master.dashboard.feed import Feed
from edgekube.master.dashboard.server import DashboardServer
from edgekube.master.eventlog import EventLog
from edgekube.master.liveness import Liveness
from edgekube.model.errors import EdgekubeError, ValidationError
from edgekube.model.types import Obj
from edgekube.model.wire import ApiRequest, ApiResponse, Verb, raise_for

__all__ = ["Dashboard", "Logins", "Role", "parse_address"]

#: How long the page's identify waits for the node's answer.
IDENTIFY_TIMEOUT = 5.0


def parse_address(value: str) -> tuple[str, int]:
    """`HOST:PORT` (`[::1]:8080` for IPv6) of the `dashboard` setting; a ValidationError naming it otherwise."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValidationError(f"dashboard: {value!r}: must be HOST:PORT (e.g. 127.0.0.1:8080, 0.0.0.0:8080)")
    return host, int(port)


def tls_context(cert: str, key: str) -> ssl.SSLContext | None:
    """HTTPS with this certificate and key (`dashboard_cert`, `dashboard_key`); None when both are empty."""
    if not cert and not key:
        return None
    if not cert or not key:
        raise ValidationError("dashboard_cert, dashboard_key: give both (HTTPS) or neither (HTTP)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ValidationError(f"dashboard_cert: cannot load {cert} with {key}: {exc}") from None
    return context


class Dashboard:
    """Feed + server + logins for one master; `identify` goes to the node as `ekctl node identify` does."""

    def __init__(
        self,
        address: str,
        *,
        bus: MessageBus,
        store: CachedStore,
        lock: threading.RLock,
        liveness: Liveness,
        events: EventLog,
        tls: ssl.SSLContext | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        host, port = parse_address(address)
        self.bus = bus
        self.store = store
        self.liveness = liveness
        self._lock = lock
        self.logins = Logins() if clock is None else Logins(clock)
        self.feed = Feed(store, lock, liveness, events)
        self.server = DashboardServer(host, port, logins=self.logins, feed=self.feed, identify=self.identify, tls=tls)

    def start(self) -> Dashboard:
        self.server.start()
        self.feed.start()
        return self

    def stop(self) -> None:
        self.feed.stop()
        self.server.stop()

    def login(self, role: str) -> Obj:
        """What `ekctl dashboard` prints a URL from: the path with a fresh one-time token, and where it is served.

        `role` ("admin" or "viewer") is what master.requests established from the request's topic.
        """
        granted = Role(role)
        return {
            "scheme": self.server.scheme,
            "host": self.server.address,
            "port": self.server.port,
            "path": f"/login?token={self.logins.issue(granted)}",
            "role": granted.value,
        }

    def identify(self, node: str, seconds: float) -> Obj:
        """Ask the node to blink (0: stop); its answer is what its LEDs show now. Called on an HTTP thread."""
        with self._lock:
            self.store.peek("Node", "", node)  # NotFoundError for an unknown node
        if not self.liveness.ready(node):
            raise EdgekubeError(
                f"node {node} is not ready: {self.liveness.reason(node)}",
                hint="identify needs the node's agent connected",
            )
        request = ApiRequest(verb=Verb.IDENTIFY, kind="Node", name=node, seconds=seconds)
        reply = self.bus.request(topics.node_rpc(node), request.encode(), timeout=IDENTIFY_TIMEOUT)
        response = ApiResponse.decode(reply.payload, what=f"identify answer of {node}")
        if not response.ok:
            raise_for(response.error, who=f"node {node}")
        return response.object or {}
