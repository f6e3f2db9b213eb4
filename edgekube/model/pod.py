"""The Pod kind (v1 subset): containers, ports, resources, volumes, restart policy; validated with Kubernetes' rules."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgekube.model.affinity import Affinity, TopologySpreadConstraint, duplicate_spread_errors
from edgekube.model.base import K8sModel
from edgekube.model.errors import ValidationError
from edgekube.model.meta import ObjectMeta, check_label_map
from edgekube.model.names import check_dns1123_label, check_dns1123_subdomain, check_env_name
from edgekube.model.podconfig import (
    ConfigMapVolumeSource,
    DownwardAPIVolumeSource,
    EnvFromSource,
    EnvVarSource,
    ProjectedVolumeSource,
    SecretVolumeSource,
)
from edgekube.model.podresources import PodResourceRequirements, consistency_errors
from edgekube.model.probe import Probe
from edgekube.model.quantity import cpu_millis, memory_bytes
from edgekube.model.resources import STANDARD, check_extended, check_resource_name, extended_requests
from edgekube.model.security import HostAlias, PodSecurityContext, SecurityContext, host_sysctl_error
from edgekube.model.status import PodStatus
from edgekube.model.taints import Toleration

Quantity = str | int | float


class RestartPolicy(StrEnum):
    ALWAYS = "Always"
    ON_FAILURE = "OnFailure"
    NEVER = "Never"


class Protocol(StrEnum):
    TCP = "TCP"
    UDP = "UDP"


class PullPolicy(StrEnum):
    ALWAYS = "Always"
    IF_NOT_PRESENT = "IfNotPresent"
    NEVER = "Never"


class EnvVar(K8sModel):
    name: str
    value: str = ""
    #: A ConfigMap's or Secret's key, or a field of the pod or its container (resolved by the master at dispatch).
    value_from: EnvVarSource | None = None

    @model_validator(mode="after")
    def _value_or_from(self) -> EnvVar:
        if self.value and self.value_from is not None:
            raise ValidationError('valueFrom: Invalid value: "": may not be specified when `value` is not empty')
        return self

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_env_name(value, "")


class ContainerPort(K8sModel):
    container_port: int = Field(ge=1, le=65535)
    host_port: int | None = Field(default=None, ge=1, le=65535)
    protocol: Protocol = Protocol.TCP
    name: str | None = None


class ResourceRequirements(K8sModel):
    """requests/limits keyed `cpu`, `memory` or an extended resource (`edgekube.io/serial`), as quantities."""

    requests: dict[str, Quantity] = Field(default_factory=dict)
    limits: dict[str, Quantity] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _quantities(self) -> ResourceRequirements:
        for section in ("requests", "limits"):
            values: dict[str, Quantity] = getattr(self, section)
            for key, raw in values.items():
                check_resource_name(key, f"{section}[{key}]")
                if key in STANDARD:
                    (cpu_millis if key == "cpu" else memory_bytes)(raw, f"{section}.{key}")
        for key in ("cpu", "memory"):
            if key in self.requests and key in self.limits:
                convert = cpu_millis if key == "cpu" else memory_bytes
                if convert(self.requests[key]) > convert(self.limits[key]):
                    raise ValidationError(
                        f"requests.{key}: {self.requests[key]!r}: must be less than or equal to "
                        f"{key} limit of {self.limits[key]!r}"
                    )
        check_extended(self.requests, self.limits)
        return self

    def request_cpu_millis(self) -> int:
        """Requested millicores; as in Kubernetes a limit alone implies an equal request."""
        raw = self.requests.get("cpu", self.limits.get("cpu", 0))
        return cpu_millis(raw)

    def request_memory_bytes(self) -> int:
        """Requested bytes; as in Kubernetes a limit alone implies an equal request."""
        raw = self.requests.get("memory", self.limits.get("memory", 0))
        return memory_bytes(raw)

    def extended(self) -> dict[str, int]:
        """Extended resources requested (`{"edgekube.io/serial": 1}`); a limit alone implies an equal request."""
        return extended_requests(self.requests, self.limits)


def check_descending_path(value: str, field: str) -> str:
    """Kubernetes' validateLocalDescendingPath: relative, and no `..` element (subPath, items' paths)."""
    if value.startswith("/"):
        raise ValidationError(f"{field}: Invalid value: {value!r}: must be a relative path")
    if ".." in value.split("/"):
        raise ValidationError(f"{field}: Invalid value: {value!r}: must not contain '..'")
    return value


class VolumeMount(K8sModel):
    name: str
    mount_path: str
    read_only: bool = False
    #: A path inside the volume to mount instead of its root (created on first use, as the kubelet does).
    sub_path: str = ""
    #: Like sub_path, with `$(VAR)` expanded from the container's environment (e.g. `$(POD_NAME)`).
    sub_path_expr: str = ""

    @field_validator("mount_path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValidationError(f"{value!r}: must be an absolute path")
        return value

    @model_validator(mode="after")
    def _sub_paths(self) -> VolumeMount:
        if self.sub_path and self.sub_path_expr:
            raise ValidationError("subPathExpr: Invalid value: subPathExpr and subPath are mutually exclusive")
        if self.sub_path:
            check_descending_path(self.sub_path, "subPath")
        if self.sub_path_expr:
            check_descending_path(self.sub_path_expr, "subPathExpr")
        return self


class Container(K8sModel):
    name: str
    image: str = Field(min_length=1)
    command: list[str] | None = None
    args: list[str] | None = None
    env: list[EnvVar] = Field(default_factory=list)
    #: Every key of a ConfigMap or Secret as a variable (prefixed); `env` entries win over them.
    env_from: list[EnvFromSource] | None = None
    ports: list[ContainerPort] = Field(default_factory=list)
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    volume_mounts: list[VolumeMount] = Field(default_factory=list)
    working_dir: str | None = None
    image_pull_policy: PullPolicy | None = None
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    #: User, groups, capabilities, read-only root, seccomp (edgekube.model.security); mapped to Podman's specgen.
    security_context: SecurityContext | None = None
    #: Keep the main process's stdin open (a pipe) rather than /dev/null; `tty`: give it a terminal.
    #: (None for unset, here and in PodSpec's host fields: an unset field stays out of the spec hash.)
    stdin: bool | None = None
    #: Accepted and ignored: it only changes what a second attach sees, and edgekube has no attach.
    stdin_once: bool | None = None
    tty: bool | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_dns1123_label(value, "")

    def pull_policy(self) -> PullPolicy:
        """Kubernetes' default: Always for `:latest` or untagged images, IfNotPresent otherwise."""
        if self.image_pull_policy is not None:
            return self.image_pull_policy
        last = self.image.rsplit("/", 1)[-1]
        if "@" in last or (":" in last and not last.endswith(":latest")):
            return PullPolicy.IF_NOT_PRESENT
        return PullPolicy.ALWAYS


