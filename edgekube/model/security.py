"""Pod and container securityContext, hostAliases: Kubernetes' fields and rules; used by model.pod and the runtime.

Rules ported from pkg/apis/core/validation/validation.go (ValidatePodSecurityContext, ValidateSecurityContext,
validateSysctls, ValidateHostSysctl, validateSeccompProfileField, ValidateHostAliases) and the kubelet's
DetermineEffectiveSecurityContext (pkg/securitycontext/util.go): a container's own setting wins over the pod's.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum

from pydantic import Field, StrictBool, StrictInt, field_validator, model_validator

from edgekube.model.base import K8sModel
from edgekube.model.errors import ValidationError
from edgekube.model.fielderrors import quote
from edgekube.model.names import check_dns1123_subdomain

#: validation.IsValidUserID / IsValidGroupID: 0 .. math.MaxInt32.
MAX_ID = 2_147_483_647
_ID_RANGE = f"must be between 0 and {MAX_ID}, inclusive"
#: validation.go's SysctlContainSlashFmt and SysctlMaxLength (names may use `/` for `.`).
_SYSCTL_SEGMENT = "[a-z0-9]([-_a-z0-9]*[a-z0-9])?"
SYSCTL_PATTERN = f"^({_SYSCTL_SEGMENT}[\\./])*{_SYSCTL_SEGMENT}$"
_SYSCTL = re.compile(SYSCTL_PATTERN)
SYSCTL_MAX_LENGTH = 253


def _check_id(value: int | None) -> int | None:
    if value is not None and not 0 <= value <= MAX_ID:
        raise ValidationError(f"Invalid value: {value}: {_ID_RANGE}")
    return value


class SeccompProfileType(StrEnum):
    RUNTIME_DEFAULT = "RuntimeDefault"
    UNCONFINED = "Unconfined"
    LOCALHOST = "Localhost"


class SeccompProfile(K8sModel):
    """validateSeccompProfileField: `localhostProfile` is required for, and only allowed with, type Localhost."""

    type: SeccompProfileType
    localhost_profile: str | None = None

    @model_validator(mode="after")
    def _localhost(self) -> SeccompProfile:
        if self.type is SeccompProfileType.LOCALHOST:
            if not self.localhost_profile:
                raise ValidationError("localhostProfile: Required value: must be set when seccomp type is Localhost")
            if self.localhost_profile.startswith("/"):
                raise ValidationError(
                    f"localhostProfile: Invalid value: {quote(self.localhost_profile)}: must be a relative path"
                )
            if ".." in self.localhost_profile.split("/"):
                raise ValidationError(
                    f"localhostProfile: Invalid value: {quote(self.localhost_profile)}: must not contain '..'"
                )
        elif self.localhost_profile is not None:
            raise ValidationError("localhostProfile: Invalid value: can only be set when seccomp type is Localhost")
        return self


class Capabilities(K8sModel):
    """Capabilities added to / dropped from the runtime's default set (Kubernetes does not check the names)."""

    add: list[str] = Field(default_factory=list)
    drop: list[str] = Field(default_factory=list)


class Sysctl(K8sModel):
    name: str
    value: str


class PodSecurityContext(K8sModel):
    """spec.securityContext (containers inherit user, group, runAsNonRoot, seccomp; groups and sysctls are pod-wide).

    seLinuxOptions, windowsOptions, appArmorProfile, fsGroupChangePolicy, supplementalGroupsPolicy and
    seLinuxChangePolicy are not supported (rejected).
    """

    run_as_user: StrictInt | None = None
    run_as_group: StrictInt | None = None
    run_as_non_root: StrictBool | None = None
    fs_group: StrictInt | None = None
    supplemental_groups: list[StrictInt] = Field(default_factory=list)
    seccomp_profile: SeccompProfile | None = None
    sysctls: list[Sysctl] = Field(default_factory=list)

    _ids = field_validator("run_as_user", "run_as_group", "fs_group")(_check_id)

    @field_validator("supplemental_groups")
    @classmethod
    def _groups(cls, value: list[int]) -> list[int]:
        for i, gid in enumerate(value):
            if not 0 <= gid <= MAX_ID:
                raise ValidationError(f"[{i}]: Invalid value: {gid}: {_ID_RANGE}")
        return value

    @field_validator("sysctls")
    @classmethod
    def _sysctls(cls, value: list[Sysctl]) -> list[Sysctl]:
        seen: set[str] = set()
        problems: list[str] = []  # validateSysctls reports every entry's problem
        for i, sysctl in enumerate(value):
            name = sysctl.name
            if not name:
                problems.append(f"[{i}].name: Required value")
            elif len(name) > SYSCTL_MAX_LENGTH or not _SYSCTL.match(name):
                problems.append(
                    f"[{i}].name: Invalid value: {quote(name)}: must have at most {SYSCTL_MAX_LENGTH} characters "
                    f"and match regex {SYSCTL_PATTERN}"
                )
            elif name in seen:
                problems.append(f"[{i}].name: Duplicate value: {quote(name)}")
            seen.add(name)
        if problems:
            raise ValidationError("\n".join(problems))
        return value


