"""Type aliases shared by every layer."""

from __future__ import annotations

from typing import Any

#: A JSON object in Kubernetes shape (a stored object, a manifest document, a wire payload's part).
Obj = dict[str, Any]
