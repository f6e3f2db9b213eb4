"""Names, labels and state words edgekube uses on Podman objects; shared by the PodmanRuntime parts (pure)."""

from __future__ import annotations

import hashlib

from edgekube.agent.runtime.podman.transport import label_filters
from edgekube.agent.runtime.protocol import (
    LABEL_GRACE,
    LABEL_MANAGED,
    LABEL_NODE,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    LABEL_SPEC_HASH,
    ContainerRunState,
)
from edgekube.model.names import NodeName, PodUID
from edgekube.model.pod import Pod

#: Private label: the container's position in spec.containers, so list_pods can return them in spec order.
LABEL_CONTAINER_INDEX = "io.edgekube.container.index"
#: Private label of an init container: `init`, or `sidecar` for one with restartPolicy Always (its index label
#: is then its position in spec.initContainers).
LABEL_INIT = "io.edgekube.container.init"
#: Private label of a pod's Podman volumes: the pod volume it serves (its kind: protocol.LABEL_VOLUME_KIND).
LABEL_VOLUME = "io.edgekube.volume"

_STATE_MAP = {
    "created": ContainerRunState.CREATED,
    "configured": ContainerRunState.CREATED,
    "initialized": ContainerRunState.CREATED,
    "running": ContainerRunState.RUNNING,
    "paused": ContainerRunState.RUNNING,
    "stopping": ContainerRunState.RUNNING,
    "exited": ContainerRunState.EXITED,
    "stopped": ContainerRunState.EXITED,
}


def pod_name(namespace: str, name: str, uid: str) -> str:
    """Deterministic Podman pod name; the uid suffix keeps a re-created pod clear of its predecessor."""
    return f"ek_{namespace}_{name}_{uid[:8]}"


def container_name(podname: str, container: str) -> str:
    return f"{podname}_{container}"


def volume_name(podname: str, volume: str, sub_path: str = "") -> str:
    """`<podname>_<volume>`; a volume made for one subPath (NFS) gets a digest of that path appended."""
    if not sub_path:
        return f"{podname}_{volume}"
    return f"{podname}_{volume}_{hashlib.sha256(sub_path.encode()).hexdigest()[:8]}"


def run_state(value: object) -> ContainerRunState:
    """Podman's container state word (`running`, `exited`, …) as a ContainerRunState."""
    return _STATE_MAP.get(str(value or "").lower(), ContainerRunState.UNKNOWN)


def pod_labels(node: NodeName, pod: Pod, uid: PodUID, spec_hash: str) -> dict[str, str]:
    """Labels on every object of the pod: enough for a restarted agent to find and adopt it."""
    return {
        LABEL_MANAGED: "true",
        LABEL_NODE: node,
        LABEL_POD_UID: uid,
        LABEL_POD_NAME: pod.metadata.name,
        LABEL_POD_NAMESPACE: pod.metadata.namespace,
        LABEL_SPEC_HASH: spec_hash,
        LABEL_GRACE: str(pod.spec.termination_grace_period_seconds),
    }


def owned_labels(node: NodeName, **extra: str) -> dict[str, str]:
    """The labels of this node's edgekube objects (and `extra` ones, e.g. one pod's uid)."""
    return {LABEL_MANAGED: "true", LABEL_NODE: node, **extra}


def owned(node: NodeName, **extra: str) -> dict[str, str]:
    """Query parameters selecting this node's edgekube pods and containers (not volumes: transport.list_volumes)."""
    return label_filters(owned_labels(node, **extra))


def of_pod(node: NodeName, uid: PodUID) -> dict[str, str]:
    """Query parameters selecting the objects of one pod on this node."""
    return owned(node, **{LABEL_POD_UID: uid})
