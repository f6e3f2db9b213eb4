"""The dashboard's parts without a browser: logins and sessions (clock injected), the rows (pure), the setting's
parsing, the feed and the HTTP server over real loopback HTTP on a real TinyDB-backed cache, and verb dashboard on
the in-memory broker (its role comes from the topic the request arrived on). The browser tests are in
tests/e2e/test_dashboard.py.
"""

from __future__ import annotations

import http.client
import json
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from edgekube.bus import topics
from edgekube.local.pki import LocalPki
from edgekube.master.app import Master
from edgekube.master.cache import CachedStore
from edgekube.master.config import MasterConfig
from edgekube.master.dashboard import auth, parse_address, tls_context, view
from edgekube.master.dashboard import feed as feed_module
from edgekube.master.dashboard.auth import Logins, Role
from edgekube.master.dashboard.feed import Feed
from edgekube.master.dashboard.server import COOKIE, DashboardServer
from edgekube.master.eventlog import EventLog
from edgekube.master.liveness import Liveness
from edgekube.master.wiring import master_will
from edgekube.model.errors import EdgekubeError, ValidationError
from edgekube.model.types import Obj
from edgekube.model.wire import ApiRequest, ApiResponse, Verb
from edgekube.store.state import TinyStateStore
from tests.support.membus import MemoryBroker

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pod(name: str, node: str = "", **status: Any) -> Obj:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "x"}]},
        "status": status,
    }  # fmt: skip


def node(name: str, pattern: str = "Healthy") -> Obj:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "namespace": ""},
            "status": {"leds": {"pattern": pattern}, "capacity": {"pods": "110"}}}  # fmt: skip


# -- logins --------------------------------------------------------------------------------------------------
def test_a_login_token_works_once_and_becomes_a_session_of_its_role() -> None:
    logins = Logins(Clock())
    token = logins.issue(Role.VIEWER)

    redeemed = logins.redeem(token)

    assert redeemed is not None
    session, grant = redeemed
    assert grant.role is Role.VIEWER
    assert logins.session(session) == grant
    assert logins.redeem(token) is None
    assert logins.session(token) is None  # a token is not a session


def test_a_token_expires_unused_and_a_session_expires_after_its_lifetime() -> None:
    clock = Clock()
    logins = Logins(clock)
    late = logins.issue(Role.ADMIN)
    clock.now += auth.TOKEN_TTL
    assert logins.redeem(late) is None
    redeemed = logins.redeem(logins.issue(Role.ADMIN))
    assert redeemed is not None
    clock.now += auth.SESSION_TTL
    assert logins.session(redeemed[0]) is None


def test_outstanding_tokens_are_bounded_oldest_dropped_first() -> None:
    logins = Logins(Clock())
    first = logins.issue(Role.ADMIN)
    for _ in range(auth.MAX_TOKENS):
        logins.issue(Role.ADMIN)
    assert logins.redeem(first) is None


def test_an_ended_session_is_refused() -> None:
    logins = Logins(Clock())
    redeemed = logins.redeem(logins.issue(Role.ADMIN))
    assert redeemed is not None
    logins.end(redeemed[0])
    assert logins.session(redeemed[0]) is None


# -- rows and the setting ------------------------------------------------------------------------------------------
def test_a_pod_row_counts_ready_containers_and_restarts_and_shows_terminating() -> None:
    statuses = [{"ready": True, "restartCount": 2}, {"ready": False, "restartCount": 1}]
    row = view.pod_row(pod("p", "n1", phase="Running", containerStatuses=statuses))
    assert row == {"key": "default/p", "namespace": "default", "name": "p", "node": "n1", "phase": "Running",
                   "ready": "1/2", "restarts": 3}  # fmt: skip
    deleting = pod("p")
    deleting["metadata"]["deletionTimestamp"] = "2026-12-03T10:00:00Z"
    assert view.pod_row(deleting)["phase"] == "Terminating"
    assert view.pod_row(pod("q"))["phase"] == "Pending"


