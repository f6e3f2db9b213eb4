"""`ekctl describe pod`: kubectl's sections for one pod (status, containers, conditions, volumes)."""

from __future__ import annotations

from edgekube.cli.describe import Writer
from edgekube.cli.status import NONE, Obj, items, section
from edgekube.cli.timefmt import rfc1123


def _state(w: Writer, label: str, state: Obj) -> None:
    """Write like kubectl's describeStatus, plus a waiting message, which carries the runtime's error."""
    running, waiting, terminated = (state.get(k) for k in ("running", "waiting", "terminated"))
    if isinstance(running, dict):
        w.field(2, label, "Running")
        w.field(3, "Started", rfc1123(running.get("startedAt")))
    elif isinstance(terminated, dict):
        w.field(2, label, "Terminated")
        if terminated.get("reason"):
            w.field(3, "Reason", terminated["reason"])
        if terminated.get("message"):
            w.field(3, "Message", terminated["message"])
        w.field(3, "Exit Code", terminated.get("exitCode", 0))
        w.field(3, "Started", rfc1123(terminated.get("startedAt")))
        w.field(3, "Finished", rfc1123(terminated.get("finishedAt")))
    else:
        w.field(2, label, "Waiting")
        if isinstance(waiting, dict):
            if waiting.get("reason"):
                w.field(3, "Reason", waiting["reason"])
            if waiting.get("message"):
                w.field(3, "Message", waiting["message"])


def _ports(ports: list[Obj], key: str) -> str:
    shown = [f"{p.get(key, 0)}/{p.get('protocol', 'TCP')}" for p in ports]
    return ", ".join(shown) or NONE


def _container(w: Writer, container: Obj, status: Obj | None) -> None:
    w.line(1, f"{container.get('name', '')}:")
    if status and status.get("containerID"):
        w.field(2, "Container ID", status["containerID"])
    w.field(2, "Image", container.get("image", ""))
    if status and status.get("imageID"):
        w.field(2, "Image ID", status["imageID"])
    ports = items(container, "ports")
    w.field(2, "Ports" if len(ports) > 1 else "Port", _ports(ports, "containerPort"))
    w.field(2, "Host Ports" if len(ports) > 1 else "Host Port", _ports(ports, "hostPort"))
    for key, label in (("command", "Command"), ("args", "Args")):
        values = container.get(key)
        if isinstance(values, list) and values:
            w.line(2, f"{label}:")
            for value in values:
                w.line(3, str(value))
    if status is not None:
        _state(w, "State", section(status, "state"))
        last = section(status, "lastState")
        if isinstance(last.get("terminated"), dict):
            _state(w, "Last State", last)
        w.field(2, "Ready", "True" if status.get("ready") else "False")
        w.field(2, "Restart Count", status.get("restartCount", 0))
    resources = section(container, "resources")
    for key, label in (("limits", "Limits"), ("requests", "Requests")):
        values = section(resources, key)
        if values:
            w.line(2, f"{label}:")
            for name in sorted(values):
                w.field(3, name, values[name])
    env = items(container, "env")
    if env:
        w.line(2, "Environment:")
        for var in env:
            w.field(3, str(var.get("name", "")), var.get("value", ""))
    else:
        w.field(2, "Environment", NONE)
    mounts = items(container, "volumeMounts")
    if mounts:
        w.line(2, "Mounts:")
        for m in mounts:
            mode = "ro" if m.get("readOnly") else "rw"
            w.line(3, f"{m.get('mountPath', '')} from {m.get('name', '')} ({mode})")
    else:
        w.field(2, "Mounts", NONE)


def _volumes(w: Writer, volumes: list[Obj]) -> None:
    if not volumes:
        w.field(0, "Volumes", NONE)
        return
    w.line(0, "Volumes:")
    for volume in volumes:
        w.line(1, f"{volume.get('name', '')}:")
        empty_dir = volume.get("emptyDir")
        if isinstance(empty_dir, dict):
            w.field(2, "Type", "EmptyDir (a temporary directory that shares a pod's lifetime)")
            w.field(2, "Medium", empty_dir.get("medium", ""))
            w.field(2, "SizeLimit", empty_dir.get("sizeLimit") or "<unset>")
        else:
            w.field(2, "Type", "<unknown>")


def describe_pod(pod: Obj) -> str:
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
    w.line(0, "Containers:")
    statuses = {str(s.get("name")): s for s in items(status, "containerStatuses")}
    for container in items(spec, "containers"):
        _container(w, container, statuses.get(str(container.get("name"))))
    conditions = items(status, "conditions")
    if conditions:
        w.line(0, "Conditions:")
        w.cells(1, "Type", "Status")
        for c in conditions:
            w.cells(1, str(c.get("type", "")), str(c.get("status", "")))
    _volumes(w, items(spec, "volumes"))
    w.field(0, "Restart Policy", spec.get("restartPolicy", "Always"))
    w.mapping(0, "Node-Selectors", section(spec, "nodeSelector"))
    return w.text()
