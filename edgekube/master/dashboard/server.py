"""The dashboard's HTTP server: the page, its static bundle, the login URL, the event stream and the actions.

Started by master.dashboard.Dashboard on `--dashboard HOST:PORT`. The standard library's threading HTTP server:
one thread per connection, so each open page holds one thread writing its server-sent events.

    GET  /                          the page (a login hint without a session)
    GET  /static/<file>             the bundle built from web/dashboard (package data; no CDN)
    GET  /login?token=T             spends a one-time token from `ekctl dashboard`: session cookie, then /
    GET  /events                    text/event-stream: a snapshot, then every change (master.dashboard.feed)
    POST /api/nodes/<name>/identify {"seconds": S}: admins only; the node's answer (its LEDs) as JSON
    POST /logout                    ends the session

Every request but the page, the bundle and the login needs the session cookie (401 without). Actions need the
admin role (403 for viewers) and the header `X-Edgekube-Dashboard: 1`, which another site's page cannot send
without the browser asking first (a CORS preflight this server never grants): no cross-site request forgery.
"""

from __future__ import annotations

import json
import logging
import re
import ssl
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from edgekube.master.dashboard.auth import SESSION_TTL, Grant, Logins, Role
from edgekube.master.dashboard.feed import Feed
from edgekube.model.errors import EdgekubeError, NotFoundError, ValidationError
from edgekube.model.types import Obj

log = logging.getLogger(__name__)

COOKIE = "edgekube_dashboard"
ACTION_HEADER = "X-Edgekube-Dashboard"
#: Seconds of silence after which the event stream sends a comment (keeps proxies and NAT from closing it).
KEEPALIVE = 15.0
#: The longest identify the page asks for (the wire's limit is the CLI's too).
MAX_IDENTIFY = 3600.0
_STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css", "index.html": "text/html"}
_TOKEN = re.compile(r"token=[^&\s]*")
_IDENTIFY = re.compile(r"^/api/nodes/([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?)/identify$")

Identify = Callable[[str, float], Obj]


def static_file(name: str) -> bytes:
    return (resources.files("edgekube.master.dashboard") / "static" / name).read_bytes()


