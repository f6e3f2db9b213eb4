"""The agent's volumes without Podman: specgen documents, subPathExpr, hostPath checks, claims, sizeLimit eviction."""

from __future__ import annotations

import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.app import Agent, AgentConfig
from edgekube.agent.desired import DesiredState
from edgekube.agent.reconcile import spec_hash
from edgekube.agent.runtime.fake import FakeRuntime
from edgekube.agent.runtime.podman import specgen
from edgekube.agent.runtime.volumes import (
    NfsExport,
    NfsMode,
    VolumeKind,
    check_host_path,
    disk_usage,
    expand_sub_path_expr,
    nfs_mode,
    over_limit,
    plan_volumes,
    sub_dir,
)
from edgekube.bus import topics
from edgekube.model.errors import RuntimeFailure, ValidationError
from edgekube.model.names import NodeName, PodUID
from edgekube.model.pod import HostPathType, Pod
from edgekube.model.status import PodStatus
from edgekube.model.storage import RESOLVED_VOLUMES_KEY, ResolvedVolume
from edgekube.model.wire import NodeDesired, NodeReport
from tests.support.membus import MemoryBroker

NODE = NodeName("pi-1")
IMAGE = "localhost/edgekube/busybox:1"


def make_pod(volumes: list[dict[str, Any]], *mounts: dict[str, Any], env: list[dict[str, str]] | None = None) -> Pod:
    return Pod.model_validate(
        {
            "metadata": {"name": "p", "namespace": "default", "uid": "uid-p"},
            "spec": {
                "containers": [{"name": "app", "image": IMAGE, "env": env or [], "volumeMounts": list(mounts)}],
                "volumes": volumes,
            },
        }
    )


def resolved(claim: str = "data", **source: Any) -> ResolvedVolume:
    return ResolvedVolume.model_validate(
        {"claimName": claim, "volumeName": "pv-1", "accessModes": ["ReadWriteMany"], **source}
    )


NFS_SOURCE: dict[str, Any] = {
    "nfs": {"server": "10.0.0.5", "path": "/srv/pv-1"},
    "mountOptions": ["port=20490", "hard"],
}


# -- specgen documents, one per volume type and NFS mode -------------------------------------------------------


def test_a_disk_empty_dir_is_a_plain_named_volume() -> None:
    plans, _ = plan_volumes(make_pod([{"name": "cache", "emptyDir": {}}]))
    body = specgen.plan_volume_spec("ek_default_p_1_cache", plans["cache"], {"l": "v"})
    assert body == {"Name": "ek_default_p_1_cache", "Label": {"l": "v"}}


