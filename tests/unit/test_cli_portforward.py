"""Unit tests of `ekctl port-forward`'s refusals against the real master (in-memory bus, tests.support.apiserver):
a pod that does not run, a missing pod or service, a service port that does not exist, a bad port spec."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.apiserver import ApiServer

Capture = pytest.CaptureFixture[str]
OBJECTS = """\
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec: {containers: [{name: app, image: busybox, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{name: http, port: 80, targetPort: http}]}
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ApiServer]:
    with ApiServer(tmp_path / "cluster") as api:
        (tmp_path / "objects.yaml").write_text(OBJECTS)
        assert api.ekctl("apply", "-f", str(tmp_path / "objects.yaml")) == 0
        yield api


def test_port_forward_to_a_pod_not_running_says_its_phase_like_kubectl(server: ApiServer, capsys: Capture) -> None:
    capsys.readouterr()
    assert server.ekctl("port-forward", "pod/web", "8080:http") == 1
    assert "unable to forward port because pod is not running. Current status=Pending" in capsys.readouterr().err


def test_port_forward_names_what_is_missing(server: ApiServer, capsys: Capture) -> None:
    capsys.readouterr()
    assert server.ekctl("port-forward", "pod/nope", "80") == 1
    assert 'pods "nope" not found' in capsys.readouterr().err
    assert server.ekctl("port-forward", "svc/nope", "80") == 1
    assert 'services "nope" not found' in capsys.readouterr().err
    assert server.ekctl("port-forward", "svc/web", "8443:443") == 1
    assert "service web does not have a service port 443" in capsys.readouterr().err
    assert server.ekctl("port-forward", "svc/web", "80") == 1  # no node: the pod is not ready, no endpoint
    assert "service web has no ready endpoint pod" in capsys.readouterr().err
    assert server.ekctl("port-forward", "deploy/web", "80") == 1
    assert "expected one pod/NAME or svc/NAME" in capsys.readouterr().err
    assert server.ekctl("port-forward", "web", "http") == 1
    assert "a named remote port needs a LOCAL port" in capsys.readouterr().err
