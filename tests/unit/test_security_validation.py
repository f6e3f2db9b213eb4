"""Validation of securityContext, host namespaces and hostAliases: Kubernetes' verdicts and messages, rule by rule.

Every test names, in its docstring, the function of Kubernetes' pkg/apis/core/validation/validation.go (or
pkg/apis/core/v1/defaults.go, apimachinery's validation) whose rule it checks.
"""

from __future__ import annotations

from typing import Any

import pytest

from edgekube.model.manifest import ManifestError, parse_object
from edgekube.model.pod import Pod
from edgekube.model.security import EffectiveSecurity, PodSecurityContext, SecurityContext, effective, non_root_error

RANGE = "must be between 0 and 2147483647, inclusive"
SYSCTL_RULE = (
    "must have at most 253 characters and match regex ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*"
    "[a-z0-9])?$"
)


def problems(container_sc: dict[str, Any] | None = None, **spec: Any) -> list[str]:
    """Every problem found in a pod with these spec fields and this container securityContext ([] if valid)."""
    container: dict[str, Any] = {"name": "c", "image": "busybox"}
    if container_sc is not None:
        container["securityContext"] = container_sc
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [container], **spec}}
    try:
        parse_object(doc)
    except ManifestError as exc:
        return exc.problems
    return []


def test_a_full_pod_and_container_security_context_is_valid() -> None:
    """ValidatePodSecurityContext and ValidateSecurityContext accept every supported field at valid values."""
    pod_sc = {
        "runAsUser": 0, "runAsGroup": 2147483647, "runAsNonRoot": False, "fsGroup": 2000,
        "supplementalGroups": [0, 4000], "seccompProfile": {"type": "RuntimeDefault"},
        "sysctls": [{"name": "kernel.shm_rmid_forced", "value": "1"}, {"name": "net/ipv4/ip_forward", "value": "0"}],
    }  # fmt: skip
    container_sc = {
        "runAsUser": 1000, "runAsGroup": 3000, "runAsNonRoot": True, "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False, "privileged": False,
        "capabilities": {"add": ["NET_ADMIN", "CAP_SYS_TIME"], "drop": ["ALL"]},
        "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/audit.json"},
    }  # fmt: skip
    assert problems(container_sc, securityContext=pod_sc) == []


@pytest.mark.parametrize("field", ["runAsUser", "runAsGroup", "fsGroup"])
@pytest.mark.parametrize("value", [-1, 2147483648])
def test_pod_ids_out_of_range_are_invalid(field: str, value: int) -> None:
    """ValidatePodSecurityContext: runAsUser (IsValidUserID), runAsGroup and fsGroup (IsValidGroupID)."""
    assert problems(securityContext={field: value}) == [
        f"spec.securityContext.{field}: Invalid value: {value}: {RANGE}"
    ]


@pytest.mark.parametrize("field", ["runAsUser", "runAsGroup"])
def test_container_ids_out_of_range_are_invalid(field: str) -> None:
    """ValidateSecurityContext: runAsUser (IsValidUserID) and runAsGroup (IsValidGroupID)."""
    assert problems({field: -5}) == [f"spec.containers[0].securityContext.{field}: Invalid value: -5: {RANGE}"]


def test_a_supplemental_group_out_of_range_is_invalid_at_its_index() -> None:
    """ValidatePodSecurityContext: each supplementalGroups entry is IsValidGroupID, reported at its index."""
    assert problems(securityContext={"supplementalGroups": [1, 2147483648]}) == [
        f"spec.securityContext.supplementalGroups[1]: Invalid value: 2147483648: {RANGE}"
    ]


def test_privileged_without_privilege_escalation_is_invalid() -> None:
    """ValidateSecurityContext: allowPrivilegeEscalation false with privileged true."""
    assert problems({"privileged": True, "allowPrivilegeEscalation": False}) == [
        "spec.containers[0].securityContext: Invalid value: "
        "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"
    ]


def test_cap_sys_admin_without_privilege_escalation_is_invalid() -> None:
    """ValidateSecurityContext: allowPrivilegeEscalation false with capabilities.add CAP_SYS_ADMIN (exact name)."""
    assert problems({"allowPrivilegeEscalation": False, "capabilities": {"add": ["CAP_SYS_ADMIN"]}}) == [
        "spec.containers[0].securityContext: Invalid value: "
        "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN"
    ]
    # Kubernetes compares the literal string: "SYS_ADMIN" passes validation.
    assert problems({"allowPrivilegeEscalation": False, "capabilities": {"add": ["SYS_ADMIN"]}}) == []


def test_capability_names_are_not_checked_by_validation() -> None:
    """ValidateSecurityContext has no rule on capability names (the runtime refuses an unknown one)."""
    assert problems({"capabilities": {"add": ["whatever"], "drop": ["net_raw"]}}) == []