class EmptyDirVolumeSource(K8sModel):
    """A directory that lives as long as the pod: on disk, or `medium: Memory` as tmpfs; `sizeLimit` enforced."""

    medium: Literal["", "Memory"] = ""
    size_limit: Quantity | None = None

    @field_validator("size_limit")
    @classmethod
    def _size(cls, value: Quantity | None) -> Quantity | None:
        if value is not None and memory_bytes(value, "sizeLimit") < 0:
            raise ValidationError(f"Invalid value: {value!r}: must be greater than or equal to 0")
        return value

    def limit_bytes(self) -> int | None:
        return None if self.size_limit is None else memory_bytes(self.size_limit, "sizeLimit")


class NFSVolumeSource(K8sModel):
    """An NFS export mounted into the pod (Kubernetes' `nfs` volume); also a PersistentVolume's source."""

    server: str
    path: str
    read_only: bool = False

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        if not value.strip():
            raise ValidationError("Required value")
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value:
            raise ValidationError("Required value")
        if not value.startswith("/"):
            raise ValidationError(f"Invalid value: {value!r}: must be an absolute path")
        return value


class PersistentVolumeClaimVolumeSource(K8sModel):
    """A claim (PersistentVolumeClaim in the pod's namespace) whose bound volume the pod mounts."""

    claim_name: str
    read_only: bool = False

    @field_validator("claim_name")
    @classmethod
    def _claim(cls, value: str) -> str:
        return check_dns1123_subdomain(value, "")