def test_a_deployment_row_carries_its_rollout_progress() -> None:
    deployment = {
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 4, "paused": False},
        "status": {"replicas": 5, "readyReplicas": 3, "updatedReplicas": 2, "availableReplicas": 3,
                   "conditions": [{"type": "Progressing", "reason": "ReplicaSetUpdated"}]},
    }  # fmt: skip
    row = view.controller_row("Deployment", deployment)
    assert (row["desired"], row["ready"], row["updated"], row["available"]) == (4, 3, 2, 3)
    assert row["progress"] == "ReplicaSetUpdated"


def test_a_node_row_shows_usage_only_while_ready() -> None:
    usage = {"cpuCores": 0.5, "socTemperatureC": 51.2, "memoryWorkingSetBytes": 1e9}
    ready = view.node_row(node("n1"), ready=True, reason="AgentReady", usage=usage)
    gone = view.node_row(node("n1"), ready=False, reason="AgentOffline", usage=usage)
    assert (ready["temperature"], ready["cpu"], ready["leds"]) == (51.2, 0.5, {"pattern": "Healthy"})
    assert "temperature" not in gone and "cpu" not in gone


@pytest.mark.parametrize("value", ["8080", "host:", ":8080", "host:http", "host:70000"])
def test_a_bad_dashboard_setting_is_refused_naming_it(value: str) -> None:
    with pytest.raises(ValidationError, match=r"^dashboard: .*HOST:PORT"):
        parse_address(value)


def test_dashboard_addresses_parse_with_ipv6_brackets() -> None:
    assert parse_address("0.0.0.0:8080") == ("0.0.0.0", 8080)
    assert parse_address("[::1]:0") == ("::1", 0)


# -- feed and server over real HTTP ----------------------------------------------------------------------------------
@dataclass
class Served:
    store: CachedStore
    lock: threading.RLock
    liveness: Liveness
    logins: Logins
    server: DashboardServer
    feed: Feed
    identified: list[tuple[str, float]] = field(default_factory=list)

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)

    def session(self, role: Role) -> str:
        redeemed = self.logins.redeem(self.logins.issue(role))
        assert redeemed is not None
        return f"{COOKIE}={redeemed[0]}"

    def post(self, path: str, cookie: str, body: str = '{"seconds": 30}', header: bool = True) -> tuple[int, Obj]:
        conn = self.connection()
        headers = {"Cookie": cookie, "Content-Type": "application/json"}
        if header:
            headers["X-Edgekube-Dashboard"] = "1"
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())


@pytest.fixture
def served() -> Iterator[Served]:
    clock = Clock()
    store, lock = CachedStore(TinyStateStore(None)), threading.RLock()
    liveness = Liveness(timeout=2.0, clock=clock)
    logins = Logins()
    feed = Feed(store, lock, liveness, EventLog(100))
    identified: list[tuple[str, float]] = []

    def identify(name: str, seconds: float) -> Obj:
        if name == "gone":
            raise EdgekubeError("node gone is not ready: AgentOffline")
        identified.append((name, seconds))
        return {"pattern": "Identify"}

    server = DashboardServer("127.0.0.1", 0, logins=logins, feed=feed, identify=identify).start()
    feed.start()
    try:
        yield Served(store, lock, liveness, logins, server, feed, identified)
    finally:
        feed.stop()
        server.stop()


