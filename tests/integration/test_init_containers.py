"""Init containers and sidecars on real Podman and Mosquitto: order, failure, a sidecar kept running, agent restart.

The runtime's init-container contract runs on PodmanRuntime first; then one agent per test, in-process on its own
broker, runs pods the test publishes as the master would, and the test reads their status from the NodeReports and
what the containers wrote, as a user would (exec, logs).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.runtime.podman import PodmanRuntime
from edgekube.agent.runtime.protocol import ContainerRunState, ObservedPod
from edgekube.cli.main import main
from edgekube.local.broker import Mosquitto
from edgekube.local.podman_service import PodmanService
from edgekube.model.names import NodeName, PodUID
from tests.support.cluster import ApiClient, start_agent, start_master, stop_agent, wait_for
from tests.support.podman import EdgeNode, manifest
from tests.unit.test_init_runtime_contract import InitContainerContract, InitHarness

pytestmark = pytest.mark.integration

#: PID 1 of a container ignores SIGTERM unless it traps it; this exits at once when stopped.
IDLE = "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"


class TestPodmanInitContainerContract(InitContainerContract):
    @pytest.fixture
    def init_harness(self, podman_service: PodmanService, demo_image: str) -> Iterator[InitHarness]:
        rt = PodmanRuntime(podman_service.url, NodeName(f"node-{uuid.uuid4().hex[:8]}"))
        others: list[PodmanRuntime] = []

        def reopen() -> PodmanRuntime:
            other = PodmanRuntime(podman_service.url, rt.node)
            others.append(other)
            return other

        def kill(uid: PodUID, container: str) -> None:
            [pod] = [p for p in rt.list_pods() if p.uid == uid]
            found = next(c for c in (*pod.init_containers, *pod.containers) if c.name == container)
            podman_service.podman("kill", found.container_id)

        yield InitHarness(rt, demo_image, reopen=reopen, kill=kill)
        for pod in rt.list_pods():
            rt.remove_pod(pod.uid, grace_seconds=0)
        for other in [rt, *others]:
            other.close()


def with_inits(
    name: str, inits: list[dict[str, Any]], app: dict[str, Any], policy: str = "Always", grace: int = 2
) -> dict[str, Any]:
    """A pod whose containers share the emptyDir `work` at /work; containers run the demo image's sh."""
    pod = manifest(name, {"name": "app", **app}, policy=policy, grace=grace)
    pod["spec"]["volumes"] = [{"name": "work", "emptyDir": {}}]
    mount = [{"name": "work", "mountPath": "/work"}]
    image = pod["spec"]["containers"][0]["image"]
    pod["spec"]["containers"][0]["volumeMounts"] = list(mount)
    pod["spec"]["initContainers"] = [{"image": image, "volumeMounts": list(mount), **c} for c in inits]
    return pod


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def phase(status: dict[str, Any]) -> str:
    return str(status.get("phase"))


def init_states(status: dict[str, Any]) -> list[str]:
    return [next(iter(c["state"])) for c in status.get("initContainerStatuses", [])]


def by_name(pod: ObservedPod) -> dict[str, Any]:
    return {c.name: c for c in (*pod.init_containers, *pod.containers)}


def all_running(pod: ObservedPod, *names: str) -> bool:
    seen = by_name(pod)
    return all(name in seen and seen[name].state == ContainerRunState.RUNNING for name in names)


def test_two_init_containers_write_in_order_and_the_app_container_reads_both(edge_node: EdgeNode) -> None:
    edge_node.start_agent()
    inits = [
        {"name": "first", "command": sh("echo first >> /work/log")},
        {"name": "second", "command": sh("sleep 1; echo second >> /work/log")},
    ]
    edge_node.want(with_inits("ordered", inits, {"command": sh(f"cp /work/log /work/seen; {IDLE}")}))
    status = edge_node.wait_status("ordered Running", "ordered", lambda s: phase(s) == "Running")
    assert init_states(status) == ["terminated", "terminated"]
    assert [c["state"]["terminated"]["reason"] for c in status["initContainerStatuses"]] == ["Completed"] * 2
    assert any(c["type"] == "Initialized" and c["status"] == "True" for c in status["conditions"])
    pod = edge_node.wait_observed("app running", "ordered", lambda p: all_running(p, "app"))
    assert edge_node.runtime.exec(pod.uid, "app", ["cat", "/work/seen"], timeout=10) == (0, "first\nsecond\n")
    first, second, app = (by_name(pod)[n] for n in ("first", "second", "app"))
    # Podman's clock (whole seconds): each started no earlier than the one before it had finished.
    assert first.finished_at <= second.started_at <= second.finished_at <= app.started_at
    assert edge_node.runtime.logs(pod.uid, "first") == ""


