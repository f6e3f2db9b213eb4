"""Pod and container status as the agent reports it and `ekctl get pods` shows it (Kubernetes' shape)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, StrictBool, StrictInt

from edgekube.model.base import K8sModel


class PodPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


class ContainerStateWaiting(K8sModel):
    reason: str = ""
    message: str | None = None


class ContainerStateRunning(K8sModel):
    started_at: str | None = None


class ContainerStateTerminated(K8sModel):
    exit_code: StrictInt
    reason: str = ""
    message: str | None = None
    started_at: str | None = None
    finished_at: str | None = None


class ContainerState(K8sModel):
    waiting: ContainerStateWaiting | None = None
    running: ContainerStateRunning | None = None
    terminated: ContainerStateTerminated | None = None


class ContainerStatus(K8sModel):
    name: str
    image: str
    ready: StrictBool = False
    restart_count: StrictInt = 0
    #: Set on init containers' statuses (a sidecar counts as started while it runs), as the kubelet does.
    started: StrictBool | None = None
    state: ContainerState = Field(default_factory=ContainerState)
    last_state: ContainerState | None = None
    container_id: str | None = Field(default=None, alias="containerID")
    image_id: str | None = Field(default=None, alias="imageID")


class PodCondition(K8sModel):
    type: str
    status: str
    reason: str | None = None
    message: str | None = None
    last_transition_time: str | None = None


class PodStatus(K8sModel):
    phase: PodPhase = PodPhase.PENDING
    reason: str | None = None
    message: str | None = None
    host_ip: str | None = Field(default=None, alias="hostIP")
    pod_ip: str | None = Field(default=None, alias="podIP")
    start_time: str | None = None
    conditions: list[PodCondition] = Field(default_factory=list)
    container_statuses: list[ContainerStatus] = Field(default_factory=list)
    #: Only for a pod with init containers (sidecars included), in spec order.
    init_container_statuses: list[ContainerStatus] | None = None
