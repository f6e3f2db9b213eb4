"""PodmanRuntime against a real Podman service (private store): the shared contract plus Podman-specific checks."""

from __future__ import annotations

import http.server
import json
import socket
import socketserver
import tarfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgekube.agent.runtime.podman import PodmanRuntime, pod_name
from edgekube.agent.runtime.podman.transport import PodmanTransport
from edgekube.agent.runtime.protocol import (
    LABEL_CONTAINER,
    LABEL_MANAGED,
    LABEL_NODE,
    LABEL_POD_UID,
    ContainerRunState,
    ObservedPod,
)
from edgekube.local.images import REQUIRED_APPLETS, build_rootfs_tar, ensure_demo_image, find_static_busybox
from edgekube.local.nfs import Ganesha
from edgekube.local.podman_service import PodmanService
from edgekube.model.errors import RuntimeFailure
from edgekube.model.names import NodeName, PodUID
from tests.support.nfs import running_ganesha
from tests.unit.test_runtime_contract import (
    IDLE,
    MISSING_IMAGE,
    Harness,
    RuntimeContract,
    make_pod,
    new_uid,
    wait_for,
)

pytestmark = pytest.mark.integration


def _node() -> NodeName:
    # A node of its own per test: list_pods filters by node, so tests cannot see each other's pods.
    return NodeName(f"node-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def runtime(podman_service: PodmanService, demo_image: str) -> Iterator[PodmanRuntime]:
    rt = PodmanRuntime(podman_service.url, _node())
    yield rt
    for pod in rt.list_pods():
        rt.remove_pod(pod.uid, grace_seconds=0)
    rt.close()


@pytest.fixture(scope="module")
def ganesha() -> Iterator[Ganesha]:
    """The NFS server of the contract's claim cases (the runtime mounts it through the userspace client here)."""
    with running_ganesha() as server:
        yield server


class TestPodmanRuntimeContract(RuntimeContract):
    @pytest.fixture
    def harness(
        self, runtime: PodmanRuntime, podman_service: PodmanService, demo_image: str, ganesha: Ganesha
    ) -> Iterator[Harness]:
        others: list[PodmanRuntime] = []

        def reopen(node: NodeName | None) -> PodmanRuntime:
            other = PodmanRuntime(podman_service.url, node or runtime.node)
            others.append(other)
            return other

        def kill(uid: PodUID, container: str) -> None:
            [pod] = [p for p in runtime.list_pods() if p.uid == uid]
            podman_service.podman("kill", next(c.container_id for c in pod.containers if c.name == container))

        def power_off(uid: PodUID) -> None:
            # Only this pod: the Podman service is shared by the whole session.
            podman_service.podman("pod", "stop", "-t", "2", *_labelled(podman_service, uid)["pods"])

        def processes(uid: PodUID, container: str) -> list[str]:
            [pod] = [p for p in runtime.list_pods() if p.uid == uid]
            found = next(c.container_id for c in pod.containers if c.name == container)
            return [
                line.strip() for line in podman_service.podman("exec", found, "ps", "-o", "args").stdout.splitlines()
            ]

        yield Harness(
            runtime=runtime, image=demo_image, reopen=reopen, node=runtime.node, kill=kill, power_off=power_off,
            processes=processes, nfs_server=(ganesha.bind, ganesha.port),
        )  # fmt: skip
        for other in others:
            other.close()


def _labelled(service: PodmanService, uid: PodUID) -> dict[str, list[str]]:
    """Every pod, container (infra included) and volume carrying the uid label, as the CLI sees them."""
    label = f"label={LABEL_POD_UID}={uid}"
    return {
        "pods": service.podman("pod", "ps", "-q", "--filter", label).stdout.split(),
        "containers": service.podman("ps", "-aq", "--filter", label).stdout.split(),
        "volumes": service.podman("volume", "ls", "-q", "--filter", label).stdout.split(),
    }


def _stop_events(service: PodmanService, uid: PodUID) -> list[tuple[str, str]]:
    """The pod's app containers' `kill` and `died <exit code>` events, in the order Podman logged them."""
    label = f"label={LABEL_POD_UID}={uid}"
    out = service.podman("events", "--stream=false", "--filter", "type=container", "--filter", label,
                         "--format", "json").stdout  # fmt: skip
    found: list[tuple[str, str]] = []
    for line in out.splitlines():
        event = json.loads(line)
        container = (event.get("Attributes") or {}).get(LABEL_CONTAINER)  # the infra container has none
        if container and event["Status"] == "kill":
            found.append((container, "kill"))
        elif container and event["Status"] == "died":
            found.append((container, f"died {event.get('ContainerExitCode', 0)}"))
    return found


def _container_done(name: str) -> Callable[[ObservedPod], bool]:
    return lambda pod: any(c.name == name and c.state == ContainerRunState.EXITED for c in pod.containers)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_containers_share_localhost(runtime: PodmanRuntime, demo_image: str) -> None:
    uid = new_uid()
    pod = make_pod(
        "localhost",
        demo_image,
        {"name": "web", "image": demo_image, "command": ["httpd", "-f", "-p", "8080", "-h", "/www"]},
        {
            "name": "client",
            "image": demo_image,
            "command": ["sh", "-c"],
            "args": ["for i in $(seq 50); do wget -qO- http://localhost:8080/ && exit 0; sleep 0.1; done; exit 1"],
        },
    )
    runtime.create_pod(pod, uid, "h")
    done = wait_for(runtime, uid, _container_done("client"))
    client = next(c for c in done.containers if c.name == "client")
    assert client.exit_code == 0, runtime.logs(uid, "client")
    assert client.finished_at is not None
    assert "hello from edgekube" in runtime.logs(uid, "client")
    web = next(c for c in done.containers if c.name == "web")
    assert web.state == ContainerRunState.RUNNING


def test_empty_dir_is_shared_and_read_only_is_honoured(runtime: PodmanRuntime, demo_image: str) -> None:
    uid = new_uid()
    pod = make_pod(
        "shared",
        demo_image,
        {
            "name": "writer",
            "image": demo_image,
            "command": ["sh", "-c", "echo from-writer > /data/note; sleep 3600"],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        },
        {
            "name": "reader",
            "image": demo_image,
            "command": ["sh", "-c"],
            "args": [
                "for i in $(seq 100); do [ -f /in/note ] && break; sleep 0.1; done; cat /in/note; "
                "if touch /in/other 2>/dev/null; then exit 9; fi; ls /in"
            ],
            "volumeMounts": [{"name": "data", "mountPath": "/in", "readOnly": True}],
        },
        volumes=[{"name": "data", "emptyDir": {}}],
    )
    runtime.create_pod(pod, uid, "h")
    done = wait_for(runtime, uid, _container_done("reader"))
    reader = next(c for c in done.containers if c.name == "reader")
    logs = runtime.logs(uid, "reader")
    assert reader.exit_code == 0, logs
    assert logs.splitlines() == ["from-writer", "note"]


def test_remove_deletes_pod_containers_and_volumes(
    runtime: PodmanRuntime, podman_service: PodmanService, demo_image: str
) -> None:
    uid = new_uid()
    pod = make_pod(
        "removed",
        demo_image,
        {"name": "main", "image": demo_image, "command": IDLE, "volumeMounts": [{"name": "v", "mountPath": "/v"}]},
        volumes=[{"name": "v", "emptyDir": {}}, {"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}],
    )
    runtime.create_pod(pod, uid, "h")
    before = _labelled(podman_service, uid)
    assert len(before["pods"]) == 1
    assert len(before["containers"]) == 2  # infra + main
    assert sorted(before["volumes"]) == sorted(f"{pod_name('default', 'removed', uid)}_{v}" for v in ("v", "m"))
    # An hour's grace: the container honours SIGTERM, so the removal returns without waiting any of it.
    runtime.remove_pod(uid, grace_seconds=3600)
    assert _labelled(podman_service, uid) == {"pods": [], "containers": [], "volumes": []}
    assert _stop_events(podman_service, uid) == [("main", "kill"), ("main", "died 0")]  # one SIGTERM, no SIGKILL


def test_removing_one_pod_leaves_every_object_of_another_pod_on_the_node(
    runtime: PodmanRuntime, podman_service: PodmanService, demo_image: str
) -> None:
    """Podman 4.3 ORs several label filters on volumes: a purge by uid once listed (and removed) the node's all."""
    kept, gone = new_uid(), new_uid()
    for uid, name in ((kept, "kept"), (gone, "gone")):
        pod = make_pod(
            name, demo_image,
            {"name": "main", "image": demo_image, "command": IDLE, "volumeMounts": [{"name": "v", "mountPath": "/v"}]},
            volumes=[{"name": "v", "emptyDir": {}}],
        )  # fmt: skip
        runtime.create_pod(pod, uid, "h")
    before = _labelled(podman_service, kept)
    runtime.remove_pod(gone, grace_seconds=5)
    assert _labelled(podman_service, gone) == {"pods": [], "containers": [], "volumes": []}
    assert _labelled(podman_service, kept) == before and len(before["volumes"]) == 1
    assert len(runtime.transport.list_volumes({LABEL_POD_UID: kept})) == 1


def test_a_volume_whose_pod_is_gone_is_swept_and_a_live_pods_volume_is_not(
    podman_service: PodmanService, demo_image: str
) -> None:
    node = _node()
    runtime = PodmanRuntime(podman_service.url, node, volume_refresh=0.0)
    try:
        uid = new_uid()
        pod = make_pod(
            "live", demo_image,
            {"name": "main", "image": demo_image, "command": IDLE, "volumeMounts": [{"name": "v", "mountPath": "/v"}]},
            volumes=[{"name": "v", "emptyDir": {}}],
        )  # fmt: skip
        runtime.create_pod(pod, uid, "h")
        orphan = f"ek-orphan-{uuid.uuid4().hex[:8]}"
        labels = {LABEL_MANAGED: "true", LABEL_NODE: node, LABEL_POD_UID: new_uid()}
        podman_service.podman("volume", "create", *[f"--label={k}={v}" for k, v in labels.items()], orphan)
        runtime.wait_for_exit(0.1)  # the watch thread's call: a listing is due (refresh 0 s), so it sweeps first
        assert podman_service.podman("volume", "ls", "-q", "--filter", f"name={orphan}").stdout.split() == []
        assert len(_labelled(podman_service, uid)["volumes"]) == 1
    finally:
        runtime.close()


def test_remove_sigkills_only_the_container_that_ignores_sigterm(
    runtime: PodmanRuntime, podman_service: PodmanService, demo_image: str
) -> None:
    uid = new_uid()
    # PID 1 ignores SIGTERM unless it installs a handler, so a bare sleep only dies by SIGKILL; IDLE exits on SIGTERM.
    pod = make_pod(
        "stubborn", demo_image,
        {"name": "stubborn", "image": demo_image, "command": ["sleep", "3600"]},
        {"name": "polite", "image": demo_image, "command": IDLE},
    )  # fmt: skip
    runtime.create_pod(pod, uid, "h")
    wait_for(runtime, uid, lambda p: all(c.state == ContainerRunState.RUNNING for c in p.containers))
    runtime.remove_pod(uid, grace_seconds=1)
    assert _labelled(podman_service, uid) == {"pods": [], "containers": [], "volumes": []}
    events = _stop_events(podman_service, uid)
    # Both are signalled; the polite one exits 0 on that SIGTERM and is never signalled again. The stubborn one
    # outlives its SIGTERM and is signalled again only after the polite one is gone: SIGKILL, exit 137.
    assert [what for name, what in events if name == "polite"] == ["kill", "died 0"], events
    assert [what for name, what in events if name == "stubborn"] == ["kill", "kill", "died 137"], events
    second_kill = [i for i, event in enumerate(events) if event == ("stubborn", "kill")][1]
    assert events.index(("polite", "died 0")) < second_kill, events


def test_missing_image_fails_on_the_pull_error_not_a_timeout_and_leaves_nothing(
    runtime: PodmanRuntime, podman_service: PodmanService, demo_image: str
) -> None:
    uid = new_uid()
    pod = make_pod(
        "nopull",
        demo_image,
        {"name": "ok", "image": demo_image, "command": IDLE, "volumeMounts": [{"name": "v", "mountPath": "/v"}]},
        {"name": "bad", "image": MISSING_IMAGE},
        volumes=[{"name": "v", "emptyDir": {}}],
    )
    with pytest.raises(RuntimeFailure) as caught:
        runtime.create_pod(pod, uid, "h")  # the runtime's pull timeout is its default, 120 s
    assert caught.value.failure == "ErrImagePull"
    # Podman's own verdict on the pull (nothing serves that registry), not the transport giving up on it.
    message = str(caught.value)
    assert message.startswith(f"failed to pull image '{MISSING_IMAGE}': "), message
    assert f"docker://{MISSING_IMAGE}" in message, message
    assert "no answer within" not in message and "did not answer in time" not in message, message
    assert _labelled(podman_service, uid) == {"pods": [], "containers": [], "volumes": []}


def test_unknown_command_is_run_container_error_and_leaves_nothing(
    runtime: PodmanRuntime, podman_service: PodmanService, demo_image: str
) -> None:
    uid = new_uid()
    pod = make_pod("nocmd", demo_image, {"name": "main", "image": demo_image, "command": ["no-such-binary"]})
    with pytest.raises(RuntimeFailure, match="no-such-binary") as caught:
        runtime.create_pod(pod, uid, "h")
    assert caught.value.failure == "RunContainerError"
    assert _labelled(podman_service, uid) == {"pods": [], "containers": [], "volumes": []}


def test_limits_env_workdir_and_labels_reach_podman(
    runtime: PodmanRuntime, podman_service: PodmanService, demo_image: str
) -> None:
    uid = new_uid()
    pod = make_pod(
        "limits",
        demo_image,
        {
            "name": "main",
            "image": demo_image,
            "command": IDLE,
            "env": [{"name": "GREETING", "value": "hi there"}],
            "workingDir": "/tmp",
            "resources": {"limits": {"cpu": "250m", "memory": "64Mi"}, "requests": {"cpu": "100m"}},
        },
    )
    observed = runtime.create_pod(pod, uid, "spec-42")
    name = f"{pod_name('default', 'limits', uid)}_main"
    (info,) = json.loads(podman_service.podman("container", "inspect", name).stdout)
    host = info["HostConfig"]
    assert host["Memory"] == 64 * 1024 * 1024
    assert (host["CpuQuota"], host["CpuPeriod"]) == (25_000, 100_000)
    assert host["NanoCpus"] == 250_000_000
    assert host["CpuShares"] == 102
    assert host["RestartPolicy"]["Name"] in ("", "no")
    assert "GREETING=hi there" in info["Config"]["Env"]
    assert info["Config"]["WorkingDir"] == "/tmp"
    labels = info["Config"]["Labels"]
    assert labels["io.edgekube.node"] == runtime.node
    assert labels["io.edgekube.pod.uid"] == uid
    assert labels["io.edgekube.spec-hash"] == "spec-42"
    assert labels["io.edgekube.container"] == "main"
    assert info["Id"] == observed.containers[0].container_id


def test_command_and_args_follow_kubernetes_semantics(runtime: PodmanRuntime, demo_image: str) -> None:
    uid = new_uid()
    pod = make_pod(
        "cmd",
        demo_image,
        {"name": "args-only", "image": demo_image, "args": ["echo", "from-args"]},
        {"name": "both", "image": demo_image, "command": ["echo"], "args": ["from", "both"]},
        {"name": "fails", "image": demo_image, "command": ["sh", "-c", "echo out; echo err >&2; exit 3"]},
    )
    runtime.create_pod(pod, uid, "h")
    done = wait_for(runtime, uid, lambda p: all(c.state == ContainerRunState.EXITED for c in p.containers))
    codes = {c.name: c.exit_code for c in done.containers}
    assert codes == {"args-only": 0, "both": 0, "fails": 3}
    assert runtime.logs(uid, "args-only") == "from-args\n"
    assert runtime.logs(uid, "both") == "from both\n"
    assert sorted(runtime.logs(uid, "fails").splitlines()) == ["err", "out"]
    assert runtime.logs(uid, "fails", tail=1) in ("err\n", "out\n")


def test_host_port_is_published_and_container_port_alone_is_not(
    runtime: PodmanRuntime, podman_service: PodmanService, demo_image: str
) -> None:
    uid = new_uid()
    host_port = _free_port()
    pod = make_pod(
        "ports",
        demo_image,
        {
            "name": "web",
            "image": demo_image,
            "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
            "ports": [{"containerPort": 8080, "hostPort": host_port}, {"containerPort": 9090}],
        },
    )
    runtime.create_pod(pod, uid, "h")
    body = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{host_port}/", timeout=2) as response:
                body = response.read()
                break
        except OSError:
            time.sleep(0.1)
    assert body == b"hello from edgekube\n"
    info = json.loads(podman_service.podman("pod", "inspect", pod_name("default", "ports", uid)).stdout)
    info = info[0] if isinstance(info, list) else info  # Podman 4.3 prints one object, 5.x a list
    bindings = info["InfraConfig"]["PortBindings"]
    assert list(bindings) == ["8080/tcp"]
    assert bindings["8080/tcp"][0]["HostPort"] == str(host_port)


def test_runtime_without_a_service_raises_runtime_failure(tmp_path: Path) -> None:
    runtime = PodmanRuntime(f"unix://{tmp_path}/nothing.sock", NodeName("n"), timeout=2)
    with pytest.raises(RuntimeFailure) as caught:
        runtime.list_pods()
    assert caught.value.failure == "RuntimeUnavailable"
    with pytest.raises(RuntimeFailure):
        runtime.remove_pod(new_uid())
    runtime.close()


def test_demo_image_has_the_applets_and_is_imported_once(podman_service: PodmanService, tmp_path: Path) -> None:
    tarball = tmp_path / "rootfs.tar"
    build_rootfs_tar(find_static_busybox(), tarball)
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    assert "bin/busybox" in names and "www/index.html" in names
    assert {a for a in REQUIRED_APPLETS if not any(n.rsplit("/", 1)[-1] == a for n in names)} == set()
    image = ensure_demo_image(podman_service)
    first = podman_service.podman("image", "inspect", "--format", "{{.Id}}", image).stdout
    assert ensure_demo_image(podman_service) == image
    assert podman_service.podman("image", "inspect", "--format", "{{.Id}}", image).stdout == first


def test_exec_returns_stdout_and_stderr_and_never_piles_up_a_hung_command(
    runtime: PodmanRuntime, podman_service: PodmanService, demo_image: str
) -> None:
    uid = new_uid()
    created = runtime.create_pod(make_pod("exec", demo_image), uid, "h")
    wait_for(runtime, uid, lambda p: p.containers[0].state == ContainerRunState.RUNNING)
    code, output = runtime.exec(uid, "main", ["sh", "-c", "echo out; echo err >&2; exit 3"], 5)
    assert code == 3
    assert sorted(output.splitlines()) == ["err", "out"]
    with pytest.raises(RuntimeFailure, match="timed out after 1s"):
        runtime.exec(uid, "main", ["sleep", "7"], 1)
    with pytest.raises(RuntimeFailure, match="previous run has not finished yet") as caught:
        runtime.exec(uid, "main", ["sleep", "7"], 1)
    assert caught.value.failure == "Timeout"
    # Refused while the first run still runs, and without starting a second copy (order, not timing).
    ps = podman_service.podman("exec", created.containers[0].container_id, "ps", "-o", "args").stdout
    assert [line.strip() for line in ps.splitlines()].count("sleep 7") == 1, ps
    assert runtime.exec(uid, "main", ["true"], 5) == (0, "")  # other commands still run


def test_the_pod_ip_is_reachable_from_the_host(runtime: PodmanRuntime, demo_image: str) -> None:
    uid = new_uid()
    pod = make_pod("reach", demo_image, {"name": "web", "image": demo_image,
                                         "command": ["httpd", "-f", "-p", "8080", "-h", "/www"]})  # fmt: skip
    created = runtime.create_pod(pod, uid, "h")
    assert created.ip is not None
    body = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not body:
        try:
            with urllib.request.urlopen(f"http://{created.ip}:8080/", timeout=2) as response:
                body = response.read()
        except OSError:
            time.sleep(0.1)
    assert body == b"hello from edgekube\n"


def test_transport_reuses_connections_and_replaces_one_the_server_closed(tmp_path: Path) -> None:
    # A stand-in server that drops every connection after one answer, as Podman does to one idle too long.
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen.append(self.path)
            body = b'{"Version": "4.3.1"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True  # closed without saying so: the client still holds it as idle

        def log_message(self, format: str, *args: object) -> None:
            pass

    path = tmp_path / "api.sock"
    server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    transport = PodmanTransport(f"unix://{path}", timeout=5)
    try:
        assert transport.json("get", "/version", what="version") == {"Version": "4.3.1"}
        assert transport.json("get", "/version", what="version again") == {"Version": "4.3.1"}
    finally:
        transport.close()
        server.shutdown()
        server.server_close()
    assert seen == ["/v4.0.0/libpod/version", "/v4.0.0/libpod/version"]


def test_stats_show_a_busy_container_using_cpu_and_an_idle_one_not(runtime: PodmanRuntime, demo_image: str) -> None:
    uid = new_uid()
    busy = ["sh", "-c", "trap 'exit 0' TERM; while :; do :; done"]
    pod = make_pod(
        "burner",
        demo_image,
        {"name": "busy", "image": demo_image, "command": busy},
        {"name": "idle", "image": demo_image, "command": IDLE},
    )
    runtime.create_pod(pod, uid, "h")
    first = {s.container: s.cpu_seconds for s in runtime.stats() if s.uid == uid}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        later = {s.container: s.cpu_seconds for s in runtime.stats() if s.uid == uid}
        if later["busy"] - first["busy"] >= 0.5:
            break
        time.sleep(0.2)
    assert later["busy"] - first["busy"] >= 0.5
    assert later["idle"] - first["idle"] < later["busy"] - first["busy"]
