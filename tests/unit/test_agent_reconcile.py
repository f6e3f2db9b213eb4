"""The agent's pure reconciler: plan(desired, observed, memory), shared fate by restartPolicy, and pod status."""

from __future__ import annotations

import dataclasses
from dataclasses import replace
from typing import Any

import pytest

from edgekube.agent.reconcile import (
    Create,
    DesiredPod,
    Failure,
    PodMemory,
    Remove,
    Restart,
    Stop,
    plan,
    pod_status,
    spec_hash,
)
from edgekube.agent.restarts import Decision, Verdict, decide
from edgekube.agent.runtime.fake import FakeRuntime
from edgekube.agent.runtime.protocol import ContainerRunState, ObservedContainer, ObservedPod
from edgekube.model.errors import RuntimeFailure
from edgekube.model.names import PodUID
from edgekube.model.pod import Pod, RestartPolicy
from edgekube.model.status import PodStatus

RUN = ContainerRunState.RUNNING
EXIT = ContainerRunState.EXITED
CREATED = ContainerRunState.CREATED
T0, T1 = "2024-05-01T10:00:00Z", "2024-05-01T10:00:05Z"


def desired(uid: str, *, image: str = "busybox", containers: tuple[str, ...] = ("app",), **spec: Any) -> DesiredPod:
    pod = Pod.model_validate(
        {
            "metadata": {"name": f"pod-{uid}", "uid": uid},
            "spec": {"containers": [{"name": c, "image": image} for c in containers], **spec},
        }
    )
    return DesiredPod(PodUID(uid), pod, spec_hash(uid, pod.spec.to_dict()))


def observed(d: DesiredPod, *containers: ObservedContainer, spec_hash: str | None = None) -> ObservedPod:
    return ObservedPod(
        uid=d.uid,
        namespace=d.pod.metadata.namespace,
        name=d.pod.metadata.name,
        spec_hash=d.spec_hash if spec_hash is None else spec_hash,
        pod_id=f"pod-{d.uid}",
        containers=containers,
    )


def container(name: str, state: ContainerRunState, **fields: Any) -> ObservedContainer:
    return ObservedContainer(name=name, container_id=f"id-{name}", image="busybox", state=state, **fields)


A, B, C = desired("a"), desired("b"), desired("c")


# -- spec_hash ------------------------------------------------------------------------------------------------


def test_spec_hash_depends_on_uid_and_spec_only() -> None:
    spec = {"containers": [{"name": "app", "image": "busybox"}]}
    assert spec_hash("u1", spec) == spec_hash("u1", {"containers": [{"image": "busybox", "name": "app"}]})
    assert spec_hash("u1", spec) != spec_hash("u2", spec)
    assert spec_hash("u1", spec) != spec_hash("u1", {"containers": [{"name": "app", "image": "nginx"}]})
    assert len(spec_hash("u1", spec)) == 16


def test_labels_do_not_change_the_spec_hash() -> None:
    relabelled = desired("a")
    relabelled.pod.metadata.labels["v"] = "2"
    assert spec_hash("a", relabelled.pod.spec.to_dict()) == A.spec_hash


