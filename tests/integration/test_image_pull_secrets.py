"""imagePullSecrets on real Podman: the credentials chosen for an image reach the registry in Podman's pull.

There is no registry here, so the test runs a tiny one: an HTTP server that speaks just enough of the registry v2
API to answer every request with 401 and `WWW-Authenticate: Basic`, recording the Authorization header of each.
A Podman service of its own (its registries.conf marks that loopback registry insecure, so plain HTTP is used)
pulls from it through PodmanRuntime.create_pod; the pull fails, the test reads what the registry was sent.
"""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.runtime.podman import PodmanRuntime
from edgekube.local.podman_service import PodmanService
from edgekube.model.errors import RuntimeFailure
from edgekube.model.names import NodeName
from edgekube.model.registryauth import RegistryCredential
from tests.support.prerequisites import require_podman
from tests.unit.test_runtime_contract import IDLE, make_pod, new_uid

pytestmark = pytest.mark.integration


class _Registry(BaseHTTPRequestHandler):
    """Registry v2 as far as a failed pull goes: 401 + a Basic challenge for every path, each request recorded."""

    seen: list[tuple[str, str]] = []

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Authorization", "")))
        body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="edgekube-test"')
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def runtime(registry: str) -> Iterator[PodmanRuntime]:
    """A PodmanRuntime on a Podman service of its own, whose registries.conf trusts the test registry over HTTP."""
    require_podman()
    workdir = Path(f"/tmp/ek-pull-{uuid.uuid4().hex[:8]}")
    workdir.mkdir()
    conf = workdir / "registries.conf"
    conf.write_text(f'[[registry]]\nlocation = "{registry}"\ninsecure = true\n')
    service = PodmanService(workdir)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CONTAINERS_REGISTRIES_CONF", str(conf))
        service.start()
    rt = PodmanRuntime(service.url, NodeName("node-pull"), pull_timeout=30)
    try:
        yield rt
    finally:
        rt.close()
        service.destroy()


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _pull(runtime: PodmanRuntime, image: str, credentials: list[RegistryCredential]) -> RuntimeFailure:
    _Registry.seen = []
    pod = make_pod("private", image, {"name": "main", "image": image, "command": IDLE})
    with pytest.raises(RuntimeFailure) as failed:
        runtime.create_pod(pod, new_uid(), "h", credentials=credentials)
    return failed.value


def test_the_credential_matching_the_images_registry_and_path_is_sent(runtime: PodmanRuntime, registry: str) -> None:
    credentials = [
        RegistryCredential(registry="quay.io", username="other", password="not-this"),
        RegistryCredential(registry=registry, username="anyone", password="too-general"),
        RegistryCredential(registry=f"https://{registry}/team", username="team", password="s3cret"),
    ]
    failure = _pull(runtime, f"{registry}/team/app:1", credentials)
    assert failure.failure == "ErrImagePull"
    sent = {auth for path, auth in _Registry.seen if path.startswith("/v2/team/app/")}
    # Most specific first (the kubelet's keyring): the team credential; refused, then the registry-wide one.
    assert _basic("team", "s3cret") in sent
    assert _basic("other", "not-this") not in {auth for _, auth in _Registry.seen}
    first = next(auth for path, auth in _Registry.seen if auth)
    assert first == _basic("team", "s3cret")
    assert "s3cret" not in str(failure) and "too-general" not in str(failure)


def test_an_image_no_credential_matches_is_pulled_without_any(runtime: PodmanRuntime, registry: str) -> None:
    credentials = [RegistryCredential(registry=f"{registry}/other-team", username="u", password="p")]
    _pull(runtime, f"{registry}/team/app:1", credentials)
    assert _Registry.seen, "the registry was asked"
    # Podman answers a Basic challenge without credentials with an empty user and password (`Basic Og==`).
    assert {auth for _, auth in _Registry.seen} <= {"", _basic("", "")}
