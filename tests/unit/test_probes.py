"""Probes: Kubernetes' timing and threshold rules (fake clock), named ports, and the three handlers run locally."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from edgekube.agent.probe_checks import ProbeResult, ProbeTarget, check, resolve_port
from edgekube.agent.probe_timing import ProbeKind, ProbeState
from edgekube.agent.probe_workers import Prober
from edgekube.agent.runtime.fake import FakeRuntime
from edgekube.model.errors import NotFoundError
from edgekube.model.names import PodUID
from edgekube.model.pod import Container, Pod
from edgekube.model.probe import Probe

LIVE, READY = ProbeKind.LIVENESS, ProbeKind.READINESS


def probe(**fields: Any) -> Probe:
    return Probe.model_validate({"exec": {"command": ["true"]}, **fields})


# -- ProbeState: timing ---------------------------------------------------------------------------------------


def test_nothing_is_probed_before_the_initial_delay_then_once_per_period() -> None:
    state = ProbeState(probe(initialDelaySeconds=5, periodSeconds=10), LIVE, since=100.0)
    assert not state.due(104.9)
    assert state.due(105.0)
    state.begin(105.0)
    assert not state.due(114.9)
    assert state.due(115.0)


def test_the_next_probe_is_a_period_after_the_last_one_began_however_long_it_took() -> None:
    state = ProbeState(probe(periodSeconds=2), READY, since=0.0)
    state.begin(0.0)
    state.record(False)  # finished at, say, 1.5 s
    assert state.due(2.0)


# -- ProbeState: thresholds -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "fields", "results", "after"),
    [
        pytest.param(LIVE, {}, [], True, id="liveness-passes-until-proven-otherwise"),
        pytest.param(READY, {}, [], False, id="readiness-not-ready-until-a-success"),
        pytest.param(LIVE, {}, [False, False], True, id="liveness-two-failures-of-three"),
        pytest.param(LIVE, {}, [False, False, False], False, id="liveness-three-failures-fail"),
        pytest.param(LIVE, {}, [False, False, True, False, False], True, id="a-success-resets-the-failures"),
        pytest.param(LIVE, {"failureThreshold": 1}, [False], False, id="failure-threshold-one"),
        pytest.param(READY, {}, [True], True, id="readiness-one-success"),
        pytest.param(READY, {"successThreshold": 3}, [True, True], False, id="success-threshold-not-reached"),
        pytest.param(READY, {"successThreshold": 3}, [True, True, True], True, id="success-threshold-reached"),
        pytest.param(READY, {"successThreshold": 2}, [True, False, True], False, id="a-failure-resets-successes"),
        pytest.param(READY, {"failureThreshold": 2}, [True, False], True, id="ready-survives-one-failure"),
        pytest.param(READY, {"failureThreshold": 2}, [True, False, False], False, id="ready-lost-after-two"),
        pytest.param(READY, {"failureThreshold": 2}, [True, False, False, True], True, id="ready-again"),
    ],
)
def test_thresholds(kind: ProbeKind, fields: dict[str, Any], results: list[bool], after: bool) -> None:
    state = ProbeState(probe(**fields), kind, since=0.0)
    for ok in results:
        state.record(ok)
    assert state.result is after


def test_record_says_when_the_result_flips() -> None:
    state = ProbeState(probe(failureThreshold=2), READY, since=0.0)
    assert [state.record(ok) for ok in (False, True, True, False, False, False, True)] == [
        False, True, False, False, True, False, True,
    ]  # fmt: skip


def test_a_failed_liveness_probe_stops_probing_that_run() -> None:
    state = ProbeState(probe(failureThreshold=1), LIVE, since=0.0)
    state.begin(0.0)
    state.record(False, "exit 1")
    assert state.finished
    assert not state.due(1000.0)
    assert state.last_message == "exit 1"


# -- named ports ----------------------------------------------------------------------------------------------


def test_ports_resolve_by_number_or_by_the_containers_port_name() -> None:
    container = Container.model_validate(
        {"name": "web", "image": "x", "ports": [{"containerPort": 8080, "name": "http"}, {"containerPort": 9}]}
    )
    assert resolve_port(container, 81) == 81
    assert resolve_port(container, "82") == 82
    assert resolve_port(container, "http") == 8080
    with pytest.raises(NotFoundError, match="'admin' is not a named port of container web"):
        resolve_port(container, "admin")


# -- handlers -------------------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        codes = {"/ok": 200, "/moved": 302, "/broken": 500, "/missing": 404}
        code = codes.get(self.path, 404)
        self.send_response(code)
        self.send_header("Content-Length", "7")
        self.end_headers()
        self.wfile.write(b"body!\r\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def web() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def target(runtime: FakeRuntime | None, kind: ProbeKind, handler: dict[str, Any], **fields: Any) -> ProbeTarget:
    """A target in a pod at 127.0.0.1 whose one container `web` declares port 'http' → `port` if given."""
    ports = [{"containerPort": fields.pop("port"), "name": "http"}] if "port" in fields else []
    spec = {"name": "web", "image": "img:1", "ports": ports, f"{kind.value.lower()}Probe": {**handler, **fields}}
    pod = Pod.model_validate({"metadata": {"name": "p", "uid": "u1"}, "spec": {"containers": [spec]}})
    uid = PodUID("u1")
    if runtime is not None:
        runtime.create_pod(pod, uid, "h")
    return ProbeTarget(uid, "default/p", pod.spec.containers[0], kind, "i1", 0.0, "127.0.0.1")


@pytest.mark.parametrize(
    ("path", "ok", "message"),
    [
        ("/ok", True, "HTTP 200"),
        ("/moved", True, "HTTP 302"),
        ("/broken", False, "HTTP probe failed with statuscode: 500 (body!)"),
        ("/missing", False, "HTTP probe failed with statuscode: 404 (body!)"),
    ],
)
def test_http_get_passes_on_200_to_399(web: int, path: str, ok: bool, message: str) -> None:
    assert check(target(None, LIVE, {"httpGet": {"path": path, "port": web}}), FakeRuntime()) == ProbeResult(
        ok, message
    )


def test_http_get_on_a_named_port(web: int) -> None:
    result = check(target(None, READY, {"httpGet": {"path": "/ok", "port": "http"}}, port=web), FakeRuntime())
    assert result.ok


def test_http_get_on_a_closed_port_fails_with_the_reason() -> None:
    port = closed_port()
    result = check(target(None, LIVE, {"httpGet": {"port": port}}), FakeRuntime())
    assert not result.ok
    assert result.message.startswith(f"Get 'http://127.0.0.1:{port}/': ")
    assert "refused" in result.message


def test_tcp_socket_passes_when_it_connects(web: int) -> None:
    assert check(target(None, LIVE, {"tcpSocket": {"port": web}}), FakeRuntime()).ok
    port = closed_port()
    result = check(target(None, LIVE, {"tcpSocket": {"port": port}}), FakeRuntime())
    assert not result.ok and result.message.startswith(f"dial tcp 127.0.0.1:{port}: ")


def test_a_pod_without_an_ip_fails_network_probes() -> None:
    t = target(None, LIVE, {"tcpSocket": {"port": 1}})
    no_ip = ProbeTarget(t.uid, t.pod, t.container, t.kind, t.instance, t.since, None)
    assert check(no_ip, FakeRuntime()) == ProbeResult(False, "pod default/p has no IP address yet")


def test_an_unknown_named_port_fails_the_probe() -> None:
    result = check(target(None, LIVE, {"tcpSocket": {"port": "admin"}}), FakeRuntime())
    assert result == ProbeResult(False, "port 'admin' is not a named port of container web")


def test_exec_passes_on_exit_code_zero_and_reports_output_otherwise() -> None:
    runtime = FakeRuntime()
    t = target(runtime, LIVE, {"exec": {"command": ["cat", "/tmp/healthy"]}})
    assert check(t, runtime).ok
    runtime.set_exec_result(t.uid, "web", 1, "cat: can't open '/tmp/healthy'\n")
    assert check(t, runtime) == ProbeResult(
        False, "command ['cat', '/tmp/healthy'] exited with 1: cat: can't open '/tmp/healthy'"
    )


def test_exec_timeout_and_a_stopped_container_fail_the_probe() -> None:
    runtime = FakeRuntime()
    t = target(runtime, LIVE, {"exec": {"command": ["sleep", "5"]}, "timeoutSeconds": 1})
    assert check(t, runtime) == ProbeResult(False, "command ['sleep', '5'] timed out after 1s")
    runtime.exit_container(t.uid, "web", 0)
    assert check(t, runtime) == ProbeResult(False, "container 'web' is not running")


# -- Prober: scheduling on worker threads --------------------------------------------------------------------


def wait_until(what: str, condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_prober_reports_liveness_failure_and_readiness_and_calls_the_hook() -> None:
    runtime = FakeRuntime()
    live = target(runtime, LIVE, {"exec": {"command": ["false"]}, "failureThreshold": 1})
    seen: list[tuple[ProbeKind, bool, bool]] = []
    prober = Prober(runtime, workers=2, on_result=lambda t, r, flipped: seen.append((t.kind, r.ok, flipped)))
    ready = ProbeTarget(live.uid, live.pod, live.container.model_copy(update={"readiness_probe": probe()}), READY,
                        "i1", 0.0, None)  # fmt: skip
    try:
        assert prober.unhealthy(live.uid) == frozenset()
        assert not prober.ready(live.uid, "web")
        prober.sync([live, ready])
        wait_until("liveness failure", lambda: prober.unhealthy(live.uid) == {"web"})
        wait_until("readiness", lambda: prober.ready(live.uid, "web"))
        assert sorted(seen) == [(LIVE, False, True), (READY, True, True)]
        # A new run of the container (another instance) starts from scratch.
        prober.sync([ProbeTarget(live.uid, live.pod, live.container, LIVE, "i2", time.monotonic() + 60, None)])
        assert prober.unhealthy(live.uid) == frozenset()
        assert not prober.ready(live.uid, "web")  # no readiness target any more
    finally:
        prober.stop()


def test_prober_without_targets_starts_no_threads() -> None:
    prober = Prober(FakeRuntime())
    before = threading.active_count()
    prober.sync([])
    assert threading.active_count() == before
    prober.stop()


def test_a_probe_that_raises_counts_as_a_failure() -> None:
    class Broken(FakeRuntime):
        def exec(
            self, uid: PodUID, container: str, command: list[str], timeout: float, max_output: int = 10240
        ) -> tuple[int, str]:
            raise ZeroDivisionError("bug")

    runtime = Broken()
    live = target(runtime, LIVE, {"exec": {"command": ["x"]}, "failureThreshold": 1})
    prober = Prober(runtime)
    try:
        prober.sync([live])
        wait_until("failure", lambda: prober.unhealthy(live.uid) == {"web"})
    finally:
        prober.stop()