# -- plan -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("want", "have", "blocked", "actions"),
    [
        pytest.param([], [], frozenset(), [], id="nothing"),
        pytest.param([A, B], [], frozenset(), [Create(A), Create(B)], id="create-missing"),
        pytest.param([A], [observed(A)], frozenset(), [], id="adopt-matching-hash"),
        pytest.param(
            [], [observed(A)], frozenset(), [Remove(A.uid, "not in the node's desired state")], id="remove-unknown"
        ),
        pytest.param(
            [],
            [dataclasses.replace(observed(A), grace_seconds=3)],
            frozenset(),
            [Remove(A.uid, "not in the node's desired state", 3)],
            id="remove-unknown-with-the-grace-it-was-created-with",
        ),
        pytest.param(
            [A],
            [observed(A, spec_hash="old")],
            frozenset(),
            [Remove(A.uid, "spec changed", 10), Create(A)],
            id="replace-changed-hash",
        ),
        pytest.param(
            [B, C],
            [observed(A), observed(B)],
            frozenset(),
            [Remove(A.uid, "not in the node's desired state"), Create(C)],
            id="mixed",
        ),
        pytest.param(
            [C, A],
            [observed(B), observed(A, spec_hash="old")],
            frozenset(),
            [Remove(B.uid, "not in the node's desired state"), Remove(A.uid, "spec changed", 10), Create(C), Create(A)],
            id="removals-before-creations",
        ),
        pytest.param([A, B], [], frozenset({A.uid}), [Create(B)], id="blocked-not-created"),
        pytest.param([A], [observed(A)], frozenset({A.uid}), [], id="blocked-but-running-is-kept"),
        pytest.param(
            [A],
            [observed(A, spec_hash="old")],
            frozenset({A.uid}),
            [Remove(A.uid, "spec changed", 10)],
            id="blocked-old-version-still-removed",
        ),
    ],
)
def test_plan(
    want: list[DesiredPod], have: list[ObservedPod], blocked: frozenset[PodUID], actions: list[Create | Remove]
) -> None:
    assert plan(want, have, blocked) == actions


def test_a_spec_change_is_stopped_with_the_new_pods_grace_period() -> None:
    new = desired("a", terminationGracePeriodSeconds=30)
    [remove, create] = plan([new], [observed(new, spec_hash="old")])
    assert remove == Remove(new.uid, "spec changed", 30)
    assert create == Create(new)


def test_an_unknown_pod_without_a_recorded_grace_is_stopped_with_kubernetes_default_grace() -> None:
    [remove] = plan([], [observed(A)])
    assert isinstance(remove, Remove) and remove.grace_seconds == 30


def test_an_unknown_pod_is_stopped_with_the_grace_the_runtime_recorded_at_create() -> None:
    runtime = FakeRuntime()
    pod = A.pod.model_copy(update={"spec": A.pod.spec.model_copy(update={"termination_grace_period_seconds": 4})})
    runtime.create_pod(pod, A.uid, A.spec_hash)
    [remove] = plan([], runtime.list_pods())
    assert isinstance(remove, Remove) and remove.grace_seconds == 4


def test_plan_converges_on_the_fake_runtime_and_then_has_nothing_to_do() -> None:
    runtime = FakeRuntime()
    runtime.create_pod(A.pod, A.uid, A.spec_hash)
    runtime.create_pod(B.pod, B.uid, "stale")
    want = [B, C]
    for action in plan(want, runtime.list_pods()):
        if isinstance(action, Remove):
            runtime.remove_pod(action.uid, action.grace_seconds)
        else:
            assert isinstance(action, Create)
            runtime.create_pod(action.desired.pod, action.desired.uid, action.desired.spec_hash)
    assert runtime.calls[2:] == [("remove", "a"), ("remove", "b"), ("create", "b"), ("create", "c")]
    assert sorted((p.uid, p.spec_hash) for p in runtime.list_pods()) == [("b", B.spec_hash), ("c", C.spec_hash)]
    assert plan(want, runtime.list_pods()) == []
    # A restarted agent on the same engine adopts what runs: still nothing to do.
    assert plan(want, runtime.reopen().list_pods()) == []


# -- pod_status -----------------------------------------------------------------------------------------------


def phase_and_ready(status: dict[str, Any]) -> tuple[str, str]:
    [ready] = [c["status"] for c in status["conditions"] if c["type"] == "Ready"]
    return status["phase"], ready


def test_a_pod_not_created_yet_is_pending_container_creating() -> None:
    status = pod_status(desired("p", containers=("a", "b")), None, None)
    assert status == {
        "phase": "Pending",
        "conditions": [{"type": "Ready", "status": "False"}],
        "containerStatuses": [
            {"name": n, "image": "busybox", "ready": False, "restartCount": 0, "state": {"waiting": {"reason": r}}}
            for n, r in (("a", "ContainerCreating"), ("b", "ContainerCreating"))
        ],
    }


