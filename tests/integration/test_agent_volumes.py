"""Volumes on real Podman: hostPath types, subPaths, readOnly, NFS (FUSE on Ganesha), emptyDir sizeLimit eviction."""

from __future__ import annotations

import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.runtime.podman import PodmanRuntime
from edgekube.agent.runtime.protocol import ContainerRunState
from edgekube.local.nfs import Ganesha
from edgekube.local.podman_service import PodmanService
from edgekube.model.errors import RuntimeFailure
from edgekube.model.names import NodeName
from edgekube.model.storage import RESOLVED_VOLUMES_KEY
from tests.support.podman import EdgeNode, manifest
from tests.unit.test_runtime_contract import IDLE, closed_port, make_pod, new_uid, nfs_claim, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def runtime(podman_service: PodmanService, demo_image: str) -> Iterator[PodmanRuntime]:
    rt = PodmanRuntime(podman_service.url, NodeName(f"node-{uuid.uuid4().hex[:8]}"), nfs_client="userspace")
    yield rt
    for pod in rt.list_pods():
        rt.remove_pod(pod.uid, grace_seconds=0)
    rt.close()


def run_once(runtime: PodmanRuntime, image: str, script: str, mounts: list[dict[str, Any]],
             volumes: list[dict[str, Any]], claims: Any = None) -> tuple[int, str]:  # fmt: skip
    """Run `script` in a one-container pod with those mounts; its exit code and output."""
    uid = new_uid()
    pod = make_pod(
        "vol", image, {"name": "main", "image": image, "command": ["sh", "-c", script], "volumeMounts": mounts},
        volumes=volumes, restartPolicy="Never",
    )  # fmt: skip
    runtime.create_pod(pod, uid, "h", claims)
    done = wait_for(runtime, uid, lambda p: p.containers[0].state == ContainerRunState.EXITED)
    return done.containers[0].exit_code or 0, runtime.logs(uid, "main")


# -- hostPath -----------------------------------------------------------------------------------------------------


def test_host_path_directory_or_create_is_made_0755_and_the_container_writes_into_it(
    runtime: PodmanRuntime, demo_image: str, tmp_path: Path
) -> None:
    path = tmp_path / "made"
    code, out = run_once(runtime, demo_image, "echo hi > /h/x", [{"name": "h", "mountPath": "/h"}],
                         [{"name": "h", "hostPath": {"path": str(path), "type": "DirectoryOrCreate"}}])  # fmt: skip
    assert code == 0, out
    assert oct(path.stat().st_mode & 0o777) == "0o755"
    assert (path / "x").read_text() == "hi\n"


def test_host_path_file_or_create_is_bound_as_a_file(runtime: PodmanRuntime, demo_image: str, tmp_path: Path) -> None:
    path = tmp_path / "log.txt"
    code, out = run_once(runtime, demo_image, "echo line >> /log.txt", [{"name": "f", "mountPath": "/log.txt"}],
                         [{"name": "f", "hostPath": {"path": str(path), "type": "FileOrCreate"}}])  # fmt: skip
    assert code == 0, out
    assert path.read_text() == "line\n"


@pytest.mark.parametrize(
    ("kind", "existing"),
    [("Directory", "dir"), ("File", "file"), ("Socket", "socket"), ("CharDevice", "/dev/null"), ("", "dir")],
)
def test_host_path_of_the_right_type_is_mounted(
    runtime: PodmanRuntime, demo_image: str, tmp_path: Path, kind: str, existing: str
) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    sock_path = f"/tmp/ek-sock-{uuid.uuid4().hex[:8]}"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(sock_path)
    try:
        path = (
            existing if existing.startswith("/") else (sock_path if existing == "socket" else str(tmp_path / existing))
        )
        code, out = run_once(runtime, demo_image, "ls -la /m", [{"name": "m", "mountPath": "/m"}],
                             [{"name": "m", "hostPath": {"path": path, "type": kind}}])  # fmt: skip
    finally:
        sock.close()
        os.unlink(sock_path)
    assert code == 0, out


