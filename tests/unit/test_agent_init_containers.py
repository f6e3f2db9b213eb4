"""The agent running init containers and sidecars on FakeRuntime: order, failure, back-off, restarts, agent restart.

As tests/unit/test_agent_loop.py: an in-memory bus, an injected clock, `settle()` runs passes until the background
starts and stops are done. The fake's containers run until a test makes them exit.
"""

from __future__ import annotations

import time
from typing import Any

from edgekube.agent.runtime.protocol import ContainerRunState, ObservedPod
from edgekube.bus import topics
from edgekube.model.names import PodUID
from edgekube.model.wire import EventReport
from tests.unit.test_agent_loop import IMAGE, NODE, Node, node, pod

__all__ = ["node"]  # the fixture

UID = PodUID("uid-web")
SIDECAR = {"name": "proxy", "image": IMAGE, "restartPolicy": "Always"}


def with_inits(*inits: dict[str, Any], policy: str = "Always", apps: tuple[str, ...] = ("app",)) -> dict[str, Any]:
    manifest = pod("web", *apps, policy=policy)
    manifest["spec"]["initContainers"] = [{"image": IMAGE, **c} for c in inits]
    return manifest


TWO = ({"name": "first"}, {"name": "second"})


def seen(n: Node) -> ObservedPod:
    [found] = [p for p in n.runtime.list_pods() if p.uid == UID]
    return found


def states(n: Node) -> dict[str, str]:
    found = seen(n)
    return {c.name: c.state.value for c in (*found.init_containers, *found.containers)}


def started(n: Node) -> dict[str, int]:
    """How often each container was started, from the Started events (a repeated event counts up)."""
    events = n.agent.events.events()
    return {e["message"].removeprefix("Started container "): e["count"] for e in events if e["reason"] == "Started"}


def test_init_containers_run_in_order_each_to_completion_then_the_app_containers(node: Node) -> None:
    node.want(with_inits(*TWO, apps=("a", "b")))
    node.settle()
    assert states(node) == {"first": "running", "second": "created", "a": "created", "b": "created"}
    assert node.status(UID)["phase"] == "Pending"
    node.runtime.exit_container(UID, "first", 0)
    node.settle()
    assert states(node) == {"first": "exited", "second": "running", "a": "created", "b": "created"}
    node.runtime.exit_container(UID, "second", 0)
    node.settle()
    assert states(node) == {"first": "exited", "second": "exited", "a": "running", "b": "running"}
    assert list(started(node)) == ["first", "second", "a", "b"]
    status = node.status(UID)
    assert status["phase"] == "Running"
    assert [c["type"] for c in status["conditions"] if c["status"] == "True"] == ["Initialized", "Ready"]


