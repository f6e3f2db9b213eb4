"""Lifecycle hooks in the Pod model: Kubernetes' rules (validation.go) and the hook as a container keeps it."""

from __future__ import annotations

from typing import Any

import pytest

from edgekube.model.errors import ValidationError
from edgekube.model.lifecycle import LifecycleHandler, restored, stored
from edgekube.model.pod import Pod


def _pod(lifecycle: dict[str, Any], grace: int | None = None, **container: Any) -> Pod:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox", "lifecycle": lifecycle, **container}]}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return Pod.from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})


def _error(lifecycle: dict[str, Any], grace: int | None = None) -> str:
    with pytest.raises(ValidationError) as caught:
        _pod(lifecycle, grace)
    return str(caught.value)


@pytest.mark.parametrize(
    "handler",
    [
        {"exec": {"command": ["sh", "-c", "echo hi"]}},
        {"httpGet": {"path": "/drain", "port": 8080, "scheme": "HTTPS", "httpHeaders": [{"name": "X", "value": "1"}]}},
        {"httpGet": {"port": "admin"}},
        {"sleep": {"seconds": 5}},
        {"tcpSocket": {"port": 80}},
    ],
    ids=["exec", "httpGet", "httpGet-named-port", "sleep", "tcpSocket"],
)
def test_each_handler_type_is_accepted_as_post_start_and_pre_stop(handler: dict[str, Any]) -> None:
    """validateHandler accepts exec, httpGet, tcpSocket (deprecated: accepted, fails when run) and sleep."""
    pod = _pod({"postStart": handler, "preStop": handler})
    lifecycle = pod.spec.containers[0].lifecycle
    assert lifecycle is not None and lifecycle.post_start is not None and lifecycle.pre_stop is not None
    assert lifecycle.pre_stop.kind() == next(iter(handler))


def test_a_hook_without_a_handler_is_required_value() -> None:
    """validateHandler: `field.Required(fldPath, "must specify a handler type")`."""
    assert "lifecycle.preStop: Required value: must specify a handler type" in _error({"preStop": {}})


def test_a_hook_with_two_handlers_names_the_second_as_forbidden() -> None:
    """validateHandler: the second handler found (exec, httpGet, tcpSocket, grpc, sleep order) is Forbidden."""
    error = _error({"postStart": {"sleep": {"seconds": 1}, "exec": {"command": ["true"]}}})
    assert "lifecycle.postStart.sleep: Forbidden: may not specify more than 1 handler type" in error


def test_sleep_longer_than_the_grace_period_is_invalid() -> None:
    """validateSleepAction: seconds must be within 0..terminationGracePeriodSeconds (the pod's)."""
    error = _error({"preStop": {"sleep": {"seconds": 11}}}, grace=10)
    assert error.endswith(
        "spec.containers[0].lifecycle.preStop.sleep: Invalid value: 11: must be non-negative and less than "
        "terminationGracePeriodSeconds (10)"
    )


def test_sleep_equal_to_the_grace_period_and_zero_are_valid() -> None:
    """validateSleepAction: `sleep.Seconds > *gracePeriod` is refused; 0 is allowed (SleepActionAllowZero)."""
    _pod({"preStop": {"sleep": {"seconds": 10}}, "postStart": {"sleep": {"seconds": 0}}}, grace=10)


def test_negative_sleep_is_invalid() -> None:
    """validateSleepAction: a negative duration is refused whatever the grace period."""
    assert "postStart.sleep: Invalid value: -1: must be non-negative" in _error(
        {"postStart": {"sleep": {"seconds": -1}}}
    )


def test_stop_signal_is_not_supported() -> None:
    """Lifecycle.stopSignal (ContainerStopSignals, alpha, needs spec.os.name): edgekube refuses it."""
    assert "lifecycle.stopSignal: not supported" in _error({"stopSignal": "SIGUSR1"})


def test_stored_hook_resolves_named_ports_and_reads_back() -> None:
    hook = LifecycleHandler.model_validate({"httpGet": {"path": "/drain", "port": "admin"}})
    back = restored(stored(hook, {"admin": 8081}))
    assert back is not None and back.http_get is not None
    assert back.http_get.port == 8081
    assert back.http_get.path == "/drain"


def test_stored_hook_keeps_a_port_name_the_container_does_not_declare() -> None:
    """Left for the run to fail on ("not a named port"), as the kubelet's hook would."""
    hook = LifecycleHandler.model_validate({"tcpSocket": {"port": "nope"}})
    back = restored(stored(hook, {}))
    assert back is not None and back.tcp_socket is not None and back.tcp_socket.port == "nope"


@pytest.mark.parametrize("text", [None, "", "{", '{"bogus": 1}'])
def test_a_missing_or_unreadable_stored_hook_is_none(text: str | None) -> None:
    assert restored(text) is None