class DashboardServer:
    """Serves the dashboard on (address, port) until stopped; port 0 picks a free one (tests)."""

    def __init__(
        self,
        address: str,
        port: int,
        *,
        logins: Logins,
        feed: Feed,
        identify: Identify,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.address = address
        self.requested_port = port
        self.logins = logins
        self.feed = feed
        self.identify = identify
        self.tls = tls
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.requested_port if self._server is None else int(self._server.server_address[1])

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    def start(self) -> DashboardServer:
        """Bind and serve; an address that is taken or not allowed is a ValidationError naming `dashboard`."""
        handler = type("Handler", (_Handler,), {"app": self})
        try:
            self._server = ThreadingHTTPServer((self.address, self.requested_port), handler)
        except OSError as exc:
            where = f"{self.address}:{self.requested_port}"
            raise ValidationError(f"dashboard: cannot serve on {where}: {exc.strerror or exc}") from None
        self._server.daemon_threads = True
        if self.tls is not None:
            self._server.socket = self.tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="dashboard-http", daemon=True)
        self._thread.start()
        log.info("dashboard on %s://%s:%s/ (log in with `ekctl dashboard`)", self.scheme, self.address, self.port)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    app: DashboardServer
    server_version = "edgekube-dashboard"
    timeout = 30  # a connection that sends nothing gives up its thread

    def log_message(self, format: str, *args: Any) -> None:
        # The request line of a login carries its token: never in a log, even a debug one.
        shown = [_TOKEN.sub("token=<redacted>", a) if isinstance(a, str) else a for a in args]
        log.debug("dashboard %s: " + format, self.client_address[0], *shown)

    # -- routing -----------------------------------------------------------------------------------------
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/":
            self._page()
        elif url.path.startswith("/static/") and url.path[len("/static/") :] in _STATIC:
            name = url.path[len("/static/") :]
            self._send(HTTPStatus.OK, static_file(name), _STATIC[name], cache="no-cache")
        elif url.path == "/login":
            self._login(parse_qs(url.query).get("token", [""])[0])
        elif url.path == "/events":
            grant = self._grant()
            if grant is not None:
                self._events(grant)
        elif url.path == "/favicon.ico":
            self._send(HTTPStatus.NO_CONTENT, b"", "text/plain")
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {url.path}"})

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        grant = self._grant()
        if grant is None:
            return
        if self.headers.get(ACTION_HEADER) != "1":
            self._json(HTTPStatus.FORBIDDEN, {"error": f"actions need the header {ACTION_HEADER}: 1"})
            return
        if url.path == "/logout":
            self.app.logins.end(self._cookie())
            self._json(HTTPStatus.OK, {"ok": True}, cookie=f"{COOKIE}=; Path=/; Max-Age=0")
            return
        match = _IDENTIFY.match(url.path)
        if match is None:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such action: {url.path}"})
            return
        if grant.role is not Role.ADMIN:
            self._json(HTTPStatus.FORBIDDEN, {"error": "identify needs the admin role; this session is a viewer's"})
            return
        self._identify(match.group(1))

    # -- pages ---------------------------------------------------------------------------------------------
    def _page(self) -> None:
        if self._grant(quiet=True) is None:
            hint = (
                "<!doctype html><meta name=viewport content='width=device-width'><title>edgekube dashboard</title>"
                "<p>Not logged in. Run <code>ekctl dashboard</code> and open the URL it prints"
                " (it works once, for a minute).</p>"
            )
            self._send(HTTPStatus.UNAUTHORIZED, hint.encode(), "text/html")
            return
        self._send(HTTPStatus.OK, static_file("index.html"), "text/html", cache="no-store")

    def _login(self, token: str) -> None:
        redeemed = self.app.logins.redeem(token) if token else None
        if redeemed is None:
            page = (
                "<!doctype html><meta name=viewport content='width=device-width'><title>edgekube dashboard</title>"
                "<p>This login link was used already or has expired. Run <code>ekctl dashboard</code> again.</p>"
            )
            self._send(HTTPStatus.FORBIDDEN, page.encode(), "text/html")
            return
        session, _ = redeemed
        secure = "; Secure" if self.app.tls is not None else ""
        cookie = f"{COOKIE}={session}; Path=/; Max-Age={int(SESSION_TTL)}; HttpOnly; SameSite=Strict{secure}"
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", "/")
        self.send_header("Set-Cookie", cookie)
        self.send_header("Content-Length", "0")
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()

    def _events(self, grant: Grant) -> None:
        try:
            sub = self.app.feed.subscribe(grant.role.value)
        except EdgekubeError as exc:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)})
            return
        try:
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Accel-Buffering", "no")
            self.end_headers()
            self.wfile.write(b"retry: 1000\n\n")
            self.wfile.flush()
            for message in sub.stream(KEEPALIVE):
                self.wfile.write(b": keep-alive\n\n" if message is None else b"data: " + message + b"\n\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass  # the page went away
        finally:
            self.app.feed.unsubscribe(sub)
            self.close_connection = True

    def _identify(self, node: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(min(length, 4096)) or b"{}")
            seconds = float(body.get("seconds", 30)) if isinstance(body, dict) else -1.0
            if not 0 <= seconds <= MAX_IDENTIFY:
                raise ValidationError(f"seconds: must be between 0 and {MAX_IDENTIFY:g}")
            leds = self.app.identify(node, seconds)
        except (ValueError, TypeError) as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": f"identify: {exc}"})
            return
        except NotFoundError as exc:
            self._json(HTTPStatus.NOT_FOUND, {"error": str(exc)})
            return
        except EdgekubeError as exc:
            self._json(HTTPStatus.CONFLICT, {"error": str(exc), "hint": exc.hint or ""})
            return
        log.info("dashboard: identify %s for %gs", node, seconds)
        self._json(HTTPStatus.OK, {"ok": True, "leds": leds})

    # -- helpers -------------------------------------------------------------------------------------------
    def _cookie(self) -> str:
        try:
            jar = SimpleCookie(self.headers.get("Cookie") or "")
        except CookieError:
            return ""
        morsel = jar.get(COOKIE)
        return morsel.value if morsel is not None else ""

    def _grant(self, *, quiet: bool = False) -> Grant | None:
        """The session's grant; without one, a 401 answer (unless `quiet`) and None."""
        cookie = self._cookie()
        grant = self.app.logins.session(cookie) if cookie else None
        if grant is None and not quiet:
            self._json(HTTPStatus.UNAUTHORIZED, {"error": "not logged in: run `ekctl dashboard` and open its URL"})
        return grant

    def _json(self, status: HTTPStatus, body: Obj, *, cookie: str = "") -> None:
        self._send(status, json.dumps(body).encode(), "application/json", cookie=cookie)

    def _send(self, status: HTTPStatus, body: bytes, kind: str, *, cache: str = "no-store", cookie: str = "") -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
        if cookie:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        self.wfile.write(body)
