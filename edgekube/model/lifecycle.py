"""Container lifecycle hooks (postStart, preStop) with Kubernetes' handlers and rules; part of model.pod's Container.

The agent runs them (agent/hooks.py): postStart right after the container started, preStop before its stop signal,
within the pod's terminationGracePeriodSeconds. `tcpSocket` is kept, as in Kubernetes, only for compatibility:
validation accepts it and running it fails ("Cannot run handler"), exactly as the kubelet does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from pydantic import StrictInt, model_validator

from edgekube.model.base import K8sModel
from edgekube.model.errors import ValidationError
from edgekube.model.probe import ExecAction, HTTPGetAction, TCPSocketAction


class SleepAction(K8sModel):
    """Pause for `seconds` (Kubernetes' PodLifecycleSleepAction; 0 is allowed, PodLifecycleSleepActionAllowZero)."""

    seconds: StrictInt


class LifecycleHandler(K8sModel):
    """Exactly one of exec, httpGet, sleep (or the deprecated tcpSocket, which fails when run)."""

    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    sleep: SleepAction | None = None

    @model_validator(mode="after")
    def _one_handler(self) -> LifecycleHandler:
        """validateHandler: one handler type, no more."""
        named = [name for name, h in self._handlers() if h is not None]
        if not named:
            raise ValidationError("Required value: must specify a handler type")
        if len(named) > 1:
            raise ValidationError(f"{named[1]}: Forbidden: may not specify more than 1 handler type")
        return self

    def _handlers(self) -> tuple[tuple[str, K8sModel | None], ...]:
        # validateHandler's order, which decides the field named in the "more than 1" error.
        return (("exec", self.exec), ("httpGet", self.http_get), ("tcpSocket", self.tcp_socket), ("sleep", self.sleep))

    def kind(self) -> str:
        """The handler's manifest key (`exec`, `httpGet`, `tcpSocket`, `sleep`)."""
        return next(name for name, h in self._handlers() if h is not None)


class Lifecycle(K8sModel):
    post_start: LifecycleHandler | None = None
    pre_stop: LifecycleHandler | None = None


def sleep_errors(lifecycle: Lifecycle | None, grace_seconds: int, path: str) -> list[str]:
    """validateSleepAction: each hook's sleep is within 0..terminationGracePeriodSeconds (the pod's)."""
    if lifecycle is None:
        return []
    errors = []
    for key, handler in (("postStart", lifecycle.post_start), ("preStop", lifecycle.pre_stop)):
        if handler is None or handler.sleep is None:
            continue
        seconds = handler.sleep.seconds
        if seconds < 0 or seconds > grace_seconds:
            errors.append(
                f"{path}.lifecycle.{key}.sleep: Invalid value: {seconds}: must be non-negative and less than "
                f"terminationGracePeriodSeconds ({grace_seconds})"
            )
    return errors


def stored(handler: LifecycleHandler, ports: Mapping[str, int]) -> str:
    """A hook as the runtime keeps it on its container (the kubelet's preStopHandler label): JSON.

    Named ports are resolved with `ports` (the container's `ports[].name`): it must run without the pod's spec
    (a deleted pod's preStop).
    """
    data = handler.to_dict()
    for key in ("httpGet", "tcpSocket"):
        action = data.get(key)
        if action is not None and isinstance(action.get("port"), str) and action["port"] in ports:
            action["port"] = ports[action["port"]]
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def restored(text: str | None) -> LifecycleHandler | None:
    """The hook `stored` wrote; None for no label or one this version cannot read."""
    if not text:
        return None
    try:
        return LifecycleHandler.model_validate(json.loads(text))
    except ValueError:
        return None
