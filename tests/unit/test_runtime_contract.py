"""The PodRuntime contract, run here on FakeRuntime and in tests/integration on PodmanRuntime (same tests)."""

from __future__ import annotations

import io
import os
import re
import socket
import stat
import tarfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.runtime.fake import FakeRuntime
from edgekube.agent.runtime.protocol import ContainerRunState, LogWindow, ObservedPod, PodRuntime
from edgekube.model.errors import NotFoundError, RuntimeFailure
from edgekube.model.names import NodeName, PodUID
from edgekube.model.pod import Pod
from edgekube.model.storage import ResolvedVolume

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
MISSING_IMAGE = "localhost/does-not-exist:1"
#: Exits at once on SIGTERM (the backgrounded sleep lets `wait` be interrupted), so removals stay fast.
IDLE = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]


@dataclass
class Harness:
    """What a contract test needs from a runtime under test."""

    runtime: PodRuntime
    image: str  # present on the node
    reopen: Callable[[NodeName | None], PodRuntime]  # another instance on the same engine (None: same node)
    node: NodeName
    kill: Callable[[PodUID, str], None]  # `podman kill` one container from outside
    power_off: Callable[[PodUID], None]  # what a reboot leaves of the pod: everything stopped, infra too
    #: Command lines running in a container, seen from outside the runtime; None where nothing really runs (fake).
    processes: Callable[[PodUID, str], list[str]] | None = None
    #: Make the NFS server at "host:port" not answer (the fake is told; on a real node a closed port does it).
    nfs_down: Callable[[str], None] = field(default=lambda address: None)
    #: (host, port) of a reachable NFS server exporting /export; None: the tests that mount one are skipped.
    nfs_server: tuple[str, int] | None = None


def new_uid() -> PodUID:
    return PodUID(str(uuid.uuid4()))


def make_pod(name: str, image: str, *containers: dict[str, Any], **spec: Any) -> Pod:
    """A Pod from a Kubernetes-shaped dict; by default one idle container named `main`."""
    if not containers:
        containers = ({"name": "main", "image": image, "command": IDLE},)
    return Pod.model_validate(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": list(containers), **spec},
        }
    )


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def nfs_claim(server: str, port: int, path: str = "/export") -> ResolvedVolume:
    return ResolvedVolume.model_validate(
        {"claimName": "data", "volumeName": "pv-1", "accessModes": ["ReadWriteMany"],
         "nfs": {"server": server, "path": path}, "mountOptions": [f"port={port}"]}
    )  # fmt: skip


def char_device(path: Path) -> Path:
    """A character device node like /dev/null (1, 3) at `path`, standing in for a Pi's /dev/ttyAMA0."""
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("mknod needs CAP_MKNOD (run as root)")
    os.chmod(path, 0o666)
    return path


def wait_for(
    runtime: PodRuntime, uid: PodUID, check: Callable[[ObservedPod], bool], timeout: float = 20.0
) -> ObservedPod:
    """Poll list_pods until the pod satisfies `check`; fails with the last observation."""
    deadline = time.monotonic() + timeout
    last: ObservedPod | None = None
    while time.monotonic() < deadline:
        last = next((p for p in runtime.list_pods() if p.uid == uid), None)
        if last is not None and check(last):
            return last
        time.sleep(0.1)
    pytest.fail(f"pod {uid} did not reach the expected state in {timeout}s; last seen: {last}")