class SecurityContext(K8sModel):
    """containers[].securityContext. seLinuxOptions, windowsOptions, appArmorProfile and procMount are rejected."""

    run_as_user: StrictInt | None = None
    run_as_group: StrictInt | None = None
    run_as_non_root: StrictBool | None = None
    read_only_root_filesystem: StrictBool | None = None
    allow_privilege_escalation: StrictBool | None = None
    privileged: StrictBool | None = None
    capabilities: Capabilities | None = None
    seccomp_profile: SeccompProfile | None = None

    _ids = field_validator("run_as_user", "run_as_group")(_check_id)

    @model_validator(mode="after")
    def _escalation(self) -> SecurityContext:
        """ValidateSecurityContext: no_new_privs cannot hold for a privileged container or one given CAP_SYS_ADMIN."""
        if self.allow_privilege_escalation is False:
            if self.privileged:
                raise ValidationError(
                    "Invalid value: cannot set `allowPrivilegeEscalation` to false and `privileged` to true"
                )
            if self.capabilities is not None and "CAP_SYS_ADMIN" in self.capabilities.add:
                raise ValidationError(
                    "Invalid value: cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN"
                )
        return self


class HostAlias(K8sModel):
    """An /etc/hosts entry (ValidateHostAliases: a valid IP, hostnames DNS-1123 subdomains)."""

    ip: str
    hostnames: list[str] = Field(default_factory=list)

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            raise ValidationError(
                f"Invalid value: {quote(value)}: must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
            ) from None
        return value

    @field_validator("hostnames")
    @classmethod
    def _hostnames(cls, value: list[str]) -> list[str]:
        for i, name in enumerate(value):
            check_dns1123_subdomain(name, f"[{i}]")
        return value


def host_sysctl_error(name: str, host_network: bool) -> str | None:
    """ValidateHostSysctl: a network sysctl would change the node's own namespace under hostNetwork."""
    if host_network and sysctl_dots(name).startswith("net."):
        return f"Invalid value: {quote(name)}: may not be specified when 'hostNetwork' is true"
    return None


def sysctl_dots(name: str) -> str:
    """The kubelet's ConvertSysctlVariableToDotsSeparator: `net/ipv4/ip_forward` → `net.ipv4.ip_forward`."""
    if "/" not in name:
        return name
    return ".".join(part.replace(".", "/") for part in name.split("/"))


@dataclass(frozen=True)
class EffectiveSecurity:
    """One container's security settings after the pod's defaults (DetermineEffectiveSecurityContext)."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool = False
    seccomp: SeccompProfile | None = None
    read_only_root_filesystem: bool = False
    allow_privilege_escalation: bool | None = None
    privileged: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    #: fsGroup first, then supplementalGroups (the kubelet's order), duplicates left out.
    groups: tuple[int, ...] = ()


def effective(pod: PodSecurityContext | None, container: SecurityContext | None) -> EffectiveSecurity:
    """A container's settings: its own where set, else the pod's (runAsUser/Group, runAsNonRoot, seccompProfile)."""
    p = pod or PodSecurityContext()
    c = container or SecurityContext()
    groups = ([p.fs_group] if p.fs_group is not None else []) + p.supplemental_groups
    caps = c.capabilities or Capabilities()
    return EffectiveSecurity(
        run_as_user=c.run_as_user if c.run_as_user is not None else p.run_as_user,
        run_as_group=c.run_as_group if c.run_as_group is not None else p.run_as_group,
        run_as_non_root=bool(c.run_as_non_root if c.run_as_non_root is not None else p.run_as_non_root),
        seccomp=c.seccomp_profile or p.seccomp_profile,
        read_only_root_filesystem=bool(c.read_only_root_filesystem),
        allow_privilege_escalation=c.allow_privilege_escalation,
        privileged=bool(c.privileged),
        cap_add=tuple(caps.add),
        cap_drop=tuple(caps.drop),
        groups=tuple(dict.fromkeys(groups)),
    )


#: The kubelet's container waiting reason when runAsNonRoot cannot hold (a config error: no back-off restarts it).
NON_ROOT_REASON = "CreateContainerConfigError"


def non_root_error(sc: EffectiveSecurity, image_user: str, pod: str, container: str) -> str | None:
    """The kubelet's verifyRunAsNonRoot: why `container` may not start under runAsNonRoot, or None if it may.

    `image_user` is the image's USER (`""` runs as root); `pod` the kubelet's format.Pod, `name_namespace(uid)`.
    """
    if not sc.run_as_non_root:
        return None
    where = f"(pod: {quote(pod)}, container: {container})"
    if sc.run_as_user is not None:
        return None if sc.run_as_user != 0 else f"container's runAsUser breaks non-root policy {where}"
    user = image_user.split(":", 1)[0]
    if user and not user.isdigit():
        return (
            f"container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root "
            f"{where}"
        )
    if not user or int(user) == 0:
        return f"container has runAsNonRoot and image will run as root {where}"
    return None