@pytest.mark.parametrize(
    ("kind", "what"),
    [("Directory", "a directory"), ("File", "a file"), ("Socket", "a socket file"),
     ("CharDevice", "a character device"), ("BlockDevice", "a block device"), ("FileOrCreate", "a file")],
)  # fmt: skip
def test_host_path_of_the_wrong_type_fails_the_pod_before_anything_is_created(
    runtime: PodmanRuntime, demo_image: str, tmp_path: Path, kind: str, what: str
) -> None:
    wrong = tmp_path / ("dir" if kind != "Directory" else "file")
    wrong.mkdir() if kind != "Directory" else wrong.write_text("x")
    uid = new_uid()
    pod = make_pod("wrong", demo_image, {"name": "main", "image": demo_image, "command": IDLE,
                                         "volumeMounts": [{"name": "m", "mountPath": "/m"}]},
                   volumes=[{"name": "m", "hostPath": {"path": str(wrong), "type": kind}}])  # fmt: skip
    with pytest.raises(RuntimeFailure) as caught:
        runtime.create_pod(pod, uid, "h")
    assert (caught.value.failure, str(caught.value)) == (
        "FailedMount",
        f'MountVolume.SetUp failed for volume "m" : hostPath type check failed: {wrong} is not {what}',
    )
    assert runtime.list_pods() == []


# -- subPath, readOnly ----------------------------------------------------------------------------------------------


def test_sub_path_on_a_host_path_shows_only_that_directory(
    runtime: PodmanRuntime, demo_image: str, tmp_path: Path
) -> None:
    (tmp_path / "secret").write_text("s")
    mounts = [{"name": "h", "mountPath": "/s", "subPath": "a/b"}]
    code, out = run_once(runtime, demo_image, "echo in > /s/f; ls /s", mounts,
                         [{"name": "h", "hostPath": {"path": str(tmp_path)}}])  # fmt: skip
    assert code == 0, out
    assert out.split() == ["f"]
    assert (tmp_path / "a" / "b" / "f").read_text() == "in\n"


def test_sub_path_and_sub_path_expr_on_an_empty_dir_show_only_that_directory(
    runtime: PodmanRuntime, demo_image: str
) -> None:
    uid = new_uid()
    pod = make_pod(
        "subs", demo_image,
        {"name": "main", "image": demo_image, "env": [{"name": "POD", "value": "web-1"}],
         "command": ["sh", "-c", "echo a > /all/top; echo b > /one/f; echo c > /expr/g; ls /one; ls /expr; ls -R /all"],
         "volumeMounts": [{"name": "e", "mountPath": "/all"}, {"name": "e", "mountPath": "/one", "subPath": "x/y"},
                          {"name": "e", "mountPath": "/expr", "subPathExpr": "pods/$(POD)"}]},
        volumes=[{"name": "e", "emptyDir": {}}], restartPolicy="Never",
    )  # fmt: skip
    runtime.create_pod(pod, uid, "h")
    done = wait_for(runtime, uid, lambda p: p.containers[0].state == ContainerRunState.EXITED)
    out = runtime.logs(uid, "main")
    assert done.containers[0].exit_code == 0, out
    lines = out.splitlines()
    assert lines[:2] == ["f", "g"]
    assert "/all/x/y:" in lines and "/all/pods/web-1:" in lines and "top" in lines


def test_a_sub_path_on_a_memory_empty_dir_is_refused_as_failed_mount(runtime: PodmanRuntime, demo_image: str) -> None:
    pod = make_pod("memsub", demo_image, {"name": "main", "image": demo_image, "command": IDLE,
                                          "volumeMounts": [{"name": "m", "mountPath": "/m", "subPath": "x"}]},
                   volumes=[{"name": "m", "emptyDir": {"medium": "Memory"}}])  # fmt: skip
    with pytest.raises(RuntimeFailure, match="subPath 'x' on a medium: Memory emptyDir is not supported") as caught:
        runtime.create_pod(pod, new_uid(), "h")
    assert caught.value.failure == "FailedMount"