class RuntimeContract:
    """Behaviour every PodRuntime must have; a subclass provides the `harness` fixture."""

    def test_info_names_the_engine(self, harness: Harness) -> None:
        info = harness.runtime.info()
        assert info.name
        assert info.version

    def test_create_then_list(self, harness: Harness) -> None:
        uid = new_uid()
        pod = make_pod(
            "two",
            harness.image,
            {"name": "first", "image": harness.image, "command": IDLE},
            {"name": "second", "image": harness.image, "command": IDLE},
        )
        created = harness.runtime.create_pod(pod, uid, "hash-1")
        assert (created.uid, created.namespace, created.name, created.spec_hash) == (uid, "default", "two", "hash-1")
        assert [c.name for c in created.containers] == ["first", "second"]
        listed = [p for p in harness.runtime.list_pods() if p.uid == uid]
        assert len(listed) == 1
        assert listed[0].pod_id == created.pod_id
        for container in listed[0].containers:
            assert container.image == harness.image
            assert container.container_id
            assert container.state in (ContainerRunState.RUNNING, ContainerRunState.CREATED)
        running = wait_for(harness.runtime, uid, lambda p: all(c.state == "running" for c in p.containers))
        for container in running.containers:
            assert container.started_at is not None and RFC3339_UTC.match(container.started_at)
            assert container.exit_code is None
            assert container.finished_at is None

    def test_devices_are_mapped_into_their_container_and_listed_again_after_a_reopen(
        self, harness: Harness, tmp_path: Path
    ) -> None:
        device = str(char_device(tmp_path / "ttyEK0"))
        uid, bare = new_uid(), new_uid()
        pod = make_pod("serial", harness.image)
        created = harness.runtime.create_pod(pod, uid, "h", devices={"main": [device]})
        assert created.containers[0].devices == (device,)
        harness.runtime.create_pod(make_pod("bare", harness.image), bare, "h")
        adopted = {p.uid: p for p in harness.reopen(None).list_pods()}
        assert adopted[uid].containers[0].devices == (device,)
        assert adopted[bare].containers[0].devices == ()
        wait_for(harness.runtime, uid, lambda p: p.containers[0].state == "running")
        code, output = harness.runtime.exec(uid, "main", ["sh", "-c", f"test -c {device} && echo hi > {device}"], 10)
        assert (code, output) == (0, "")
        if harness.processes is not None:  # a real engine: the device is not there without the mapping
            wait_for(harness.runtime, bare, lambda p: p.containers[0].state == "running")
            assert harness.runtime.exec(bare, "main", ["test", "-e", device], 10)[0] != 0

    def test_a_pods_grace_period_is_read_back_and_survives_a_reopen(self, harness: Harness) -> None:
        uid = new_uid()
        harness.runtime.create_pod(make_pod("graceful", harness.image, terminationGracePeriodSeconds=7), uid, "h")
        for runtime in (harness.runtime, harness.reopen(None)):
            [found] = [p for p in runtime.list_pods() if p.uid == uid]
            assert found.grace_seconds == 7

    def test_a_containers_pre_stop_hook_is_read_back_with_its_named_port_resolved_after_a_reopen(
        self, harness: Harness
    ) -> None:
        uid = new_uid()
        hooked = {
            "name": "main", "image": harness.image, "command": IDLE,
            "ports": [{"name": "admin", "containerPort": 8081}],
            "lifecycle": {"preStop": {"httpGet": {"path": "/drain", "port": "admin"}}},
        }  # fmt: skip
        plain = {"name": "plain", "image": harness.image, "command": IDLE}
        harness.runtime.create_pod(make_pod("hooked", harness.image, hooked, plain), uid, "h")
        for runtime in (harness.runtime, harness.reopen(None)):
            [found] = [p for p in runtime.list_pods() if p.uid == uid]
            hook = found.containers[0].pre_stop
            assert hook is not None and hook.http_get is not None
            assert (hook.http_get.path, hook.http_get.port) == ("/drain", 8081)
            assert found.containers[1].pre_stop is None

    def test_create_is_idempotent(self, harness: Harness) -> None:
        uid = new_uid()
        pod = make_pod("again", harness.image)
        first = harness.runtime.create_pod(pod, uid, "h")
        second = harness.runtime.create_pod(pod, uid, "h")
        assert second.pod_id == first.pod_id
        assert [c.container_id for c in second.containers] == [c.container_id for c in first.containers]
        assert [p.uid for p in harness.runtime.list_pods()].count(uid) == 1

    def test_create_with_new_spec_hash_replaces_the_pod(self, harness: Harness) -> None:
        uid = new_uid()
        first = harness.runtime.create_pod(make_pod("change", harness.image), uid, "old")
        second = harness.runtime.create_pod(make_pod("change", harness.image), uid, "new")
        assert second.spec_hash == "new"
        assert second.pod_id != first.pod_id
        assert [p.spec_hash for p in harness.runtime.list_pods() if p.uid == uid] == ["new"]

    def test_remove_deletes_and_is_idempotent(self, harness: Harness) -> None:
        uid = new_uid()
        harness.runtime.create_pod(make_pod("gone", harness.image), uid, "h")
        harness.runtime.remove_pod(uid, grace_seconds=5)
        assert uid not in {p.uid for p in harness.runtime.list_pods()}
        harness.runtime.remove_pod(uid)

    def test_remove_of_unknown_pod_is_not_an_error(self, harness: Harness) -> None:
        harness.runtime.remove_pod(new_uid())

    def test_a_new_instance_adopts_existing_pods(self, harness: Harness) -> None:
        uid = new_uid()
        created = harness.runtime.create_pod(make_pod("adopt", harness.image), uid, "h")
        adopted = [p for p in harness.reopen(None).list_pods() if p.uid == uid]
        assert len(adopted) == 1
        assert adopted[0].pod_id == created.pod_id
        assert [c.container_id for c in adopted[0].containers] == [c.container_id for c in created.containers]
        assert (adopted[0].name, adopted[0].namespace, adopted[0].spec_hash) == ("adopt", "default", "h")

    def test_other_nodes_pods_are_invisible(self, harness: Harness) -> None:
        uid = new_uid()
        harness.runtime.create_pod(make_pod("mine", harness.image), uid, "h")
        other = harness.reopen(NodeName(f"{harness.node}-other"))
        assert uid not in {p.uid for p in other.list_pods()}
        other.remove_pod(uid)  # not its pod: must not touch it
        assert uid in {p.uid for p in harness.runtime.list_pods()}

    def test_missing_image_fails_with_err_image_pull_and_leaves_nothing(self, harness: Harness) -> None:
        uid = new_uid()
        pod = make_pod(
            "nopull",
            harness.image,
            {"name": "ok", "image": harness.image, "command": IDLE},
            {"name": "bad", "image": MISSING_IMAGE, "command": IDLE},
        )
        with pytest.raises(RuntimeFailure) as caught:
            harness.runtime.create_pod(pod, uid, "h")
        assert caught.value.failure == "ErrImagePull"
        assert MISSING_IMAGE in str(caught.value)
        assert uid not in {p.uid for p in harness.runtime.list_pods()}

    def test_missing_image_with_pull_policy_never_is_err_image_never_pull(self, harness: Harness) -> None:
        uid = new_uid()
        pod = make_pod("never", harness.image, {"name": "bad", "image": MISSING_IMAGE, "imagePullPolicy": "Never"})
        with pytest.raises(RuntimeFailure) as caught:
            harness.runtime.create_pod(pod, uid, "h")
        assert caught.value.failure == "ErrImageNeverPull"
        assert MISSING_IMAGE in str(caught.value)
        assert uid not in {p.uid for p in harness.runtime.list_pods()}

    def test_run_as_non_root_on_an_image_that_runs_as_root_is_refused_and_creates_nothing(
        self, harness: Harness
    ) -> None:
        """The kubelet's verifyRunAsNonRoot (pkg/kubelet/kuberuntime/security_context_others.go): the image
        names no USER, so it runs as root; the pod's runAsNonRoot refuses it (CreateContainerConfigError)."""
        uid = new_uid()
        pod = make_pod("nonroot", harness.image, securityContext={"runAsNonRoot": True})
        with pytest.raises(RuntimeFailure) as caught:
            harness.runtime.create_pod(pod, uid, "h")
        assert caught.value.failure == "CreateContainerConfigError"
        assert str(caught.value) == (
            f'container has runAsNonRoot and image will run as root (pod: "nonroot_default({uid})", container: main)'
        )
        assert uid not in {p.uid for p in harness.runtime.list_pods()}

    def test_run_as_non_root_with_a_non_root_run_as_user_runs(self, harness: Harness) -> None:
        uid = new_uid()
        container = {"name": "main", "image": harness.image, "command": IDLE, "securityContext": {"runAsUser": 1000}}
        pod = make_pod("nonroot-ok", harness.image, container, securityContext={"runAsNonRoot": True})
        observed = harness.runtime.create_pod(pod, uid, "h")
        assert [c.state for c in observed.containers] == [ContainerRunState.RUNNING]

    def test_logs_of_missing_pod_or_container_is_not_found(self, harness: Harness) -> None:
        with pytest.raises(NotFoundError):
            harness.runtime.logs(new_uid(), "main")
        uid = new_uid()
        harness.runtime.create_pod(make_pod("logs", harness.image), uid, "h")
        assert isinstance(harness.runtime.logs(uid, "main"), str)
        with pytest.raises(NotFoundError, match="nope"):
            harness.runtime.logs(uid, "nope")

    def test_a_file_copied_in_comes_back_out_and_a_missing_path_is_not_found(self, harness: Harness) -> None:
        uid = new_uid()
        harness.runtime.create_pod(make_pod("cp", harness.image), uid, "h")
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            info = tarfile.TarInfo("note.txt")
            info.size = 5
            tar.addfile(info, io.BytesIO(b"hello"))
        harness.runtime.copy_to(uid, "main", "/tmp", out.getvalue())
        back = harness.runtime.copy_from(uid, "main", "/tmp/note.txt", 1 << 20)
        with tarfile.open(fileobj=io.BytesIO(back)) as tar:
            member = tar.getmember("note.txt")
            content = tar.extractfile(member)
            assert content is not None and content.read() == b"hello"
        with pytest.raises(NotFoundError):
            harness.runtime.copy_from(uid, "main", "/no/such/file", 1 << 20)

    def test_a_terminal_in_a_missing_container_is_not_found(self, harness: Harness) -> None:
        uid = new_uid()
        harness.runtime.create_pod(make_pod("tty", harness.image), uid, "h")
        with pytest.raises(NotFoundError, match="nope"):
            harness.runtime.exec_tty(uid, "nope", ["sh"], 24, 80)

    def test_a_log_window_starting_in_the_future_is_empty(self, harness: Harness) -> None:
        uid = new_uid()
        harness.runtime.create_pod(make_pod("window", harness.image), uid, "h")
        future = LogWindow(since=time.time() + 3600, timestamps=True)
        assert harness.runtime.logs(uid, "main", None, future) == ""
        past = LogWindow(until=time.time() - 3600)
        assert harness.runtime.logs(uid, "main", None, past) == ""

    # -- shared fate: stop and restart a pod as a unit ----------------------------------------------------------

    def test_a_running_pod_has_an_ip(self, harness: Harness) -> None:
        uid = new_uid()
        harness.runtime.create_pod(make_pod("ip", harness.image), uid, "h")
        pod = wait_for(harness.runtime, uid, lambda p: p.containers[0].state == ContainerRunState.RUNNING)
        assert pod.infra_running
        assert pod.ip is not None and re.match(r"^\d+\.\d+\.\d+\.\d+$", pod.ip)

    def test_stop_pod_stops_the_containers_and_keeps_the_pod(self, harness: Harness) -> None:
        uid = new_uid()
        pod = make_pod(
            "stop", harness.image,
            {"name": "a", "image": harness.image, "command": IDLE},
            {"name": "b", "image": harness.image, "command": IDLE},
        )  # fmt: skip
        created = harness.runtime.create_pod(pod, uid, "h")
        wait_for(harness.runtime, uid, lambda p: all(c.state == ContainerRunState.RUNNING for c in p.containers))
        harness.runtime.stop_pod(uid, grace_seconds=5)
        [stopped] = [p for p in harness.runtime.list_pods() if p.uid == uid]
        assert [c.state for c in stopped.containers] == [ContainerRunState.EXITED] * 2
        assert all(c.exit_code is not None and c.finished_at for c in stopped.containers)
        assert stopped.pod_id == created.pod_id
        assert [c.container_id for c in stopped.containers] == [c.container_id for c in created.containers]
        assert stopped.infra_running and stopped.ip == created.ip  # the sandbox keeps the pod's address
        harness.runtime.stop_pod(uid, grace_seconds=5)  # stopping a stopped pod is a no-op

    def test_restart_pod_after_a_container_died_restarts_all_with_the_same_ids(self, harness: Harness) -> None:
        uid = new_uid()
        pod = make_pod(
            "restart", harness.image,
            {"name": "a", "image": harness.image, "command": IDLE},
            {"name": "b", "image": harness.image, "command": IDLE},
        )  # fmt: skip
        created = harness.runtime.create_pod(pod, uid, "h")
        wait_for(harness.runtime, uid, lambda p: all(c.state == ContainerRunState.RUNNING for c in p.containers))
        harness.kill(uid, "a")
        wait_for(harness.runtime, uid, lambda p: p.containers[0].state == ContainerRunState.EXITED)
        restarted = harness.runtime.restart_pod(uid, grace_seconds=5)
        assert restarted.pod_id == created.pod_id
        assert [c.container_id for c in restarted.containers] == [c.container_id for c in created.containers]
        running = wait_for(harness.runtime, uid, lambda p: all(c.state == "running" for c in p.containers))
        assert all(c.exit_code is None for c in running.containers)

    def test_restart_pod_after_a_power_off_starts_the_sandbox_too(self, harness: Harness) -> None:
        uid = new_uid()
        created = harness.runtime.create_pod(make_pod("reboot", harness.image), uid, "h")
        wait_for(harness.runtime, uid, lambda p: p.containers[0].state == ContainerRunState.RUNNING)
        harness.power_off(uid)
        off = wait_for(harness.runtime, uid, lambda p: not p.infra_running)
        assert off.ip is None
        assert off.containers[0].state == ContainerRunState.EXITED
        restarted = harness.runtime.restart_pod(uid)
        assert restarted.infra_running and restarted.ip
        assert [c.container_id for c in restarted.containers] == [c.container_id for c in created.containers]
        wait_for(harness.runtime, uid, lambda p: p.containers[0].state == ContainerRunState.RUNNING)

    def test_stop_and_restart_of_an_unknown_pod_are_not_found(self, harness: Harness) -> None:
        with pytest.raises(NotFoundError):
            harness.runtime.stop_pod(new_uid())
        with pytest.raises(NotFoundError):
            harness.runtime.restart_pod(new_uid())

    # -- exec (probes) and images -----------------------------------------------------------------------------

    def test_exec_returns_the_exit_code(self, harness: Harness) -> None:
        uid = new_uid()
        harness.runtime.create_pod(make_pod("exec", harness.image), uid, "h")
        wait_for(harness.runtime, uid, lambda p: p.containers[0].state == ContainerRunState.RUNNING)
        assert harness.runtime.exec(uid, "main", ["true"], 5)[0] == 0
        assert harness.runtime.exec(uid, "main", ["false"], 5)[0] == 1
        with pytest.raises(NotFoundError):
            harness.runtime.exec(uid, "nope", ["true"], 5)

    def test_exec_that_outlives_its_timeout_is_a_timeout(self, harness: Harness) -> None:
        uid = new_uid()
        harness.runtime.create_pod(make_pod("slow", harness.image), uid, "h")
        wait_for(harness.runtime, uid, lambda p: p.containers[0].state == ContainerRunState.RUNNING)
        with pytest.raises(RuntimeFailure, match="timed out after 1s") as caught:
            harness.runtime.exec(uid, "main", ["sleep", "60"], 1)
        assert caught.value.failure == "Timeout"
        if harness.processes is not None:
            # Cut off at its timeout, not waited out: the command still runs now that exec has answered.
            assert "sleep 60" in harness.processes(uid, "main")

    def test_exec_in_a_stopped_container_fails(self, harness: Harness) -> None:
        uid = new_uid()
        harness.runtime.create_pod(make_pod("stopped", harness.image), uid, "h")
        harness.runtime.stop_pod(uid, grace_seconds=5)
        with pytest.raises(RuntimeFailure):
            harness.runtime.exec(uid, "main", ["true"], 5)

    def test_wait_for_exit_wakes_when_a_container_exits(self, harness: Harness) -> None:
        uid = new_uid()
        harness.runtime.create_pod(make_pod("watched", harness.image), uid, "h")
        wait_for(harness.runtime, uid, lambda p: p.containers[0].state == ContainerRunState.RUNNING)
        harness.runtime.wait_for_exit(0.05)  # forget anything from before
        assert harness.runtime.wait_for_exit(0.3) is False  # nothing exited
        order: list[str] = []

        def kill() -> None:
            order.append("kill sent")
            harness.kill(uid, "main")

        killer = threading.Timer(0.5, kill)
        killer.start()
        try:
            assert harness.runtime.wait_for_exit(10) is True
            order.append("woke")
        finally:
            killer.join()
        # It woke on the exit (not before the kill, not by running out its wait), and the container is down.
        assert order == ["kill sent", "woke"]
        [pod] = [p for p in harness.runtime.list_pods() if p.uid == uid]
        assert pod.containers[0].state == ContainerRunState.EXITED

    def test_has_image(self, harness: Harness) -> None:
        assert harness.runtime.has_image(harness.image)
        assert not harness.runtime.has_image(MISSING_IMAGE)

    # -- volumes ----------------------------------------------------------------------------------------------

    def test_host_path_directory_or_create_makes_the_directory_and_its_sub_path(
        self, harness: Harness, tmp_path: Path
    ) -> None:
        uid = new_uid()
        path = tmp_path / "made" / "here"
        pod = make_pod(
            "hostdir", harness.image,
            {"name": "main", "image": harness.image, "command": IDLE,
             "volumeMounts": [{"name": "h", "mountPath": "/h"}, {"name": "h", "mountPath": "/s", "subPath": "a/b"}]},
            volumes=[{"name": "h", "hostPath": {"path": str(path), "type": "DirectoryOrCreate"}}],
        )  # fmt: skip
        harness.runtime.create_pod(pod, uid, "h")
        assert path.is_dir()
        assert (path / "a" / "b").is_dir()
        assert uid in {p.uid for p in harness.runtime.list_pods()}

    def test_a_failed_host_path_check_is_failed_mount_and_creates_nothing(
        self, harness: Harness, tmp_path: Path
    ) -> None:
        uid = new_uid()
        (tmp_path / "file").write_text("x")
        pod = make_pod(
            "hostfile", harness.image,
            {"name": "main", "image": harness.image, "command": IDLE,
             "volumeMounts": [{"name": "h", "mountPath": "/h"}]},
            volumes=[{"name": "h", "hostPath": {"path": str(tmp_path / "file"), "type": "Directory"}}],
        )  # fmt: skip
        with pytest.raises(RuntimeFailure) as caught:
            harness.runtime.create_pod(pod, uid, "h")
        assert caught.value.failure == "FailedMount"
        assert str(caught.value) == (
            f'MountVolume.SetUp failed for volume "h" : hostPath type check failed: {tmp_path / "file"} is not a '
            "directory"
        )
        assert uid not in {p.uid for p in harness.runtime.list_pods()}

    def test_a_claim_without_a_source_is_failed_mount_and_creates_nothing(self, harness: Harness) -> None:
        uid = new_uid()
        pod = make_pod(
            "claim", harness.image,
            {"name": "main", "image": harness.image, "command": IDLE,
             "volumeMounts": [{"name": "d", "mountPath": "/d"}]},
            volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
        )  # fmt: skip
        with pytest.raises(RuntimeFailure, match='persistentVolumeClaim "data" has no bound volume') as caught:
            harness.runtime.create_pod(pod, uid, "h", {})
        assert caught.value.failure == "FailedMount"
        assert uid not in {p.uid for p in harness.runtime.list_pods()}

    def test_an_unreachable_nfs_server_is_failed_mount_naming_it_and_creates_nothing(self, harness: Harness) -> None:
        uid = new_uid()
        port = closed_port()
        harness.nfs_down(f"127.0.0.1:{port}")
        pod = make_pod(
            "deadnfs", harness.image,
            {"name": "main", "image": harness.image, "command": IDLE,
             "volumeMounts": [{"name": "d", "mountPath": "/d"}]},
            volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
        )  # fmt: skip
        with pytest.raises(RuntimeFailure, match=f"nfs server 127.0.0.1:{port}") as caught:
            harness.runtime.create_pod(pod, uid, "h", {"d": nfs_claim("127.0.0.1", port)})
        assert caught.value.failure == "FailedMount"
        assert str(caught.value).startswith('MountVolume.SetUp failed for volume "d" : ')
        assert uid not in {p.uid for p in harness.runtime.list_pods()}

    def test_empty_dirs_and_host_path_claims_are_not_volumes_in_use(self, harness: Harness, tmp_path: Path) -> None:
        uid = new_uid()
        host = ResolvedVolume.model_validate(
            {"claimName": "local", "volumeName": "pv-local", "accessModes": ["ReadWriteOnce"],
             "hostPath": {"path": str(tmp_path), "type": "Directory"}}
        )  # fmt: skip
        pod = make_pod(
            "notinuse", harness.image,
            {"name": "main", "image": harness.image, "command": IDLE,
             "volumeMounts": [{"name": "e", "mountPath": "/e"}, {"name": "h", "mountPath": "/h"}]},
            volumes=[{"name": "e", "emptyDir": {}}, {"name": "h", "persistentVolumeClaim": {"claimName": "local"}}],
        )  # fmt: skip
        harness.runtime.create_pod(pod, uid, "h", {"h": host})
        assert harness.runtime.volumes_in_use() == []

    def test_an_nfs_claims_volume_is_in_use_from_create_until_its_pod_is_removed(self, harness: Harness) -> None:
        if harness.nfs_server is None:
            pytest.skip("needs a reachable NFS server (Harness.nfs_server)")
        server, port = harness.nfs_server
        uid = new_uid()
        pod = make_pod(
            "inuse", harness.image,
            {"name": "main", "image": harness.image, "command": IDLE,
             "volumeMounts": [{"name": "d", "mountPath": "/d"}, {"name": "s", "mountPath": "/s", "subPath": "x"}]},
            volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
                     {"name": "s", "persistentVolumeClaim": {"claimName": "data"}}],
        )  # fmt: skip
        claim = nfs_claim(server, port)
        harness.runtime.create_pod(pod, uid, "h", {"d": claim, "s": claim})
        assert harness.runtime.volumes_in_use() == ["edgekube.io/nfs/pv-1"]  # once, for both volumes and the subPath
        harness.runtime.remove_pod(uid, grace_seconds=0)
        assert harness.runtime.volumes_in_use() == []

    def test_a_failed_create_leaves_no_volume_in_use(self, harness: Harness) -> None:
        uid = new_uid()
        port = closed_port()
        harness.nfs_down(f"127.0.0.1:{port}")
        pod = make_pod(
            "failed", harness.image,
            {"name": "main", "image": harness.image, "command": IDLE,
             "volumeMounts": [{"name": "d", "mountPath": "/d"}]},
            volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
        )  # fmt: skip
        with pytest.raises(RuntimeFailure):
            harness.runtime.create_pod(pod, uid, "h", {"d": nfs_claim("127.0.0.1", port)})
        assert harness.runtime.volumes_in_use() == []

    def test_volume_usage_of_a_pod_without_disk_volumes_or_of_no_pod_is_empty(self, harness: Harness) -> None:
        uid = new_uid()
        harness.runtime.create_pod(make_pod("novol", harness.image), uid, "h")
        assert harness.runtime.volume_usage(uid) == {}
        assert harness.runtime.volume_usage(new_uid()) == {}

    def test_container_usage_names_each_app_container_and_is_empty_for_no_pod(self, harness: Harness) -> None:
        uid = new_uid()
        idle = {"image": harness.image, "command": IDLE}
        pod = make_pod("du", harness.image, {"name": "a", **idle}, {"name": "b", **idle})
        harness.runtime.create_pod(pod, uid, "h")
        usage = harness.runtime.container_usage(uid)
        assert sorted(usage) == ["a", "b"] and all(used >= 0 for used in usage.values())
        assert harness.runtime.container_usage(new_uid()) == {}

    def test_stats_lists_each_running_app_container_with_its_pod(self, harness: Harness) -> None:
        uid = new_uid()
        pod = make_pod(
            "measured",
            harness.image,
            {"name": "a", "image": harness.image, "command": IDLE},
            {"name": "b", "image": harness.image, "command": IDLE},
        )
        created = harness.runtime.create_pod(pod, uid, "h")
        wait_for(harness.runtime, uid, lambda p: all(c.state is ContainerRunState.RUNNING for c in p.containers))
        mine = [s for s in harness.runtime.stats() if s.uid == uid]
        assert [(s.namespace, s.pod, s.container) for s in mine] == [("default", "measured", "a"),
                                                                     ("default", "measured", "b")]  # fmt: skip
        assert {s.container_id for s in mine} == {c.container_id for c in created.containers}
        for s in mine:
            assert s.cpu_seconds >= 0
            assert s.memory_bytes > 0  # a running process uses some memory
            assert min(s.rx_bytes, s.tx_bytes, s.read_bytes, s.write_bytes) >= 0
            assert s.pids >= 1

    def test_stats_leave_out_stopped_containers_and_other_nodes(self, harness: Harness) -> None:
        uid, other_uid = new_uid(), new_uid()
        harness.runtime.create_pod(make_pod("stopping", harness.image), uid, "h")
        other = harness.reopen(NodeName(f"{harness.node}-other"))
        other.create_pod(make_pod("elsewhere", harness.image), other_uid, "h")
        try:
            harness.runtime.stop_pod(uid, grace_seconds=1)
            uids = {s.uid for s in harness.runtime.stats()}
            assert uid not in uids
            assert other_uid not in uids
            assert other_uid in {s.uid for s in other.stats()}
        finally:
            other.remove_pod(other_uid, grace_seconds=0)