def test_a_memory_empty_dir_is_a_tmpfs_of_its_size_limit_in_pages() -> None:
    plans, _ = plan_volumes(make_pod([{"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}]))
    body = specgen.plan_volume_spec("v", plans["m"], {})
    pages = (1 << 20) // os.sysconf("SC_PAGE_SIZE")
    assert body["Options"] == {"type": "tmpfs", "device": "tmpfs", "o": f"nr_blocks={pages}"}


def test_kernel_nfs_options_put_address_port_version_then_mount_options_and_no_chown() -> None:
    export = NfsExport("10.0.0.5", "/srv/pv-1", 20490, ("port=20490", "hard", "nfsvers=4.2"))
    options = specgen.nfs_volume_options(NfsMode.KERNEL, export, True, "", "")
    assert options == {
        "type": "nfs",
        "o": "addr=10.0.0.5,port=20490,nfsvers=4.2,ro,hard,uid=0,gid=0",
        "device": "10.0.0.5:/srv/pv-1",
    }


def test_kernel_nfs_options_default_to_nfs_4_1_on_2049_read_write() -> None:
    options = specgen.kernel_nfs_options(NfsExport("nas", "/x"), False)
    assert options["o"] == "addr=nas,port=2049,nfsvers=4.1,uid=0,gid=0"
    assert options["device"] == "nas:/x"


def test_userspace_nfs_is_a_fuse_volume_running_the_helper_on_the_source() -> None:
    export = NfsExport("10.0.0.5", "/srv/pv-1", 20490)
    helper, source = "/opt/edgekube/venv/bin/edgekube-nfs-mount", "nfs://10.0.0.5:20490/srv/pv-1"
    assert specgen.nfs_volume_options(NfsMode.USERSPACE, export, False, helper, source) == {
        "type": "fuse",
        "o": "uid=0,gid=0",
        "device": f"{helper}#{source}",
    }
    assert specgen.nfs_volume_options(NfsMode.USERSPACE, export, True, helper, source)["o"] == "ro,uid=0,gid=0"


def test_container_mounts_become_named_volumes_with_nocopy_and_binds_for_paths() -> None:
    pod = make_pod([{"name": "v", "emptyDir": {}}], {"name": "v", "mountPath": "/v"})
    mounts = [
        specgen.ContainerMount("/v", volume="ek_v"),
        specgen.ContainerMount("/ro", read_only=True, volume="ek_n"),
        specgen.ContainerMount("/host", read_only=True, source="/srv/data/sub"),
        specgen.ContainerMount("/rw", source="/srv/rw"),
    ]
    body = specgen.container_spec(pod, pod.spec.containers[0], 0, "ek", {}, mounts=mounts)
    assert body["volumes"] == [
        {"Name": "ek_v", "Dest": "/v", "Options": ["nocopy"]},
        {"Name": "ek_n", "Dest": "/ro", "Options": ["nocopy", "ro"]},
    ]
    assert body["mounts"] == [
        {"destination": "/host", "type": "bind", "source": "/srv/data/sub", "options": ["rbind", "ro"]},
        {"destination": "/rw", "type": "bind", "source": "/srv/rw", "options": ["rbind", "rw"]},
    ]


# -- plans: claims, read-only, subPathExpr ---------------------------------------------------------------------


def test_a_claim_resolved_to_nfs_takes_its_port_from_mount_options() -> None:
    pod = make_pod([{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}], {"name": "d", "mountPath": "/d"})
    plans, mounts = plan_volumes(pod, {"d": resolved(**NFS_SOURCE)})
    assert plans["d"].kind is VolumeKind.NFS
    assert plans["d"].nfs == NfsExport("10.0.0.5", "/srv/pv-1", 20490, ("port=20490", "hard"))
    assert plans["d"].claim == "data"
    assert not mounts[0].read_only


def test_an_inline_nfs_volume_uses_port_2049() -> None:
    plans, _ = plan_volumes(make_pod([{"name": "n", "nfs": {"server": "nas", "path": "/x"}}]))
    assert plans["n"].nfs == NfsExport("nas", "/x", 2049)


@pytest.mark.parametrize(
    ("volume", "source", "mount_ro"),
    [
        pytest.param({"nfs": {"server": "nas", "path": "/x", "readOnly": True}}, None, False, id="nfs-source"),
        pytest.param({"persistentVolumeClaim": {"claimName": "data", "readOnly": True}}, {}, False, id="claim"),
        pytest.param({"persistentVolumeClaim": {"claimName": "data"}}, {"readOnly": True}, False, id="resolved"),
        pytest.param({"emptyDir": {}}, None, True, id="mount"),
    ],
)
def test_read_only_from_the_source_the_claim_the_resolved_volume_or_the_mount_makes_the_mount_read_only(
    volume: dict[str, Any], source: dict[str, Any] | None, mount_ro: bool
) -> None:
    pod = make_pod([{"name": "v", **volume}], {"name": "v", "mountPath": "/v", "readOnly": mount_ro})
    sources = None if source is None else {"v": resolved(**NFS_SOURCE, **source)}
    _, mounts = plan_volumes(pod, sources)
    assert mounts[0].read_only


def test_a_claim_without_a_resolved_source_is_failed_mount_naming_the_claim() -> None:
    pod = make_pod([{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}])
    with pytest.raises(RuntimeFailure) as caught:
        plan_volumes(pod, {})
    assert caught.value.failure == "FailedMount"
    assert str(caught.value) == (
        'MountVolume.SetUp failed for volume "d" : persistentVolumeClaim "data" has no bound volume on this node yet'
    )


@pytest.mark.parametrize(
    ("expr", "env", "expected"),
    [
        pytest.param("$(POD_NAME)", {"POD_NAME": "web-1"}, "web-1", id="one"),
        pytest.param("logs/$(NS)/$(POD)", {"NS": "default", "POD": "p"}, "logs/default/p", id="several"),
        pytest.param("a/$(MISSING)b", {}, "a/b", id="unknown-is-empty"),
        pytest.param("$$(POD)", {"POD": "p"}, "$(POD)", id="escaped"),
        pytest.param("cost$5", {}, "cost$5", id="lone-dollar"),
    ],
)
def test_sub_path_expr_expands_variables_as_kubernetes(expr: str, env: dict[str, str], expected: str) -> None:
    assert expand_sub_path_expr(expr, env) == expected


def test_sub_path_expr_is_expanded_from_the_container_env_into_the_mount() -> None:
    pod = make_pod(
        [{"name": "v", "emptyDir": {}}],
        {"name": "v", "mountPath": "/v", "subPathExpr": "pods/$(POD)"},
        env=[{"name": "POD", "value": "web-1"}],
    )
    _, [mount] = plan_volumes(pod)
    assert mount.sub_path == "pods/web-1"


def test_sub_path_expr_that_expands_out_of_the_volume_is_failed_mount() -> None:
    pod = make_pod(
        [{"name": "v", "emptyDir": {}}],
        {"name": "v", "mountPath": "/v", "subPathExpr": "$(UP)/etc"},
        env=[{"name": "UP", "value": ".."}],
    )
    with pytest.raises(RuntimeFailure, match=r"must not contain '\.\.'") as caught:
        plan_volumes(pod)
    assert caught.value.failure == "FailedMount"


# -- hostPath type checks on a temp dir ------------------------------------------------------------------------


def test_directory_or_create_makes_the_directory_0755_with_parents(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        check_host_path("h", str(tmp_path / "a" / "b"), HostPathType.DIRECTORY_OR_CREATE)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o755


def test_file_or_create_makes_an_empty_0644_file(tmp_path: Path) -> None:
    check_host_path("h", str(tmp_path / "f"), HostPathType.FILE_OR_CREATE)
    assert (tmp_path / "f").read_bytes() == b""
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o644


def test_file_or_create_needs_the_parent_directory(tmp_path: Path) -> None:
    with pytest.raises(RuntimeFailure, match="No such file or directory") as caught:
        check_host_path("h", str(tmp_path / "missing" / "f"), HostPathType.FILE_OR_CREATE)
    assert caught.value.failure == "FailedMount"
    assert not (tmp_path / "missing").exists()


@pytest.fixture
def host(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """A directory, a file and a unix socket (short path: sun_path is 108 bytes)."""
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    sock_path = Path(f"/tmp/ek-sock-{os.getpid()}-{threading.get_ident()}")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    yield {"dir": tmp_path / "dir", "file": tmp_path / "file", "socket": sock_path, "missing": tmp_path / "nope"}
    sock.close()
    sock_path.unlink()


@pytest.mark.parametrize(
    ("kind", "ok", "what"),
    [
        (HostPathType.DIRECTORY, "dir", "a directory"),
        (HostPathType.DIRECTORY_OR_CREATE, "dir", "a directory"),
        (HostPathType.FILE, "file", "a file"),
        (HostPathType.FILE_OR_CREATE, "file", "a file"),
        (HostPathType.SOCKET, "socket", "a socket file"),
        (HostPathType.CHAR_DEVICE, None, "a character device"),
        (HostPathType.BLOCK_DEVICE, None, "a block device"),
    ],
)
def test_host_path_types_accept_their_kind_and_refuse_others_in_kubernetes_words(
    host: dict[str, Path], kind: HostPathType, ok: str | None, what: str
) -> None:
    if ok is not None:  # (no block device here; /dev/null is the character device, checked below)
        check_host_path("h", str(host[ok]), kind)
    wrong = "file" if ok == "dir" else "dir"
    with pytest.raises(RuntimeFailure) as caught:
        check_host_path("h", str(host[wrong]), kind)
    assert caught.value.failure == "FailedMount"
    assert str(caught.value) == (
        f'MountVolume.SetUp failed for volume "h" : hostPath type check failed: {host[wrong]} is not {what}'
    )


def test_a_character_device_passes_the_char_device_check() -> None:
    check_host_path("h", "/dev/null", HostPathType.CHAR_DEVICE)


def test_directory_on_a_missing_path_is_not_a_directory(host: dict[str, Path]) -> None:
    with pytest.raises(RuntimeFailure, match=f"hostPath type check failed: {host['missing']} is not a directory"):
        check_host_path("h", str(host["missing"]), HostPathType.DIRECTORY)


def test_an_unset_type_checks_nothing(host: dict[str, Path]) -> None:
    check_host_path("h", str(host["missing"]), HostPathType.UNSET)
    assert not host["missing"].exists()


def test_sub_dir_is_created_and_may_not_escape_by_symlink(tmp_path: Path) -> None:
    assert sub_dir("v", str(tmp_path), "a/b") == str(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()
    (tmp_path / "out").symlink_to("/etc")
    with pytest.raises(RuntimeFailure, match="outside the volume") as caught:
        sub_dir("v", str(tmp_path), "out")
    assert caught.value.failure == "FailedMount"


# -- NFS mode, du, sizeLimit planning --------------------------------------------------------------------------


def test_auto_nfs_mode_is_kernel_only_when_the_kernel_lists_nfs4(tmp_path: Path) -> None:
    filesystems = tmp_path / "filesystems"
    filesystems.write_text("nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\tfuse\n")
    assert nfs_mode("auto", filesystems) is NfsMode.USERSPACE
    filesystems.write_text("nodev\tsysfs\nnodev\tnfs\nnodev\tnfs4\n")
    assert nfs_mode("auto", filesystems) is NfsMode.KERNEL
    assert nfs_mode("userspace", filesystems) is NfsMode.USERSPACE
    assert nfs_mode("kernel", tmp_path / "gone") is NfsMode.KERNEL


def test_an_unknown_nfs_client_setting_is_refused_by_the_agent_config() -> None:
    with pytest.raises(ValidationError, match="nfs_client: Unsupported value: 'fuse'"):
        AgentConfig(node_name="pi-1", nfs_client="fuse")


def test_disk_usage_counts_allocated_blocks_like_du(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "big").write_bytes(os.urandom(300_000))
    os.link(tmp_path / "d" / "big", tmp_path / "again")  # counted once
    used = disk_usage(str(tmp_path))
    assert 300_000 <= used < 400_000
    assert disk_usage(str(tmp_path / "gone")) == 0


def test_over_limit_names_the_volume_and_its_limit_as_the_kubelet() -> None:
    pod = make_pod(
        [
            {"name": "x", "emptyDir": {"sizeLimit": "1Mi"}},
            {"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
            {"name": "free", "emptyDir": {}},
        ]
    )
    assert over_limit(pod, {"x": 1 << 20, "m": 1 << 30, "free": 1 << 30}) is None  # at the limit is fine
    assert over_limit(pod, {"x": (1 << 20) + 1}) == 'Usage of EmptyDir volume "x" exceeds the limit "1Mi".'


# -- desired pods carry their claims' sources ------------------------------------------------------------------


def desired_pod(name: str, sources: Any = None) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": {
            "containers": [{"name": "app", "image": IMAGE, "volumeMounts": [{"name": "d", "mountPath": "/d"}]}],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
        },
    }
    if sources is not None:
        raw[RESOLVED_VOLUMES_KEY] = sources
    return raw


def offered(*pods: dict[str, Any]) -> DesiredState:
    state = DesiredState()
    msg = NodeDesired(node="pi-1", generation=1, epoch="e", pods=list(pods))
    assert state.offer(msg, msg.encode())
    return state


def test_volume_sources_are_kept_on_the_desired_pod_and_in_its_spec_hash() -> None:
    source = resolved(**NFS_SOURCE).to_dict()
    [d] = offered(desired_pod("a", {"d": source})).pods
    assert d.volumes == {"d": resolved(**NFS_SOURCE)}
    assert d.spec_hash == spec_hash("uid-a", d.pod.spec.to_dict(), {"d": source})
    assert d.spec_hash != spec_hash("uid-a", d.pod.spec.to_dict())


def test_a_rebound_claim_changes_the_spec_hash() -> None:
    first = resolved(**NFS_SOURCE).to_dict()
    second = {**first, "volumeName": "pv-2", "nfs": {"server": "10.0.0.5", "path": "/srv/pv-2"}}
    [a] = offered(desired_pod("a", {"d": first})).pods
    [b] = offered(desired_pod("a", {"d": second})).pods
    assert a.spec_hash != b.spec_hash


def test_a_pod_without_claims_hashes_as_before() -> None:
    raw = {"metadata": {"name": "a", "namespace": "default", "uid": "u"}, "spec": {"containers": [{"name": "c",
           "image": IMAGE}]}}  # fmt: skip
    [d] = offered(raw).pods
    assert d.spec_hash == spec_hash("u", d.pod.spec.to_dict())
    assert d.volumes == {}


@pytest.mark.parametrize(
    ("sources", "why"),
    [
        pytest.param(["not", "a", "map"], "volumeSources: Invalid value: must be a mapping", id="not-a-map"),
        pytest.param({"other": {}}, "volumeSources[other]: Not found", id="unknown-volume"),
        pytest.param({"d": {"claimName": "data"}}, "volumeSources[d]: volumeName: Required value", id="invalid"),
        pytest.param(
            {"d": {**resolved(**NFS_SOURCE).to_dict(), "claimName": "other"}},
            "the volume mounts claim 'data'",
            id="wrong-claim",
        ),
        pytest.param(
            {"d": {"claimName": "data", "volumeName": "pv", "accessModes": ["ReadWriteOnce"]}},
            "volumeSources[d]: Required value: a source",
            id="no-source",
        ),
    ],
)
def test_a_bad_volume_source_rejects_that_pod_only(sources: Any, why: str) -> None:
    state = offered(desired_pod("bad", sources), desired_pod("good", {"d": resolved(**NFS_SOURCE).to_dict()}))
    assert [d.pod.metadata.name for d in state.pods] == ["good"]
    assert why in state.rejected["bad"]


# -- through the agent, on the fake runtime --------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Node:
    def __init__(self, state_dir: Path, runtime: FakeRuntime | None = None, **config: Any) -> None:
        self.runtime = runtime or FakeRuntime(NODE)
        self.runtime.add_image(IMAGE)
        self.clock = Clock()
        self.broker = MemoryBroker(inline=True)
        self.bus = self.broker.client(f"edgekube-agent-{NODE}", persistent=True).start()
        settings = {"volume_check_interval": 5.0, **config}
        self.agent = Agent(AgentConfig(node_name=NODE, state_dir=state_dir, **settings), self.runtime, self.bus,
                           clock=self.clock)  # fmt: skip
        self.generation = 0

    def want(self, *pods: dict[str, Any]) -> None:
        self.generation += 1
        msg = NodeDesired(node=NODE, generation=self.generation, epoch="e", pods=list(pods))
        assert self.agent.desired.offer(msg, msg.encode())

    def settle(self, rounds: int = 3) -> None:
        for _ in range(rounds):
            self.agent.reconcile()
            assert self.agent.wait_idle(5)

    def status(self, uid: str) -> dict[str, Any]:
        reports = [NodeReport.decode(m.payload) for m in self.broker.published(topics.node_status(NODE))]
        [pod] = [p for p in reports[-1].pods if p.uid == uid]
        PodStatus.model_validate(pod.status)
        return pod.status

    def events(self, reason: str) -> list[str]:
        return [e["message"] for e in self.agent.events.events() if e["reason"] == reason]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path / "agent")
    yield n
    n.agent.prober.stop()


def pod_with(name: str, volumes: list[dict[str, Any]], *mounts: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": {
            "containers": [{"name": "app", "image": IMAGE, "volumeMounts": list(mounts)}],
            "volumes": volumes,
        },
        **extra,
    }


def test_a_failed_host_path_check_keeps_the_pod_creating_with_a_failed_mount_event_and_retries(
    node: Node, tmp_path: Path
) -> None:
    missing = tmp_path / "later"
    node.want(pod_with("h", [{"name": "h", "hostPath": {"path": str(missing), "type": "Directory"}}],
                       {"name": "h", "mountPath": "/h"}))  # fmt: skip
    node.settle(2)
    status = node.status("uid-h")
    message = f'MountVolume.SetUp failed for volume "h" : hostPath type check failed: {missing} is not a directory'
    assert status["phase"] == "Pending"
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating", "message": message}}
    assert node.events("FailedMount") == [message]
    assert node.runtime.list_pods() == []
    missing.mkdir()
    node.clock.now += 2  # the create back-off
    node.settle()
    assert node.status("uid-h")["phase"] == "Running"


def test_a_claim_without_a_source_waits_naming_the_claim_then_runs_once_it_is_sent(node: Node) -> None:
    volumes = [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]
    node.want(pod_with("c", volumes, {"name": "d", "mountPath": "/d"}))
    node.settle(2)
    status = node.status("uid-c")
    assert status["phase"] == "Pending"
    assert 'persistentVolumeClaim "data" has no bound volume' in status["containerStatuses"][0]["state"]["waiting"][
        "message"]  # fmt: skip
    source = resolved(**NFS_SOURCE).to_dict()
    node.want(pod_with("c", volumes, {"name": "d", "mountPath": "/d"}, **{RESOLVED_VOLUMES_KEY: {"d": source}}))
    node.clock.now += 2
    node.settle()
    assert node.status("uid-c")["phase"] == "Running"
    assert [m.volume for m in node.runtime.engine.mounts[PodUID("uid-c")]] == ["d"]


def test_an_unreachable_nfs_server_fails_that_pod_only_naming_the_server(node: Node) -> None:
    node.runtime.engine.unreachable_nfs.add("10.0.0.9")
    node.want(
        pod_with(
            "dead", [{"name": "n", "nfs": {"server": "10.0.0.9", "path": "/x"}}], {"name": "n", "mountPath": "/n"}
        ),
        pod_with("fine", [{"name": "v", "emptyDir": {}}], {"name": "v", "mountPath": "/v"}),
    )
    node.settle()
    assert node.status("uid-fine")["phase"] == "Running"
    assert node.status("uid-dead")["phase"] == "Pending"
    assert any("nfs server 10.0.0.9 is not reachable" in m for m in node.events("FailedMount"))


def test_the_loop_keeps_running_while_a_volume_setup_hangs(tmp_path: Path) -> None:
    release = threading.Event()

    class Hanging(FakeRuntime):
        def create_pod(
            self, pod: Pod, uid: PodUID, spec_hash: str, volumes: Any = None, devices: Any = None, **more: Any
        ) -> Any:
            if pod.spec.volumes and pod.spec.volumes[0].nfs is not None:
                release.wait(10)  # an NFS server that does not answer, until the test lets go
                raise RuntimeFailure('MountVolume.SetUp failed for volume "n" : nfs server 10.0.0.9 is not reachable: '
                                     "no answer within 5s", reason="FailedMount")  # fmt: skip
            return super().create_pod(pod, uid, spec_hash, volumes)

    n = Node(tmp_path / "agent", Hanging(NODE))
    try:
        n.want(pod_with("dead", [{"name": "n", "nfs": {"server": "10.0.0.9", "path": "/x"}}],
                        {"name": "n", "mountPath": "/n"}))  # fmt: skip
        n.agent.reconcile()  # the create goes to a worker: reconcile returns at once
        n.want(
            pod_with("dead", [{"name": "n", "nfs": {"server": "10.0.0.9", "path": "/x"}}],
                     {"name": "n", "mountPath": "/n"}),
            pod_with("later", [{"name": "v", "emptyDir": {}}], {"name": "v", "mountPath": "/v"}),
        )  # fmt: skip
        for _ in range(3):
            n.agent.reconcile()
            n.agent._actions.wait_idle(0.2)
        assert n.status("uid-later")["phase"] == "Running"
        assert n.status("uid-dead")["phase"] == "Pending"
    finally:
        release.set()
        assert n.agent.wait_idle(5)
        n.agent.prober.stop()
    n.agent.reconcile()
    assert any("nfs server 10.0.0.9" in m for m in n.events("FailedMount"))


def test_a_disk_empty_dir_over_its_size_limit_evicts_the_pod_for_good(node: Node) -> None:
    node.want(pod_with("big", [{"name": "x", "emptyDir": {"sizeLimit": "1Mi"}}], {"name": "x", "mountPath": "/x"}))
    node.settle()
    uid = PodUID("uid-big")
    node.runtime.fill_volume(uid, "x", 1 << 20)  # at the limit: kept
    node.clock.now += 5
    node.settle()
    assert node.status(uid)["phase"] == "Running"
    node.runtime.fill_volume(uid, "x", 2 << 20)
    node.settle()
    assert node.status(uid)["phase"] == "Running"  # measured every volume_check_interval only
    node.clock.now += 5
    node.settle()
    message = 'Usage of EmptyDir volume "x" exceeds the limit "1Mi".'
    status = node.status(uid)
    assert (status["phase"], status["reason"], status["message"]) == ("Failed", "Evicted", message)
    assert [next(iter(c["state"])) for c in status["containerStatuses"]] == ["terminated"]
    assert node.events("Evicted") == [message]
    node.clock.now += 120
    node.settle()
    assert ("restart", uid) not in node.runtime.calls
    assert node.status(uid)["phase"] == "Failed"


def test_a_pod_without_size_limits_is_never_measured(node: Node) -> None:
    node.want(pod_with("free", [{"name": "x", "emptyDir": {}}], {"name": "x", "mountPath": "/x"}))
    node.settle()
    node.runtime.fill_volume(PodUID("uid-free"), "x", 1 << 40)
    node.clock.now += 60
    node.settle()
    assert node.status("uid-free")["phase"] == "Running"
