"""`ekctl get` tables: kubectl's pod and node columns, the `-o wide` extras and the `-A` NAMESPACE column."""

from __future__ import annotations

from datetime import datetime

from edgekube.cli.kinds import NODE, POD, Resource
from edgekube.cli.status import NONE, Obj, node_address, node_roles, node_status, pod_summary, section
from edgekube.cli.tabwriter import table
from edgekube.cli.timefmt import age


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


POD_HEADER = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
POD_WIDE = ["IP", "NODE"]
NODE_HEADER = ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
NODE_WIDE = ["INTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]


def render(
    res: Resource,
    objects: list[Obj],
    *,
    wide: bool = False,
    all_namespaces: bool = False,
    headers: bool = True,
    now: datetime | None = None,
) -> str:
    if res == NODE:
        header = NODE_HEADER + (NODE_WIDE if wide else [])
        rows = [node_row(o, wide=wide, now=now) for o in objects]
    else:
        header = POD_HEADER + (POD_WIDE if wide else [])
        rows = [pod_row(o, wide=wide, now=now) for o in objects]
    if all_namespaces and res == POD:
        header = ["NAMESPACE", *header]
        rows = [[str(_meta(o).get("namespace", "")), *row] for o, row in zip(objects, rows, strict=True)]
    return table(header, rows, headers=headers)