def test_a_localhost_seccomp_profile_needs_its_path() -> None:
    """validateSeccompProfileField: localhostProfile is required when type is Localhost."""
    assert problems(securityContext={"seccompProfile": {"type": "Localhost"}}) == [
        "spec.securityContext.seccompProfile.localhostProfile: Required value: "
        "must be set when seccomp type is Localhost"
    ]


def test_a_localhost_profile_with_another_type_is_invalid() -> None:
    """validateSeccompProfileField: localhostProfile can only be set when type is Localhost."""
    assert problems({"seccompProfile": {"type": "RuntimeDefault", "localhostProfile": "x.json"}}) == [
        "spec.containers[0].securityContext.seccompProfile.localhostProfile: Invalid value: "
        "can only be set when seccomp type is Localhost"
    ]


@pytest.mark.parametrize(
    ("path", "rule"), [("/etc/x.json", "must be a relative path"), ("a/../../x.json", "must not contain '..'")]
)
def test_a_localhost_profile_must_descend(path: str, rule: str) -> None:
    """validateSeccompProfileField → validateLocalDescendingPath on localhostProfile."""
    sc = {"seccompProfile": {"type": "Localhost", "localhostProfile": path}}
    assert problems(securityContext=sc) == [
        f'spec.securityContext.seccompProfile.localhostProfile: Invalid value: "{path}": {rule}'
    ]


def test_an_unknown_seccomp_type_is_not_supported() -> None:
    """validateSeccompProfileType: Localhost, RuntimeDefault, Unconfined (NotSupported otherwise)."""
    assert problems(securityContext={"seccompProfile": {"type": "Strict"}}) == [
        'spec.securityContext.seccompProfile.type: Unsupported value: "Strict": '
        'supported values: "RuntimeDefault", "Unconfined", "Localhost"'
    ]


@pytest.mark.parametrize("name", ["Net.core", "net..core", "net.core-", "-net", "a" * 254])
def test_a_sysctl_name_breaking_the_pattern_is_invalid(name: str) -> None:
    """validateSysctls → IsValidSysctlName (SysctlContainSlashFmt, SysctlMaxLength 253)."""
    assert problems(securityContext={"sysctls": [{"name": name, "value": "1"}]}) == [
        f'spec.securityContext.sysctls[0].name: Invalid value: "{name}": {SYSCTL_RULE}'
    ]


def test_an_empty_sysctl_name_is_required() -> None:
    """validateSysctls: an empty name is Required."""
    assert problems(securityContext={"sysctls": [{"name": "", "value": "1"}]}) == [
        "spec.securityContext.sysctls[0].name: Required value"
    ]


def test_a_repeated_sysctl_is_a_duplicate() -> None:
    """validateSysctls: a name given twice is Duplicate at the second index."""
    sysctls = [{"name": "kernel.msgmax", "value": "1"}, {"name": "kernel.msgmax", "value": "2"}]
    assert problems(securityContext={"sysctls": sysctls}) == [
        'spec.securityContext.sysctls[1].name: Duplicate value: "kernel.msgmax"'
    ]


def test_a_net_sysctl_under_host_network_is_invalid() -> None:
    """ValidateHostSysctl: a net.* sysctl may not be specified when hostNetwork is true (others may)."""
    sysctls = [{"name": "kernel.shm_rmid_forced", "value": "1"}, {"name": "net/core/somaxconn", "value": "1"}]
    assert problems(hostNetwork=True, securityContext={"sysctls": sysctls}) == [
        'spec.securityContext.sysctls[1].name: Invalid value: "net/core/somaxconn": '
        "may not be specified when 'hostNetwork' is true"
    ]


def test_host_pid_and_share_process_namespace_together_are_invalid() -> None:
    """ValidatePodSecurityContext: ShareProcessNamespace and HostPID cannot both be enabled."""
    assert problems(hostPID=True, shareProcessNamespace=True) == [
        "spec.securityContext.shareProcessNamespace: Invalid value: true: "
        "ShareProcessNamespace and HostPID cannot both be enabled"
    ]
    assert problems(hostPID=True, shareProcessNamespace=False) == []


def test_host_network_defaults_host_ports_to_container_ports() -> None:
    """SetDefaults_PodSpec (pkg/apis/core/v1/defaults.go): under hostNetwork an unset hostPort is containerPort."""
    pod = Pod.model_validate({
        "metadata": {"name": "p"},
        "spec": {"hostNetwork": True, "containers": [{"name": "c", "image": "b", "ports": [{"containerPort": 80}]}]},
    })  # fmt: skip
    assert pod.spec.containers[0].ports[0].host_port == 80


