"""SCTP ports on real Podman: a containerPort-only SCTP pod runs; an SCTP hostPort is mapped as `sctp` where the
kernel has SCTP and refused before anything is created where it has not (the machine decides which branch runs).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from edgekube.agent.runtime.podman import PodmanRuntime
from edgekube.agent.runtime.protocol import ContainerRunState
from edgekube.agent.runtime.sctp import SANDBOX_FAILED, kernel_has_sctp
from edgekube.local.podman_service import PodmanService
from edgekube.model.errors import RuntimeFailure
from edgekube.model.names import NodeName
from tests.unit.test_runtime_contract import IDLE, make_pod, new_uid

pytestmark = pytest.mark.integration


@pytest.fixture
def runtime(podman_service: PodmanService, demo_image: str) -> Iterator[PodmanRuntime]:
    rt = PodmanRuntime(podman_service.url, NodeName(f"node-{uuid.uuid4().hex[:8]}"))
    yield rt
    for pod in rt.list_pods():
        rt.remove_pod(pod.uid, grace_seconds=0)
    rt.close()


def _sctp_pod(image: str, **port: Any) -> Any:
    ports = [{"containerPort": 9999, "protocol": "SCTP", **port}]
    return make_pod("sctp", image, {"name": "main", "image": image, "command": IDLE, "ports": ports})


def test_an_sctp_container_port_without_host_port_runs(runtime: PodmanRuntime, demo_image: str) -> None:
    pod = runtime.create_pod(_sctp_pod(demo_image), new_uid(), "h")
    assert [c.state for c in pod.containers] == [ContainerRunState.RUNNING]


def test_an_sctp_host_port_is_mapped_where_the_kernel_has_sctp_and_refused_where_not(
    runtime: PodmanRuntime, demo_image: str, podman_service: PodmanService
) -> None:
    uid = new_uid()
    if kernel_has_sctp():
        pod = runtime.create_pod(_sctp_pod(demo_image, hostPort=19999), uid, "h")
        ports = podman_service.podman("pod", "inspect", pod.pod_id, "--format", "{{json .InfraConfig.PortBindings}}")
        assert "9999/sctp" in ports.stdout
        return
    with pytest.raises(RuntimeFailure) as refused:
        runtime.create_pod(_sctp_pod(demo_image, hostPort=19999), uid, "h")
    assert refused.value.failure == SANDBOX_FAILED
    assert "hostPort 19999/SCTP of container 'main'" in str(refused.value)
    assert "no SCTP support" in str(refused.value)
    assert uid not in {p.uid for p in runtime.list_pods()}
