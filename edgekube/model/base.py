"""Shared pydantic base for Kubernetes-shaped objects: camelCase on the wire, unknown fields rejected."""

from __future__ import annotations

from typing import Annotated, Any, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainValidator, Strict, model_validator
from pydantic.alias_generators import to_camel

from edgekube.model.fielderrors import quote


def _bits(bits: int) -> AfterValidator:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def check(value: int) -> int:
        if not low <= value <= high:
            # Kubernetes' JSON decoder: "cannot unmarshal number 4294967296 into ... of type int32".
            raise ValueError(f"Invalid value: {value}: cannot unmarshal number into a field of type int{bits}")
        return value

    return AfterValidator(check)


#: Kubernetes' int32 and int64 fields as its decoder reads them: a JSON integer (no "3", no 2.5) in range.
Int32 = Annotated[int, Strict(), _bits(32)]
Int64 = Annotated[int, Strict(), _bits(64)]


def _int_or_string(value: object) -> int | str:
    """intstr.IntOrString's UnmarshalJSON: a JSON string stays a string, else an int32; nothing else."""
    if isinstance(value, str):
        return value
    if type(value) is int and -(2**31) <= value < 2**31:
        return value
    kind = "number" if isinstance(value, int | float) and not isinstance(value, bool) else type(value).__name__
    raise ValueError(f"Invalid value: {quote(value)}: cannot unmarshal {kind} into a field of type int32 or string")


#: A port (or other IntOrString field): 8080 and "http" are both kept as given, never turned into each other.
IntOrString = Annotated[int | str, PlainValidator(_int_or_string, json_schema_input_type=int | str)]


class K8sModel(BaseModel):
    """Base of every manifest part: a field we do not support is an error, never silently dropped."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
        validate_assignment=False,
    )

    @model_validator(mode="before")
    @classmethod
    def _null_is_unset(cls, data: Any) -> Any:
        """Go's JSON decoder leaves a field given as null at its zero value: `resources: null` is no resources."""
        if isinstance(data, dict) and None in data.values():
            return {key: value for key, value in data.items() if value is not None}
        return data

    def to_dict(self) -> dict[str, Any]:
        """Wire/store form: camelCase keys, unset optional fields left out, JSON-safe values."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Validate a wire/store dict; raises edgekube's ValidationError (see manifest.validate_object)."""
        from edgekube.model.manifest import validate_model  # noqa: PLC0415 - avoids an import cycle

        return validate_model(cls, data)