def test_read_only_mounts_refuse_writes(runtime: PodmanRuntime, demo_image: str, tmp_path: Path) -> None:
    script = "touch /h/x 2>&1; touch /e/x 2>&1; touch /s/x 2>&1; true"
    _, out = run_once(
        runtime, demo_image, script,
        [{"name": "h", "mountPath": "/h", "readOnly": True}, {"name": "e", "mountPath": "/e", "readOnly": True},
         {"name": "h", "mountPath": "/s", "subPath": "sub", "readOnly": True}],
        [{"name": "h", "hostPath": {"path": str(tmp_path)}}, {"name": "e", "emptyDir": {}}],
    )  # fmt: skip
    assert out.count("Read-only file system") == 3, out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]


# -- NFS through the FUSE helper, on a real NFS-Ganesha -----------------------------------------------------------


@pytest.fixture
def ganesha() -> Iterator[Ganesha]:
    from tests.support.prerequisites import require_nfs  # noqa: PLC0415

    require_nfs()
    root = Path(tempfile.mkdtemp(prefix="ek-nfs-", dir="/tmp"))
    server = Ganesha(root / "server", root / "export").start()
    try:
        yield server
    finally:
        server.stop()


def test_an_nfs_claim_is_written_into_the_export_with_a_sub_path_and_a_read_only_mount(
    runtime: PodmanRuntime, demo_image: str, ganesha: Ganesha
) -> None:
    target = ganesha.target()
    claims = {"n": nfs_claim(target.server, target.port, target.path)}
    uid = new_uid()
    pod = make_pod(
        "nfs", demo_image,
        {"name": "main", "image": demo_image,
         "command": ["sh", "-c", "echo via-nfs > /n/f; echo deep > /s/g; touch /r/x 2>&1; ls /s"],
         "volumeMounts": [{"name": "n", "mountPath": "/n"}, {"name": "n", "mountPath": "/s", "subPath": "deep/er"},
                          {"name": "n", "mountPath": "/r", "readOnly": True}]},
        volumes=[{"name": "n", "persistentVolumeClaim": {"claimName": "data"}}], restartPolicy="Never",
    )  # fmt: skip
    started = time.monotonic()
    runtime.create_pod(pod, uid, "h", claims)
    created = time.monotonic() - started
    done = wait_for(runtime, uid, lambda p: p.containers[0].state == ContainerRunState.EXITED)
    out = runtime.logs(uid, "main")
    assert done.containers[0].exit_code == 0, out
    assert (ganesha.export_dir / "f").read_text() == "via-nfs\n"
    assert (ganesha.export_dir / "deep" / "er" / "g").read_text() == "deep\n"
    assert "Read-only file system" in out
    assert out.splitlines()[-1] == "g"  # the subPath shows only its directory
    assert not (ganesha.export_dir / "x").exists()
    runtime.remove_pod(uid, grace_seconds=0)
    print(f"nfs pod created (probe, mkdir, 2 FUSE volumes, start) in {created:.2f}s")


def test_an_unreachable_nfs_server_fails_that_pod_only(runtime: PodmanRuntime, demo_image: str) -> None:
    port = closed_port()
    dead, fine = new_uid(), new_uid()
    mounts = [{"name": "n", "mountPath": "/n"}]
    nfs_pod = make_pod("dead", demo_image,
                       {"name": "main", "image": demo_image, "command": IDLE, "volumeMounts": mounts},
                       volumes=[{"name": "n", "persistentVolumeClaim": {"claimName": "data"}}])  # fmt: skip
    with pytest.raises(RuntimeFailure, match=f"nfs server 127.0.0.1:{port}") as caught:
        runtime.create_pod(nfs_pod, dead, "h", {"n": nfs_claim("127.0.0.1", port)})
    assert caught.value.failure == "FailedMount"
    runtime.create_pod(make_pod("fine", demo_image), fine, "h")
    assert [p.uid for p in runtime.list_pods()] == [fine]


# -- through the agent: FailedMount events and emptyDir sizeLimit eviction -----------------------------------------


def _phase(expected: str) -> Any:
    return lambda status: status.get("phase") == expected


