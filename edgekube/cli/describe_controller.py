"""`ekctl describe rc|rs`: kubectl's view of a ReplicationController or ReplicaSet, its pod template and events."""

from __future__ import annotations

from datetime import datetime

from edgekube.cli import workloads
from edgekube.cli.describe import Writer
from edgekube.cli.describe_container import containers, init_containers, volumes
from edgekube.cli.scheduling import toleration_text
from edgekube.cli.status import items, section
from edgekube.model.types import Obj


def _template(w: Writer, template: Obj) -> None:
    """Write kubectl's DescribePodTemplate: everything indented one level under `Pod Template:`."""
    meta, spec = section(template, "metadata"), section(template, "spec")
    w.line(0, "Pod Template:")
    w.mapping(1, "Labels", section(meta, "labels"))
    if section(meta, "annotations"):
        w.mapping(1, "Annotations", section(meta, "annotations"), sep=": ")
    init_containers(w, spec, None, space="  ")
    containers(w, spec, None, space="  ")
    volumes(w, items(spec, "volumes"), space="  ")
    w.mapping(1, "Node-Selectors", section(spec, "nodeSelector"))
    w.multiline(1, "Tolerations", [toleration_text(t) for t in items(spec, "tolerations")])


def _conditions(w: Writer, obj: Obj) -> None:
    """Write the status conditions as kubectl's Type/Status/Reason table (nothing when there are none)."""
    conditions = items(section(obj, "status"), "conditions")
    if conditions:
        w.line(0, "Conditions:")
        w.cells(1, "Type", "Status", "Reason")
        w.cells(1, "----", "------", "------")
        for c in conditions:
            w.cells(1, str(c.get("type", "")), str(c.get("status", "")), str(c.get("reason") or ""))


def describe_controller(obj: Obj, pods: list[Obj], events: list[Obj] | None = None, now: datetime | None = None) -> str:
    """`pods` are those the controller owns (see workloads.owns); `events` None leaves that section out."""
    meta = section(obj, "metadata")
    w = Writer()
    w.field(0, "Name", meta.get("name", ""))
    w.field(0, "Namespace", meta.get("namespace", ""))
    w.field(0, "Selector", workloads.selector_text(obj))
    w.mapping(0, "Labels", section(meta, "labels"))
    w.mapping(0, "Annotations", section(meta, "annotations"), sep=": ")
    owner = workloads.controller_of(obj)
    if owner is not None:
        w.field(0, "Controlled By", f"{owner.get('kind', '')}/{owner.get('name', '')}")
    current = workloads.status_count(obj, "replicas")
    w.field(0, "Replicas", f"{current} current / {workloads.desired(obj)} desired")
    w.field(0, "Pods Status", workloads.pods_status(pods))
    _template(w, workloads.template(obj))
    _conditions(w, obj)
    w.events(events, now)
    return w.text()
