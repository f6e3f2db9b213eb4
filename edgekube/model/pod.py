"""The Pod kind (v1 subset): containers, ports, resources, volumes, restart policy; validated with Kubernetes' rules."""

from __future__ import annotations

from enum import StrEnum
from functools import partial
from typing import Literal

from pydantic import Field, StrictBool, StrictInt, field_validator, model_validator

from edgekube.model.affinity import Affinity, TopologySpreadConstraint, duplicate_spread_errors
from edgekube.model.base import Int32, Int64, K8sModel
from edgekube.model.dns import DNSPolicy, PodDNSConfig, dns_errors
from edgekube.model.errors import ValidationError
from edgekube.model.fielderrors import Problems, duplicate, forbidden, invalid, not_found, required
from edgekube.model.lifecycle import Lifecycle, sleep_errors
from edgekube.model.meta import ObjectMeta, check_label_map
from edgekube.model.names import (
    check_dns1123_label,
    check_dns1123_subdomain,
    check_env_name,
    dns1123_subdomain_errors,
    port_name_errors,
    port_num_errors,
)
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
from edgekube.model.quantity import Quantity, cpu_millis, memory_bytes, quantity_errors
from edgekube.model.registryauth import LocalObjectReference
from edgekube.model.resources import STANDARD, check_extended, check_resource_name, extended_requests
from edgekube.model.security import HostAlias, PodSecurityContext, SecurityContext, host_sysctl_error
from edgekube.model.status import PodStatus
from edgekube.model.taints import Toleration


class RestartPolicy(StrEnum):
    ALWAYS = "Always"
    ON_FAILURE = "OnFailure"
    NEVER = "Never"


class Protocol(StrEnum):
    """validateContainerPorts' supportedPortProtocols, in the order its NotSupported error lists them (sorted)."""

    #: Mapped by Podman ("sctp"); an SCTP hostPort on a node whose kernel lacks SCTP is refused there (runtime/sctp.py).
    SCTP = "SCTP"
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
    def _rules(self) -> EnvVar:
        """validation.go ValidateEnv: the name (IsEnvVarName), and `value` or `valueFrom`, not both."""
        problems = Problems()
        problems.run("name", lambda: check_env_name(self.name, ""))
        if self.value and self.value_from is not None:
            problems.add('valueFrom: Invalid value: "": may not be specified when `value` is not empty')
        problems.raise_any()
        return self


class ContainerPort(K8sModel):
    container_port: StrictInt
    #: 0 means unset, as in Kubernetes (hostPort is an int32 whose zero value is "no host port").
    host_port: StrictInt | None = None
    protocol: Protocol = Protocol.TCP
    name: str | None = None

    @field_validator("host_port", mode="before")
    @classmethod
    def _zero_is_unset(cls, value: object) -> object:
        return None if type(value) is int and value == 0 else value

    @field_validator("protocol", mode="before")
    @classmethod
    def _default_protocol(cls, value: object) -> object:
        return Protocol.TCP if value == "" else value  # SetDefaults_ContainerPort

    @model_validator(mode="after")
    def _rules(self) -> ContainerPort:
        """validation.go validateContainerPorts, for one port (names' uniqueness is the container's rule)."""
        problems = Problems()
        if self.name:
            problems.add(*(invalid("name", self.name, m) for m in port_name_errors(self.name)))
        if self.container_port == 0:
            problems.add(required("containerPort"))
        else:
            problems.add(
                *(invalid("containerPort", self.container_port, m) for m in port_num_errors(self.container_port))
            )
        if self.host_port is not None:
            problems.add(*(invalid("hostPort", self.host_port, m) for m in port_num_errors(self.host_port)))
        problems.raise_any()
        return self


