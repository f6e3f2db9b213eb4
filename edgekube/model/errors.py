"""The one edgekube error hierarchy; every layer raises these and the CLI/daemons turn them into one line."""

from __future__ import annotations


class EdgekubeError(Exception):
    """Base class of every error edgekube raises on purpose."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        if hint:
            self.hint = hint


class ValidationError(EdgekubeError, ValueError):
    """Input (manifest, label, selector, payload) breaks a rule; the message names the field and the rule."""


class NotFoundError(EdgekubeError, LookupError):
    """The named object (pod, node, container) does not exist."""


class ConflictError(EdgekubeError):
    """An update carried a stale resourceVersion, or the object already exists."""


class StoreError(EdgekubeError, OSError):
    """The state store could not be read or written."""


class BusError(EdgekubeError, ConnectionError):
    """The MQTT broker could not be reached or did not answer in time."""


class RuntimeFailure(EdgekubeError, RuntimeError):
    """The container runtime (Podman) refused or failed an operation; `reason` is a Kubernetes-style word."""

    def __init__(self, message: str, *, reason: str = "RuntimeError", hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.reason = reason
