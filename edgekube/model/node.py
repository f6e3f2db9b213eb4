"""The Node kind (v1 subset): what an agent registers — labels, capacity, addresses, readiness."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, StrictBool, StrictInt

from edgekube.model.base import K8sModel
from edgekube.model.meta import ObjectMeta
from edgekube.model.quantity import Quantity
from edgekube.model.taints import Taint

#: Pods a node takes when its allocatable does not say (Kubernetes' kubelet default, maxPods).
DEFAULT_MAX_PODS = 110
#: How node.status.volumesInUse names an NFS-backed claim volume: this prefix and the PersistentVolume's name.
NFS_VOLUME_IN_USE = "edgekube.io/nfs/"


class NodeConditionType(StrEnum):
    """The node conditions edgekube reports: Kubernetes' own, and the Pi's (ThermalThrottling, UnderVoltage)."""

    READY = "Ready"
    MEMORY_PRESSURE = "MemoryPressure"
    DISK_PRESSURE = "DiskPressure"
    PID_PRESSURE = "PIDPressure"
    THERMAL_THROTTLING = "ThermalThrottling"
    UNDER_VOLTAGE = "UnderVoltage"


#: The NoSchedule taint a node carries while a condition is True (Kubernetes' TaintNodesByCondition, and ours).
CONDITION_TAINTS: dict[NodeConditionType, str] = {
    NodeConditionType.MEMORY_PRESSURE: "node.kubernetes.io/memory-pressure",
    NodeConditionType.DISK_PRESSURE: "node.kubernetes.io/disk-pressure",
    NodeConditionType.PID_PRESSURE: "node.kubernetes.io/pid-pressure",
    NodeConditionType.THERMAL_THROTTLING: "edgekube.io/thermal-throttling",
    NodeConditionType.UNDER_VOLTAGE: "edgekube.io/under-voltage",
}


class NodeSpec(K8sModel):
    unschedulable: StrictBool = False
    taints: list[Taint] = Field(default_factory=list)
    #: The node's pod network (docs/networking.md), allocated by the master from its `--cluster-cidr`.
    pod_cidr: str | None = Field(default=None, alias="podCIDR")
    pod_cidrs: list[str] | None = Field(default=None, alias="podCIDRs")


class NodeCondition(K8sModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str | None = None
    message: str | None = None
    last_heartbeat_time: str | None = None
    last_transition_time: str | None = None


class NodeAddress(K8sModel):
    type: str
    address: str


class NodeSystemInfo(K8sModel):
    architecture: str = ""
    operating_system: str = "linux"
    os_image: str = ""
    kernel_version: str = ""
    container_runtime_version: str = ""
    agent_version: str = ""
    machine_model: str = ""
    #: edgekube's addition: the node proxy of its pod network, `nftables` or `userspace` (docs/networking.md).
    proxy_mode: str = ""


class NfsServerStatus(K8sModel):
    """edgekube's addition to node status: whether this node can reach one NFS server of the cluster's volumes."""

    server: str
    port: StrictInt = 2049
    reachable: StrictBool
    #: Why not (one line), when unreachable.
    message: str | None = None
    last_probe_time: str | None = None


class LedStatus(K8sModel):
    """edgekube's addition to node status: what the node's LEDs show (docs/leds.md)."""

    pattern: str
    description: str = ""
    #: What drives them: e.g. `gpio pins 17,27 (green, red)`, `sysfs ...`, `none`.
    driver: str = ""
    #: RFC 3339: when the identify blinking requested by `ekctl node identify` ends.
    identify_until: str | None = None


class NodeStatus(K8sModel):
    capacity: dict[str, Quantity] = Field(default_factory=dict)
    allocatable: dict[str, Quantity] = Field(default_factory=dict)
    conditions: list[NodeCondition] = Field(default_factory=list)
    addresses: list[NodeAddress] = Field(default_factory=list)
    node_info: NodeSystemInfo = Field(default_factory=NodeSystemInfo)
    nfs_servers: list[NfsServerStatus] = Field(default_factory=list)
    #: The volumes the agent still has on the node (Podman volumes of claims, of any pod, sorted), as Kubernetes'
    #: kubelet lists the volumes it has mounted: `edgekube.io/nfs/<pv name>`. A claim and its volume's directory
    #: are kept while a node lists it.
    volumes_in_use: list[str] = Field(default_factory=list)
    leds: LedStatus | None = None


class Node(K8sModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["Node"] = "Node"
    metadata: ObjectMeta
    spec: NodeSpec = Field(default_factory=NodeSpec)
    status: NodeStatus | None = None
