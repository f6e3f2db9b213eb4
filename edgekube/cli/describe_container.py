"""describe's container and volume sections (kubectl's describeContainers/describeVolumes), for pods and templates."""

from __future__ import annotations

from edgekube.cli.describe import Writer
from edgekube.cli.status import NONE, items, section
from edgekube.cli.timefmt import rfc1123
from edgekube.model.types import Obj

#: Kubernetes' probe defaults, for objects stored without them.
_PROBE_DEFAULTS = (
    ("initialDelaySeconds", "delay", 0),
    ("timeoutSeconds", "timeout", 1),
    ("periodSeconds", "period", 10),
    ("successThreshold", "#success", 1),
    ("failureThreshold", "#failure", 3),
)


def _host_port(host: object, port: object) -> str:
    """Go's net.JoinHostPort: an IPv6 host goes in brackets."""
    shown = str(host or "")
    return f"[{shown}]:{port}" if ":" in shown else f"{shown}:{port}"


def probe_text(probe: Obj) -> str:
    """Port of kubectl's DescribeProbe: `http-get http://:8080/ delay=0s timeout=1s period=10s #success=1 ...`."""
    attrs = []
    for key, label, default in _PROBE_DEFAULTS:
        value = probe.get(key, default)
        attrs.append(f"{label}={value}s" if label in ("delay", "timeout", "period") else f"{label}={value}")
    timing = " ".join(attrs)
    exec_, http, tcp = section(probe, "exec"), section(probe, "httpGet"), section(probe, "tcpSocket")
    if exec_:
        command = exec_.get("command")
        shown = " ".join(str(c) for c in command) if isinstance(command, list) else ""
        return f"exec [{shown}] {timing}"
    if http:
        path = str(http.get("path") or "")
        if path and not path.startswith("/"):
            path = "/" + path
        scheme = str(http.get("scheme") or "HTTP").lower()
        return f"http-get {scheme}://{_host_port(http.get('host'), http.get('port', ''))}{path} {timing}"
    if tcp:
        return f"tcp-socket {tcp.get('host') or ''}:{tcp.get('port', '')} {timing}"
    return f"unknown {timing}"


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
        if terminated.get("signal"):
            w.field(3, "Signal", terminated["signal"])
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


def _container(w: Writer, container: Obj, status: Obj | None, name_indent: str) -> None:
    w.line(1, f"{name_indent}{container.get('name', '')}:")
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
    for key, label in (("livenessProbe", "Liveness"), ("readinessProbe", "Readiness")):
        probe = section(container, key)
        if probe:
            w.field(2, label, probe_text(probe))
    env_from = items(container, "envFrom")
    if env_from:
        w.line(2, "Environment Variables from:")
        for source in env_from:
            _env_from(w, source)
    env = items(container, "env")
    if env:
        w.line(2, "Environment:")
        for var in env:
            _env_var(w, var)
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


def containers(w: Writer, spec: Obj, statuses: list[Obj] | None, space: str = "") -> None:
    """`space` is kubectl's extra indent for a pod template ("  "), which also shifts names by one column."""
    listed = items(spec, "containers")
    w.line(0, f"{space}Containers:" + ("" if listed else " <none>"))
    by_name = {str(s.get("name")): s for s in statuses or []}
    for container in listed:
        status = by_name.get(str(container.get("name"))) if statuses is not None else None
        _container(w, container, status, " " if space else "")


def init_containers(w: Writer, spec: Obj, statuses: list[Obj] | None, space: str = "") -> None:
    """The `Init Containers:` section of kubectl, before `Containers:`; left out when the pod has none."""
    listed = items(spec, "initContainers")
    if not listed:
        return
    w.line(0, f"{space}Init Containers:")
    by_name = {str(s.get("name")): s for s in statuses or []}
    for container in listed:
        status = by_name.get(str(container.get("name"))) if statuses is not None else None
        _container(w, container, status, " " if space else "")


def volumes(w: Writer, volume_list: list[Obj], space: str = "") -> None:
    if not volume_list:
        w.field(0, f"{space}Volumes", NONE)
        return
    w.line(0, f"{space}Volumes:")
    for volume in volume_list:
        w.line(1, f"{' ' if space else ''}{volume.get('name', '')}:")
        volume_source(w, volume)


