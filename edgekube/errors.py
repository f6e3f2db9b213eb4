"""Public home of the edgekube error hierarchy (re-exported from edgekube.model.errors)."""

from edgekube.model.errors import (
    BusError,
    ConflictError,
    EdgekubeError,
    InternalError,
    NotFoundError,
    RuntimeFailure,
    StoreError,
    ValidationError,
)

__all__ = [
    "BusError",
    "ConflictError",
    "EdgekubeError",
    "InternalError",
    "NotFoundError",
    "RuntimeFailure",
    "StoreError",
    "ValidationError",
]
