"""`ekctl top nodes|pods`: current CPU and memory use, with kubectl's columns and quantity formats.

The master answers verb top from the usage it holds in memory (node heartbeats and the agents' telemetry
reports); nothing here touches a node. CPU is shown in millicores (`12m`), memory in MiB (`45Mi`), as kubectl does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from edgekube.cli.context import Context
from edgekube.cli.tabwriter import table
from edgekube.model.errors import NotFoundError, ValidationError
from edgekube.model.types import Obj

UNKNOWN = "<unknown>"
_NODES = ("node", "nodes", "no")
_PODS = ("pod", "pods", "po")


def cpu(cores: float) -> str:
    """Millicores rounded up, as kubectl's `%vm` of MilliValue: 0.0123 cores → `13m`."""
    return f"{math.ceil(round(cores * 1000, 6))}m"


def memory(value: float) -> str:
    """Whole MiB rounded down, as kubectl's `%vMi` of Value()/(1024*1024): 47 MiB + 10 bytes → `47Mi`."""
    return f"{int(value) // (1024 * 1024)}Mi"


def percent(used: float, allocatable: float | None) -> str:
    return f"{int(used / allocatable * 100)}%" if allocatable else UNKNOWN


def _sorted(items: list[Obj], sort_by: str | None, cpu_key: str, memory_key: str) -> list[Obj]:
    if sort_by == "cpu":
        return sorted(items, key=lambda i: -float(i.get(cpu_key) or 0))
    if sort_by == "memory":
        return sorted(items, key=lambda i: -float(i.get(memory_key) or 0))
    return items


def node_rows(items: Sequence[Obj], sort_by: str | None = None) -> list[list[str]]:
    """NAME CPU(cores) CPU% MEMORY(bytes) MEMORY%; nodes without usage last, with `<unknown>` (kubectl's order)."""
    known = [i for i in items if "cpuCores" in i]
    rows = []
    for i in _sorted(known, sort_by, "cpuCores", "memoryBytes"):
        rows.append([
            str(i["name"]), cpu(i["cpuCores"]), percent(i["cpuCores"], i.get("cpuAllocatableCores")),
            memory(i["memoryBytes"]), percent(i["memoryBytes"], i.get("memoryAllocatableBytes")),
        ])  # fmt: skip
    rows += [[str(i["name"]), *[UNKNOWN] * 4] for i in items if "cpuCores" not in i]
    return rows


def pod_rows(
    items: Sequence[Obj], *, all_namespaces: bool, containers: bool, sort_by: str | None = None
) -> list[list[str]]:
    """NAME CPU(cores) MEMORY(bytes) per pod (its containers summed), or POD NAME ... per container."""
    totals = [
        {**i, "cpuCores": sum(c["cpuCores"] for c in i["containers"]),
         "memoryBytes": sum(c["memoryBytes"] for c in i["containers"])}
        for i in items
    ]  # fmt: skip
    rows = []
    for pod in _sorted(totals, sort_by, "cpuCores", "memoryBytes"):
        lead = [str(pod["namespace"])] if all_namespaces else []
        if containers:
            for c in pod["containers"]:
                rows.append([*lead, str(pod["name"]), str(c["name"]), cpu(c["cpuCores"]), memory(c["memoryBytes"])])
        else:
            rows.append([*lead, str(pod["name"]), cpu(pod["cpuCores"]), memory(pod["memoryBytes"])])
    return rows


def pod_header(*, all_namespaces: bool, containers: bool) -> list[str]:
    lead = ["NAMESPACE"] if all_namespaces else []
    return [*lead, *(["POD", "NAME"] if containers else ["NAME"]), "CPU(cores)", "MEMORY(bytes)"]


def run(ctx: Context) -> int:
    args = ctx.args
    what = str(args.resource).lower()
    if what not in (*_NODES, *_PODS):
        raise ValidationError(f"top: {args.resource!r}: expected nodes or pods", hint="usage: ekctl top nodes|pods")
    if args.sort_by not in (None, "cpu", "memory"):
        raise ValidationError(f"--sort-by: {args.sort_by!r}: supported values: cpu, memory")
    headers = not args.no_headers
    client = ctx.client()
    if what in _NODES:
        found = client.top("Node", None, args.selector)
        if args.name:
            found = [i for i in found if i["name"] == args.name]
            if not found:
                raise NotFoundError(f'nodes "{args.name}" not found')
        rows = node_rows(found, args.sort_by)
        ctx.out.write(table(["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"], rows, headers=headers))
        return 0
    everywhere = bool(args.all_namespaces)
    found = client.top("Pod", None if everywhere else ctx.namespace, args.selector)
    if args.name:
        found = [i for i in found if i["name"] == args.name]
        if not found:
            raise NotFoundError(f"metrics for pod {ctx.namespace}/{args.name} not available yet")
    if not found:
        where = "" if everywhere else f" in {ctx.namespace} namespace"
        ctx.err.write(f"No resources found{where}.\n")
        return 0
    rows = pod_rows(found, all_namespaces=everywhere, containers=bool(args.containers), sort_by=args.sort_by)
    ctx.out.write(table(pod_header(all_namespaces=everywhere, containers=bool(args.containers)), rows, headers=headers))
    return 0
