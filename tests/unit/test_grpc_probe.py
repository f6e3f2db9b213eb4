"""gRPC probes: the model's rules (validation.go validateGRPCAction) and checks against grpcio's own health server.

The server is grpcio's reference implementation of grpc.health.v1 (grpc_health), on a loopback port in the test
process; edgekube's client (agent/grpc_health.py) speaks HTTP/2 to it with h2, never through grpcio.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from edgekube.agent import grpc_health
from edgekube.agent.probe_checks import ProbeTarget, check
from edgekube.agent.probe_timing import ProbeKind
from edgekube.agent.runtime.fake import FakeRuntime
from edgekube.model.errors import ValidationError
from edgekube.model.names import PodUID
from edgekube.model.pod import Container, Pod
from tests.unit.test_runtime_contract import closed_port

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture(scope="module")
def health_server() -> Iterator[tuple[int, health.HealthServicer]]:
    """grpcio's health service: the server as a whole SERVING, `db` NOT_SERVING, `api` SERVING."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    servicer.set("", SERVING)
    servicer.set("db", NOT_SERVING)
    servicer.set("api", SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port, servicer
    server.stop(grace=None)


@pytest.fixture(scope="module")
def bare_server() -> Iterator[int]:
    """A gRPC server without the health service."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(grace=None)


def test_a_serving_server_is_healthy(health_server: tuple[int, Any]) -> None:
    result = grpc_health.check("127.0.0.1", health_server[0], "", 2.0)
    assert result == grpc_health.HealthResult(True, "service healthy")


def test_a_serving_service_is_healthy(health_server: tuple[int, Any]) -> None:
    assert grpc_health.check("127.0.0.1", health_server[0], "api", 2.0).ok


def test_a_not_serving_service_fails_with_the_kubelets_message(health_server: tuple[int, Any]) -> None:
    result = grpc_health.check("127.0.0.1", health_server[0], "db", 2.0)
    assert result == grpc_health.HealthResult(False, "service unhealthy (responded with 'NOT_SERVING')")


def test_a_service_the_server_does_not_know_is_a_not_found_rpc_error(health_server: tuple[int, Any]) -> None:
    result = grpc_health.check("127.0.0.1", health_server[0], "nope", 2.0)
    assert not result.ok
    assert result.message.startswith("error: health rpc probe failed: rpc error: code = NotFound desc = ")


def test_a_server_turning_not_serving_is_seen_on_the_next_check(health_server: tuple[int, Any]) -> None:
    port, servicer = health_server
    servicer.set("flip", SERVING)
    assert grpc_health.check("127.0.0.1", port, "flip", 2.0).ok
    servicer.set("flip", NOT_SERVING)
    assert not grpc_health.check("127.0.0.1", port, "flip", 2.0).ok


def test_an_unreachable_server_fails_to_connect() -> None:
    port = closed_port()
    result = grpc_health.check("127.0.0.1", port, "", 1.0)
    assert not result.ok
    assert result.message.startswith(f"timeout: failed to connect service '127.0.0.1:{port}' within 1s")


def test_a_server_without_the_health_service_does_not_implement_the_protocol(bare_server: int) -> None:
    result = grpc_health.check("127.0.0.1", bare_server, "", 2.0)
    assert not result.ok
    assert result.message.startswith("this server does not implement the grpc health protocol")


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        started = time.monotonic()
        result = grpc_health.check("127.0.0.1", listener.getsockname()[1], "", 0.3)
    assert result == grpc_health.HealthResult(False, "timeout: health rpc did not complete within 0.3s")
    assert time.monotonic() - started < 5  # bounded by the timeout, not hung


def _container(probe: dict[str, Any]) -> Container:
    return Container.model_validate({"name": "app", "image": "busybox", "livenessProbe": probe})


def test_a_grpc_probe_checks_the_pods_ip(health_server: tuple[int, Any]) -> None:
    container = _container({"grpc": {"port": health_server[0], "service": "db"}})
    target = ProbeTarget(PodUID("u"), "default/p", container, ProbeKind.LIVENESS, "i", 0.0, "127.0.0.1")
    result = check(target, FakeRuntime())
    assert (result.ok, result.message) == (False, "service unhealthy (responded with 'NOT_SERVING')")


def _pod(probe: dict[str, Any]) -> Pod:
    spec = {"containers": [{"name": "app", "image": "busybox", "readinessProbe": probe}]}
    return Pod.from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})


def test_a_grpc_probe_without_service_asks_about_the_whole_server() -> None:
    probe = _pod({"grpc": {"port": 9090}}).spec.containers[0].readiness_probe
    assert probe is not None and probe.grpc is not None
    assert (probe.grpc.port, probe.grpc.service) == (9090, None)


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_a_grpc_port_out_of_range_is_invalid(port: int) -> None:
    """validateGRPCAction: ValidatePortNumOrName(intstr.FromInt32(port)), 1..65535."""
    with pytest.raises(ValidationError, match=r"grpc.port: Invalid value: -?\d+: must be between 1 and 65535"):
        _pod({"grpc": {"port": port}})


def test_a_grpc_port_name_is_refused_as_kubernetes_decoder_does() -> None:
    """GRPCAction.port is an int32, not an IntOrString."""
    with pytest.raises(ValidationError, match=r"grpc\.port"):
        _pod({"grpc": {"port": "grpc"}})


def test_grpc_with_another_handler_is_forbidden() -> None:
    """validateHandler: the second handler (exec, httpGet, tcpSocket, grpc order) is Forbidden."""
    with pytest.raises(ValidationError, match="grpc: Forbidden: may not specify more than 1 handler type"):
        _pod({"grpc": {"port": 9090}, "tcpSocket": {"port": 9090}})