def test_a_failed_init_container_under_never_fails_the_pod_and_its_app_container_never_starts(
    edge_node: EdgeNode,
) -> None:
    edge_node.start_agent()
    inits = [{"name": "check", "command": sh("echo no database; exit 3")}]
    edge_node.want(with_inits("doomed", inits, {"command": sh(IDLE)}, policy="Never"))
    status = edge_node.wait_status("doomed Failed", "doomed", lambda s: phase(s) == "Failed")
    check = status["initContainerStatuses"][0]
    assert check["state"]["terminated"]["exitCode"] == 3
    assert check["state"]["terminated"]["reason"] == "Error"
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    pod = edge_node.observed("doomed")
    assert pod is not None
    app = by_name(pod)["app"]
    assert (app.state, app.started_at) == (ContainerRunState.CREATED, None)  # created with the pod, never run
    assert ("Started", "Started container app") not in edge_node.event_reasons("doomed")
    assert edge_node.runtime.logs(pod.uid, "check") == "no database\n"


def test_a_sidecar_runs_beside_the_app_is_restarted_when_killed_and_an_agent_restart_reruns_no_init(
    edge_node: EdgeNode,
) -> None:
    edge_node.start_agent()
    inits = [
        {"name": "setup", "command": sh("echo setup >> /work/log")},
        {"name": "proxy", "restartPolicy": "Always", "command": sh(f"echo proxy >> /work/log; {IDLE}")},
    ]
    edge_node.want(with_inits("sided", inits, {"command": sh(IDLE)}))

    def sidecar_up(s: dict[str, Any]) -> bool:
        return phase(s) == "Running" and init_states(s) == ["terminated", "running"]

    edge_node.wait_status("sided Running with its sidecar", "sided", sidecar_up)
    before = edge_node.wait_observed("sided running", "sided", lambda p: all_running(p, "app"))
    proxy = by_name(before)["proxy"]
    edge_node.service.podman("kill", proxy.container_id)

    def proxy_restarted(s: dict[str, Any]) -> bool:
        return sidecar_up(s) and s["initContainerStatuses"][1]["restartCount"] == 1

    status = edge_node.wait_status("proxy restarted", "sided", proxy_restarted)
    assert status["initContainerStatuses"][1]["lastState"]["terminated"]["exitCode"] == 137
    assert status["containerStatuses"][0]["restartCount"] == 0  # the app was left alone
    after_kill = edge_node.wait_observed("proxy running", "sided", lambda p: all_running(p, "proxy"))
    assert by_name(after_kill)["proxy"].container_id == proxy.container_id
    assert by_name(after_kill)["app"].started_at == by_name(before)["app"].started_at

    edge_node.stop_agent()
    edge_node.start_agent()
    edge_node.reports.clear()
    status = edge_node.wait_status("sided reported again", "sided", proxy_restarted)
    after = edge_node.observed("sided")
    assert after is not None
    setup_before, setup_after = by_name(before)["setup"], by_name(after)["setup"]
    assert (setup_after.container_id, setup_after.finished_at) == (setup_before.container_id, setup_before.finished_at)
    assert edge_node.runtime.exec(after.uid, "app", ["cat", "/work/log"], timeout=10) == (0, "setup\nproxy\nproxy\n")
    assert [c["restartCount"] for c in status["initContainerStatuses"]] == [0, 1]


def test_removing_a_pod_runs_its_sidecars_pre_stop_and_stops_it_only_after_its_app_container_exited(
    edge_node: EdgeNode, tmp_path: Path
) -> None:
    """Each container's TERM trap appends its name to a file of the node, the app a second late; so does the hook."""
    edge_node.start_agent()
    loop = "while :; do sleep 1 & wait $!; done"
    inits = [
        {
            "name": "proxy",
            "restartPolicy": "Always",
            "command": sh(f"trap 'echo proxy >> /out/order; exit 0' TERM; {loop}"),
            "lifecycle": {"preStop": {"exec": {"command": sh("echo prestop >> /out/order")}}},
        }
    ]
    app = {"command": sh(f"trap 'sleep 1; echo app >> /out/order; exit 0' TERM; {loop}")}
    pod = with_inits("ordered-stop", inits, app, grace=5)
    pod["spec"]["volumes"].append({"name": "out", "hostPath": {"path": str(tmp_path), "type": "Directory"}})
    for container in (*pod["spec"]["initContainers"], *pod["spec"]["containers"]):
        container["volumeMounts"].append({"name": "out", "mountPath": "/out"})
    edge_node.want(pod)
    edge_node.wait_observed("both running", "ordered-stop", lambda p: all_running(p, "proxy", "app"))
    edge_node.want()  # the pod leaves the node's desired state: removed
    deadline = time.monotonic() + 30
    while edge_node.observed("ordered-stop") is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert edge_node.observed("ordered-stop") is None
    assert (tmp_path / "order").read_text() == "app\nprestop\nproxy\n"


