"""Shared pydantic base for Kubernetes-shaped objects: camelCase on the wire, unknown fields rejected."""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class K8sModel(BaseModel):
    """Base of every manifest part: a field we do not support is an error, never silently dropped."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
        validate_assignment=False,
    )

    def to_dict(self) -> dict[str, Any]:
        """Wire/store form: camelCase keys, unset optional fields left out, JSON-safe values."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Validate a wire/store dict; raises edgekube's ValidationError (see manifest.validate_object)."""
        from edgekube.model.manifest import validate_model  # noqa: PLC0415 - avoids an import cycle

        return validate_model(cls, data)