def test_a_running_pod_is_ready_with_start_time_and_container_ids() -> None:
    d = desired("p", containers=("a", "b"))
    status = pod_status(d, observed(d, container("a", RUN, started_at=T1), container("b", RUN, started_at=T0)), None)
    assert phase_and_ready(status) == ("Running", "True")
    assert status["startTime"] == T0
    a, b = status["containerStatuses"]
    assert a == {
        "name": "a",
        "image": "busybox",
        "ready": True,
        "restartCount": 0,
        "containerID": "podman://id-a",
        "state": {"running": {"startedAt": T1}},
    }
    assert b["state"] == {"running": {"startedAt": T0}}


def test_a_running_container_without_a_start_time() -> None:
    d = desired("p")
    status = pod_status(d, observed(d, container("app", RUN)), None)
    assert status["containerStatuses"][0]["state"] == {"running": {}}
    assert "startTime" not in status


@pytest.mark.parametrize(
    ("policy", "states", "phase", "ready"),
    [
        ("Never", [(EXIT, 0)], "Succeeded", "False"),
        ("Never", [(EXIT, 0), (EXIT, 0)], "Succeeded", "False"),
        ("Never", [(EXIT, 0), (EXIT, 1)], "Failed", "False"),
        ("Never", [(EXIT, None)], "Failed", "False"),  # no exit code: -1, a failure
        ("Never", [(RUN, None), (EXIT, 0)], "Running", "False"),
        ("OnFailure", [(EXIT, 0)], "Succeeded", "False"),
        ("OnFailure", [(EXIT, 2)], "Running", "False"),  # about to be restarted
        ("OnFailure", [(RUN, None), (EXIT, 0)], "Running", "False"),
        ("Never", [(RUN, None), (EXIT, 1)], "Failed", "False"),  # shared fate: the running one is stopped
        ("Always", [(EXIT, 0)], "Running", "False"),  # Always: the container is about to come back
        ("Always", [(EXIT, 1), (EXIT, 0)], "Running", "False"),
        ("Always", [(RUN, None), (RUN, None)], "Running", "True"),
        ("Always", [(RUN, None), (CREATED, None)], "Running", "False"),
        ("Always", [(CREATED, None), (CREATED, None)], "Pending", "False"),
        ("Always", [(ContainerRunState.UNKNOWN, None)], "Pending", "False"),
        ("Never", [(CREATED, None), (EXIT, 0)], "Pending", "False"),
    ],
)
def test_phase_follows_the_containers_and_the_restart_policy(
    policy: str, states: list[tuple[ContainerRunState, int | None]], phase: str, ready: str
) -> None:
    names = tuple(f"c{i}" for i in range(len(states)))
    d = desired("p", containers=names, restartPolicy=policy)
    obs = observed(d, *(container(n, s, exit_code=code) for n, (s, code) in zip(names, states, strict=True)))
    assert phase_and_ready(pod_status(d, obs, None)) == (phase, ready)


@pytest.mark.parametrize(
    ("fields", "terminated"),
    [
        ({"exit_code": 0}, {"exitCode": 0, "reason": "Completed"}),
        ({"exit_code": 137, "error": "OOMKilled"}, {"exitCode": 137, "reason": "OOMKilled", "message": "OOMKilled"}),
        ({"exit_code": 1, "error": "boom"}, {"exitCode": 1, "reason": "Error", "message": "boom"}),
        ({}, {"exitCode": -1, "reason": "Error"}),
        (
            {"exit_code": 0, "started_at": T0, "finished_at": T1},
            {"exitCode": 0, "reason": "Completed", "startedAt": T0, "finishedAt": T1},
        ),
    ],
)
def test_a_terminated_container_state(fields: dict[str, Any], terminated: dict[str, Any]) -> None:
    d = desired("p", restartPolicy="Never")
    status = pod_status(d, observed(d, container("app", EXIT, **fields)), None)
    assert status["containerStatuses"][0]["state"] == {"terminated": terminated}
    assert status["containerStatuses"][0]["ready"] is False


