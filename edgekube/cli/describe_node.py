"""`ekctl describe node`: kubectl's sections for one node: taints, conditions, the pods bound to it, events."""

from __future__ import annotations

import math
from datetime import datetime

from edgekube.cli.describe import Writer
from edgekube.cli.scheduling import taints
from edgekube.cli.status import NONE, items, node_roles, section
from edgekube.cli.timefmt import age, rfc1123
from edgekube.model.errors import ValidationError
from edgekube.model.podresources import (
    EPHEMERAL_STORAGE,
    counted_allocatable,
    pod_limits,
    pod_requests,
    storage_limits,
)
from edgekube.model.quantity import cpu_millis, format_bytes, format_millis, memory_bytes
from edgekube.model.resources import extended_allocatable, extended_requests
from edgekube.model.types import Obj

_SYSTEM_INFO = (
    ("machineModel", "Machine Model"),
    ("kernelVersion", "Kernel Version"),
    ("osImage", "OS Image"),
    ("operatingSystem", "Operating System"),
    ("architecture", "Architecture"),
    ("containerRuntimeVersion", "Container Runtime Version"),
    ("proxyMode", "Proxy Mode"),
    ("agentVersion", "Agent Version"),
)
_TERMINAL = ("Succeeded", "Failed")


def _amount(raw: object, resource: str) -> int:
    """Convert a quantity to millicores or bytes; a malformed one counts as 0 rather than failing describe."""
    if not isinstance(raw, str | int | float):
        return 0
    try:
        return cpu_millis(raw) if resource == "cpu" else memory_bytes(raw)
    except ValidationError:
        return 0


def _pod_totals(pod: Obj) -> dict[tuple[str, str], int]:
    """The pod's requests (model.podresources.pod_requests) and limits: pod-level ones, else the containers' sum."""
    totals = {(r, k): 0 for r in ("cpu", "memory") for k in ("requests", "limits")}
    spec = section(pod, "spec")
    for container in items(spec, "containers"):
        limits = section(section(container, "resources"), "limits")
        for r in ("cpu", "memory"):
            totals[(r, "limits")] += _amount(limits.get(r, 0), r)
    try:
        requested = pod_requests(spec)
        pod_level = pod_limits(spec)
    except (ValidationError, KeyError, TypeError, AttributeError):
        return totals  # a malformed stored pod counts as nothing rather than failing describe
    totals[("cpu", "requests")], totals[("memory", "requests")] = requested.cpu_millis, requested.memory_bytes
    for r, value in pod_level.items():
        totals[(r, "limits")] = value
    return totals


def _show(resource: str, value: int, allocatable: int) -> str:
    shown = format_millis(value) if resource == "cpu" else format_bytes(value)
    percent = value * 100 // allocatable if allocatable else 0
    return f"{shown} ({percent}%)"


def _pods(w: Writer, pods: list[Obj], allocatable: Obj, now: datetime | None) -> None:
    alloc = {r: _amount(allocatable.get(r, 0), r) for r in ("cpu", "memory")}
    active = [p for p in pods if section(p, "status").get("phase") not in _TERMINAL]
    w.field(0, "Non-terminated Pods", f"({len(active)} in total)")
    header = ("Namespace", "Name", "CPU Requests", "CPU Limits", "Memory Requests", "Memory Limits", "Age")
    w.header(1, *header)
    summed = {(r, k): 0 for r in ("cpu", "memory") for k in ("requests", "limits")}
    for pod in active:
        meta = section(pod, "metadata")
        totals = _pod_totals(pod)
        for key, value in totals.items():
            summed[key] += value
        w.cells(
            1,
            str(meta.get("namespace", "")),
            str(meta.get("name", "")),
            *(
                _show(r, totals[(r, k)], alloc[r])
                for r, k in (("cpu", "requests"), ("cpu", "limits"), ("memory", "requests"), ("memory", "limits"))
            ),
            age(meta.get("creationTimestamp"), now),
        )
    w.line(0, "Allocated resources:")
    w.line(1, "(Total limits may be over 100 percent, i.e., overcommitted.)")
    w.cells(1, "Resource", "Requests", "Limits")
    w.cells(1, "--------", "--------", "------")
    for r in ("cpu", "memory"):
        w.cells(1, r, _show(r, summed[(r, "requests")], alloc[r]), _show(r, summed[(r, "limits")], alloc[r]))
    storage = counted_allocatable(allocatable).get(EPHEMERAL_STORAGE)
    if storage is not None:  # kubectl's row after memory, when the node reports it
        requested, limited = _storage_totals(active)
        w.cells(
            1,
            EPHEMERAL_STORAGE,
            _show(EPHEMERAL_STORAGE, requested, storage),
            _show(EPHEMERAL_STORAGE, limited, storage),
        )
    # Extended resources (edgekube.io/serial, ...) as kubectl lists them: counts, requests equal to limits.
    devices = _extended_totals(active)
    for name in sorted(set(extended_allocatable(allocatable)) | set(devices)):
        w.cells(1, name, str(devices.get(name, 0)), str(devices.get(name, 0)))


def _storage_totals(pods: list[Obj]) -> tuple[int, int]:
    """The pods' ephemeral-storage requests and limits (model.podresources), a malformed pod counting nothing."""
    requested = limited = 0
    for pod in pods:
        try:
            requested += pod_requests(section(pod, "spec")).ephemeral_storage_bytes
            limited += storage_limits(section(pod, "spec"))[0] or 0
        except (ValidationError, KeyError, TypeError, AttributeError):
            continue
    return requested, limited


