"""The dashboard's rows: what the page shows of each object, as small JSON dicts (pure; no I/O, no locks).

Called by master.dashboard.feed for the snapshot a browser gets when it connects and for every change after.
A row carries only what the page draws, so a change the page would not show sends nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgekube.model.types import Obj

#: Controller kinds the page lists (Deployment only where the master stores them).
CONTROLLER_KINDS = ("Deployment", "ReplicaSet", "ReplicationController")
#: The newest events the page keeps.
EVENTS_SHOWN = 30


def pod_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def pod_row(obj: Obj) -> Obj:
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    containers = status.get("containerStatuses") or []
    total = len(spec.get("containers") or []) or len(containers)
    ready = sum(1 for c in containers if c.get("ready"))
    phase = status.get("phase") or "Pending"
    if meta.get("deletionTimestamp"):
        phase = "Terminating"
    return {
        "key": pod_key(meta.get("namespace") or "", meta["name"]),
        "namespace": meta.get("namespace") or "",
        "name": meta["name"],
        "node": spec.get("nodeName") or "",
        "phase": phase,
        "ready": f"{ready}/{total}",
        "restarts": sum(int(c.get("restartCount") or 0) for c in containers),
    }


def controller_key(kind: str, namespace: str, name: str) -> str:
    return f"{kind}/{namespace}/{name}"


def controller_row(kind: str, obj: Obj) -> Obj:
    """Desired, ready, up-to-date and available replicas; for a Deployment, its Progressing condition too."""
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    desired = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    row: Obj = {
        "key": controller_key(kind, meta.get("namespace") or "", meta["name"]),
        "kind": kind,
        "namespace": meta.get("namespace") or "",
        "name": meta["name"],
        "desired": desired,
        "current": int(status.get("replicas") or 0),
        "ready": int(status.get("readyReplicas") or 0),
        "available": int(status.get("availableReplicas") or 0),
    }
    if kind == "Deployment":
        row["updated"] = int(status.get("updatedReplicas") or 0)
        row["paused"] = bool(spec.get("paused"))
        progressing = _condition(status, "Progressing")
        if progressing is not None:
            row["progress"] = str(progressing.get("reason") or "")
    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
    if owner is not None:
        row["owner"] = f"{owner.get('kind')}/{owner.get('name')}"
    return row


def node_row(node: Obj, *, ready: bool, reason: str, usage: Mapping[str, float]) -> Obj:
    """A Node as the page shows it: live readiness and usage from the master's memory, LEDs from its status."""
    status = node.get("status") or {}
    leds = status.get("leds") or {}
    capacity = status.get("capacity") or {}
    row: Obj = {
        "name": node["metadata"]["name"],
        "ready": ready,
        "reason": reason,
        "unschedulable": bool((node.get("spec") or {}).get("unschedulable")),
        "leds": {k: leds[k] for k in ("pattern", "description", "identifyUntil") if leds.get(k)},
        "podsMax": str(capacity.get("pods") or ""),
    }
    for key, name in (
        ("socTemperatureC", "temperature"),
        ("cpuCores", "cpu"),
        ("cpuCapacityCores", "cpuCapacity"),
        ("memoryWorkingSetBytes", "memory"),
        ("memoryTotalBytes", "memoryTotal"),
    ):
        if ready and key in usage:
            row[name] = round(float(usage[key]), 3)
    return row


def event_row(event: Obj) -> Obj:
    involved = event.get("involvedObject") or {}
    return {
        "key": f"{event['metadata'].get('namespace') or ''}/{event['metadata']['name']}",
        "type": event.get("type") or "Normal",
        "reason": event.get("reason") or "",
        "object": f"{str(involved.get('kind') or '').lower()}/{involved.get('name') or ''}",
        "message": event.get("message") or "",
        "count": int(event.get("count") or 1),
        "last": event.get("lastTimestamp") or "",
    }


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)
