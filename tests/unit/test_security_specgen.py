"""securityContext and host namespaces → Podman's create documents (specgen): the mapping, field by field.

What each mapped field does inside a container on real Podman is tests/integration/test_security_context.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from edgekube.agent.runtime.podman.specgen import (
    SECCOMP_DIR,
    capability,
    container_spec,
    plan_volume_spec,
    pod_spec,
    user_spec,
)
from edgekube.agent.runtime.volumes import plan_volumes
from edgekube.model.pod import Pod

SECURITY_KEYS = (
    "user", "groups", "read_only_filesystem", "no_new_privileges", "privileged", "cap_add", "cap_drop",
    "seccomp_profile_path", "sysctl",
)  # fmt: skip


def pod(container_sc: dict[str, Any] | None = None, **spec: Any) -> Pod:
    container: dict[str, Any] = {"name": "c", "image": "busybox", "ports": [{"containerPort": 80, "hostPort": 80}]}
    if container_sc is not None:
        container["securityContext"] = container_sc
    return Pod.model_validate({"metadata": {"name": "web"}, "spec": {"containers": [container], **spec}})


def security(p: Pod, image_user: str = "") -> dict[str, Any]:
    body = container_spec(p, p.spec.containers[0], 0, "ek_web", {}, image_user=image_user)
    return {k: body[k] for k in SECURITY_KEYS if k in body}


def test_no_security_context_adds_nothing() -> None:
    assert security(pod()) == {}


def test_user_and_groups_come_from_the_pod_unless_the_container_sets_them() -> None:
    p = pod({"runAsUser": 1000}, securityContext={"runAsUser": 1, "runAsGroup": 3000, "fsGroup": 2000,
                                                   "supplementalGroups": [4000, 2000]})  # fmt: skip
    assert security(p) == {"user": "1000:3000", "groups": ["2000", "4000"]}


@pytest.mark.parametrize(
    ("uid", "gid", "image_user", "expected"),
    [(None, None, "", ""), (5, None, "", "5"), (5, 6, "7", "5:6"), (None, 6, "7:8", "7:6"), (None, 6, "", "0:6")],
)
def test_user_spec(uid: int | None, gid: int | None, image_user: str, expected: str) -> None:
    """runAsGroup alone keeps the image's user (root when it names none), as containerd's CRI does."""
    assert user_spec(uid, gid, image_user) == expected


def test_container_flags_map_to_specgen() -> None:
    sc = {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
          "capabilities": {"add": ["net_admin", "CAP_SYS_TIME"], "drop": ["ALL"]}}  # fmt: skip
    assert security(pod(sc)) == {
        "read_only_filesystem": True,
        "no_new_privileges": True,
        "cap_add": ["CAP_NET_ADMIN", "CAP_SYS_TIME"],
        "cap_drop": ["ALL"],
    }
    assert security(pod({"privileged": True})) == {"privileged": True}
    # allowPrivilegeEscalation true (or unset) leaves Podman's default: no_new_privileges off.
    assert security(pod({"allowPrivilegeEscalation": True})) == {}


@pytest.mark.parametrize(("name", "expected"), [("CHOWN", "CAP_CHOWN"), ("cap_chown", "CAP_CHOWN"), ("all", "ALL")])
def test_capability_names(name: str, expected: str) -> None:
    assert capability(name) == expected


def test_seccomp_profiles() -> None:
    """RuntimeDefault is Podman's default profile; Unconfined none; Localhost a file under SECCOMP_DIR."""
    assert security(pod(securityContext={"seccompProfile": {"type": "RuntimeDefault"}})) == {}
    assert security(pod({"seccompProfile": {"type": "Unconfined"}})) == {"seccomp_profile_path": "unconfined"}
    local = {"seccompProfile": {"type": "Localhost", "localhostProfile": "a/b.json"}}
    assert security(pod(securityContext=local)) == {"seccomp_profile_path": f"{SECCOMP_DIR}/a/b.json"}
    # The container's profile wins over the pod's.
    both = pod(
        {"seccompProfile": {"type": "RuntimeDefault"}}, securityContext={"seccompProfile": {"type": "Unconfined"}}
    )
    assert security(both) == {}