@pytest.mark.parametrize("policy", ["Always", "OnFailure", "Never"])
@pytest.mark.parametrize("states", [(), (CREATED,), (CREATED, CREATED)])
def test_a_pod_seen_mid_create_is_pending_not_a_stopped_sandbox(
    policy: str, states: tuple[ContainerRunState, ...]
) -> None:
    # The loop may list a pod the create thread is still building: sandbox not started, containers created or not
    # there yet. That is Pending (a stopped sandbox would be Running-to-restart or, under Never, Failed).
    d = desired("p", containers=("a", "b"), restartPolicy=policy)
    obs = replace(observed(d, *(container(n, s) for n, s in zip("ab", states, strict=False))), infra_running=False)
    assert phase_and_ready(pod_status(d, obs, None)) == ("Pending", "False")


@pytest.mark.parametrize(("policy", "phase"), [("Always", "Running"), ("Never", "Failed")])
def test_a_pod_whose_sandbox_stopped_after_it_ran_is_not_pending(policy: str, phase: str) -> None:
    d = desired("p", containers=("a",), restartPolicy=policy)
    obs = replace(observed(d, container("a", EXIT, exit_code=137, started_at=T0)), infra_running=False)
    assert phase_and_ready(pod_status(d, obs, None)) == (phase, "False")


def test_a_container_missing_from_the_runtime_is_still_creating() -> None:
    d = desired("p", containers=("a", "b"))
    status = pod_status(d, observed(d, container("a", RUN)), None)
    assert status["containerStatuses"][1]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert "containerID" not in status["containerStatuses"][1]
    assert phase_and_ready(status) == ("Running", "False")


def test_a_create_failure_fails_the_pod_with_reason_and_message() -> None:
    d = desired("p", containers=("a", "b"))
    failure = Failure("CreateContainerError", "no such device")
    status = pod_status(d, None, failure)
    assert status["phase"] == "Failed"
    assert (status["reason"], status["message"]) == ("CreateContainerError", "no such device")
    assert status["conditions"] == [{"type": "Ready", "status": "False", "reason": "CreateContainerError"}]
    assert [c["state"] for c in status["containerStatuses"]] == [
        {"waiting": {"reason": "CreateContainerError", "message": "no such device"}}
    ] * 2


def test_a_failure_from_the_fake_runtime_feeds_pod_status() -> None:
    runtime = FakeRuntime()
    d = desired("p", image="registry.example/missing:1")
    runtime.make_image_missing("registry.example/missing:1")
    with pytest.raises(RuntimeFailure) as info:
        runtime.create_pod(d.pod, d.uid, d.spec_hash)
    status = pod_status(d, None, Failure(info.value.failure, str(info.value)))
    assert status["phase"] == "Pending"
    [c] = status["containerStatuses"]
    assert c["state"]["waiting"] == {
        "reason": "ErrImagePull",
        "message": "failed to pull image 'registry.example/missing:1': not found",
    }


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"])
@pytest.mark.parametrize("restart_policy", ["Always", "Never"])
def test_an_image_that_cannot_be_had_keeps_the_pod_pending_not_failed(reason: str, restart_policy: str) -> None:
    d = desired("p", containers=("a", "b"), restartPolicy=restart_policy)
    status = pod_status(d, None, Failure(reason, "why", d.pod.spec.containers[0].image))
    assert status["phase"] == "Pending"
    assert "reason" not in status
    assert status["conditions"] == [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}]
    assert [c["state"] for c in status["containerStatuses"]] == [{"waiting": {"reason": reason, "message": "why"}}] * 2


def test_only_the_containers_of_the_missing_image_wait_with_its_reason() -> None:
    containers = [{"name": "a", "image": "busybox"}, {"name": "b", "image": "registry.example/other:1"}]
    pod = Pod.model_validate({"metadata": {"name": "pod-p", "uid": "p"}, "spec": {"containers": containers}})
    d = DesiredPod(PodUID("p"), pod, spec_hash("p", pod.spec.to_dict()))
    status = pod_status(d, None, Failure("ImagePullBackOff", 'Back-off pulling image "x"', "registry.example/other:1"))
    assert [c["state"]["waiting"]["reason"] for c in status["containerStatuses"]] == [
        "ContainerCreating",
        "ImagePullBackOff",
    ]