def volume_source(w: Writer, source: Obj) -> bool:
    """Write a pod volume's or PersistentVolume's source as kubectl's print*VolumeSource do; False: none known."""
    empty_dir, nfs = source.get("emptyDir"), source.get("nfs")
    claim, host_path = source.get("persistentVolumeClaim"), source.get("hostPath")
    if isinstance(empty_dir, dict):
        w.field(2, "Type", "EmptyDir (a temporary directory that shares a pod's lifetime)")
        w.field(2, "Medium", empty_dir.get("medium", ""))
        w.field(2, "SizeLimit", empty_dir.get("sizeLimit") or "<unset>")
    elif isinstance(nfs, dict):
        w.field(2, "Type", "NFS (an NFS mount that lasts the lifetime of a pod)")
        w.field(2, "Server", nfs.get("server", ""))
        w.field(2, "Path", nfs.get("path", ""))
        w.field(2, "ReadOnly", _bool(nfs.get("readOnly")))
    elif isinstance(claim, dict):
        w.field(2, "Type", "PersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)")
        w.field(2, "ClaimName", claim.get("claimName", ""))
        w.field(2, "ReadOnly", _bool(claim.get("readOnly")))
    elif isinstance(host_path, dict):
        w.field(2, "Type", "HostPath (bare host directory volume)")
        w.field(2, "Path", host_path.get("path", ""))
        # Kubernetes defaults type to "" (shown empty); <none> only when the field is absent altogether.
        w.field(2, "HostPathType", host_path.get("type", NONE))
    elif not _config_source(w, source):
        w.field(2, "Type", "<unknown>")
        return False
    return True


def _env_from(w: Writer, source: Obj) -> None:
    """As kubectl's describeContainerEnvFrom: `name  ConfigMap[ with prefix 'P_']  Optional: false`."""
    ref, kind = section(source, "configMapRef"), "ConfigMap"
    if not ref:
        ref, kind = section(source, "secretRef"), "Secret"
    prefix = source.get("prefix")
    what = f"{kind} with prefix '{prefix}'" if prefix else kind
    w.cells(3, str(ref.get("name", "")), what, f"Optional: {_bool(ref.get('optional'))}")


def _env_var(w: Writer, var: Obj) -> None:
    """As kubectl's describeContainerEnvVars: a value, or where it comes from (a Secret's value is never shown)."""
    name, source = f"{var.get('name', '')}:", section(var, "valueFrom")
    field, resource = section(source, "fieldRef"), section(source, "resourceFieldRef")
    secret, config_map = section(source, "secretKeyRef"), section(source, "configMapKeyRef")
    if field:
        w.cells(3, name, f"({field.get('apiVersion') or 'v1'}:{field.get('fieldPath', '')})")
    elif resource:
        w.cells(3, name, f"({resource.get('resource', '')})")
    elif secret:
        text = f"<set to the key '{secret.get('key', '')}' in secret '{secret.get('name', '')}'>"
        w.cells(3, name, text, f"Optional: {_bool(secret.get('optional'))}")
    elif config_map:
        text = f"<set to the key '{config_map.get('key', '')}' of config map '{config_map.get('name', '')}'>"
        w.cells(3, name, text, f"Optional: {_bool(config_map.get('optional'))}")
    else:
        w.field(3, str(var.get("name", "")), var.get("value", ""))


def _config_source(w: Writer, source: Obj) -> bool:
    """As kubectl's printConfigMap/Secret/Projected/DownwardAPIVolumeSource; False: not one of them."""
    config_map, secret = source.get("configMap"), source.get("secret")
    projected, downward = source.get("projected"), source.get("downwardAPI")
    if isinstance(config_map, dict):
        w.field(2, "Type", "ConfigMap (a volume populated by a ConfigMap)")
        w.field(2, "Name", config_map.get("name", ""))
        w.field(2, "Optional", _bool(config_map.get("optional")))
    elif isinstance(secret, dict):
        w.field(2, "Type", "Secret (a volume populated by a Secret)")
        w.field(2, "SecretName", secret.get("secretName", ""))
        w.field(2, "Optional", _bool(secret.get("optional")))
    elif isinstance(projected, dict):
        w.field(2, "Type", "Projected (a volume that contains injected data from multiple sources)")
        for item in projected.get("sources") or ():
            if isinstance(item.get("secret"), dict):
                w.field(2, "SecretName", item["secret"].get("name", ""))
                w.field(2, "SecretOptionalName", _optional(item["secret"].get("optional")))
            elif isinstance(item.get("configMap"), dict):
                w.field(2, "ConfigMapName", item["configMap"].get("name", ""))
                w.field(2, "ConfigMapOptional", _optional(item["configMap"].get("optional")))
            elif "downwardAPI" in item:
                w.field(2, "DownwardAPI", "true")
    elif isinstance(downward, dict):
        w.line(2, "Type:    DownwardAPI (a volume populated by information about the pod)")
        w.line(2, "Items:")
        for item in downward.get("items") or ():
            ref = item.get("fieldRef") or item.get("resourceFieldRef") or {}
            w.line(3, f"{ref.get('fieldPath') or ref.get('resource', '')} -> {item.get('path', '')}")
    else:
        return False
    return True


def _optional(value: object) -> str:
    """Go's %v of a *bool, as kubectl prints a projected source's optional: <nil> when unset."""
    return "<nil>" if value is None else _bool(value)


def _bool(value: object) -> str:
    """Go's %v of a bool."""
    return "true" if value is True else "false"
