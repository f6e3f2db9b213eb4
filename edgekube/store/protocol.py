"""The StateStore Protocol: what the master's API server, scheduler and controllers need from state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from edgekube.model.types import Obj as Object

# Objects are plain JSON-able dicts in Kubernetes shape:
#   {"apiVersion", "kind", "metadata": {"name", "namespace", "uid", "resourceVersion",
#    "creationTimestamp", ...}, "spec": ..., "status": ...}
# Spelled out once here because a method named `list` hides the builtin inside the class body.
ObjectList = list[Object]

__all__ = ["Object", "ObjectList", "StateStore"]


class StateStore(Protocol):
    """Objects keyed by (kind, namespace, name); cluster-scoped kinds such as Node use namespace "".

    Every returned dict is a fresh copy the caller may mutate.  resourceVersion is the string form of a
    store-wide integer that only grows, across restarts too.
    """

    def create(self, obj: Mapping[str, Any]) -> Object:
        """Store a new object; assign uid (if absent), creationTimestamp and resourceVersion.

        Raises ConflictError if (kind, namespace, name) exists, ValidationError if kind or name is missing.
        """
        ...

    def update(self, obj: Mapping[str, Any]) -> Object:
        """Replace an object, keeping uid and creationTimestamp and bumping resourceVersion.

        A metadata.resourceVersion in obj must equal the stored one (optimistic concurrency), else
        ConflictError; NotFoundError if the object does not exist.
        """
        ...

    def get(self, kind: str, namespace: str, name: str) -> Object:
        """Return the object; NotFoundError if it does not exist."""
        ...

    def list(self, kind: str, namespace: str | None = None) -> ObjectList:
        """Return the objects of a kind in a namespace (None: all namespaces), sorted by namespace, name."""
        ...

    def delete(self, kind: str, namespace: str, name: str, resource_version: str | None = None) -> Object:
        """Remove an object and return it as it was; NotFoundError, or ConflictError on a stale version."""
        ...

    def close(self) -> None:
        """Release the files; the store is unusable afterwards."""
        ...