def test_a_pod_that_runs_after_all_ignores_an_old_failure() -> None:
    d = desired("p")
    status = pod_status(d, observed(d, container("app", RUN)), Failure("ErrImagePull", "old"))
    assert phase_and_ready(status) == ("Running", "True")
    assert "reason" not in status


@pytest.mark.parametrize(
    ("obs", "failure"),
    [
        (None, None),
        (None, Failure("CreateContainerError", "boom")),
        ("running", None),
        ("exited", None),
    ],
)
def test_every_status_is_a_valid_pod_status(obs: str | None, failure: Failure | None) -> None:
    d = desired("p", restartPolicy="Never")
    seen = None
    if obs == "running":
        seen = observed(d, container("app", RUN, started_at=T0))
    elif obs == "exited":
        seen = observed(d, container("app", EXIT, exit_code=3, started_at=T0, finished_at=T1, error="x"))
    status = pod_status(d, seen, failure)
    assert PodStatus.model_validate(status).to_dict() == status


# -- decide: shared fate by restartPolicy -----------------------------------------------------------------------

K, R, S, F = Verdict.KEEP, Verdict.RESTART, Verdict.SUCCEEDED, Verdict.FAILED


@pytest.mark.parametrize(
    ("states", "unhealthy", "sandbox", "always", "on_failure", "never"),
    [
        pytest.param([(RUN, None), (RUN, None)], "", True, K, K, K, id="all-running"),
        pytest.param([(CREATED, None), (RUN, None)], "", True, K, K, K, id="starting"),
        pytest.param([(EXIT, 0), (RUN, None)], "", True, R, K, K, id="one-exited-0"),
        pytest.param([(EXIT, 0), (EXIT, 0)], "", True, R, S, S, id="all-exited-0"),
        pytest.param([(EXIT, 1), (RUN, None)], "", True, R, R, F, id="one-failed"),
        pytest.param([(EXIT, 137), (EXIT, 0)], "", True, R, R, F, id="killed-and-done"),
        pytest.param([(EXIT, None), (RUN, None)], "", True, R, R, F, id="no-exit-code-is-a-failure"),
        pytest.param([(RUN, None), (RUN, None)], "c1", True, R, R, F, id="liveness-failed"),
        pytest.param([(EXIT, 0), (RUN, None)], "c0", True, R, R, F, id="liveness-killed-then-exited-0"),
        pytest.param([(RUN, None), (RUN, None)], "", False, R, R, F, id="sandbox-stopped"),
        pytest.param([(EXIT, 0), (EXIT, 0)], "", False, R, R, F, id="reboot-stopped-it-all"),
    ],
)
def test_decide_restart_policy_table(
    states: list[tuple[ContainerRunState, int | None]],
    unhealthy: str,
    sandbox: bool,
    always: Verdict,
    on_failure: Verdict,
    never: Verdict,
) -> None:
    containers = [container(f"c{i}", s, exit_code=code) for i, (s, code) in enumerate(states)]
    sick = frozenset({unhealthy}) if unhealthy else frozenset()
    got = [
        decide(policy, containers, unhealthy=sick, sandbox_running=sandbox).verdict
        for policy in (RestartPolicy.ALWAYS, RestartPolicy.ON_FAILURE, RestartPolicy.NEVER)
    ]
    assert got == [always, on_failure, never]