class HostPathType(StrEnum):
    """What must be at a hostPath before the pod starts (Kubernetes' HostPathType)."""

    UNSET = ""
    DIRECTORY_OR_CREATE = "DirectoryOrCreate"
    DIRECTORY = "Directory"
    FILE_OR_CREATE = "FileOrCreate"
    FILE = "File"
    SOCKET = "Socket"
    CHAR_DEVICE = "CharDevice"
    BLOCK_DEVICE = "BlockDevice"


class HostPathVolumeSource(K8sModel):
    """A file or directory of the node mounted into the pod; `type` is checked (or created) before it starts."""

    path: str
    type: HostPathType = HostPathType.UNSET

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value:
            raise ValidationError("Required value")
        if ".." in value.split("/"):
            raise ValidationError(f"Invalid value: {value!r}: must not contain '..'")
        return value


#: The volume sources a pod may use, by their manifest key.
VOLUME_SOURCES = (
    "emptyDir",
    "nfs",
    "persistentVolumeClaim",
    "hostPath",
    "configMap",
    "secret",
    "projected",
    "downwardAPI",
)
#: The sources whose files the master resolves and the agent writes (model.podconfig, agent.configfiles).
CONFIG_SOURCES = ("configMap", "secret", "projected", "downwardAPI")


class Volume(K8sModel):
    name: str
    empty_dir: EmptyDirVolumeSource | None = None
    nfs: NFSVolumeSource | None = None
    persistent_volume_claim: PersistentVolumeClaimVolumeSource | None = None
    host_path: HostPathVolumeSource | None = None
    config_map: ConfigMapVolumeSource | None = None
    secret: SecretVolumeSource | None = None
    projected: ProjectedVolumeSource | None = None
    downward_api: DownwardAPIVolumeSource | None = Field(default=None, alias="downwardAPI")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_dns1123_label(value, "")

    @model_validator(mode="after")
    def _one_source(self) -> Volume:
        sources: list[K8sModel] = [
            s for s in (self.empty_dir, self.nfs, self.persistent_volume_claim, self.host_path) if s
        ]
        sources += [s for s in (self.config_map, self.secret, self.projected, self.downward_api) if s is not None]
        if len(sources) > 1:
            raise ValidationError("may not specify more than 1 volume type")
        if not sources:
            # Kubernetes' defaulting (SetDefaults_Volume): a volume without a source is an emptyDir.
            self.empty_dir = EmptyDirVolumeSource()
        return self

    def source_kind(self) -> str:
        """The manifest key of this volume's source (one of VOLUME_SOURCES)."""
        if self.nfs is not None:
            return "nfs"
        if self.persistent_volume_claim is not None:
            return "persistentVolumeClaim"
        if self.host_path is not None:
            return "hostPath"
        for kind, source in (("configMap", self.config_map), ("secret", self.secret), ("projected", self.projected)):
            if source is not None:
                return kind
        if self.downward_api is not None:
            return "downwardAPI"
        return "emptyDir"


