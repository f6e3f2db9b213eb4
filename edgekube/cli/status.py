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


def _last_finished(cs: Obj) -> datetime | None:
    return parse_timestamp(section(section(cs, "lastState"), "terminated").get("finishedAt"))


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None or (b is not None and b > a) else a


@dataclass
class _Init:
    """What kubectl's printPod gets from the init containers: the reason while initializing, counts of sidecars."""

    reason: str | None = None  # set while the pod is initializing (Init:1/2, Init:Error, ...)
    ready: int = 0  # started and ready sidecars
    restarts: int = 0  # every init container's restarts
    sidecar_restarts: int = 0
    last: datetime | None = None
    sidecar_last: datetime | None = None


def _init_containers(spec: Obj, status: Obj) -> _Init:
    sidecars = {c.get("name") for c in items(spec, "initContainers") if c.get("restartPolicy") == "Always"}
    total = len(items(spec, "initContainers"))
    out = _Init()
    for i, cs in enumerate(items(status, "initContainerStatuses")):
        out.restarts += int(cs.get("restartCount") or 0)
        out.last = _later(out.last, _last_finished(cs))
        sidecar = cs.get("name") in sidecars
        if sidecar:
            out.sidecar_restarts += int(cs.get("restartCount") or 0)
            out.sidecar_last = _later(out.sidecar_last, _last_finished(cs))
        state = section(cs, "state")
        terminated, waiting = section(state, "terminated"), section(state, "waiting")
        if state.get("terminated") is not None and terminated.get("exitCode") == 0:
            continue
        if sidecar and cs.get("started"):
            out.ready += 1 if cs.get("ready") else 0
            continue
        if state.get("terminated") is not None:  # initialization failed
            if terminated.get("reason"):
                out.reason = f"Init:{terminated['reason']}"
            elif terminated.get("signal"):
                out.reason = f"Init:Signal:{terminated['signal']}"
            else:
                out.reason = f"Init:ExitCode:{terminated.get('exitCode', 0)}"
        elif waiting.get("reason") and waiting["reason"] != "PodInitializing":
            out.reason = f"Init:{waiting['reason']}"
        else:
            out.reason = f"Init:{i}/{total}"
        break
    return out


def pod_summary(pod: Obj, now: datetime | None = None) -> PodSummary:
    """Port of kubectl's printPod, init containers and sidecars (restartPolicy Always) included."""
    spec, status = section(pod, "spec"), section(pod, "status")
    sidecars = sum(1 for c in items(spec, "initContainers") if c.get("restartPolicy") == "Always")
    total = len(items(spec, "containers")) + sidecars
    reason = str(status.get("phase") or "Pending")
    if status.get("reason") and status["reason"] not in _CONDITION_REASONS:
        reason = str(status["reason"])
    init = _init_containers(spec, status)
    ready, restarts, last_restart = init.ready, init.restarts, init.last
    initialized = any(c.get("type") == "Initialized" and c.get("status") == "True" for c in items(status, "conditions"))
    if init.reason is not None:
        reason = init.reason
    has_running = False
    containers = items(status, "containerStatuses") if init.reason is None or initialized else []
    if init.reason is None or initialized:
        restarts, last_restart = init.sidecar_restarts, init.sidecar_last
    # Reversed, as kubectl does, so the first container's reason is the one that wins.
    for cs in reversed(containers):
        restarts += int(cs.get("restartCount") or 0)
        last_restart = _later(last_restart, _last_finished(cs))
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
    if last_restart is not None and restarts:
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