class Stream:
    """The data lines of one /events response, read as they come."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.response = response

    def next(self) -> Obj:
        while True:
            line = self.response.readline()
            assert line, "the stream ended"
            if line.startswith(b"data: "):
                message: Obj = json.loads(line[len(b"data: ") :])
                return message


def test_without_a_session_the_page_and_the_stream_are_refused(served: Served) -> None:
    conn = served.connection()
    conn.request("GET", "/events")
    assert conn.getresponse().status == 401
    conn = served.connection()
    conn.request("GET", "/")
    response = conn.getresponse()
    assert response.status == 401 and b"ekctl dashboard" in response.read()
    assert served.post("/api/nodes/n1/identify", cookie="")[0] == 401


def test_the_login_url_sets_a_strict_http_only_cookie_and_works_once(served: Served) -> None:
    token = served.logins.issue(Role.ADMIN)
    conn = served.connection()
    conn.request("GET", f"/login?token={token}")
    response = conn.getresponse()
    assert response.status == 303 and response.getheader("Location") == "/"
    cookie = response.getheader("Set-Cookie") or ""
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    conn = served.connection()
    conn.request("GET", "/", headers={"Cookie": cookie.split(";", 1)[0]})
    assert conn.getresponse().status == 200
    conn = served.connection()
    conn.request("GET", f"/login?token={token}")
    assert conn.getresponse().status == 403


def test_the_stream_starts_with_a_snapshot_then_sends_each_change_in_order(served: Served) -> None:
    with served.lock:
        served.store.create(pod("before", "n1"))
    conn = served.connection()
    conn.request("GET", "/events", headers={"Cookie": served.session(Role.VIEWER)})
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
    stream = Stream(response)

    snapshot = stream.next()
    with served.lock:
        served.store.create(pod("after", "n1"))
        served.store.delete("Pod", "default", "before")
        served.store.create(node("n1"))

    assert snapshot["op"] == "snapshot" and snapshot["role"] == "viewer"
    assert [p["key"] for p in snapshot["pods"]] == ["default/before"]
    assert stream.next() == {"op": "put", "kind": "pod", "row": view.pod_row(pod("after", "n1"))}
    assert stream.next() == {"op": "del", "kind": "pod", "key": "default/before"}
    put = stream.next()
    assert (put["op"], put["row"]["name"], put["row"]["ready"]) == ("put", "n1", False)
    served.liveness.heartbeat("n1", "boot", {"cpuCores": 0.25}, 0)  # memory only: the feed's ticker sees it
    ready = stream.next()
    assert (ready["row"]["ready"], ready["row"]["cpu"]) == (True, 0.25)


def test_a_viewer_cannot_identify_and_an_admin_can(served: Served) -> None:
    status, body = served.post("/api/nodes/n1/identify", served.session(Role.VIEWER))
    assert (status, served.identified) == (403, [])
    assert "admin" in body["error"]

    status, body = served.post("/api/nodes/n1/identify", served.session(Role.ADMIN))
    assert (status, body) == (200, {"ok": True, "leds": {"pattern": "Identify"}})
    assert served.identified == [("n1", 30.0)]


def test_an_action_without_the_dashboard_header_is_refused(served: Served) -> None:
    status, body = served.post("/api/nodes/n1/identify", served.session(Role.ADMIN), header=False)
    assert (status, served.identified) == (403, [])
    assert "X-Edgekube-Dashboard" in body["error"]


def test_identify_with_bad_seconds_or_a_node_not_ready_is_answered_with_the_reason(served: Served) -> None:
    admin = served.session(Role.ADMIN)
    assert served.post("/api/nodes/n1/identify", admin, body='{"seconds": -1}')[0] == 400
    status, body = served.post("/api/nodes/gone/identify", admin)
    assert status == 409 and "not ready" in body["error"]
    assert served.identified == []


# -- verb dashboard on the in-memory broker ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("topic", "asked", "granted"),
    [
        (topics.API_REQUEST, "admin", "admin"),
        (topics.API_READ, "admin", "viewer"),
        (topics.API_REQUEST, "viewer", "viewer"),
    ],
)
def test_ekctl_dashboard_gets_admin_only_where_only_admins_may_write(
    tmp_path: Path, topic: str, asked: str, granted: str
) -> None:
    broker = MemoryBroker(inline=True)
    config = MasterConfig(data_dir=tmp_path, dashboard="127.0.0.1:0")
    master = Master(config, bus=broker.client(config.client_id, will=master_will(), persistent=True),
                    store=CachedStore(TinyStateStore(None)))  # fmt: skip
    master.start(loop=False)
    client = broker.client("ekctl").start()
    try:
        reply = client.request(topic, ApiRequest(verb=Verb.DASHBOARD, kind=asked).encode())
    finally:
        master.stop()
    login = ApiResponse.decode(reply.payload).object or {}
    assert login["role"] == granted
    assert urlsplit(login["path"]).path == "/login"


def test_ekctl_dashboard_on_a_master_without_it_says_how_to_turn_it_on(tmp_path: Path) -> None:
    broker = MemoryBroker(inline=True)
    config = MasterConfig(data_dir=tmp_path)
    master = Master(config, bus=broker.client(config.client_id, will=master_will(), persistent=True),
                    store=CachedStore(TinyStateStore(None)))  # fmt: skip
    master.start(loop=False)
    client = broker.client("ekctl").start()
    try:
        reply = client.request(topics.API_READ, ApiRequest(verb=Verb.DASHBOARD, kind="viewer").encode())
    finally:
        master.stop()
    error = ApiResponse.decode(reply.payload).error
    assert error is not None and "--dashboard HOST:PORT" in (error.hint or "")


def test_over_https_with_a_certificate_from_the_fleet_ca_the_session_cookie_is_secure(tmp_path: Path) -> None:
    pki = LocalPki(tmp_path / "pki").ensure({})  # the broker's certificate: serverAuth, names 127.0.0.1 and localhost
    tls = pki.broker_tls()
    context = tls_context(str(tls.cert), str(tls.key))
    assert context is not None
    store, lock = CachedStore(TinyStateStore(None)), threading.RLock()
    feed = Feed(store, lock, Liveness(), EventLog(10))
    logins = Logins()
    server = DashboardServer("127.0.0.1", 0, logins=logins, feed=feed, identify=lambda n, s: {}, tls=context).start()
    try:
        trust = ssl.create_default_context(cafile=str(tls.ca))
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, timeout=10, context=trust)
        conn.request("GET", f"/login?token={logins.issue(Role.VIEWER)}")
        response = conn.getresponse()
    finally:
        server.stop()
    assert response.status == 303
    assert "; Secure" in (response.getheader("Set-Cookie") or "")
    assert server.scheme == "https"


def test_a_dashboard_certificate_without_its_key_is_refused_naming_both_settings() -> None:
    with pytest.raises(ValidationError, match="dashboard_cert, dashboard_key"):
        tls_context("cert.pem", "")


def test_a_login_token_never_reaches_the_log(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    token = served.logins.issue(Role.ADMIN)
    caplog.set_level("DEBUG", logger="edgekube.master.dashboard.server")
    conn = served.connection()
    conn.request("GET", f"/login?token={token}")
    assert conn.getresponse().status == 303
    conn.close()
    served.server.stop()  # the handler's log line is written before the next request is served
    assert "login?token=<redacted>" in caplog.text
    assert token not in caplog.text


def test_a_master_without_the_setting_loads_none_of_the_dashboard(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from edgekube.master.app import Master\n"
        "from edgekube.master.cache import CachedStore\n"
        "from edgekube.master.config import MasterConfig\n"
        "from edgekube.store.state import TinyStateStore\n"
        "from tests.support.membus import MemoryBroker\n"
        f"config = MasterConfig(data_dir={str(tmp_path)!r})\n"
        "master = Master(config, bus=MemoryBroker(inline=True).client('m'), store=CachedStore(TinyStateStore(None)))\n"
        "assert master.dashboard is None\n"
        "print(sorted(m for m in sys.modules if m.startswith('edgekube.master.dashboard') or m == 'http.server'))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_pages_beyond_the_limit_are_answered_503(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed_module, "MAX_SUBSCRIBERS", 1)
    first = served.connection()
    first.request("GET", "/events", headers={"Cookie": served.session(Role.VIEWER)})
    opened = first.getresponse()
    assert opened.status == 200
    Stream(opened).next()  # the snapshot: this page is subscribed
    second = served.connection()
    second.request("GET", "/events", headers={"Cookie": served.session(Role.VIEWER)})
    response = second.getresponse()
    assert response.status == 503 and "at most 1 open pages" in json.loads(response.read())["error"]
