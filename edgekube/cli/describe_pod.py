"""`ekctl describe pod`: kubectl's sections for one pod (status, owner, containers, conditions, volumes, events)."""

from __future__ import annotations

from datetime import datetime

from edgekube.cli.describe import Writer
from edgekube.cli.describe_container import containers, init_containers, volumes
from edgekube.cli.scheduling import toleration_text
from edgekube.cli.status import NONE, items, section
from edgekube.cli.timefmt import rfc1123
from edgekube.cli.workloads import controller_of
from edgekube.model.types import Obj


def describe_pod(pod: Obj, events: list[Obj] | None = None, now: datetime | None = None) -> str:
    """`events` are this pod's; None leaves the Events section out (they could not be listed)."""
    meta, spec, status = section(pod, "metadata"), section(pod, "spec"), section(pod, "status")
    w = Writer()
    w.field(0, "Name", meta.get("name", ""))
    w.field(0, "Namespace", meta.get("namespace", ""))
    node = spec.get("nodeName")
    w.field(0, "Node", f"{node}/{status['hostIP']}" if node and status.get("hostIP") else node or NONE)
    if status.get("startTime"):
        w.field(0, "Start Time", rfc1123(status["startTime"]))
    w.mapping(0, "Labels", section(meta, "labels"))
    w.mapping(0, "Annotations", section(meta, "annotations"), sep=": ")
    phase = status.get("phase") or "Pending"
    w.field(0, "Status", "Terminating" if meta.get("deletionTimestamp") else phase)
    if status.get("reason"):
        w.field(0, "Reason", status["reason"])
    if status.get("message"):
        w.field(0, "Message", status["message"])
    w.field(0, "IP", status.get("podIP") or NONE)
    owner = controller_of(pod)
    if owner is not None:
        w.field(0, "Controlled By", f"{owner.get('kind', '')}/{owner.get('name', '')}")
    init_containers(w, spec, items(status, "initContainerStatuses"))
    containers(w, spec, items(status, "containerStatuses"))
    conditions = items(status, "conditions")
    if conditions:
        w.line(0, "Conditions:")
        w.cells(1, "Type", "Status")
        for c in conditions:
            w.cells(1, str(c.get("type", "")), str(c.get("status", "")))
    volumes(w, items(spec, "volumes"))
    w.field(0, "Restart Policy", spec.get("restartPolicy", "Always"))
    w.mapping(0, "Node-Selectors", section(spec, "nodeSelector"))
    w.multiline(0, "Tolerations", [toleration_text(t) for t in items(spec, "tolerations")])
    w.events(events, now)
    return w.text()