class TestFakeRuntimeContract(RuntimeContract):
    @pytest.fixture
    def harness(self) -> Harness:
        runtime = FakeRuntime(NodeName("node-a"))
        runtime.add_image("localhost/edgekube/busybox:1")
        runtime.make_image_missing(MISSING_IMAGE)
        return Harness(
            runtime=runtime,
            image="localhost/edgekube/busybox:1",
            reopen=runtime.reopen,
            node=runtime.node,
            kill=runtime.kill_container,
            power_off=lambda uid: runtime.power_off(),
            nfs_down=runtime.engine.unreachable_nfs.add,
            nfs_server=("10.0.0.5", 2049),
        )


# -- FakeRuntime's test helpers --------------------------------------------------------------------------


def test_fake_exit_container_reports_code_and_time() -> None:
    runtime = FakeRuntime()
    uid = new_uid()
    runtime.create_pod(make_pod("p", "img:1"), uid, "h")
    runtime.exit_container(uid, "main", 3, error="OOMKilled")
    (container,) = runtime.list_pods()[0].containers
    assert container.state == ContainerRunState.EXITED
    assert container.exit_code == 3
    assert container.error == "OOMKilled"
    assert container.finished_at is not None and RFC3339_UTC.match(container.finished_at)


def test_fake_logs_tail_and_reset_on_remove() -> None:
    runtime = FakeRuntime()
    uid = new_uid()
    runtime.create_pod(make_pod("p", "img:1"), uid, "h")
    runtime.write_log(uid, "main", "a\nb\nc\n")
    assert runtime.logs(uid, "main") == "a\nb\nc\n"
    assert runtime.logs(uid, "main", tail=2) == "b\nc\n"
    assert runtime.logs(uid, "main", tail=0) == ""
    runtime.remove_pod(uid)
    with pytest.raises(NotFoundError):
        runtime.logs(uid, "main")


