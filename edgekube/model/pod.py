"""The Pod kind (v1 subset): containers, ports, resources, volumes, restart policy; validated with Kubernetes' rules."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgekube.model.base import K8sModel
from edgekube.model.errors import ValidationError
from edgekube.model.meta import ObjectMeta, check_label_map
from edgekube.model.names import check_dns1123_label, check_env_name
from edgekube.model.probe import Probe
from edgekube.model.quantity import cpu_millis, memory_bytes
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
    """requests/limits keyed `cpu` and `memory`, in Kubernetes quantity syntax."""

    requests: dict[Literal["cpu", "memory"], Quantity] = Field(default_factory=dict)
    limits: dict[Literal["cpu", "memory"], Quantity] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _quantities(self) -> ResourceRequirements:
        for section in ("requests", "limits"):
            values: dict[Literal["cpu", "memory"], Quantity] = getattr(self, section)
            for key, raw in values.items():
                (cpu_millis if key == "cpu" else memory_bytes)(raw, f"{section}.{key}")
        for key in ("cpu", "memory"):
            if key in self.requests and key in self.limits:
                convert = cpu_millis if key == "cpu" else memory_bytes
                if convert(self.requests[key]) > convert(self.limits[key]):
                    raise ValidationError(
                        f"requests.{key}: {self.requests[key]!r}: must be less than or equal to "
                        f"{key} limit of {self.limits[key]!r}"
                    )
        return self

    def request_cpu_millis(self) -> int:
        """Requested millicores; as in Kubernetes a limit alone implies an equal request."""
        raw = self.requests.get("cpu", self.limits.get("cpu", 0))
        return cpu_millis(raw)

    def request_memory_bytes(self) -> int:
        """Requested bytes; as in Kubernetes a limit alone implies an equal request."""
        raw = self.requests.get("memory", self.limits.get("memory", 0))
        return memory_bytes(raw)


class VolumeMount(K8sModel):
    name: str
    mount_path: str
    read_only: bool = False

    @field_validator("mount_path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValidationError(f"{value!r}: must be an absolute path")
        return value


class Container(K8sModel):
    name: str
    image: str = Field(min_length=1)
    command: list[str] | None = None
    args: list[str] | None = None
    env: list[EnvVar] = Field(default_factory=list)
    ports: list[ContainerPort] = Field(default_factory=list)
    resources: ResourceRequirements = Field(default_factory=ResourceRequirements)
    volume_mounts: list[VolumeMount] = Field(default_factory=list)
    working_dir: str | None = None
    image_pull_policy: PullPolicy | None = None
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None

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
    medium: Literal["", "Memory"] = ""
    size_limit: Quantity | None = None


class Volume(K8sModel):
    name: str
    empty_dir: EmptyDirVolumeSource | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_dns1123_label(value, "")

    @model_validator(mode="after")
    def _one_source(self) -> Volume:
        if self.empty_dir is None:
            raise ValidationError("must specify a volume type (supported: emptyDir)")
        return self


class PodSpec(K8sModel):
    containers: list[Container] = Field(min_length=1)
    restart_policy: RestartPolicy = RestartPolicy.ALWAYS
    node_selector: dict[str, str] = Field(default_factory=dict)
    node_name: str | None = None
    volumes: list[Volume] = Field(default_factory=list)
    termination_grace_period_seconds: int = Field(default=10, ge=0, le=3600)
    tolerations: list[Toleration] = Field(default_factory=list)

    @field_validator("node_selector")
    @classmethod
    def _node_selector(cls, value: dict[str, str]) -> dict[str, str]:
        check_label_map(value)
        return value

    @model_validator(mode="after")
    def _cross_fields(self) -> PodSpec:
        _unique([c.name for c in self.containers], "containers", "name")
        _unique([v.name for v in self.volumes], "volumes", "name")
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