def _extended_totals(pods: list[Obj]) -> dict[str, int]:
    totals: dict[str, int] = {}
    for pod in pods:
        for container in items(section(pod, "spec"), "containers"):
            resources = section(container, "resources")
            try:
                wanted = extended_requests(section(resources, "requests"), section(resources, "limits"))
            except ValidationError:
                continue
            for name, count in wanted.items():
                totals[name] = totals.get(name, 0) + count
    return totals


def _nfs_servers(w: Writer, servers: list[Obj]) -> None:
    """The section edgekube adds (not kubectl's): can this node reach each NFS server? Left out when none."""
    if not servers:
        return
    w.line(0, "NFS Servers:")
    header = ("Server", "Reachable", "LastProbeTime", "Message")
    w.header(1, *header)
    for s in servers:
        port = s.get("port", 2049)
        address = str(s.get("server", ""))
        w.cells(
            1,
            address if port in (2049, None) else f"{address}:{port}",
            "True" if s.get("reachable") is True else "False",
            rfc1123(s.get("lastProbeTime")) if s.get("lastProbeTime") else "",
            " ".join(str(s.get("message") or "").split()),
        )


def _history(w: Writer, windows: list[Obj]) -> None:
    """A section of edgekube's own: the agent's recent usage (min/avg/max per window, from its in-memory history)."""
    if not windows:
        return
    w.line(0, "Recent Usage:")
    header = ("Window", "Samples", "CPU min/avg/max", "Memory min/avg/max")
    w.header(1, *header)
    for h in windows:
        cpu, mem = _triple(h, "cpuCores"), _triple(h, "memoryBytes")
        w.cells(
            1,
            f"{int(h.get('windowSeconds', 0)) // 60}m",
            str(int(h.get("samples", 0))),
            "/".join(f"{math.ceil(c * 1000)}m" for c in cpu) if cpu else NONE,
            "/".join(f"{int(m) // (1024 * 1024)}Mi" for m in mem) if mem else NONE,
        )


def _triple(window: Obj, name: str) -> list[float]:
    """Min, avg and max of one figure in a window summary; [] when the window has none of it."""
    values = [window.get(f"{name}{k}") for k in ("Min", "Avg", "Max")]
    return [float(v) for v in values if isinstance(v, int | float)] if None not in values else []


def _leds(w: Writer, leds: Obj) -> None:
    """The LEDs section (edgekube's): what the node's LEDs show (docs/leds.md); absent if the agent does not say."""
    if not leds:
        return
    w.line(0, "LEDs:")
    w.field(1, "Pattern", leds.get("pattern", ""))
    w.field(1, "Meaning", leds.get("description", ""))
    w.field(1, "Driver", leds.get("driver", ""))
    if leds.get("identifyUntil"):
        w.field(1, "Identify Until", rfc1123(leds["identifyUntil"]))


def describe_node(node: Obj, pods: list[Obj], events: list[Obj] | None = None, now: datetime | None = None) -> str:
    """`pods` are the pods bound to this node (spec.nodeName), in any namespace; `events` None: no section."""
    meta, spec, status = section(node, "metadata"), section(node, "spec"), section(node, "status")
    w = Writer()
    w.field(0, "Name", meta.get("name", ""))
    w.field(0, "Roles", node_roles(node))
    w.mapping(0, "Labels", section(meta, "labels"))
    w.mapping(0, "Annotations", section(meta, "annotations"), sep=": ")
    w.field(0, "CreationTimestamp", rfc1123(meta.get("creationTimestamp")))
    w.multiline(0, "Taints", taints(items(spec, "taints")))
    w.field(0, "Unschedulable", "true" if spec.get("unschedulable") else "false")
    conditions = items(status, "conditions")
    if conditions:
        w.line(0, "Conditions:")
        header = ("Type", "Status", "LastHeartbeatTime", "LastTransitionTime", "Reason", "Message")
        w.header(1, *header)
        for c in conditions:
            w.cells(
                1,
                str(c.get("type", "")),
                str(c.get("status", "")),
                rfc1123(c.get("lastHeartbeatTime")) if c.get("lastHeartbeatTime") else "",
                rfc1123(c.get("lastTransitionTime")) if c.get("lastTransitionTime") else "",
                str(c.get("reason") or ""),
                str(c.get("message") or ""),
            )
    else:
        w.field(0, "Conditions", NONE)
    addresses = items(status, "addresses")
    if addresses:
        w.line(0, "Addresses:")
        for a in addresses:
            w.field(1, str(a.get("type", "")), a.get("address", ""))
    else:
        w.field(0, "Addresses", NONE)
    _nfs_servers(w, items(status, "nfsServers"))
    _leds(w, section(status, "leds"))
    for key, label in (("capacity", "Capacity"), ("allocatable", "Allocatable")):
        values = section(status, key)
        if values:
            w.line(0, f"{label}:")
            for name in sorted(values):
                w.field(1, name, values[name])
    usage = section(node, "usage")
    if usage:
        w.line(0, "Usage (live):")
        for name in sorted(usage):
            w.field(1, name, usage[name])
    _history(w, items(node, "usageHistory"))
    info = section(status, "nodeInfo")
    w.line(0, "System Info:")
    for key, label in _SYSTEM_INFO:
        w.field(1, label, info.get(key, ""))
    _pods(w, pods, section(status, "allocatable") or section(status, "capacity"), now)
    w.events(events, now)
    return w.text()