class ResourceRequirements(K8sModel):
    """requests/limits keyed `cpu`, `memory` or an extended resource (`edgekube.io/serial`), as quantities."""

    requests: dict[str, Quantity] = Field(default_factory=dict)
    limits: dict[str, Quantity] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _quantities(self) -> ResourceRequirements:
        """validation.go validateResourceRequirements: every name and quantity checked, every problem reported."""
        problems = Problems()
        good: set[tuple[str, str]] = set()
        for section in ("limits", "requests"):
            values: dict[str, Quantity] = getattr(self, section)
            for key, raw in values.items():
                path = f"{section}[{key}]"
                before = len(problems.lines)
                problems.run("", partial(check_resource_name, key, path))
                problems.add(*(invalid(path, str(raw), m) for m in quantity_errors(raw)))
                if len(problems.lines) == before:
                    good.add((section, key))
        for key in STANDARD:
            if ("requests", key) in good and ("limits", key) in good:
                convert = cpu_millis if key == "cpu" else memory_bytes
                if convert(self.requests[key]) > convert(self.limits[key]):
                    # Kubernetes names the requests map here, not the entry.
                    detail = f"must be less than or equal to {key} limit of {self.limits[key]}"
                    problems.add(invalid("requests", str(self.requests[key]), detail))
        if not problems.lines:
            problems.run("", lambda: check_extended(self.requests, self.limits))
        problems.raise_any()
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


def descending_path_errors(value: str, field: str) -> list[str]:
    """validation.go validateLocalDescendingPath: relative, and no `..` element (subPath, items' paths)."""
    errs = [invalid(field, value, "must be a relative path")] if value.startswith("/") else []
    if ".." in value.split("/"):
        errs.append(invalid(field, value, "must not contain '..'"))
    return errs


def check_descending_path(value: str, field: str) -> str:
    """descending_path_errors, raised as one ValidationError."""
    errs = descending_path_errors(value, field)
    if errs:
        raise ValidationError("\n".join(errs))
    return value


class VolumeMount(K8sModel):
    name: str
    #: Kubernetes asks only that it is set (and unique in its container); the runtime resolves a relative one
    #: against the container's root, as the kubelet's runtimes do.
    mount_path: str
    read_only: StrictBool = False
    #: A path inside the volume to mount instead of its root (created on first use, as the kubelet does).
    sub_path: str = ""
    #: Like sub_path, with `$(VAR)` expanded from the container's environment (e.g. `$(POD_NAME)`).
    sub_path_expr: str = ""

    def container_path(self) -> str:
        """Where the runtime mounts it: the kubelet's makeMounts makes a relative mountPath absolute (from `/`)."""
        return self.mount_path if self.mount_path.startswith("/") else "/" + self.mount_path

    @model_validator(mode="after")
    def _rules(self) -> VolumeMount:
        """validation.go ValidateVolumeMounts, for one mount (the volume's name and uniqueness: the pod's rules)."""
        problems = Problems()
        if not self.name:
            problems.add(required("name"))
        if not self.mount_path:
            problems.add(required("mountPath"))
        if self.sub_path:
            problems.add(*descending_path_errors(self.sub_path, "subPath"))
        if self.sub_path_expr:
            if self.sub_path:
                detail = "subPathExpr and subPath are mutually exclusive"
                problems.add(invalid("subPathExpr", self.sub_path_expr, detail))
            problems.add(*descending_path_errors(self.sub_path_expr, "subPathExpr"))
        problems.raise_any()
        return self