def test_fake_pulls_unknown_images_unless_missing() -> None:
    runtime = FakeRuntime()
    runtime.create_pod(make_pod("p", "registry.example/app:2"), new_uid(), "h")
    assert "registry.example/app:2" in runtime.engine.images
    runtime.make_image_missing("registry.example/app:2")
    with pytest.raises(RuntimeFailure) as caught:
        runtime.create_pod(make_pod("q", "registry.example/app:2"), new_uid(), "h")
    assert caught.value.failure == "ErrImagePull"


def test_fake_fail_next_create_and_call_log() -> None:
    runtime = FakeRuntime()
    uid = new_uid()
    runtime.fail_next_create = RuntimeFailure("boom", reason="CreateContainerError")
    with pytest.raises(RuntimeFailure, match="boom"):
        runtime.create_pod(make_pod("p", "img:1"), uid, "h")
    runtime.create_pod(make_pod("p", "img:1"), uid, "h")
    runtime.stop_pod(uid)
    runtime.restart_pod(uid)
    runtime.remove_pod(uid)
    assert runtime.calls == [("create", uid), ("create", uid), ("stop", uid), ("restart", uid), ("remove", uid)]


def test_fake_exec_results_can_be_set_per_container() -> None:
    runtime = FakeRuntime()
    uid = new_uid()
    runtime.create_pod(make_pod("p", "img:1"), uid, "h")
    assert runtime.exec(uid, "main", ["cat", "/ok"], 1) == (0, "")
    runtime.set_exec_result(uid, "main", 2, "no such file")
    assert runtime.exec(uid, "main", ["cat", "/ok"], 1) == (2, "no such file")