def test_an_empty_dir_over_its_size_limit_gets_the_pod_evicted(edge_node: EdgeNode) -> None:
    edge_node.config["volume_check_interval"] = 0.5
    edge_node.start_agent()
    pod = manifest("filler", {"name": "main", "command": ["sh", "-c", "dd if=/dev/zero of=/x/big bs=1024 count=2048; "
                              "sleep 3600"], "volumeMounts": [{"name": "x", "mountPath": "/x"}]})  # fmt: skip
    pod["spec"]["volumes"] = [{"name": "x", "emptyDir": {"sizeLimit": "1Mi"}}]
    started = time.monotonic()
    edge_node.want(pod)
    status = edge_node.wait_status("eviction", "filler", _phase("Failed"), timeout=30)
    took = time.monotonic() - started
    message = 'Usage of EmptyDir volume "x" exceeds the limit "1Mi".'
    assert (status["reason"], status["message"]) == ("Evicted", message)
    observed = edge_node.observed("filler")
    assert observed is not None and all(c.state == ContainerRunState.EXITED for c in observed.containers)
    deadline = time.monotonic() + 5
    while ("Evicted", message) not in edge_node.event_reasons("filler") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ("Evicted", message) in edge_node.event_reasons("filler")
    print(f"applied to Evicted in {took:.2f}s (check interval 0.5 s)")


def test_a_failed_host_path_check_is_a_failed_mount_event_and_the_pod_waits(
    edge_node: EdgeNode, tmp_path: Path
) -> None:
    edge_node.config["backoff_max"] = 2.0  # retried every 2 s at most, so the fix is seen within the wait below
    edge_node.start_agent()
    missing = tmp_path / "not-yet"
    pod = manifest("waits", {"name": "main", "command": IDLE, "volumeMounts": [{"name": "h", "mountPath": "/h"}]})
    pod["spec"]["volumes"] = [{"name": "h", "hostPath": {"path": str(missing), "type": "Directory"}}]
    edge_node.want(pod)
    message = f'MountVolume.SetUp failed for volume "h" : hostPath type check failed: {missing} is not a directory'
    # The first report may be the plain "being created" one; the one after the failed mount carries the reason.
    status = edge_node.wait_status(
        "ContainerCreating with the mount failure", "waits",
        lambda s: s["containerStatuses"][0]["state"].get("waiting", {}).get("message") is not None,
    )  # fmt: skip
    assert status["phase"] == "Pending"
    assert status["containerStatuses"][0]["state"]["waiting"] == {"reason": "ContainerCreating", "message": message}
    deadline = time.monotonic() + 5
    while ("FailedMount", message) not in edge_node.event_reasons("waits") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ("FailedMount", message) in edge_node.event_reasons("waits")
    missing.mkdir()
    edge_node.wait_status("Running after the directory appeared", "waits", _phase("Running"), timeout=30)


def test_an_nfs_pod_whose_server_is_silent_does_not_stop_the_agent_running_others(edge_node: EdgeNode) -> None:
    edge_node.config["nfs_timeout"] = 3.0
    edge_node.start_agent()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(0)  # accepts nothing beyond the backlog and never answers an NFS call
    port = silent.getsockname()[1]
    try:
        dead = manifest("dead", {"name": "main", "command": IDLE, "volumeMounts": [{"name": "n", "mountPath": "/n"}]})
        dead["spec"]["volumes"] = [{"name": "n", "persistentVolumeClaim": {"claimName": "data"}}]
        dead[RESOLVED_VOLUMES_KEY] = {"n": nfs_claim("127.0.0.1", port).to_dict()}
        edge_node.want(dead)
        time.sleep(0.3)  # its create is now waiting on the server
        edge_node.want(dead, manifest("alive", {"name": "main", "command": IDLE}))
        started = time.monotonic()
        edge_node.wait_status("the other pod Running", "alive", _phase("Running"), timeout=20)
        print(f"other pod Running {time.monotonic() - started:.2f}s after it was sent, NFS pod still waiting")
        status = edge_node.wait_status(
            "FailedMount", "dead",
            lambda s: "nfs server 127.0.0.1" in str(s["containerStatuses"][0]["state"].get("waiting", {})), timeout=30,
        )  # fmt: skip
        assert status["phase"] == "Pending"
    finally:
        silent.close()