class Container(K8sModel):
    name: str
    image: str
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
    stdin: StrictBool | None = None
    #: Accepted and ignored: it only changes what a second attach sees, and edgekube has no attach.
    stdin_once: StrictBool | None = None
    tty: StrictBool | None = None
    #: postStart / preStop hooks (edgekube.model.lifecycle), run by the agent (agent/hooks.py) as the kubelet does.
    lifecycle: Lifecycle | None = None
    #: Only on an init container, only "Always": a restartable sidecar (Kubernetes 1.29+), started in order with the
    #: init containers, not waited for to exit, restarted whenever it exits, stopped after the app containers.
    restart_policy: Literal["Always"] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_dns1123_label(value, "")

    @field_validator("image_pull_policy", mode="before")
    @classmethod
    def _default_pull_policy(cls, value: object) -> object:
        return None if value == "" else value  # SetDefaults_Container: "" is the default of pull_policy()

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        """validation.go validateContainerCommon: the image is required (whitespace: Pod._containers_only_for_pod)."""
        if not value:
            raise ValidationError("Required value")
        return value

    @model_validator(mode="after")
    def _rules(self) -> Container:
        """validation.go validateContainerCommon's per-container rules, every problem reported.

        Port names are unique (validateContainerPorts); mount paths are unique
        (ValidateVolumeMounts); liveness and startup probes need successThreshold 1 (validateContainerCommon).
        """
        problems = Problems()
        names: set[str] = set()
        for j, port in enumerate(self.ports):
            if port.name and port.name in names:
                problems.add(duplicate(f"ports[{j}].name", port.name))
            if port.name:
                names.add(port.name)
        paths: set[str] = set()
        for j, mount in enumerate(self.volume_mounts):
            if mount.mount_path in paths:
                problems.add(invalid(f"volumeMounts[{j}].mountPath", mount.mount_path, "must be unique"))
            paths.add(mount.mount_path)
        for field, probe in (
            ("livenessProbe", self.liveness_probe),
            ("startupProbe", getattr(self, "startup_probe", None)),
        ):
            if probe is not None and probe.success_threshold != 1:
                problems.add(invalid(f"{field}.successThreshold", probe.success_threshold, "must be 1"))
        problems.raise_any()
        return self

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
        """resource.ParseQuantity, then validation.go validateVolumeSource: a negative sizeLimit is Forbidden."""
        errs = [] if value is None else quantity_errors(value)
        if errs and errs[0].startswith("must be greater than or equal to 0"):
            raise ValidationError("Forbidden: SizeLimit field must be a valid resource quantity")
        if errs:
            raise ValidationError("\n".join(invalid("", str(value), e) for e in errs))
        return value

    def limit_bytes(self) -> int | None:
        return None if self.size_limit is None else memory_bytes(self.size_limit, "sizeLimit")


class NFSVolumeSource(K8sModel):
    """An NFS export mounted into the pod (Kubernetes' `nfs` volume); also a PersistentVolume's source."""

    server: str
    path: str
    read_only: StrictBool = False

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
            raise ValidationError(invalid("", value, "must be an absolute path"))
        return value


class PersistentVolumeClaimVolumeSource(K8sModel):
    """A claim (PersistentVolumeClaim in the pod's namespace) whose bound volume the pod mounts."""

    claim_name: str
    read_only: StrictBool = False

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
            raise ValidationError(invalid("", value, "must not contain '..'"))
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


