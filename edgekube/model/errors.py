"""The one edgekube error hierarchy; each class carries its wire reason, so master, agent and CLI map errors alike.

Raise these anywhere; `ErrorInfo.of(exc)` (model.wire) turns one into the wire error and `ErrorInfo.raise_()` turns
it back into the same class on the other side. The reason words are Kubernetes' StatusReason where one fits.
"""

from __future__ import annotations

from typing import ClassVar


class EdgekubeError(Exception):
    """Base class of every error edgekube raises on purpose; on the wire: the request cannot be served now."""

    #: The word that names this class of error on the wire (`ErrorInfo.reason`); subclasses choose their own.
    reason: ClassVar[str] = "Unavailable"
    hint: str = ""

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        if hint:
            self.hint = hint


class ValidationError(EdgekubeError, ValueError):
    """Input (manifest, label, selector, payload) breaks a rule; the message names the field and the rule."""

    reason = "Invalid"


class NotFoundError(EdgekubeError, LookupError):
    """The named object (pod, node, container) does not exist."""

    reason = "NotFound"


class ConflictError(EdgekubeError):
    """An update carried a stale resourceVersion, or the object already exists."""

    reason = "Conflict"


class StoreError(EdgekubeError, OSError):
    """The state store could not be read or written."""


class StorageError(EdgekubeError, OSError):
    """An NFS server or a volume could not be reached or used."""


class BusError(EdgekubeError, ConnectionError):
    """The MQTT broker could not be reached or did not answer in time."""


class RuntimeFailure(EdgekubeError, RuntimeError):
    """The container runtime (Podman) refused or failed an operation; `failure` is a Kubernetes-style word."""

    def __init__(self, message: str, *, reason: str = "RuntimeError", hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.failure = reason


class InternalError(EdgekubeError):
    """A bug: an exception edgekube did not raise on purpose, reported with the daemon whose log has the trace."""

    reason = "Internal"


#: Wire reason -> the class a receiver raises (the most general class that carries it).
BY_REASON: dict[str, type[EdgekubeError]] = {
    cls.reason: cls for cls in (InternalError, ConflictError, NotFoundError, ValidationError, EdgekubeError)
}