class PodSpec(K8sModel):
    containers: list[Container] = Field(min_length=1)
    restart_policy: RestartPolicy = RestartPolicy.ALWAYS
    node_selector: dict[str, str] = Field(default_factory=dict)
    node_name: str | None = None
    volumes: list[Volume] = Field(default_factory=list)
    termination_grace_period_seconds: int = Field(default=10, ge=0, le=3600)
    tolerations: list[Toleration] = Field(default_factory=list)
    #: Eviction order among pods of the same QoS class (lower goes first); set directly, no PriorityClass yet.
    priority: int | None = None
    #: nodeAffinity, podAffinity, podAntiAffinity (edgekube.model.affinity); matched by the scheduler.
    affinity: Affinity | None = None
    topology_spread_constraints: list[TopologySpreadConstraint] = Field(default_factory=list)
    #: Pod-wide user, groups, seccomp, sysctls; containers' own securityContext wins (edgekube.model.security).
    security_context: PodSecurityContext | None = None
    host_network: bool | None = None
    host_pid: bool | None = Field(default=None, alias="hostPID")
    share_process_namespace: bool | None = None
    host_aliases: list[HostAlias] | None = None
    #: Pod-level cpu/memory requests and limits (PodLevelResources): scheduled as the pod's request
    #: (model.podresources.pod_requests); the limits become the Podman pod's cgroup, bounding every container.
    resources: PodResourceRequirements | None = None

    @field_validator("node_selector")
    @classmethod
    def _node_selector(cls, value: dict[str, str]) -> dict[str, str]:
        check_label_map(value)
        return value

    @model_validator(mode="after")
    def _cross_fields(self) -> PodSpec:
        _unique([c.name for c in self.containers], "containers", "name")
        _unique([v.name for v in self.volumes], "volumes", "name")
        if len(self.topology_spread_constraints) > 1:
            spread = duplicate_spread_errors(self.topology_spread_constraints)
            if spread:
                raise ValidationError("\n".join(spread))
        self._check_host_namespaces()
        if self.resources is not None:
            problems = consistency_errors(self.to_dict())  # validatePodResourceConsistency
            if problems:
                raise ValidationError("\n".join(problems))
        volume_names = {v.name for v in self.volumes}
        host_ports: set[tuple[int, str]] = set()
        for i, container in enumerate(self.containers):
            for j, mount in enumerate(container.volume_mounts):
                if mount.name not in volume_names:
                    raise ValidationError(
                        f"containers[{i}].volumeMounts[{j}].name: Not found: {mount.name!r} "
                        "(must name one of spec.volumes)"
                    )
            for j, port in enumerate(container.ports):
                if port.host_port is None:
                    continue
                key = (port.host_port, port.protocol.value)
                if key in host_ports:
                    raise ValidationError(
                        f"containers[{i}].ports[{j}].hostPort: Duplicate value: "
                        f"'{port.host_port}/{port.protocol.value}'"
                    )
                host_ports.add(key)
        return self

    def _check_host_namespaces(self) -> None:
        """ValidatePodSecurityContext's host namespace rules, after SetDefaults_PodSpec's hostNetwork hostPorts."""
        if self.host_pid and self.share_process_namespace:
            raise ValidationError(
                "securityContext.shareProcessNamespace: Invalid value: true: "
                "ShareProcessNamespace and HostPID cannot both be enabled"
            )
        if not self.host_network:
            return
        for i, container in enumerate(self.containers):
            for j, port in enumerate(container.ports):
                if port.host_port is None:
                    port.host_port = port.container_port  # SetDefaults_PodSpec
                elif port.host_port != port.container_port:
                    raise ValidationError(
                        f"containers[{i}].ports[{j}].containerPort: Invalid value: {port.container_port}: "
                        "must match `hostPort` when `hostNetwork` is true"
                    )
        for i, sysctl in enumerate(self.security_context.sysctls if self.security_context else []):
            error = host_sysctl_error(sysctl.name, True)
            if error:
                raise ValidationError(f"securityContext.sysctls[{i}].name: {error}")


def _unique(names: list[str], field: str, attr: str) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise ValidationError(f"{field}[{i}].{attr}: Duplicate value: {name!r}")
        seen.add(name)


class Pod(K8sModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["Pod"] = "Pod"
    metadata: ObjectMeta
    spec: PodSpec
    status: PodStatus | None = None