def test_host_network_with_a_different_host_port_is_invalid() -> None:
    """validateHostNetwork: containerPort must match hostPort when hostNetwork is true."""
    containers = [{"name": "c", "image": "b", "ports": [{"containerPort": 80, "hostPort": 8080}]}]
    assert problems(hostNetwork=True, containers=containers) == [
        "spec.containers[0].ports[0].containerPort: Invalid value: 80: must match `hostPort` when `hostNetwork` is true"
    ]


def test_a_host_alias_needs_a_valid_ip_and_subdomain_hostnames() -> None:
    """ValidateHostAliases: ip is IsValidIP, each hostname ValidateDNS1123Subdomain."""
    assert problems(hostAliases=[{"ip": "fe80::1", "hostnames": ["db.local"]}]) == []
    assert problems(hostAliases=[{"ip": "10.0.0", "hostnames": ["db.local"]}]) == [
        'spec.hostAliases[0].ip: Invalid value: "10.0.0": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)'
    ]
    assert problems(hostAliases=[{"ip": "10.0.0.1", "hostnames": ["DB"]}])[0].startswith(
        'spec.hostAliases[0].hostnames[0]: Invalid value: "DB": a lowercase RFC 1123 subdomain'
    )


@pytest.mark.parametrize(
    ("where", "field"),
    [
        ("pod", "seLinuxOptions"), ("pod", "windowsOptions"), ("pod", "appArmorProfile"),
        ("pod", "fsGroupChangePolicy"), ("pod", "supplementalGroupsPolicy"),
        ("container", "seLinuxOptions"), ("container", "procMount"), ("container", "appArmorProfile"),
    ],
)  # fmt: skip
def test_fields_edgekube_does_not_implement_are_not_supported(where: str, field: str) -> None:
    """Issue 11: a field edgekube does not implement is rejected, never silently dropped."""
    if where == "pod":
        assert problems(securityContext={field: "x"}) == [f"spec.securityContext.{field}: not supported"]
    else:
        assert problems({field: "x"}) == [f"spec.containers[0].securityContext.{field}: not supported"]


@pytest.mark.parametrize("field", ["hostIPC", "hostUsers"])
def test_host_ipc_and_host_users_are_not_supported(field: str) -> None:
    """Issue 11: hostIPC and hostUsers are not implemented, so rejected."""
    assert problems(None, **{field: True}) == [f"spec.{field}: not supported"]


def test_a_containers_settings_win_over_the_pods() -> None:
    """DetermineEffectiveSecurityContext (pkg/securitycontext/util.go): the container's value wins where it is set."""
    pod = PodSecurityContext.model_validate({
        "runAsUser": 1, "runAsGroup": 2, "runAsNonRoot": True, "fsGroup": 5, "supplementalGroups": [6, 5],
        "seccompProfile": {"type": "Unconfined"},
    })  # fmt: skip
    container = SecurityContext.model_validate({"runAsUser": 10, "runAsNonRoot": False})
    sc = effective(pod, container)
    assert (sc.run_as_user, sc.run_as_group, sc.run_as_non_root, sc.groups) == (10, 2, False, (5, 6))
    assert sc.seccomp is not None
    assert sc.seccomp.type == "Unconfined"


REF = "p_default(u1)"
WHERE = f'(pod: "{REF}", container: c)'
ROOT = f"container has runAsNonRoot and image will run as root {WHERE}"
NAMED = f"container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user is non-root {WHERE}"
BREAKS = f"container's runAsUser breaks non-root policy {WHERE}"


@pytest.mark.parametrize(
    ("sc", "image_user", "expected"),
    [
        (EffectiveSecurity(), "", None),
        (EffectiveSecurity(run_as_non_root=True), "", ROOT),
        (EffectiveSecurity(run_as_non_root=True), "0:0", ROOT),
        (EffectiveSecurity(run_as_non_root=True), "1000", None),
        (EffectiveSecurity(run_as_non_root=True), "nobody", NAMED),
        (EffectiveSecurity(run_as_non_root=True, run_as_user=0), "1000", BREAKS),
        (EffectiveSecurity(run_as_non_root=True, run_as_user=7), "", None),
    ],
)  # fmt: skip
def test_run_as_non_root_verdicts(sc: EffectiveSecurity, image_user: str, expected: str | None) -> None:
    """The kubelet's verifyRunAsNonRoot (pkg/kubelet/kuberuntime/security_context_others.go)."""
    assert non_root_error(sc, image_user, REF, "c") == expected


def test_unset_fields_stay_out_of_the_stored_spec_so_running_pods_keep_their_spec_hash() -> None:
    """An agent upgraded to these fields hashes an existing pod's spec as before (no re-create of every pod)."""
    pod = Pod.model_validate({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "b"}]}})
    spec = pod.spec.to_dict()
    new = {"securityContext", "hostNetwork", "hostPID", "shareProcessNamespace", "hostAliases"}
    assert not new & spec.keys()
    assert not {"securityContext", "stdin", "stdinOnce", "tty"} & spec["containers"][0].keys()