def test_decide_names_the_culprit_and_why() -> None:
    crashed = [container("web", EXIT, exit_code=0), container("side", EXIT, exit_code=3)]
    assert decide(RestartPolicy.ALWAYS, crashed) == Decision(R, ("side",), "container side exited with code 3")
    ran = [container("web", EXIT, exit_code=0), container("side", RUN)]
    assert decide(RestartPolicy.ALWAYS, ran) == Decision(R, ("web",), "container web exited with code 0")
    live = [container("web", RUN)]
    assert decide(RestartPolicy.NEVER, live, unhealthy=frozenset({"web"})) == Decision(
        F, ("web",), "container web failed its liveness probe"
    )
    assert decide(RestartPolicy.ALWAYS, live, sandbox_running=False) == Decision(R, ("",), "pod sandbox stopped")
    done = [container("web", EXIT, exit_code=0)]
    assert decide(RestartPolicy.ON_FAILURE, done) == Decision(S, (), "all containers exited with code 0")


# -- plan with restarts -------------------------------------------------------------------------------------------

NEVER = desired("n", restartPolicy="Never")
ONF = desired("o", restartPolicy="OnFailure", containers=("a", "b"))


def stop(d: DesiredPod, verdict: Verdict, culprits: tuple[str, ...], why: str) -> Stop:
    return Stop(d.uid, Decision(verdict, culprits, why), d.pod.spec.termination_grace_period_seconds)


@pytest.mark.parametrize(
    ("want", "have", "memory", "actions"),
    [
        pytest.param([A], [observed(A, container("app", RUN))], {}, [], id="healthy"),
        pytest.param(
            [A],
            [observed(A, container("app", EXIT, exit_code=0))],
            {},
            [stop(A, R, ("app",), "container app exited with code 0")],
            id="always-restarts",
        ),
        pytest.param(
            [ONF],
            [observed(ONF, container("a", EXIT, exit_code=0), container("b", RUN))],
            {},
            [],
            id="on-failure-exit-0-keeps-the-rest",
        ),
        pytest.param(
            [ONF],
            [observed(ONF, container("a", RUN), container("b", EXIT, exit_code=2))],
            {},
            [stop(ONF, R, ("b",), "container b exited with code 2")],
            id="on-failure-restarts-the-pod",
        ),
        pytest.param(
            [NEVER],
            [observed(NEVER, container("app", EXIT, exit_code=1))],
            {},
            [stop(NEVER, F, ("app",), "container app exited with code 1")],
            id="never-fails",
        ),
        pytest.param(
            [NEVER],
            [observed(NEVER, container("app", EXIT, exit_code=0))],
            {},
            [stop(NEVER, S, (), "all containers exited with code 0")],
            id="never-succeeds",
        ),
        pytest.param(
            [NEVER],
            [observed(NEVER, container("app", EXIT, exit_code=1))],
            {NEVER.uid: PodMemory(finished="Failed")},
            [],
            id="finished-stays-finished",
        ),
        pytest.param(
            [A],
            [observed(A, container("app", EXIT, exit_code=1))],
            {A.uid: PodMemory(restart_pending=True)},
            [],
            id="waiting-for-back-off",
        ),
        pytest.param(
            [A],
            [observed(A, container("app", EXIT, exit_code=1))],
            {A.uid: PodMemory(restart_pending=True, restart_due=True)},
            [Restart(A.uid, 10)],
            id="back-off-over",
        ),
        pytest.param(
            [A],
            [observed(A, container("app", RUN))],
            {A.uid: PodMemory(unhealthy=frozenset({"app"}))},
            [stop(A, R, ("app",), "container app failed its liveness probe")],
            id="liveness",
        ),
        pytest.param(
            [A],
            [replace(observed(A, container("app", EXIT, exit_code=0)), infra_running=False)],
            {},
            [stop(A, R, ("",), "pod sandbox stopped")],
            id="rebooted",
        ),
        pytest.param(
            [A, B],
            [observed(B, container("app", EXIT, exit_code=1)), observed(C)],
            {},
            [
                Remove(C.uid, "not in the node's desired state"),
                Create(A),
                stop(B, R, ("app",), "container app exited with code 1"),
            ],
            id="removals-creations-then-restarts",
        ),
    ],
)
def test_plan_with_restarts(
    want: list[DesiredPod], have: list[ObservedPod], memory: dict[PodUID, PodMemory], actions: list[Any]
) -> None:
    assert plan(want, have, frozenset(), memory) == actions


