"""What `ekctl get` shows of an object's state: kubectl's READY/STATUS/RESTARTS and node STATUS/ROLES."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from edgekube.cli.timefmt import human_duration, parse_timestamp
from edgekube.model.types import Obj

NONE = "<none>"
#: The edgekube master mirrors the PodScheduled condition's reason into status.reason; Kubernetes keeps it
#: in the condition only, so kubectl shows such pods as Pending and so do we.
_CONDITION_REASONS = frozenset({"Unschedulable", "SchedulingGated"})
_ROLE_PREFIX = "node-role.kubernetes.io/"


def section(obj: Obj, key: str) -> Obj:
    """Return a nested mapping, or {} when absent/null, so printers never fail on a partial object."""
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def items(obj: Obj, key: str) -> list[Obj]:
    value = obj.get(key)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


@dataclass(frozen=True)
class PodSummary:
    ready: str
    status: str
    restarts: str


def pod_summary(pod: Obj, now: datetime | None = None) -> PodSummary:
    """Port of kubectl's printPod (init containers aside, which edgekube does not support)."""
    spec, status = section(pod, "spec"), section(pod, "status")
    total = len(items(spec, "containers"))
    reason = str(status.get("phase") or "Pending")
    if status.get("reason") and status["reason"] not in _CONDITION_REASONS:
        reason = str(status["reason"])
    ready = restarts = 0
    last_restart = None
    has_running = False
    # Reversed, as kubectl does, so the first container's reason is the one that wins.
    for cs in reversed(items(status, "containerStatuses")):
        restarts += int(cs.get("restartCount") or 0)
        finished = parse_timestamp(section(section(cs, "lastState"), "terminated").get("finishedAt"))
        if finished is not None and (last_restart is None or finished > last_restart):
            last_restart = finished
        state = section(cs, "state")
        waiting, terminated = state.get("waiting"), state.get("terminated")
        if isinstance(waiting, dict) and waiting.get("reason"):
            reason = str(waiting["reason"])
        elif isinstance(terminated, dict) and terminated.get("reason"):
            reason = str(terminated["reason"])
        elif isinstance(terminated, dict):
            signal = terminated.get("signal")
            reason = f"Signal:{signal}" if signal else f"ExitCode:{terminated.get('exitCode', 0)}"
        elif cs.get("ready") and isinstance(state.get("running"), dict):
            has_running = True
            ready += 1
    if reason == "Completed" and has_running:
        ready_condition = any(c.get("type") == "Ready" for c in items(status, "conditions"))
        reason = "Running" if ready_condition else "NotReady"
    terminal = status.get("phase") in ("Succeeded", "Failed")
    if section(pod, "metadata").get("deletionTimestamp") and not terminal:
        reason = "Terminating"
    shown = str(restarts)
    if last_restart is not None:
        shown += f" ({human_duration((now or datetime.now(UTC)) - last_restart)} ago)"
    return PodSummary(ready=f"{ready}/{total}", status=reason, restarts=shown)


def node_status(node: Obj) -> str:
    """Ready / NotReady / Unknown from the Ready condition, plus SchedulingDisabled when cordoned."""
    words = []
    for condition in items(section(node, "status"), "conditions"):
        if condition.get("type") == "Ready":
            words.append("Ready" if condition.get("status") == "True" else "NotReady")
            break
    if not words:
        words.append("Unknown")
    if section(node, "spec").get("unschedulable"):
        words.append("SchedulingDisabled")
    return ",".join(words)


def node_roles(node: Obj) -> str:
    labels = section(section(node, "metadata"), "labels")
    roles = {key.removeprefix(_ROLE_PREFIX) for key in labels if key.startswith(_ROLE_PREFIX)}
    if labels.get("kubernetes.io/role"):
        roles.add(str(labels["kubernetes.io/role"]))
    return ",".join(sorted(r for r in roles if r)) or NONE


def node_address(node: Obj, kind: str) -> str:
    for address in items(section(node, "status"), "addresses"):
        if address.get("type") == kind and address.get("address"):
            return str(address["address"])
    return NONE
