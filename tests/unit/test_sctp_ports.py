"""SCTP ports: Kubernetes' rules (validateContainerPorts, AccumulateUniqueHostPorts), the Podman mapping, and the
node-side refusal of an SCTP hostPort where the kernel has no SCTP (agent/runtime/sctp.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.runtime.podman import specgen
from edgekube.agent.runtime.sctp import SANDBOX_FAILED, sctp_host_port_error
from edgekube.model.errors import RuntimeFailure
from edgekube.model.pod import Pod, Protocol
from tests.unit.test_volumes_agent import IMAGE, Node


def _pod(*ports: dict[str, Any], **spec: Any) -> Pod:
    body = {"containers": [{"name": "c", "image": "i", "ports": list(ports)}], **spec}
    return Pod.from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": body})


def test_sctp_is_a_port_protocol() -> None:
    """validateContainerPorts: supportedPortProtocols = TCP, UDP, SCTP."""
    pod = _pod({"containerPort": 9999, "protocol": "SCTP"})
    assert pod.spec.containers[0].ports[0].protocol is Protocol.SCTP


def test_an_unknown_protocol_lists_the_supported_ones_as_kubernetes_sorts_them() -> None:
    """validateContainerPorts: field.NotSupported(..., sets.List(supportedPortProtocols)): "SCTP", "TCP", "UDP"."""
    with pytest.raises(ValueError) as caught:
        _pod({"containerPort": 9999, "protocol": "sctp"})
    assert 'Unsupported value: "sctp": supported values: "SCTP", "TCP", "UDP"' in str(caught.value)


def test_the_same_host_port_for_tcp_and_sctp_is_not_a_duplicate_but_twice_sctp_is() -> None:
    """AccumulateUniqueHostPorts: the key is port and protocol."""
    _pod({"containerPort": 1, "hostPort": 9999}, {"containerPort": 2, "hostPort": 9999, "protocol": "SCTP"})
    with pytest.raises(ValueError, match='Duplicate value: "/SCTP/9999"'):
        _pod(
            {"containerPort": 1, "hostPort": 9999, "protocol": "SCTP"},
            {"containerPort": 2, "hostPort": 9999, "protocol": "SCTP"},
        )


def test_an_sctp_host_port_is_mapped_by_podman_as_sctp() -> None:
    pod = _pod({"containerPort": 9999, "hostPort": 19999, "protocol": "SCTP"})
    assert specgen.pod_spec(pod, "p", {})["portmappings"] == [
        {"container_port": 9999, "host_port": 19999, "protocol": "sctp"}
    ]


def test_an_sctp_host_port_is_refused_where_the_kernel_has_no_sctp() -> None:
    pod = _pod({"containerPort": 9999, "hostPort": 19999, "protocol": "SCTP"})
    error = sctp_host_port_error(pod.spec, has_sctp=False)
    assert error is not None
    assert "hostPort 19999/SCTP of container 'c'" in error and "no SCTP support" in error
    assert sctp_host_port_error(pod.spec, has_sctp=True) is None


def test_an_sctp_container_port_without_host_port_needs_no_kernel_sctp() -> None:
    assert sctp_host_port_error(_pod({"containerPort": 9999, "protocol": "SCTP"}).spec, has_sctp=False) is None


def test_a_host_network_pod_maps_nothing_so_is_not_refused() -> None:
    """hostNetwork: hostPort defaults to containerPort (SetDefaults_PodSpec), but Podman maps no port."""
    pod = _pod({"containerPort": 9999, "protocol": "SCTP"}, hostNetwork=True)
    assert pod.spec.containers[0].ports[0].host_port == 9999
    assert sctp_host_port_error(pod.spec, has_sctp=False) is None


def test_the_agent_records_the_kubelets_failed_create_pod_sandbox_event(tmp_path: Path) -> None:
    node = Node(tmp_path / "agent")
    message = "Failed to create pod sandbox: hostPort 19999/SCTP of container 'c' cannot be mapped: no SCTP"
    node.runtime.fail_next_create = RuntimeFailure(message, reason=SANDBOX_FAILED)
    try:
        node.want({
            "metadata": {"name": "sctp", "namespace": "default", "uid": "uid-sctp"},
            "spec": {"containers": [{"name": "c", "image": IMAGE,
                                     "ports": [{"containerPort": 9999, "hostPort": 19999, "protocol": "SCTP"}]}]},
        })  # fmt: skip
        node.settle()
        assert node.events(SANDBOX_FAILED) == [message]
    finally:
        node.agent.prober.stop()