def test_a_failed_init_container_under_never_fails_the_pod_and_no_app_container_ever_starts(node: Node) -> None:
    node.want(with_inits(*TWO, policy="Never"))
    node.settle()
    node.runtime.exit_container(UID, "first", 1)
    node.settle()
    assert states(node) == {"first": "exited", "second": "created", "app": "created"}
    status = node.status(UID)
    assert status["phase"] == "Failed"
    assert status["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 1
    node.settle()
    assert started(node) == {"first": 1}


def test_a_failed_init_container_is_restarted_alone_with_back_off_under_on_failure(node: Node) -> None:
    node.want(with_inits(*TWO, policy="OnFailure"))
    node.settle()
    node.runtime.exit_container(UID, "first", 0)
    node.settle()
    node.runtime.exit_container(UID, "second", 1)
    node.settle()  # the first retry is at once
    assert states(node)["second"] == "running"
    node.runtime.exit_container(UID, "second", 1)
    node.settle()  # the second waits its back-off
    assert states(node)["second"] == "exited"
    status = node.status(UID)
    assert status["phase"] == "Pending"
    assert status["initContainerStatuses"][1]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    node.clock.now += 60
    node.settle()
    assert states(node) == {"first": "exited", "second": "running", "app": "created"}
    assert started(node) == {"first": 1, "second": 3}  # never the sequence from the start
    assert node.status(UID)["initContainerStatuses"][1]["restartCount"] == 2
    assert ("BackOff", "Back-off restarting failed container second in pod default/web") in node.events()


def test_a_sidecar_keeps_running_next_to_the_app_and_is_restarted_when_it_exits(node: Node) -> None:
    node.want(with_inits(SIDECAR, {"name": "setup"}))
    node.settle()
    node.runtime.exit_container(UID, "setup", 0)
    node.settle()
    assert states(node) == {"proxy": "running", "setup": "exited", "app": "running"}
    node.runtime.kill_container(UID, "proxy")
    node.settle()
    assert states(node) == {"proxy": "running", "setup": "exited", "app": "running"}
    status = node.status(UID)
    proxy = status["initContainerStatuses"][0]
    assert (proxy["restartCount"], proxy["lastState"]["terminated"]["exitCode"]) == (1, 137)
    assert status["phase"] == "Running"
    assert started(node) == {"proxy": 2, "setup": 1, "app": 1}


def test_after_an_agent_restart_completed_init_containers_are_not_run_again(node: Node) -> None:
    node.want(with_inits(*TWO, SIDECAR))
    node.settle()
    node.runtime.exit_container(UID, "first", 0)
    node.settle()
    node.runtime.exit_container(UID, "second", 0)
    node.settle()
    before = seen(node)
    node.restart_agent()
    node.runtime.calls.clear()
    node.settle()
    assert node.runtime.calls == []  # nothing created, started or stopped
    assert seen(node) == before
    assert node.status(UID)["phase"] == "Running"


def test_the_sidecars_of_a_pod_that_succeeded_are_stopped(node: Node) -> None:
    node.want(with_inits(SIDECAR, policy="Never"))
    node.settle()
    node.runtime.exit_container(UID, "app", 0)
    node.settle()
    assert states(node) == {"proxy": "exited", "app": "exited"}
    assert node.status(UID)["phase"] == "Succeeded"
    assert ("stop-containers", UID) in node.runtime.calls


def test_a_pod_restarted_by_shared_fate_keeps_its_sidecar_and_does_not_rerun_init(node: Node) -> None:
    node.want(with_inits({"name": "setup"}, SIDECAR))
    node.settle()
    node.runtime.exit_container(UID, "setup", 0)
    node.settle()
    proxy = next(c for c in seen(node).init_containers if c.name == "proxy")
    node.runtime.exit_container(UID, "app", 1)
    node.settle()
    assert states(node) == {"setup": "exited", "proxy": "running", "app": "running"}
    assert next(c for c in seen(node).init_containers if c.name == "proxy") == proxy  # never stopped
    assert node.status(UID)["containerStatuses"][0]["restartCount"] == 1


def test_a_power_off_during_init_starts_the_sandbox_again_with_the_current_init_container_only(node: Node) -> None:
    node.want(with_inits(*TWO))
    node.settle()
    node.runtime.exit_container(UID, "first", 0)
    node.settle()
    node.runtime.power_off()
    node.settle()
    found = seen(node)
    assert found.infra_running
    assert [c.state for c in found.init_containers] == [ContainerRunState.EXITED, ContainerRunState.RUNNING]
    assert started(node) == {"first": 1, "second": 2}


FAILING_HOOK = {"exec": {"command": ["false"]}}


def test_the_app_containers_post_start_hooks_run_once_the_init_sequence_started_them(node: Node) -> None:
    manifest = with_inits({"name": "first"})
    manifest["spec"]["containers"][0]["lifecycle"] = {"postStart": FAILING_HOOK}
    node.want(manifest)
    node.settle()
    assert "FailedPostStartHook" not in [reason for reason, _ in node.events()]
    node.runtime.exit_container(UID, "first", 0)
    node.settle()
    assert "FailedPostStartHook" in [reason for reason, _ in node.events()]


def test_a_sidecar_whose_post_start_hook_failed_is_stopped_and_restarted(node: Node) -> None:
    node.want(with_inits({**SIDECAR, "lifecycle": {"postStart": FAILING_HOOK}}))
    node.settle(4)
    assert "FailedPostStartHook" in [reason for reason, _ in node.events()]
    assert node.status(UID)["initContainerStatuses"][0]["restartCount"] >= 1


def test_a_finished_pods_sidecar_runs_its_pre_stop_hook_before_it_is_stopped(node: Node) -> None:
    node.want(with_inits({**SIDECAR, "lifecycle": {"preStop": FAILING_HOOK}}, policy="Never"))
    node.settle()
    node.runtime.exit_container(UID, "app", 0)
    node.settle()
    assert states(node) == {"proxy": "exited", "app": "exited"}
    assert "FailedPreStopHook" in [reason for reason, _ in node.events()]


def test_a_removed_pods_sidecar_runs_its_pre_stop_hook_after_the_app_containers_stopped(node: Node) -> None:
    node.want(with_inits({**SIDECAR, "lifecycle": {"preStop": FAILING_HOOK}}))
    node.settle()
    assert states(node) == {"proxy": "running", "app": "running"}
    node.runtime.calls.clear()
    node.want()
    node.settle()
    assert node.runtime.list_pods() == []
    assert node.runtime.calls == [("stop-containers", UID), ("remove", UID)]
    published = [EventReport.decode(m.payload) for m in node.broker.published(topics.node_events(NODE))]
    assert "FailedPreStopHook" in [e["reason"] for report in published for e in report.events]


def test_a_sidecars_failed_liveness_probe_restarts_the_sidecar_alone(node: Node) -> None:
    probe = {"livenessProbe": {"exec": {"command": ["check"]}, "failureThreshold": 1}}
    node.want(with_inits({**SIDECAR, **probe}))
    node.settle()
    app_before = next(c for c in seen(node).containers if c.name == "app")
    node.runtime.set_exec_result(UID, "proxy", 1, "stuck")
    node.clock.now += 10  # the probe's period
    node.agent.reconcile()
    deadline = time.monotonic() + 5
    while node.agent.prober.unhealthy(UID) != {"proxy"} and time.monotonic() < deadline:  # real probe threads
        time.sleep(0.01)
    node.runtime.set_exec_result(UID, "proxy", 0)
    node.settle()
    proxy = node.status(UID)["initContainerStatuses"][0]
    assert proxy["restartCount"] == 1
    assert proxy["lastState"]["terminated"]["exitCode"] == 143  # stopped by the agent (SIGTERM)
    assert ("Killing", "Container proxy failed liveness probe, will be restarted") in node.events()
    assert next(c for c in seen(node).containers if c.name == "app") == app_before  # the app left alone