# -- through the master and ekctl ---------------------------------------------------------------------------------
@pytest.fixture
def cluster(
    mosquitto: Mosquitto,
    podman_service: PodmanService,
    demo_image: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[ApiClient]:
    """A master and one agent on Podman; ekctl runs from a directory whose cluster.json names the broker."""
    master = start_master(mosquitto.port, tmp_path / "master")
    agent = start_agent(
        mosquitto.port, f"node-{uuid.uuid4().hex[:6]}", podman_service, tmp_path / "agent", device_dir="",
        fence_dir="", config_volume_dir=str(tmp_path / "config-volumes"),
    )  # fmt: skip
    client = ApiClient(mosquitto.port)
    work = tmp_path / "work"
    (work / ".edgekube").mkdir(parents=True)
    (work / ".edgekube" / "cluster.json").write_text(
        json.dumps({"mqtt_host": "127.0.0.1", "mqtt_port": mosquitto.port})
    )
    monkeypatch.chdir(work)
    monkeypatch.delenv("EDGEKUBE_MQTT_HOST", raising=False)
    monkeypatch.delenv("EDGEKUBE_MQTT_PORT", raising=False)
    try:
        yield client
    finally:
        client.close()
        master.stop()
        stop_agent(agent)


def ekctl_status(capsys: pytest.CaptureFixture[str], name: str) -> list[str]:
    """READY, STATUS and RESTARTS of the pod in `ekctl get pods`."""
    assert main(["--timeout", "5", "get", "pods"]) == 0
    rows = {row[0]: row[1:4] for row in (line.split() for line in capsys.readouterr().out.splitlines()[1:])}
    return rows.get(name, [])


def test_ekctl_get_pods_shows_init_progress_then_running_and_init_error_through_the_master(
    cluster: ApiClient, demo_image: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The init container's env comes from a ConfigMap: the master resolves init containers' env too."""
    settings = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "strict"}}
    env = [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}]
    gated = with_inits("gated", [{"name": "prepare", "env": env, "command": sh("echo prepared $MODE; sleep 3")}],
                       {"command": sh(IDLE)})  # fmt: skip
    broken = with_inits("broken", [{"name": "check", "command": sh("exit 1")}], {"command": sh(IDLE)}, policy="Never")
    for pod in (gated, broken):
        del pod["metadata"]["uid"]  # the master gives it one
    response = cluster.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": [settings, gated, broken]}))
    assert response.ok, response.error
    assert wait_for("gated Init:0/1", lambda: ekctl_status(capsys, "gated") == ["0/1", "Init:0/1", "0"])
    assert wait_for("broken Init:Error", lambda: ekctl_status(capsys, "broken") == ["0/1", "Init:Error", "0"])
    assert cluster.pod("broken")["status"]["phase"] == "Failed"
    assert wait_for("gated Running", lambda: ekctl_status(capsys, "gated") == ["1/1", "Running", "0"])
    status = cluster.pod("gated")["status"]
    assert [c["type"] for c in status["conditions"] if c["status"] == "True"][:2] == ["Initialized", "Ready"]
    assert main(["--timeout", "5", "logs", "gated", "-c", "prepare"]) == 0
    assert capsys.readouterr().out == "prepared strict\n"


def test_the_example_runs_its_init_container_then_its_sidecar_beside_its_app(
    cluster: ApiClient, capsys: pytest.CaptureFixture[str]
) -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "init-pod.yaml"
    assert main(["--timeout", "5", "apply", "-f", str(example)]) == 0
    assert wait_for("init-demo Running", lambda: ekctl_status(capsys, "init-demo") == ["2/2", "Running", "0"])
    assert main(["--timeout", "5", "logs", "init-demo"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("greeting=hello\n")
    assert captured.err == 'Defaulted container "app" out of: app, fetch (init), proxy (init)\n'  # kubectl's
