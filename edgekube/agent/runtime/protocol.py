"""The PodRuntime protocol the agent's reconciler drives, and the observed-state records runtimes return."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from edgekube.model.names import PodUID
from edgekube.model.pod import Pod

#: Labels put on every Podman object edgekube creates, so a restarted agent can find and adopt them.
LABEL_MANAGED = "io.edgekube.managed"
LABEL_NODE = "io.edgekube.node"
LABEL_POD_UID = "io.edgekube.pod.uid"
LABEL_POD_NAME = "io.edgekube.pod.name"
LABEL_POD_NAMESPACE = "io.edgekube.pod.namespace"
LABEL_SPEC_HASH = "io.edgekube.spec-hash"
LABEL_CONTAINER = "io.edgekube.container"


class ContainerRunState(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ObservedContainer:
    """One app container of a pod as the runtime sees it (the infra container is not listed)."""

    name: str
    container_id: str
    image: str
    state: ContainerRunState
    exit_code: int | None = None
    started_at: str | None = None  # RFC 3339 UTC
    finished_at: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class ObservedPod:
    """One edgekube pod found on the runtime, identified by the labels the agent put on it."""

    uid: PodUID
    namespace: str
    name: str
    spec_hash: str
    pod_id: str
    containers: tuple[ObservedContainer, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class RuntimeInfo:
    name: str  # "podman"
    version: str  # "4.3.1"
    api_version: str


class PodRuntime(Protocol):
    """What the agent needs from a container engine. Every method is idempotent and safe to repeat."""

    def info(self) -> RuntimeInfo:
        """Engine name and version (for Node.status.nodeInfo)."""
        ...

    def list_pods(self) -> list[ObservedPod]:
        """Every pod this agent's node created (label io.edgekube.node == node), running or not."""
        ...

    def create_pod(self, pod: Pod, uid: PodUID, spec_hash: str) -> ObservedPod:
        """Create and start the pod: infra container (shared localhost), emptyDir volumes, then its containers.

        Images are pulled per the container's pull policy. Raises RuntimeFailure with `reason` set
        (`ErrImagePull`, `ImageNotFound`, `CreateContainerError`, ...) and leaves nothing half-created behind.
        """
        ...

    def remove_pod(self, uid: PodUID, grace_seconds: int = 10) -> None:
        """Stop (SIGTERM, then SIGKILL after the grace) and remove the pod, its containers and emptyDir volumes.

        Removing a pod that does not exist is not an error.
        """
        ...

    def logs(self, uid: PodUID, container: str, tail: int | None = None) -> str:
        """stdout+stderr of one container; NotFoundError names the pod or container that is missing."""
        ...
