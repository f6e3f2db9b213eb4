"""The kubelet's local-storage eviction of one pod (emptyDir sizeLimit, ephemeral-storage limits); pure, for PodActions.

The eviction manager's localStorageEviction checks, per pod and in this order, the first that fires winning:
emptyDirLimitEviction (a disk emptyDir over its sizeLimit), podEphemeralStorageLimitEviction (the pod's
containers and disk emptyDirs together over PodLimits' ephemeral-storage, the containers' limits aggregated),
containerEphemeralStorageLimitEviction (one container's writable layer and logs over its own limit). The
messages are the kubelet's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from edgekube.agent.runtime.volumes import measured_volumes, over_limit
from edgekube.model.pod import Pod
from edgekube.model.podresources import EPHEMERAL_STORAGE, storage_limits
from edgekube.model.quantity import format_bytes

_BINARY = ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
_DECIMAL = (("E", 10**18), ("P", 10**15), ("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3))


def measured(pod: Pod) -> bool:
    """Whether the pod has anything local-storage eviction holds it to (then PodActions measures it)."""
    if measured_volumes(pod):
        return True
    return any(EPHEMERAL_STORAGE in c.resources.limits for c in pod.spec.containers)


def quantity_text(value: int, written: list[str]) -> str:
    """`value` bytes as Kubernetes prints a sum of the quantities `written`: binary suffixes if they all use them."""
    if written and all(str(w).endswith(_BINARY) for w in written):
        return format_bytes(value)
    for suffix, factor in _DECIMAL:
        if value and value % factor == 0:
            return f"{value // factor}{suffix}"
    return str(value)


def eviction_message(pod: Pod, volumes: Mapping[str, int], containers: Callable[[], Mapping[str, int]]) -> str | None:
    """The kubelet's eviction message when the pod uses more local storage than allowed, else None.

    `volumes`: bytes per disk emptyDir (volume_usage); `containers`: asked only when a limit needs it, bytes per
    app container (container_usage: writable layer and log).
    """
    message = over_limit(pod, volumes)
    if message is not None:
        return message
    total, own = storage_limits(pod.spec)
    if total is None:
        return None
    used_by = containers()
    on_disk = {v.name for v in pod.spec.volumes if v.empty_dir is not None and v.empty_dir.medium != "Memory"}
    used = sum(used_by.values()) + sum(v for name, v in volumes.items() if name in on_disk)
    if used > total:
        limits = [c.resources.limits for c in pod.spec.containers if EPHEMERAL_STORAGE in c.resources.limits]
        text = quantity_text(total, [str(limit[EPHEMERAL_STORAGE]) for limit in limits])
        return f"Pod ephemeral local storage usage exceeds the total limit of containers {text}."
    for container in pod.spec.containers:
        limit = own.get(container.name)
        if limit is not None and used_by.get(container.name, 0) > limit:
            text = quantity_text(limit, [str(container.resources.limits[EPHEMERAL_STORAGE])])
            return f'Container {container.name} exceeded its local ephemeral storage limit "{text}".'
    return None
