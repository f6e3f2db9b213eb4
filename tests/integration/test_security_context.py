"""securityContext and host namespaces on real Podman (runc): what a process inside the container sees.

Each test creates a pod through PodmanRuntime, then reads the effect from inside with `exec` (`id`,
/proc/self/status, a write to /), as a user of the pod would.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.runtime.podman import PodmanRuntime, specgen
from edgekube.local.podman_service import PodmanService
from edgekube.model.names import NodeName
from tests.support.podman import EdgeNode, manifest
from tests.unit.test_runtime_contract import IDLE, make_pod, new_uid

pytestmark = pytest.mark.integration

CAP_CHOWN = 0
CAP_NET_ADMIN = 12


@pytest.fixture
def runtime(podman_service: PodmanService, demo_image: str) -> Iterator[PodmanRuntime]:
    rt = PodmanRuntime(podman_service.url, NodeName(f"node-{uuid.uuid4().hex[:8]}"))
    yield rt
    for pod in rt.list_pods():
        rt.remove_pod(pod.uid, grace_seconds=0)
    rt.close()


def _run(runtime: PodmanRuntime, image: str, container: dict[str, Any] | None = None, **spec: Any) -> Any:
    """Start a one-container pod (`main`, idle) with `container` merged into it; returns its uid."""
    uid = new_uid()
    pod = make_pod("sec", image, {"name": "main", "image": image, "command": IDLE, **(container or {})}, **spec)
    runtime.create_pod(pod, uid, "h")
    return uid


def _sh(runtime: PodmanRuntime, uid: Any, script: str, container: str = "main") -> tuple[int, str]:
    return runtime.exec(uid, container, ["sh", "-c", script], timeout=10)


def _status(runtime: PodmanRuntime, uid: Any) -> dict[str, str]:
    code, out = _sh(runtime, uid, "cat /proc/self/status")
    assert code == 0, out
    return {k: v.strip() for k, _, v in (line.partition(":") for line in out.splitlines())}


def _caps(status: dict[str, str]) -> int:
    return int(status["CapEff"], 16)


def test_id_shows_run_as_user_run_as_group_and_fs_group_and_supplemental_groups(
    runtime: PodmanRuntime, demo_image: str
) -> None:
    uid = _run(
        runtime, demo_image, {"securityContext": {"runAsGroup": 3000}},
        securityContext={"runAsUser": 1000, "runAsGroup": 1, "fsGroup": 2000, "supplementalGroups": [4000]},
    )  # fmt: skip
    assert _sh(runtime, uid, "id -u; id -g") == (0, "1000\n3000\n")
    code, groups = _sh(runtime, uid, "id -G")
    assert code == 0
    assert {"2000", "4000"} <= set(groups.split())


def test_a_write_to_the_root_fails_with_read_only_root_filesystem_and_an_empty_dir_stays_writable(
    runtime: PodmanRuntime, demo_image: str
) -> None:
    container = {
        "securityContext": {"readOnlyRootFilesystem": True},
        "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}],
    }
    uid = _run(runtime, demo_image, container, volumes=[{"name": "scratch", "emptyDir": {}}])
    code, out = _sh(runtime, uid, "touch /written")
    assert code != 0
    assert "Read-only file system" in out
    assert _sh(runtime, uid, "touch /scratch/written && echo ok") == (0, "ok\n")


def test_a_dropped_capability_is_missing_and_an_added_one_present(runtime: PodmanRuntime, demo_image: str) -> None:
    caps = {"capabilities": {"drop": ["CHOWN"], "add": ["NET_ADMIN"]}}
    uid = _run(runtime, demo_image, {"securityContext": caps})
    effective = _caps(_status(runtime, uid))
    assert not effective & (1 << CAP_CHOWN)
    assert effective & (1 << CAP_NET_ADMIN)
    code, out = _sh(runtime, uid, "touch /f && chown 1 /f")
    assert code != 0
    assert "Operation not permitted" in out


def test_drop_all_leaves_no_capability(runtime: PodmanRuntime, demo_image: str) -> None:
    uid = _run(runtime, demo_image, {"securityContext": {"capabilities": {"drop": ["ALL"]}}})
    assert _caps(_status(runtime, uid)) == 0


def test_allow_privilege_escalation_false_sets_no_new_privs(runtime: PodmanRuntime, demo_image: str) -> None:
    plain = _run(runtime, demo_image)
    guarded = _run(runtime, demo_image, {"securityContext": {"allowPrivilegeEscalation": False}})
    assert _status(runtime, plain)["NoNewPrivs"] == "0"
    assert _status(runtime, guarded)["NoNewPrivs"] == "1"


def test_privileged_has_every_capability_and_no_seccomp_filter(runtime: PodmanRuntime, demo_image: str) -> None:
    uid = _run(runtime, demo_image, {"securityContext": {"privileged": True}})
    status = _status(runtime, uid)
    assert _caps(status) & (1 << CAP_NET_ADMIN)
    assert status["Seccomp"] == "0"


def test_seccomp_runtime_default_filters_and_unconfined_does_not(runtime: PodmanRuntime, demo_image: str) -> None:
    default = _run(runtime, demo_image, securityContext={"seccompProfile": {"type": "RuntimeDefault"}})
    unconfined = _run(runtime, demo_image, {"securityContext": {"seccompProfile": {"type": "Unconfined"}}})
    assert _status(runtime, default)["Seccomp"] == "2"  # SECCOMP_MODE_FILTER
    assert _status(runtime, unconfined)["Seccomp"] == "0"


def test_pod_sysctls_are_set_in_the_pods_namespaces(runtime: PodmanRuntime, demo_image: str) -> None:
    sysctls = [
        {"name": "net.ipv4.ip_local_port_range", "value": "40000 50000"},
        {"name": "kernel/shm_rmid_forced", "value": "1"},
    ]
    uid = _run(runtime, demo_image, securityContext={"sysctls": sysctls})
    code, out = _sh(runtime, uid, "cat /proc/sys/net/ipv4/ip_local_port_range /proc/sys/kernel/shm_rmid_forced")
    assert code == 0
    assert out.split() == ["40000", "50000", "1"]


def test_host_network_sees_the_hosts_interfaces_and_hostname(runtime: PodmanRuntime, demo_image: str) -> None:
    uid = _run(runtime, demo_image, hostNetwork=True)
    code, out = _sh(runtime, uid, "cat /proc/net/dev; hostname")
    assert code == 0
    lines = out.splitlines()
    inside = {line.split(":")[0].strip() for line in lines[2:-1]}
    host = {line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines()[2:]}
    assert inside == host
    assert lines[-1] == socket.gethostname()


def test_share_process_namespace_lets_one_container_see_the_others_processes(
    runtime: PodmanRuntime, demo_image: str
) -> None:
    uid = new_uid()
    pod = make_pod(
        "shared", demo_image,
        {"name": "main", "image": demo_image, "command": IDLE},
        {"name": "side", "image": demo_image, "command": ["sleep", "31337"]},
        shareProcessNamespace=True,
    )  # fmt: skip
    runtime.create_pod(pod, uid, "h")
    code, out = _sh(runtime, uid, "ps -o args")
    assert code == 0
    assert "sleep 31337" in out


def test_host_aliases_are_in_etc_hosts(runtime: PodmanRuntime, demo_image: str) -> None:
    aliases = [{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]}]
    uid = _run(runtime, demo_image, hostAliases=aliases)
    code, out = _sh(runtime, uid, "cat /etc/hosts")
    assert code == 0
    entries = {name: line.split()[0] for line in out.splitlines() if line.strip() for name in line.split()[1:]}
    assert entries["foo.local"] == "10.1.2.3"
    assert entries["bar.local"] == "10.1.2.3"


def wait_until(what: str, check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def test_host_pid_sees_the_hosts_processes(runtime: PodmanRuntime, demo_image: str) -> None:
    uid = _run(runtime, demo_image, hostPID=True)
    code, out = _sh(runtime, uid, "cat /proc/1/cmdline")
    assert code == 0
    assert out == Path("/proc/1/cmdline").read_text()


def test_an_agent_reports_a_run_as_non_root_refusal_as_the_kubelet_does(edge_node: EdgeNode) -> None:
    """Pending, the container waiting CreateContainerConfigError, the event `Error: container has runAsNonRoot...`."""
    pod = manifest("rootless", {"name": "app", "command": IDLE})
    pod["spec"]["securityContext"] = {"runAsNonRoot": True}
    uid = pod["metadata"]["uid"]
    edge_node.start_agent()
    edge_node.want(pod)
    message = f'container has runAsNonRoot and image will run as root (pod: "rootless_default({uid})", container: app)'

    def refused(status: dict[str, Any]) -> bool:
        statuses = status.get("containerStatuses") or []
        waiting = statuses[0].get("state", {}).get("waiting", {}) if statuses else {}
        return bool(waiting.get("reason") == "CreateContainerConfigError")

    status = edge_node.wait_status("the refusal", "rootless", refused)
    assert status["phase"] == "Pending"
    assert status["containerStatuses"][0]["state"]["waiting"]["message"] == message
    wait_until("the Failed event", lambda: ("Failed", f"Error: {message}") in edge_node.event_reasons("rootless"))
    assert edge_node.observed("rootless") is None


@pytest.mark.parametrize("medium", ["", "Memory"])
def test_an_empty_dir_belongs_to_the_fs_group_and_files_created_in_it_too(
    runtime: PodmanRuntime, demo_image: str, medium: str
) -> None:
    """The kubelet's SetVolumeOwnership on an emptyDir: group fsGroup, mode 2777 (setgid), new files get fsGroup."""
    container = {"volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}
    uid = _run(
        runtime, demo_image, container, volumes=[{"name": "scratch", "emptyDir": {"medium": medium}}],
        securityContext={"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000},
    )  # fmt: skip
    code, out = _sh(runtime, uid, "stat -c '%g %a' /scratch && touch /scratch/f && stat -c '%u %g' /scratch/f")
    assert (code, out.split("\n")[:2]) == (0, ["2000 2777", "1000 2000"])


@pytest.mark.parametrize(
    ("fields", "expected"),
    [({}, "/dev/null"), ({"stdin": True}, "pipe:"), ({"stdin": True, "tty": True}, "/dev/pts/")],
)
def test_stdin_and_tty_are_what_the_main_process_reads(
    runtime: PodmanRuntime, demo_image: str, fields: dict[str, bool], expected: str
) -> None:
    uid = _run(runtime, demo_image, fields)
    code, out = _sh(runtime, uid, "readlink /proc/1/fd/0")
    assert code == 0
    assert out.startswith(expected)


def test_a_tty_containers_logs_read_as_written(runtime: PodmanRuntime, demo_image: str) -> None:
    """A terminal's log is not multiplexed; the runtime's logs() still returns the text (CRLF from the tty)."""
    uid = _run(runtime, demo_image, {"tty": True, "command": ["sh", "-c", "echo hello-tty; exec sleep 1000"]})
    wait_until("the log line", lambda: "hello-tty" in runtime.logs(uid, "main"))
    assert runtime.logs(uid, "main").splitlines()[0].rstrip("\r") == "hello-tty"


def test_a_localhost_seccomp_profile_from_the_nodes_profile_dir_is_enforced(
    runtime: PodmanRuntime, demo_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """seccompProfile Localhost: `<profile dir>/<localhostProfile>`; this one refuses mkdir with EPERM."""
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    }
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "no-mkdir.json").write_text(json.dumps(profile))
    monkeypatch.setattr(specgen, "SECCOMP_DIR", str(tmp_path))
    sc = {"seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/no-mkdir.json"}}
    uid = _run(runtime, demo_image, {"securityContext": sc})
    code, out = _sh(runtime, uid, "mkdir /tmp/d")
    assert code != 0
    assert "Operation not permitted" in out
    assert _sh(runtime, uid, "touch /tmp/f && echo ok") == (0, "ok\n")


def test_an_agent_reports_a_host_network_pods_ip_as_its_nodes(edge_node: EdgeNode) -> None:
    """The kubelet's podIP for a hostNetwork pod: the node's address (status.hostIP)."""
    pod = manifest("hostnet", {"name": "app", "command": IDLE})
    pod["spec"]["hostNetwork"] = True
    edge_node.start_agent()
    edge_node.want(pod)
    status = edge_node.wait_status("Running", "hostnet", lambda s: s.get("phase") == "Running")
    assert status["podIP"] == status["hostIP"]
