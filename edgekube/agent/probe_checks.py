"""One probe run now: exec through the runtime; httpGet, tcpSocket and grpc from the host; used by probe_workers."""

from __future__ import annotations

import http.client
import socket
import ssl
from dataclasses import dataclass

from edgekube.agent.probe_timing import ProbeKind
from edgekube.agent.runtime.protocol import PodRuntime
from edgekube.model.errors import EdgekubeError, NotFoundError
from edgekube.model.names import PodUID
from edgekube.model.pod import Container
from edgekube.model.probe import HTTPGetAction, Probe, TCPSocketAction

_MAX_BODY = 10 * 1024
_USER_AGENT = "edgekube-probe/1"


@dataclass(frozen=True)
class ProbeTarget:
    """One probe of one run of a container; a new run (restart) is a new `instance`, so counts start over."""

    uid: PodUID
    pod: str  # namespace/name, for messages
    container: Container
    kind: ProbeKind
    instance: str  # identity of this run of the container (id, start time, restart count)
    since: float  # container start, monotonic seconds
    ip: str | None

    @property
    def key(self) -> tuple[PodUID, str, ProbeKind]:
        return (self.uid, self.container.name, self.kind)

    @property
    def probe(self) -> Probe:
        probe = self.container.liveness_probe if self.kind is ProbeKind.LIVENESS else self.container.readiness_probe
        assert probe is not None, "a target is only made for a container with that probe"
        return probe


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    message: str = ""


def check(target: ProbeTarget, runtime: PodRuntime) -> ProbeResult:
    """Run one probe now and say whether it passed; never raises for what the probed app does."""
    probe = target.probe
    timeout = float(probe.timeout_seconds)
    try:
        if probe.exec is not None:
            code, output = runtime.exec(target.uid, target.container.name, list(probe.exec.command), timeout)
            if code == 0:
                return ProbeResult(True, output)
            detail = f": {output.strip()}" if output.strip() else ""
            return ProbeResult(False, f"command {probe.exec.command} exited with {code}{detail}")
        if probe.http_get is not None:
            return _http(probe.http_get, target, timeout)
        if probe.tcp_socket is not None:
            return _tcp(probe.tcp_socket, target, timeout)
        if probe.grpc is not None:
            # Loaded with the first gRPC probe: an agent whose pods have none never holds h2 in memory.
            from edgekube.agent import grpc_health  # noqa: PLC0415

            host = _host(None, target)
            result = grpc_health.check(host, probe.grpc.port, probe.grpc.service or "", timeout, _USER_AGENT)
            return ProbeResult(result.ok, result.message)
    except EdgekubeError as exc:
        return ProbeResult(False, str(exc))
    return ProbeResult(False, "probe has no handler")


def _host(explicit: str | None, target: ProbeTarget) -> str:
    host = explicit or target.ip
    if not host:
        raise EdgekubeError(f"pod {target.pod} has no IP address yet")
    return host


def _http(action: HTTPGetAction, target: ProbeTarget, timeout: float) -> ProbeResult:
    host = _host(action.host, target)
    port = resolve_port(target.container, action.port)
    path = action.path if action.path.startswith("/") else f"/{action.path}"
    url = f"{action.scheme.lower()}://{host}:{port}{path}"
    try:
        status, body = http_get(action, host, port, timeout, _USER_AGENT)
    except (OSError, http.client.HTTPException) as exc:
        return ProbeResult(False, f"Get {url!r}: {describe(exc)}")
    if 200 <= status < 400:
        return ProbeResult(True, f"HTTP {status}")
    text = body.decode("utf-8", errors="replace").strip()[:200]
    return ProbeResult(False, f"HTTP probe failed with statuscode: {status}" + (f" ({text})" if text else ""))


def http_get(action: HTTPGetAction, host: str, port: int, timeout: float, user_agent: str) -> tuple[int, bytes]:
    """One GET as httpGet says (scheme, path, headers): (status, start of the body); raises OSError/HTTPException.

    Also the httpGet lifecycle hooks' request (agent/hooks.py).
    """
    path = action.path if action.path.startswith("/") else f"/{action.path}"
    conn: http.client.HTTPConnection
    if action.scheme == "HTTPS":
        # Kubernetes does not verify a probed pod's certificate either.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {"User-Agent": user_agent, "Accept": "*/*"}
    headers.update({h.name: h.value for h in action.http_headers})
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read(_MAX_BODY)
    finally:
        conn.close()


def _tcp(action: TCPSocketAction, target: ProbeTarget, timeout: float) -> ProbeResult:
    host = _host(action.host, target)
    port = resolve_port(target.container, action.port)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return ProbeResult(True, f"connected to {host}:{port}")
    except OSError as exc:
        return ProbeResult(False, f"dial tcp {host}:{port}: {describe(exc)}")


def describe(exc: BaseException) -> str:
    """An OSError as a probe message: "timeout" for a timeout, else its text."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    return str(exc) or type(exc).__name__


def resolve_port(container: Container, port: int | str) -> int:
    """A probe's port: a number, or the name of one of the container's ports (`ports[].name`)."""
    if isinstance(port, int):
        return port
    if port.isdigit():
        return int(port)
    for declared in container.ports:
        if declared.name == port:
            return declared.container_port
    raise NotFoundError(f"port {port!r} is not a named port of container {container.name}")
