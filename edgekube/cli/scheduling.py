"""kubectl's one-line taints (`key=value:NoSchedule`) and tolerations (`key:NoExecute op=Exists for 300s`)."""

from __future__ import annotations

from edgekube.model.types import Obj


def taint_text(taint: Obj) -> str:
    key, value, effect = taint.get("key", ""), taint.get("value") or "", taint.get("effect", "")
    return f"{key}={value}:{effect}" if value else f"{key}:{effect}"


def taints(node_taints: list[Obj]) -> list[str]:
    """Sorted by effect, then key, as kubectl's printTaintsMultiline does."""
    ordered = sorted(node_taints, key=lambda t: f"{t.get('effect', '')},{t.get('key', '')}")
    return [taint_text(t) for t in ordered]


def toleration_text(toleration: Obj) -> str:
    """Port of kubectl's printTolerationsMultiline for one toleration."""
    key, value = str(toleration.get("key") or ""), str(toleration.get("value") or "")
    effect, operator = str(toleration.get("effect") or ""), toleration.get("operator") or "Equal"
    text = key + (f"={value}" if value else "") + (f":{effect}" if effect else "")
    if operator == "Exists" and not value:
        # An empty key and effect with Exists tolerates everything: kubectl prints just `op=Exists`.
        text += " op=Exists" if key or effect else "op=Exists"
    seconds = toleration.get("tolerationSeconds")
    if seconds is not None:
        text += f" for {seconds}s"
    return text
