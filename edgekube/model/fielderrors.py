"""Kubernetes' field-error wording for pydantic's error records; used by manifest and wire-message validation.

kubectl users know `spec.restartPolicy: Unsupported value: "always": supported values: "Always", "OnFailure",
"Never"` (apimachinery's field.NotSupported); pydantic says `Input should be 'Always', 'OnFailure' or 'Never'`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from pydantic_core import ErrorDetails

from edgekube.model.errors import ValidationError

_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'")
_BOUNDS = {
    "greater_than": "must be greater than",
    "greater_than_equal": "must be greater than or equal to",
    "less_than": "must be less than",
    "less_than_equal": "must be less than or equal to",
}


def quote(value: Any) -> str:
    """A value as Kubernetes prints it in field errors: strings quoted (Go's %q), everything else as JSON."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def message(error: ErrorDetails) -> str:
    """The rule an error record says was broken, in Kubernetes' words where Kubernetes has them."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "Required value"
    if kind == "extra_forbidden":
        return "not supported"
    if kind in ("literal_error", "enum"):
        supported = ", ".join(quote(v) for v in _QUOTED.findall(str(ctx.get("expected", ""))))
        return f"Unsupported value: {quote(error.get('input'))}: supported values: {supported}"
    if kind in _BOUNDS:
        limit = next(iter(ctx.values()), "")
        return f"Invalid value: {quote(error.get('input'))}: {_BOUNDS[kind]} {limit}"
    text = str(error["msg"])
    return text.removeprefix("Value error, ")


def manifest_message(error: ErrorDetails) -> str:
    """message(), with a wrong JSON type worded as Kubernetes' decoder refuses it (no "80" for 80, no "true")."""
    kind = error["type"]
    if kind in _DECODE_TYPES:
        given = error.get("input")
        shown = quote(given) if isinstance(given, dict | list) else go_value(given)
        return (
            f"Invalid value: {shown}: cannot unmarshal {_json_type(given)} into a field of type {_DECODE_TYPES[kind]}"
        )
    return message(error)


_DECODE_TYPES = {
    "int_type": "integer",
    "int_parsing": "integer",
    "int_from_float": "integer",
    "bool_type": "boolean",
    "bool_parsing": "boolean",
    "string_type": "string",
    "float_type": "number",
    "float_parsing": "number",
    "list_type": "array",
    "dict_type": "object",
    "model_type": "object",
    "model_attributes_type": "object",
}


def _json_type(value: Any) -> str:
    """The JSON type of a decoded value, as Go's encoding/json names it in an UnmarshalTypeError."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null" if value is None else type(value).__name__


def go_value(value: Any) -> str:
    """A bad value as apimachinery's field.Error prints it: %q for strings, %v for numbers, %#v for maps."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        pairs = ", ".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in sorted(value.items()))
        return f"map[string]string{{{pairs}}}"
    return quote(value)


def _at(path: str, text: str) -> str:
    return f"{path}: {text}" if path else text


def invalid(path: str, value: Any, detail: str) -> str:
    """field.Invalid: `path: Invalid value: "x": detail`."""
    return _at(path, f"Invalid value: {go_value(value)}: {detail}")


def required(path: str, detail: str = "") -> str:
    """field.Required: `path: Required value` (`: detail` when there is one)."""
    return _at(path, f"Required value: {detail}" if detail else "Required value")


def not_supported(path: str, value: Any, supported: Iterable[str]) -> str:
    """field.NotSupported: `path: Unsupported value: "x": supported values: "a", "b"`."""
    shown = ", ".join(json.dumps(s) for s in supported)
    return _at(path, f"Unsupported value: {go_value(value)}: supported values: {shown}")


def duplicate(path: str, value: Any) -> str:
    """field.Duplicate: `path: Duplicate value: "x"`."""
    return _at(path, f"Duplicate value: {go_value(value)}")


def not_found(path: str, value: Any) -> str:
    """field.NotFound: `path: Not found: "x"`."""
    return _at(path, f"Not found: {go_value(value)}")


def forbidden(path: str, detail: str) -> str:
    """field.Forbidden: `path: Forbidden: detail`."""
    return _at(path, f"Forbidden: {detail}")


def child(*parts: str | int) -> str:
    """A field path built like field.NewPath(...).Child/Index: `containers[0].ports[1].name`."""
    path = ""
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part:
            path = f"{path}.{part}" if path else part
    return path


class Problems:
    """A model validator's field.ErrorList: add every broken rule, then `raise_any()` reports them all at once.

    The manifest loader splits the message into one problem per line and prefixes each with the model's path.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def run(self, path: str, check: Callable[[], object]) -> None:
        """Run a check that raises ValidationError; its lines join this list, under `path` when they are bare."""
        try:
            check()
        except ValueError as exc:
            for line in str(exc).splitlines():
                self.lines.append(nest(path, line))

    def raise_any(self) -> None:
        if self.lines:
            raise ValidationError("\n".join(self.lines))


def nest(path: str, line: str) -> str:
    """A problem line reported relative to `path`: `path.sub: rule`, `path[key]: rule` or `path: rule`."""
    if not path:
        return line
    if line.startswith(("[", ".")):
        return path + line
    if is_subpath(line):
        return f"{path}.{line}"
    return f"{path}: {line}"


def is_subpath(line: str) -> bool:
    """True when a line already names a field relative to its model (`containers[1].name: …`)."""
    head, sep, _ = line.partition(": ")
    if not sep or not head or " " in head or '"' in head[:1]:
        return False
    return head[0].isalpha() and head[0].islower()
