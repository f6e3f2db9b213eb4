"""`ekctl get` tables: kubectl's columns per kind, the `-o wide` extras, the `-A` NAMESPACE and `kind/` prefixes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from edgekube.cli import events, workloads
from edgekube.cli.columns import extra_header, label_cells
from edgekube.cli.configdata import CONFIGMAP_HEADER, SECRET_HEADER, configmap_row, secret_row
from edgekube.cli.deployments import DEPLOYMENT_HEADER, deployment_row
from edgekube.cli.kinds import CM, EP, ES, EVENT, NODE, POD, PV, PVC, RC, RS, SC, SECRET, SVC, Resource
from edgekube.cli.services import (
    ENDPOINTS_HEADER,
    SERVICE_HEADER,
    SLICE_HEADER,
    endpoints_row,
    service_row,
    slice_row,
)
from edgekube.cli.status import NONE, node_address, node_roles, node_status, pod_summary, section
from edgekube.cli.storage import PV_HEADER, PVC_HEADER, SC_HEADER, pv_row, pvc_row, sc_row
from edgekube.cli.tabwriter import table
from edgekube.cli.timefmt import age
from edgekube.model.types import Obj


def _meta(obj: Obj) -> Obj:
    return section(obj, "metadata")


def pod_row(pod: Obj, *, wide: bool, now: datetime | None = None) -> list[str]:
    summary = pod_summary(pod, now)
    row = [
        str(_meta(pod).get("name", "")),
        summary.ready,
        summary.status,
        summary.restarts,
        age(_meta(pod).get("creationTimestamp"), now),
    ]
    if wide:
        row += [
            str(section(pod, "status").get("podIP") or NONE),
            str(section(pod, "spec").get("nodeName") or NONE),
        ]
    return row


def node_row(node: Obj, *, wide: bool, now: datetime | None = None) -> list[str]:
    info = section(section(node, "status"), "nodeInfo")
    row = [
        str(_meta(node).get("name", "")),
        node_status(node),
        node_roles(node),
        age(_meta(node).get("creationTimestamp"), now),
        str(info.get("agentVersion") or NONE),
    ]
    if wide:
        row += [
            node_address(node, "InternalIP"),
            str(info.get("osImage") or NONE),
            str(info.get("kernelVersion") or NONE),
            str(info.get("containerRuntimeVersion") or NONE),
        ]
    return row


def controller_row(obj: Obj, *, wide: bool, now: datetime | None = None) -> list[str]:
    row = [
        str(_meta(obj).get("name", "")),
        str(workloads.desired(obj)),
        str(workloads.status_count(obj, "replicas")),
        str(workloads.status_count(obj, "readyReplicas")),
        age(_meta(obj).get("creationTimestamp"), now),
    ]
    if wide:
        row += workloads.wide_cells(obj)
    return row


def event_row(event: Obj, *, wide: bool, now: datetime | None = None) -> list[str]:
    """Port of kubectl's printEvent; SUBOBJECT is left out, edgekube events carry no fieldPath."""
    message = " ".join(str(event.get("message") or "").split())
    head = [events.last_seen(event, now), str(event.get("type") or ""), str(event.get("reason") or "")]
    head.append(events.involved_object(event))
    if not wide:
        return [*head, message]
    tail = [events.first_seen(event, now), str(events.count(event)), str(_meta(event).get("name", ""))]
    return [*head, events.source(event), message, *tail]


@dataclass(frozen=True)
class Columns:
    header: list[str]
    wide: list[str]  # the whole header with -o wide
    row: Callable[..., list[str]]


_CONTROLLER = ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
_EVENT = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
POD_HEADER = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
NODE_HEADER = ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
COLUMNS = {
    POD.kind: Columns(POD_HEADER, [*POD_HEADER, "IP", "NODE"], pod_row),
    NODE.kind: Columns(
        NODE_HEADER, [*NODE_HEADER, "INTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"], node_row
    ),
    RC.kind: Columns(_CONTROLLER, [*_CONTROLLER, "CONTAINERS", "IMAGES", "SELECTOR"], controller_row),
    RS.kind: Columns(_CONTROLLER, [*_CONTROLLER, "CONTAINERS", "IMAGES", "SELECTOR"], controller_row),
    "Deployment": Columns(DEPLOYMENT_HEADER, [*DEPLOYMENT_HEADER, "CONTAINERS", "IMAGES", "SELECTOR"], deployment_row),
    EVENT.kind: Columns(_EVENT, [*_EVENT[:4], "SOURCE", "MESSAGE", "FIRST SEEN", "COUNT", "NAME"], event_row),
    PV.kind: Columns(PV_HEADER, [*PV_HEADER, "VOLUMEMODE"], pv_row),
    PVC.kind: Columns(PVC_HEADER, [*PVC_HEADER, "VOLUMEMODE"], pvc_row),
    SC.kind: Columns(SC_HEADER, SC_HEADER, sc_row),
    CM.kind: Columns(CONFIGMAP_HEADER, CONFIGMAP_HEADER, configmap_row),
    SECRET.kind: Columns(SECRET_HEADER, SECRET_HEADER, secret_row),
    SVC.kind: Columns(SERVICE_HEADER, [*SERVICE_HEADER, "SELECTOR"], service_row),
    EP.kind: Columns(ENDPOINTS_HEADER, ENDPOINTS_HEADER, endpoints_row),
    ES.kind: Columns(SLICE_HEADER, SLICE_HEADER, slice_row),
}


def render(
    res: Resource,
    objects: list[Obj],
    *,
    wide: bool = False,
    all_namespaces: bool = False,
    headers: bool = True,
    with_kind: bool = False,
    now: datetime | None = None,
    label_columns: Sequence[str] = (),
    show_labels: bool = False,
) -> str:
    """One kind's table; `with_kind` prefixes names `kind/` as kubectl does when several kinds are listed.

    `label_columns` (-L) and `show_labels` (--show-labels) append kubectl's label columns (cli/columns.py).
    """
    columns = COLUMNS.get(res.kind, COLUMNS[POD.kind])
    header = list(columns.wide if wide else columns.header)
    rows = [columns.row(o, wide=wide, now=now) for o in objects]
    if label_columns or show_labels:
        header += extra_header(label_columns, show_labels=show_labels)
        pairs = zip(objects, rows, strict=True)
        rows = [[*row, *label_cells(o, label_columns, show_labels=show_labels)] for o, row in pairs]
    if with_kind and "NAME" in header:
        at = header.index("NAME")
        for row in rows:
            row[at] = f"{res.qualified}/{row[at]}"
    if all_namespaces and res.namespaced:
        header = ["NAMESPACE", *header]
        rows = [[str(_meta(o).get("namespace", "")), *row] for o, row in zip(objects, rows, strict=True)]
    return table(header, rows, headers=headers)
