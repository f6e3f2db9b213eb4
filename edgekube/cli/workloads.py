"""Reading ReplicationControllers and ReplicaSets: selector text, template containers, the pods they own."""

from __future__ import annotations

from typing import Any

from edgekube.cli.status import NONE, items, section
from edgekube.model.errors import ValidationError
from edgekube.model.labels import Selector
from edgekube.model.types import Obj


def _selector(obj: Obj) -> Selector | None:
    """The controller's selector; None when absent or malformed (printers must not fail on it)."""
    raw: Any = section(obj, "spec").get("selector")
    if not isinstance(raw, dict):
        return None
    try:
        if obj.get("kind") in ("ReplicaSet", "Deployment"):
            labels, expressions = raw.get("matchLabels") or {}, raw.get("matchExpressions") or []
            return Selector.from_match_labels(labels, expressions, path="spec.selector")
        return Selector.from_set({str(k): str(v) for k, v in raw.items()})
    except (ValidationError, TypeError, AttributeError):
        return None


def selector_text(obj: Obj) -> str:
    """Format like kubectl's FormatLabels / FormatLabelSelector: `app=web,tier in (a,b)`, or <none>."""
    selector = _selector(obj)
    return str(selector) if selector is not None and not selector.is_empty() else NONE


def selector_query(obj: Obj) -> str | None:
    """The selector as a `list` request's selector; None when it selects nothing usable."""
    selector = _selector(obj)
    return str(selector) if selector is not None and not selector.is_empty() else None


def template(obj: Obj) -> Obj:
    return section(section(obj, "spec"), "template")


def containers(obj: Obj) -> list[Obj]:
    return items(section(template(obj), "spec"), "containers")


def wide_cells(obj: Obj) -> list[str]:
    """The `-o wide` cells of a controller's row: CONTAINERS IMAGES SELECTOR."""
    found = containers(obj)
    return [
        ",".join(str(c.get("name", "")) for c in found) or NONE,
        ",".join(str(c.get("image", "")) for c in found) or NONE,
        selector_text(obj),
    ]


def desired(obj: Obj) -> int:
    value = section(obj, "spec").get("replicas", 1)
    return value if isinstance(value, int) else 0


def status_count(obj: Obj, key: str) -> int:
    value = section(obj, "status").get(key, 0)
    return value if isinstance(value, int) else 0


def controller_of(obj: Obj) -> Obj | None:
    """The ownerReference marked `controller: true`, as kubectl's GetControllerOf."""
    for ref in items(section(obj, "metadata"), "ownerReferences"):
        if ref.get("controller"):
            return ref
    return None


def owns(controller: Obj, pod: Obj) -> bool:
    """Tell if `pod` is controlled by `controller`: by uid when both have one, else by kind and name."""
    ref = controller_of(pod)
    if ref is None:
        return False
    meta = section(controller, "metadata")
    if meta.get("uid") and ref.get("uid"):
        return bool(ref["uid"] == meta["uid"])
    return bool(ref.get("kind") == controller.get("kind") and ref.get("name") == meta.get("name"))


def pods_status(pods: list[Obj]) -> str:
    """`3 Running / 0 Waiting / 0 Succeeded / 0 Failed` by phase; Pending counts as Waiting."""
    phases = [section(p, "status").get("phase") or "Pending" for p in pods]
    running, waiting = phases.count("Running"), phases.count("Pending")
    succeeded, failed = phases.count("Succeeded"), phases.count("Failed")
    return f"{running} Running / {waiting} Waiting / {succeeded} Succeeded / {failed} Failed"