def test_sysctls_reach_every_container_in_dot_form() -> None:
    sysctls = [{"name": "net/ipv4/ip_local_port_range", "value": "1024 2048"}, {"name": "kernel.msgmax", "value": "9"}]
    assert security(pod(securityContext={"sysctls": sysctls})) == {
        "sysctl": {"net.ipv4.ip_local_port_range": "1024 2048", "kernel.msgmax": "9"}
    }


def test_a_plain_pod_has_its_own_namespaces_hostname_and_ports() -> None:
    body = pod_spec(pod(), "ek_web", {})
    assert body["shared_namespaces"] == ["ipc", "net", "uts"]
    assert body["hostname"] == "web"
    assert body["portmappings"] == [{"container_port": 80, "host_port": 80, "protocol": "tcp"}]
    assert not {"netns", "utsns", "pidns", "hostadd"} & body.keys()


def test_host_network_uses_the_nodes_network_and_hostname_and_publishes_nothing() -> None:
    body = pod_spec(pod(hostNetwork=True), "ek_web", {})
    assert body["netns"] == {"nsmode": "host"}
    assert body["utsns"] == {"nsmode": "host"}
    assert "hostname" not in body
    assert "portmappings" not in body


def test_host_pid_and_share_process_namespace() -> None:
    host = pod_spec(pod(hostPID=True), "ek_web", {})
    assert host["pidns"] == {"nsmode": "host"}
    assert host["shared_namespaces"] == ["ipc", "net", "uts", "pid"]
    shared = pod_spec(pod(shareProcessNamespace=True), "ek_web", {})
    assert shared["shared_namespaces"] == ["ipc", "net", "uts", "pid"]


def test_host_aliases_become_hostadd_entries() -> None:
    aliases = [{"ip": "10.0.0.1", "hostnames": ["a.local", "b.local"]}, {"ip": "fe80::1", "hostnames": ["c"]}]
    assert pod_spec(pod(hostAliases=aliases), "ek_web", {})["hostadd"] == [
        "a.local:10.0.0.1", "b.local:10.0.0.1", "c:fe80::1",
    ]  # fmt: skip


def test_fs_group_owns_empty_dirs_and_leaves_other_volumes_alone() -> None:
    """The kubelet's SetVolumeOwnership: an emptyDir gets group fsGroup (Podman's uid=/gid= options), mode 2777."""
    p = pod()
    plans, _ = plan_volumes(
        Pod.model_validate({
            "metadata": {"name": "p"},
            "spec": {
                "containers": p.to_dict()["spec"]["containers"],
                "volumes": [{"name": "d", "emptyDir": {}}, {"name": "m", "emptyDir": {"medium": "Memory"}},
                            {"name": "h", "hostPath": {"path": "/tmp"}}],
            },
        })
    )  # fmt: skip
    assert plan_volume_spec("v", plans["d"], {}, fs_group=2000)["Options"] == {"o": "uid=0,gid=2000"}
    assert plan_volume_spec("v", plans["m"], {}, fs_group=2000)["Options"] == {
        "type": "tmpfs", "device": "tmpfs", "o": "uid=0,gid=2000,mode=2777",
    }  # fmt: skip
    assert "Options" not in plan_volume_spec("v", plans["d"], {})


def test_stdin_and_tty_map_to_stdin_and_terminal() -> None:
    p = Pod.model_validate({
        "metadata": {"name": "web"},
        "spec": {"containers": [{"name": "c", "image": "b", "stdin": True, "stdinOnce": True, "tty": True}]},
    })  # fmt: skip
    body = container_spec(p, p.spec.containers[0], 0, "ek_web", {})
    assert (body["stdin"], body["terminal"]) == (True, True)
    plain = pod()
    assert not {"stdin", "terminal"} & container_spec(plain, plain.spec.containers[0], 0, "ek_web", {}).keys()