#: validateVolumeSource's order of the sources edgekube has (it decides which one a "more than 1" error names).
_SOURCE_ORDER = (
    ("hostPath", "host_path"),
    ("emptyDir", "empty_dir"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("persistentVolumeClaim", "persistent_volume_claim"),
    ("downwardAPI", "downward_api"),
    ("configMap", "config_map"),
    ("projected", "projected"),
)


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
        """validation.go validateVolumeSource: one source; each one after the first is Forbidden by its key."""
        given = [key for key, attr in _SOURCE_ORDER if getattr(self, attr, None) is not None]
        if len(given) > 1:
            raise ValidationError(
                "\n".join(f"{key}: Forbidden: may not specify more than 1 volume type" for key in given[1:])
            )
        if not given:
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
    containers: list[Container]
    #: Run in order, each to completion, before the app containers; `restartPolicy: Always` ones are sidecars.
    #: (None when unset, so the spec hash of pods without them is unchanged.)
    init_containers: list[Container] | None = None
    restart_policy: RestartPolicy = RestartPolicy.ALWAYS
    node_selector: dict[str, str] = Field(default_factory=dict)
    node_name: str | None = None
    volumes: list[Volume] = Field(default_factory=list)
    #: No upper bound, as in Kubernetes (an int64); only negative values are refused.
    termination_grace_period_seconds: Int64 = Field(default=10, ge=0)
    tolerations: list[Toleration] = Field(default_factory=list)
    #: Eviction order among pods of the same QoS class (lower goes first); set directly, no PriorityClass yet.
    priority: Int32 | None = None
    #: nodeAffinity, podAffinity, podAntiAffinity (edgekube.model.affinity); matched by the scheduler.
    affinity: Affinity | None = None
    topology_spread_constraints: list[TopologySpreadConstraint] = Field(default_factory=list)
    #: Pod-wide user, groups, seccomp, sysctls; containers' own securityContext wins (edgekube.model.security).
    security_context: PodSecurityContext | None = None
    host_network: StrictBool | None = None
    host_pid: StrictBool | None = Field(default=None, alias="hostPID")
    share_process_namespace: StrictBool | None = None
    host_aliases: list[HostAlias] | None = None
    #: Pod-level cpu/memory requests and limits (PodLevelResources): scheduled as the pod's request
    #: (model.podresources.pod_requests); the limits become the Podman pod's cgroup, bounding every container.
    resources: PodResourceRequirements | None = None
    #: The pod's resolv.conf (edgekube.model.dns); unset is ClusterFirst (the cluster DNS with the pod network on).
    dns_policy: DNSPolicy | None = None
    dns_config: PodDNSConfig | None = None
    #: Services of the pod's namespace as `<SVC>_SERVICE_HOST`... variables (docs/networking.md); unset is true.
    enable_service_links: StrictBool | None = None
    #: Secrets (dockerconfigjson, dockercfg) whose registry credentials the node's image pulls use; the master
    #: resolves them for the node running the pod only (master.configdata), the runtime picks per image.
    image_pull_secrets: list[LocalObjectReference] | None = None

    @field_validator("restart_policy", mode="before")
    @classmethod
    def _default_restart_policy(cls, value: object) -> object:
        return RestartPolicy.ALWAYS if value == "" else value  # SetDefaults_PodSpec

    @field_validator("containers")
    @classmethod
    def _some_containers(cls, value: list[Container]) -> list[Container]:
        """validation.go validateContainers: at least one container (Required)."""
        if not value:
            raise ValidationError("Required value")
        return value

    @field_validator("node_selector")
    @classmethod
    def _node_selector(cls, value: dict[str, str]) -> dict[str, str]:
        check_label_map(value)
        return value

    @field_validator("node_name")
    @classmethod
    def _node_name(cls, value: str | None) -> str | None:
        """validation.go ValidatePodSpec: a set nodeName is a node's name (ValidateNodeName, DNS-1123 subdomain)."""
        errs = dns1123_subdomain_errors(value) if value else []
        if errs:
            raise ValidationError("\n".join(invalid("", value, m) for m in errs))
        return value

    @field_validator("dns_policy", mode="before")
    @classmethod
    def _dns_policy_default(cls, value: object) -> object:
        return None if value == "" else value  # SetDefaults_PodSpec: "" is ClusterFirst, as unset

    @model_validator(mode="after")
    def _cross_fields(self) -> PodSpec:
        """validation.go ValidatePodSpec's rules across fields; every problem reported, not only the first."""
        found = Problems()
        found.run("", lambda: _unique([c.name for c in self.containers], "containers", "name"))
        found.run("", lambda: _unique([v.name for v in self.volumes], "volumes", "name"))
        for i, container in enumerate(self.containers):
            if container.restart_policy is not None:  # validateContainers
                found.add(f"containers[{i}].restartPolicy: Forbidden: may not be set for non-init containers")
        found.run("", self._check_init_containers)
        if len(self.topology_spread_constraints) > 1:
            spread = duplicate_spread_errors(self.topology_spread_constraints)
            found.add(*spread)
        found.run("", self._check_host_namespaces)
        if self.resources is not None:
            problems = consistency_errors(self.to_dict())  # validatePodResourceConsistency
            found.add(*problems)
        hooks = [
            e
            for i, c in enumerate(self.containers)
            for e in sleep_errors(c.lifecycle, self.termination_grace_period_seconds, f"containers[{i}]")
        ]
        found.add(*hooks)
        found.add(*dns_errors(self.dns_policy, self.dns_config))
        volume_names = {v.name for v in self.volumes}
        host_ports: set[tuple[int, str]] = set()
        for i, container in enumerate(self.containers):
            for j, mount in enumerate(container.volume_mounts):
                if mount.name not in volume_names:
                    found.add(not_found(f"containers[{i}].volumeMounts[{j}].name", mount.name))
            for j, port in enumerate(container.ports):
                if port.host_port is None:
                    continue
                key = (port.host_port, port.protocol.value)
                if key in host_ports:  # AccumulateUniqueHostPorts: hostIP/protocol/port
                    found.add(duplicate(f"containers[{i}].ports[{j}].hostPort", f"/{key[1]}/{key[0]}"))
                host_ports.add(key)
        found.raise_any()
        return self

    def all_containers(self) -> list[Container]:
        """Init containers (sidecars among them) then app containers, in spec order: what the runtime creates."""
        return [*(self.init_containers or []), *self.containers]

    def _check_init_containers(self) -> None:
        """Kubernetes' validateInitContainers (pkg/apis/core/validation/validation.go), every problem reported."""
        found: list[str] = []
        names = {c.name for c in self.containers}
        volume_names = {v.name for v in self.volumes}
        for i, container in enumerate(self.init_containers or []):
            path = f"initContainers[{i}]"
            if container.name in names:  # unique across init and app containers
                found.append(duplicate(f"{path}.name", container.name))
            names.add(container.name)
            for j, mount in enumerate(container.volume_mounts):
                if mount.name not in volume_names:
                    found.append(not_found(f"{path}.volumeMounts[{j}].name", mount.name))
            # Host ports are checked per init container, as they run one by one (checkHostPortConflicts on each).
            ports: set[tuple[int, str]] = set()
            for j, port in enumerate(container.ports):
                if port.host_port is None:
                    continue
                key = (port.host_port, port.protocol.value)
                if key in ports:
                    found.append(duplicate(f"{path}.ports[{j}].hostPort", f"/{key[1]}/{key[0]}"))
                ports.add(key)
            if container.restart_policy == "Always":  # a sidecar may have probes and hooks, validated as an app's
                found.extend(sleep_errors(container.lifecycle, self.termination_grace_period_seconds, path))
                continue
            for field in ("lifecycle", "liveness_probe", "readiness_probe", "startup_probe"):
                if getattr(container, field, None) is not None:
                    detail = "may not be set for init containers without restartPolicy=Always"
                    found.append(forbidden(f"{path}.{_camel(field)}", detail))
            if getattr(container, "resize_policy", None):
                found.append(invalid(f"{path}.resizePolicy", "", "must not be set for init containers"))
        if found:
            raise ValidationError("\n".join(found))

    def _check_host_namespaces(self) -> None:
        """ValidatePodSecurityContext's host namespace rules, after SetDefaults_PodSpec's hostNetwork hostPorts."""
        if self.host_pid and self.share_process_namespace:
            raise ValidationError(
                "securityContext.shareProcessNamespace: Invalid value: true: "
                "ShareProcessNamespace and HostPID cannot both be enabled"
            )
        if not self.host_network:
            return
        listed = [("containers", self.containers), ("initContainers", self.init_containers or [])]
        for kind, containers in listed:
            for i, container in enumerate(containers):
                for j, port in enumerate(container.ports):
                    if port.host_port is None:
                        port.host_port = port.container_port  # SetDefaults_PodSpec (init containers too)
                    elif port.host_port != port.container_port:
                        raise ValidationError(
                            f"{kind}[{i}].ports[{j}].containerPort: Invalid value: {port.container_port}: "
                            "must match `hostPort` when `hostNetwork` is true"
                        )
        for i, sysctl in enumerate(self.security_context.sysctls if self.security_context else []):
            error = host_sysctl_error(sysctl.name, True)
            if error:
                raise ValidationError(f"securityContext.sysctls[{i}].name: {error}")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _unique(names: list[str], field: str, attr: str) -> None:
    seen: set[str] = set()
    problems = Problems()
    for i, name in enumerate(names):
        if name in seen:
            problems.add(duplicate(f"{field}[{i}].{attr}", name))
        seen.add(name)
    problems.raise_any()


class Pod(K8sModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["Pod"] = "Pod"
    metadata: ObjectMeta
    spec: PodSpec
    status: PodStatus | None = None

    @model_validator(mode="after")
    def _containers_only_for_pod(self) -> Pod:
        """validation.go validateContainersOnlyForPod: a pod's (not a template's) images have no edge whitespace."""
        problems = Problems()
        for kind, containers in (("containers", self.spec.containers), ("initContainers", self.spec.init_containers)):
            for i, container in enumerate(containers or []):
                if container.image != container.image.strip():
                    detail = "must not have leading or trailing whitespace"
                    problems.add(invalid(f"spec.{kind}[{i}].image", container.image, detail))
        problems.raise_any()
        return self
