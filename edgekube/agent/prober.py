"""Runs liveness/readiness probes off the reconcile loop on a bounded worker pool; owned by Agent."""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from edgekube.agent.probes import ProbeKind, ProbeState, resolve_port
from edgekube.agent.runtime.protocol import PodRuntime
from edgekube.model.errors import EdgekubeError
from edgekube.model.names import PodUID
from edgekube.model.pod import Container
from edgekube.model.probe import HTTPGetAction, Probe, TCPSocketAction

log = logging.getLogger(__name__)

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


#: Called on a worker thread after each probe: (target, result, whether the probe's outcome flipped).
ResultHook = Callable[[ProbeTarget, ProbeResult, bool], None]


@dataclass
class _Entry:
    target: ProbeTarget
    state: ProbeState
    running: bool = False


class Prober:
    """Schedules every registered probe on its period; at most one run per probe and `workers` at once.

    exec probes run in the container through the runtime (Podman's exec API); httpGet and tcpSocket probes
    connect from the host to the pod's IP (Podman's default bridge network is routed on the host).
    """

    def __init__(
        self,
        runtime: PodRuntime,
        *,
        workers: int = 4,
        on_result: ResultHook | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runtime = runtime
        self.workers = max(workers, 1)
        self.on_result = on_result
        self.clock = clock
        self._entries: dict[tuple[PodUID, str, ProbeKind], _Entry] = {}
        self._lock = threading.Lock()
        self._kick = threading.Event()
        self._stopped = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None

    # -- what the agent asks --------------------------------------------------------------------------------
    def sync(self, targets: Iterable[ProbeTarget]) -> None:
        """Probe exactly `targets` from now on; a target seen before keeps its counts and result."""
        wanted = {t.key: t for t in targets}
        with self._lock:
            for key in [k for k in self._entries if k not in wanted]:
                del self._entries[key]
            for key, target in wanted.items():
                entry = self._entries.get(key)
                if entry is not None and entry.target.instance == target.instance:
                    entry.target = target  # e.g. a new pod IP
                    continue
                self._entries[key] = _Entry(target, ProbeState(target.probe, target.kind, target.since))
            start = bool(self._entries) and self._thread is None and not self._stopped.is_set()
            if start:
                self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="probe")
                self._thread = threading.Thread(target=self._schedule, name="prober", daemon=True)
                self._thread.start()
        self._kick.set()

    def ready(self, uid: PodUID, container: str) -> bool:
        """The readiness result of a container (False until its probe passed, or if it has no probe here)."""
        with self._lock:
            entry = self._entries.get((uid, container, ProbeKind.READINESS))
            return entry is not None and entry.state.result

    def unhealthy(self, uid: PodUID) -> frozenset[str]:
        """Containers of the pod whose liveness probe failed (they must be killed and the pod restarted)."""
        with self._lock:
            return frozenset(
                name
                for (pod, name, kind), entry in self._entries.items()
                if pod == uid and kind is ProbeKind.LIVENESS and not entry.state.result
            )

    def stop(self) -> None:
        self._stopped.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    # -- scheduling -------------------------------------------------------------------------------------------
    def _schedule(self) -> None:
        while not self._stopped.is_set():
            now = self.clock()
            with self._lock:
                due = [e for e in self._entries.values() if not e.running and e.state.due(now)]
                for entry in due:
                    entry.running = True
                    entry.state.begin(now)
                idle = [e for e in self._entries.values() if not e.running and not e.state.finished]
                waits = [e.state.next_at - now for e in idle]
            for entry in due:
                assert self._pool is not None
                try:
                    self._pool.submit(self._run, entry)
                except RuntimeError:  # the pool was shut down: the agent is stopping
                    return
            self._kick.wait(min(max(min(waits, default=1.0), 0.01), 1.0))
            self._kick.clear()

    def _run(self, entry: _Entry) -> None:
        target = entry.target
        try:
            result = check(target, self.runtime)
        except Exception as exc:  # a probe bug must not kill the worker; it counts as a failed probe
            log.exception("probe of %s/%s failed unexpectedly", target.pod, target.container.name)
            result = ProbeResult(False, f"{type(exc).__name__}: {exc}")
        with self._lock:
            current = self._entries.get(target.key) is entry
            flipped = entry.state.record(result.ok, result.message) if current else False
            entry.running = False
        self._kick.set()
        if current and self.on_result is not None:
            try:
                self.on_result(target, result, flipped)
            except Exception:
                log.exception("probe result hook failed")


# -- the three handlers -------------------------------------------------------------------------------------


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
    conn: http.client.HTTPConnection
    if action.scheme == "HTTPS":
        # Kubernetes does not verify a probed pod's certificate either.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {"User-Agent": _USER_AGENT, "Accept": "*/*"}
    headers.update({h.name: h.value for h in action.http_headers})
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read(_MAX_BODY)
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        return ProbeResult(False, f"Get {url!r}: {_describe(exc)}")
    finally:
        conn.close()
    if 200 <= status < 400:
        return ProbeResult(True, f"HTTP {status}")
    text = body.decode("utf-8", errors="replace").strip()[:200]
    return ProbeResult(False, f"HTTP probe failed with statuscode: {status}" + (f" ({text})" if text else ""))


def _tcp(action: TCPSocketAction, target: ProbeTarget, timeout: float) -> ProbeResult:
    host = _host(action.host, target)
    port = resolve_port(target.container, action.port)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return ProbeResult(True, f"connected to {host}:{port}")
    except OSError as exc:
        return ProbeResult(False, f"dial tcp {host}:{port}: {_describe(exc)}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    return str(exc) or type(exc).__name__
