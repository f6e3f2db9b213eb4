"""Reading Deployments for ekctl: `get deploy` rows, `describe deploy`, rollout status and history (kubectl's words).

Called by cli.tables, cmd_describe and cmd_rollout. Ports of kubectl's printDeployment, DeploymentDescriber,
DeploymentStatusViewer.Status and DeploymentHistoryViewer.
"""

from __future__ import annotations

from datetime import datetime

from edgekube.cli import workloads
from edgekube.cli.describe import Writer
from edgekube.cli.describe_controller import _conditions, _template
from edgekube.cli.status import NONE, items, section
from edgekube.cli.timefmt import age, rfc1123
from edgekube.model.deployment import CHANGE_CAUSE_ANNOTATION, REVISION_ANNOTATION, TEMPLATE_HASH_LABEL
from edgekube.model.types import Obj

DEPLOYMENT_HEADER = ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"


def _count(obj: Obj, key: str) -> int:
    return workloads.status_count(obj, key)


def deployment_row(obj: Obj, *, wide: bool, now: datetime | None = None) -> list[str]:
    """printDeployment: NAME READY (ready/desired) UP-TO-DATE AVAILABLE AGE; -o wide CONTAINERS IMAGES SELECTOR."""
    meta = section(obj, "metadata")
    row = [
        str(meta.get("name", "")),
        f"{_count(obj, 'readyReplicas')}/{workloads.desired(obj)}",
        str(_count(obj, "updatedReplicas")),
        str(_count(obj, "availableReplicas")),
        age(meta.get("creationTimestamp"), now),
    ]
    if wide:
        row += workloads.wide_cells(obj)
    return row


def revision(obj: Obj) -> int:
    text = str(section(section(obj, "metadata"), "annotations").get(REVISION_ANNOTATION, ""))
    return int(text) if text.isdigit() else 0


def owned_replica_sets(deployment: Obj, replica_sets: list[Obj]) -> list[Obj]:
    """The ReplicaSets the Deployment controls, oldest revision first."""
    return sorted((rs for rs in replica_sets if workloads.owns(deployment, rs)), key=revision)


def without_hash(template: Obj) -> Obj:
    meta = dict(section(template, "metadata"))
    meta["labels"] = {k: v for k, v in section(meta, "labels").items() if k != TEMPLATE_HASH_LABEL}
    return {**template, "metadata": meta}


def is_new(deployment: Obj, rs: Obj) -> bool:
    """EqualIgnoreHash: the ReplicaSet runs the Deployment's current template."""
    return without_hash(workloads.template(rs)) == without_hash(workloads.template(deployment))


def _strategy_text(spec: Obj) -> str:
    rolling = section(section(spec, "strategy"), "rollingUpdate")
    return f"{rolling.get('maxUnavailable', '25%')} max unavailable, {rolling.get('maxSurge', '25%')} max surge"


def _rs_text(rs: Obj) -> str:
    name = section(rs, "metadata").get("name", "")
    return f"{name} ({_count(rs, 'replicas')}/{workloads.desired(rs)} replicas created)"


def describe_deployment(
    obj: Obj, replica_sets: list[Obj], events: list[Obj] | None = None, now: datetime | None = None
) -> str:
    """DeploymentDescriber; `replica_sets` are those of its namespace (the owned ones are picked here)."""
    meta, spec = section(obj, "metadata"), section(obj, "spec")
    w = Writer()
    w.field(0, "Name", meta.get("name", ""))
    w.field(0, "Namespace", meta.get("namespace", ""))
    w.field(0, "CreationTimestamp", rfc1123(meta.get("creationTimestamp")))
    w.mapping(0, "Labels", section(meta, "labels"))
    w.mapping(0, "Annotations", section(meta, "annotations"), sep=": ")
    w.field(0, "Selector", workloads.selector_text(obj))
    desired, total = workloads.desired(obj), _count(obj, "replicas")
    updated, available = _count(obj, "updatedReplicas"), _count(obj, "availableReplicas")
    unavailable = _count(obj, "unavailableReplicas")
    summary = (
        f"{desired} desired | {updated} updated | {total} total | {available} available | {unavailable} unavailable"
    )
    w.field(0, "Replicas", summary)
    strategy = str(section(spec, "strategy").get("type", "RollingUpdate"))
    w.field(0, "StrategyType", strategy)
    w.field(0, "MinReadySeconds", str(spec.get("minReadySeconds", 0)))
    if strategy == "RollingUpdate":
        w.field(0, "RollingUpdateStrategy", _strategy_text(spec))
    _template(w, workloads.template(obj))
    _conditions(w, obj)
    owned = owned_replica_sets(obj, replica_sets)
    new = [rs for rs in owned if is_new(obj, rs)]
    old = [rs for rs in owned if not is_new(obj, rs) and (workloads.desired(rs) or _count(rs, "replicas"))]
    w.field(0, "OldReplicaSets", ", ".join(_rs_text(rs) for rs in old) or NONE)
    w.field(0, "NewReplicaSet", ", ".join(_rs_text(rs) for rs in new) or NONE)
    w.events(events, now)
    return w.text()


class RolloutFailed(Exception):
    """The rollout exceeded its progress deadline."""


def rollout_status(obj: Obj) -> tuple[str, bool]:
    """DeploymentStatusViewer.Status: (message, done); RolloutFailed past the progress deadline."""
    meta, status = section(obj, "metadata"), section(obj, "status")
    name = meta.get("name", "")
    if int(meta.get("generation") or 0) > int(status.get("observedGeneration") or 0):
        return "Waiting for deployment spec update to be observed...", False
    for c in items(status, "conditions"):
        if c.get("type") == "Progressing" and c.get("reason") == PROGRESS_DEADLINE_EXCEEDED:
            raise RolloutFailed(f'deployment "{name}" exceeded its progress deadline')
    desired = workloads.desired(obj)
    updated, total, available = (
        _count(obj, "updatedReplicas"),
        _count(obj, "replicas"),
        _count(obj, "availableReplicas"),
    )
    waiting = f'Waiting for deployment "{name}" rollout to finish: '
    if updated < desired:
        return f"{waiting}{updated} out of {desired} new replicas have been updated...", False
    if total > updated:
        return f"{waiting}{total - updated} old replicas are pending termination...", False
    if available < updated:
        return f"{waiting}{available} of {updated} updated replicas are available...", False
    return f'deployment "{name}" successfully rolled out', True


def history(deployment: Obj, replica_sets: list[Obj]) -> list[tuple[int, str]]:
    """(revision, change cause) of every ReplicaSet the Deployment keeps, oldest first."""
    rows = []
    for rs in owned_replica_sets(deployment, replica_sets):
        cause = section(section(rs, "metadata"), "annotations").get(CHANGE_CAUSE_ANNOTATION) or NONE
        rows.append((revision(rs), str(cause)))
    return rows


def template_of_revision(deployment: Obj, replica_sets: list[Obj], wanted: int) -> Obj | None:
    for rs in owned_replica_sets(deployment, replica_sets):
        if revision(rs) == wanted:
            return rs
    return None


def describe_template(template: Obj) -> str:
    w = Writer()
    _template(w, template)
    return w.text()
