"""Podman create documents (volume, pod, container specgen) from a Pod: pure, used by the runtime's create step."""

from __future__ import annotations

import resource
from typing import Any

from edgekube.agent.runtime.podman.naming import LABEL_CONTAINER_INDEX, container_name, volume_name
from edgekube.agent.runtime.protocol import LABEL_CONTAINER
from edgekube.model.pod import Container, Pod, Volume
from edgekube.model.quantity import cpu_millis, memory_bytes

_CPU_PERIOD_US = 100_000
#: The kernel rejects CFS quotas under 1 ms; Kubernetes clamps to the same floor.
_MIN_CPU_QUOTA_US = 1_000
_MAX_HOSTNAME = 63


def volume_spec(podname: str, volume: Volume, labels: dict[str, str]) -> dict[str, Any]:
    """`POST /volumes/create` body of one emptyDir (medium Memory → tmpfs, sizeLimit → its size)."""
    body: dict[str, Any] = {"Name": volume_name(podname, volume.name), "Label": labels}
    source = volume.empty_dir
    if source is not None and source.medium == "Memory":
        options = {"type": "tmpfs", "device": "tmpfs"}
        if source.size_limit is not None:
            # Podman 4.3 takes `size=` in a volume's options as an XFS project quota and refuses
            # it on tmpfs; tmpfs' own `nr_blocks` (pages) sets the same limit unhindered.
            pages = -(-memory_bytes(source.size_limit) // resource.getpagesize())
            options["o"] = f"nr_blocks={max(pages, 1)}"
        body["Options"] = options
    return body


def pod_spec(pod: Pod, podname: str, labels: dict[str, str]) -> dict[str, Any]:
    """`POST /pods/create` body: shared ipc/net/uts (one localhost), host ports published on the pod."""
    portmappings = [
        {"container_port": p.container_port, "host_port": p.host_port, "protocol": p.protocol.value.lower()}
        for c in pod.spec.containers
        for p in c.ports
        if p.host_port is not None
    ]
    return {
        "name": podname,
        "labels": labels,
        "hostname": pod.metadata.name[:_MAX_HOSTNAME].rstrip(".-"),
        "shared_namespaces": ["ipc", "net", "uts"],
        "portmappings": portmappings,
    }


def _resource_limits(container: Container) -> dict[str, Any]:
    limits = container.resources.limits
    cpu: dict[str, int] = {}
    if "cpu" in limits:
        cpu["quota"] = max(cpu_millis(limits["cpu"]) * _CPU_PERIOD_US // 1000, _MIN_CPU_QUOTA_US)
        cpu["period"] = _CPU_PERIOD_US
    request_millis = container.resources.request_cpu_millis()
    if request_millis:
        cpu["shares"] = max(request_millis * 1024 // 1000, 2)  # Kubernetes' milliCPUToShares
    result: dict[str, Any] = {}
    if cpu:
        result["cpu"] = cpu
    if "memory" in limits:
        result["memory"] = {"limit": memory_bytes(limits["memory"])}
    return result


def container_spec(pod: Pod, container: Container, index: int, podname: str, labels: dict[str, str]) -> dict[str, Any]:
    """`POST /containers/create` body (specgen) of one app container, joined to the pod `podname`."""
    body: dict[str, Any] = {
        "name": container_name(podname, container.name),
        "pod": podname,
        "image": container.image,
        "labels": {**labels, LABEL_CONTAINER: container.name, LABEL_CONTAINER_INDEX: str(index)},
        # Restarts are the agent's job (it implements restartPolicy and back-off), never Podman's.
        "restart_policy": "no",
        "stop_timeout": pod.spec.termination_grace_period_seconds,
        "env": {e.name: e.value for e in container.env},
        # nocopy: an emptyDir starts empty, unlike a Docker volume that copies the image's directory in.
        "volumes": [
            {
                "Name": volume_name(podname, m.name),
                "Dest": m.mount_path,
                "Options": ["nocopy", "ro"] if m.read_only else ["nocopy"],
            }
            for m in container.volume_mounts
        ],
    }
    # Kubernetes semantics map onto specgen exactly: command → entrypoint, args → command; an explicit
    # entrypoint makes Podman drop the image's CMD, as Kubernetes does when only `command` is given.
    if container.command is not None:
        body["entrypoint"] = container.command
    if container.args is not None:
        body["command"] = container.args
    if container.working_dir:
        body["work_dir"] = container.working_dir
    limits = _resource_limits(container)
    if limits:
        body["resource_limits"] = limits
    return body
