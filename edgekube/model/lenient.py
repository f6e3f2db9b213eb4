"""Reading back what was already accepted (store, caches, NodeDesired, desired.json): by type, never re-validated.

Kubernetes validates an object when it is created or updated; what it stored is read back with the decoder only,
so a rule added by an upgrade never makes a stored object unreadable (docs/compatibility.md, "Upgrades:
ratcheting"). `decode_stored` is that read: the model's own validation first (the common case, with its defaults);
should it fail, the data is read by type alone: each part that validates is kept as validated, a part that breaks
a rule is built without its rules (`model_construct`), a number or boolean written as a string (`containerPort:
"80"`, which the models coerced before strict decoding) is converted, and unknown fields are dropped. Data of the
wrong shape (a mapping where a list belongs, a port that is no number) or without a value it cannot do without
(any `Required value` problem: no spec, no image) still raises the strict ValidationError.
Used by the agent (desired state) and the master (stored pods read by scheduling, controllers and dispatch).
"""

from __future__ import annotations

import enum
import functools
import types
import typing
from typing import Any, TypeVar

import pydantic

from edgekube.model.base import K8sModel
from edgekube.model.errors import ValidationError
from edgekube.model.manifest import ManifestError, validate_model

M = TypeVar("M", bound=K8sModel)
_REQUIRED = ": Required value"


class _Unreadable(Exception):
    """A value of the wrong shape for its field: the object cannot be read even leniently."""


def decode_stored(model: type[M], data: Any, *, what: str = "") -> M:
    """`model` from data stored or sent before: validated when it is valid, else read by type (see the module)."""
    try:
        return validate_model(model, data, source=what)
    except ManifestError as exc:
        if any(_REQUIRED in line for line in exc.problems):
            raise  # a field it cannot do without (no spec, no image): no reading makes it runnable
        strict = exc
    try:
        return typing.cast(M, _read(model, data))
    except _Unreadable:
        raise strict from None  # the strict problems name the field of the wrong shape


def is_strictly_valid(model: type[K8sModel], data: Any) -> bool:
    """True when `data` passes every rule of today's `model` (an object read with `decode_stored` may not)."""
    try:
        model.model_validate(data)
    except pydantic.ValidationError:
        return False
    return True


@functools.lru_cache(maxsize=512)
def _adapter(annotation: Any) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(annotation)


def _validated(annotation: Any, value: Any) -> tuple[bool, Any]:
    try:
        adapter = _adapter(annotation)
    except TypeError:  # unhashable annotation: not cached
        adapter = pydantic.TypeAdapter(annotation)
    try:
        return True, adapter.validate_python(value)
    except (pydantic.ValidationError, ValueError, TypeError):
        return False, None


def _read(annotation: Any, value: Any) -> Any:
    """`value` as `annotation` by type only; raises _Unreadable when its shape does not fit."""
    if value is None:
        return None
    ok, result = _validated(annotation, value)
    if ok:
        return result
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _read(args[0], value)
    if origin in (typing.Union, types.UnionType):
        for member in args:
            if member is type(None):
                continue
            try:
                return _read(member, value)
            except _Unreadable:
                continue
        raise _Unreadable(annotation)
    if origin in (list, tuple, set, frozenset) or annotation in (list, tuple):
        if not isinstance(value, list | tuple):
            raise _Unreadable(annotation)
        item = args[0] if args else Any
        return [_read(item, v) for v in value]
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise _Unreadable(annotation)
        item = args[1] if len(args) == 2 else Any
        return {k: _read(item, v) for k, v in value.items()}
    if isinstance(annotation, type) and issubclass(annotation, K8sModel):
        return _construct(annotation, value)
    return _scalar(annotation, value)


def _construct(model: type[K8sModel], value: Any) -> K8sModel:
    if not isinstance(value, dict):
        raise _Unreadable(model)
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        key = info.alias if info.alias in value else name
        if key in value and value[key] is not None:
            fields[name] = _read(info.annotation, value[key])
        elif info.is_required():
            raise _Unreadable(model)
    return model.model_construct(**fields)


def _scalar(annotation: Any, value: Any) -> Any:
    """What the lax (pre-strict) decoding made of a scalar: "80" → 80, "true" → True, 80.0 → 80."""
    if annotation is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
    elif annotation is int:
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif annotation is str:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
    elif isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        try:
            return annotation(value)
        except ValueError:
            return value  # an enum value this version does not know: kept as written
    elif annotation is Any:
        return value
    raise _Unreadable(annotation)


__all__ = ["ValidationError", "decode_stored", "is_strictly_valid"]