def test_a_blocked_pod_is_neither_stopped_nor_restarted() -> None:
    crashed = observed(A, container("app", EXIT, exit_code=1))
    assert plan([A], [crashed], frozenset({A.uid})) == []
    due = {A.uid: PodMemory(restart_pending=True, restart_due=True)}
    assert plan([A], [crashed], frozenset({A.uid}), due) == []


# -- pod_status with restarts, back-off and readiness ------------------------------------------------------------


def test_crash_loop_back_off_status() -> None:
    d = desired("p", containers=("web", "side"))
    last = {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": T1}}
    memory = PodMemory(
        restart_pending=True,
        back_off="back-off 4s restarting failed container=web pod=default/pod-p",
        restart_count={"web": 3, "side": 3},
        last_state={"web": last, "side": {"terminated": {"exitCode": 143, "reason": "Error"}}},
    )
    obs = replace(
        observed(d, container("web", EXIT, exit_code=1), container("side", EXIT, exit_code=143)), ip="10.88.0.7"
    )
    status = pod_status(d, obs, None, memory)
    assert phase_and_ready(status) == ("Running", "False")
    assert status["podIP"] == "10.88.0.7"
    web, side = status["containerStatuses"]
    assert web == {
        "name": "web",
        "image": "busybox",
        "ready": False,
        "restartCount": 3,
        "containerID": "podman://id-web",
        "state": {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": "back-off 4s restarting failed container=web pod=default/pod-p",
            }
        },
        "lastState": last,
    }
    assert side["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert side["lastState"] == {"terminated": {"exitCode": 143, "reason": "Error"}}
    assert PodStatus.model_validate(status).to_dict() == status


def test_restarted_pod_shows_count_and_last_state_while_running() -> None:
    d = desired("p")
    last = {"app": {"terminated": {"exitCode": 137, "reason": "Error"}}}
    memory = PodMemory(restart_count={"app": 1}, last_state=last)
    status = pod_status(d, observed(d, container("app", RUN, started_at=T1)), None, memory)
    assert phase_and_ready(status) == ("Running", "True")
    [c] = status["containerStatuses"]
    assert (c["restartCount"], c["lastState"], c["state"]) == (
        1, {"terminated": {"exitCode": 137, "reason": "Error"}}, {"running": {"startedAt": T1}}
    )  # fmt: skip


def test_readiness_gates_the_container_and_the_pod() -> None:
    d = desired("p", containers=("web", "side"))
    both = observed(d, container("web", RUN), container("side", RUN))
    status = pod_status(d, both, None, PodMemory(not_ready=frozenset({"web"})))
    assert phase_and_ready(status) == ("Running", "False")
    assert [c["ready"] for c in status["containerStatuses"]] == [False, True]
    assert phase_and_ready(pod_status(d, both, None, PodMemory())) == ("Running", "True")


def test_a_finished_pod_keeps_its_phase() -> None:
    d = desired("p", restartPolicy="Never", containers=("a", "b"))
    obs = observed(d, container("a", EXIT, exit_code=1), container("b", EXIT, exit_code=143))
    assert phase_and_ready(pod_status(d, obs, None, PodMemory(finished="Failed"))) == ("Failed", "False")
    # Even after a reboot stopped the sandbox: no restart, still Failed.
    rebooted = replace(obs, infra_running=False)
    assert phase_and_ready(pod_status(d, rebooted, None, PodMemory(finished="Failed"))) == ("Failed", "False")


def test_an_init_container_whose_image_cannot_be_had_waits_with_the_reason_and_the_pod_stays_pending() -> None:
    init = [{"name": "setup", "image": "registry.example/missing:1"}]
    d = desired("p", initContainers=init)
    status = pod_status(
        d, None, Failure("ImagePullBackOff", 'Back-off pulling image "x"', "registry.example/missing:1")
    )
    assert status["phase"] == "Pending"
    assert status["initContainerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
