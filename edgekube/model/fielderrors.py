"""Kubernetes' field-error wording for pydantic's error records; used by manifest and wire-message validation.

kubectl users know `spec.restartPolicy: Unsupported value: "always": supported values: "Always", "OnFailure",
"Never"` (apimachinery's field.NotSupported); pydantic says `Input should be 'Always', 'OnFailure' or 'Never'`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic_core import ErrorDetails

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
