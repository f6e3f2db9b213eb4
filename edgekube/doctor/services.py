"""Doctor checks of the services a board talks to: Podman (binary, OCI runtime, REST socket) and the MQTT broker."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import subprocess
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.bus.tls import TlsFiles
from edgekube.doctor.result import Result, failed, passed, warned
from edgekube.model.errors import EdgekubeError

PODMAN_FIX = "`sudo apt install podman` (Raspberry Pi OS bookworm ships Podman 4.3)"
SOCKET_FIX = "`sudo systemctl enable --now podman.socket` (or give the agent's podman_url)"
#: libpod's REST API version the agent speaks.
API = "/v4.0.0/libpod"


def podman_binary(which: Callable[[str], str | None] = shutil.which) -> Result:
    check, title = "podman", "Podman installed"
    path = which("podman")
    if path is None:
        return failed(check, title, "no `podman` on PATH", PODMAN_FIX)
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return failed(check, title, f"{path} does not run: {exc}", PODMAN_FIX)
    version = out.stdout.strip() or out.stderr.strip()
    return passed(check, title, f"{version} at {path}")


class UnixHTTP(http.client.HTTPConnection):
    """HTTP over a unix socket (Podman's API socket)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def podman_get(url: str, path: str, timeout: float = 5.0) -> Any:
    """GET `path` of the Podman API at `url` (unix:///... or http://host:port); the decoded JSON body."""
    parsed = urlparse(url)
    conn: http.client.HTTPConnection
    if parsed.scheme == "unix":
        conn = UnixHTTP(parsed.path, timeout)
    elif parsed.scheme in ("http", "tcp"):
        conn = http.client.HTTPConnection(parsed.hostname or "localhost", parsed.port or 80, timeout=timeout)
    else:
        raise OSError(f"unsupported podman_url scheme {parsed.scheme!r} (use unix:///path or tcp://host:port)")
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        if response.status >= 400:
            raise OSError(f"HTTP {response.status} from {path}")
        return json.loads(body) if body.strip().startswith((b"{", b"[")) else body.decode(errors="replace")
    finally:
        conn.close()


def podman_socket(url: str, get: Callable[[str, str], Any] = podman_get) -> tuple[Result, dict[str, Any] | None]:
    """The REST socket answers /info; returns the check and the info (for the runtime check)."""
    check, title = "podman-socket", "Podman API socket"
    try:
        info = get(url, f"{API}/info")
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return failed(check, title, f"{url} does not answer: {exc}", SOCKET_FIX), None
    version = (info.get("version") or {}).get("Version", "?") if isinstance(info, dict) else "?"
    return passed(check, title, f"{url} answers (Podman {version})"), info if isinstance(info, dict) else None


def oci_runtime(info: dict[str, Any] | None, which: Callable[[str], str | None] = shutil.which) -> Result:
    """The OCI runtime Podman uses (runc or crun), from the API's /info; else whichever is installed."""
    check, title = "oci-runtime", "OCI runtime"
    fix = "`sudo apt install crun` (or runc)"
    if info is not None:
        runtime = (info.get("host") or {}).get("ociRuntime") or {}
        name = runtime.get("name")
        if name:
            version = str((runtime.get("version") or "").splitlines()[0] if runtime.get("version") else "")
            return passed(check, title, f"{name} ({version or runtime.get('path', '')}) used by Podman")
    found = [f"{name} at {path}" for name in ("crun", "runc") if (path := which(name))]
    if not found:
        return failed(check, title, "neither crun nor runc is installed", fix)
    return warned(
        check, title, f"{', '.join(found)} installed; which one Podman uses is unknown (its socket did not answer)",
        SOCKET_FIX,
    )  # fmt: skip


def broker(host: str, port: int, tls: TlsFiles, timeout: float = 5.0) -> Result:
    """A real MQTT connect with the configured address and TLS identity, then a clean disconnect."""
    check, title = "broker", "MQTT broker reachable"
    where = f"{host}:{port}" + (" over TLS" if tls.enabled else " (plain TCP)")
    config = BusConfig(host=host, port=port, tls_ca=tls.ca, tls_cert=tls.cert, tls_key=tls.key, log_failures=False)
    try:
        bus = PahoBus(config)  # reads the TLS files: a missing or mismatched one is a BusError here
        bus.start(wait=timeout)
    except EdgekubeError as exc:
        fix = "start the broker (`sudo systemctl start mosquitto` on the master) or fix mqtt_host/mqtt_port"
        if "cannot reach" not in str(exc) and exc.hint:
            fix = exc.hint  # TLS files, a refused identity: the bus says what to do
        return failed(check, title, str(exc), fix)
    bus.close()
    identity = f" as {tls.cert}" if tls.cert else ""
    return passed(check, title, f"connected to {where}{identity}")
