"""initContainers and sidecars: Kubernetes' validation rules, the agent's pure plan and status, kubectl's STATUS.

Validation cites pkg/apis/core/validation/validation.go; the plan follows the kubelet (init containers in order, each
to completion; a failed one restarted alone per the pod's restartPolicy; sidecars started in order and kept running);
STATUS is kubectl's printPod (pkg/printers/internalversion/printers.go).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from edgekube.agent.devices import assign, with_device_env
from edgekube.agent.indicators import pods as led_pods
from edgekube.agent.initplan import RestartContainer, StartContainers, StopSidecars, progress
from edgekube.agent.reconcile import NOTHING, DesiredPod, PodMemory, Stop, plan, pod_status
from edgekube.agent.restarts import Verdict
from edgekube.agent.runtime.protocol import ContainerRunState, ObservedContainer, ObservedPod
from edgekube.cli.describe_controller import describe_controller
from edgekube.cli.describe_pod import describe_pod
from edgekube.cli.status import pod_summary
from edgekube.master.configdata import uses_config
from edgekube.model.errors import RuntimeFailure, ValidationError
from edgekube.model.names import PodUID
from edgekube.model.pod import Pod
from edgekube.model.qos import QOSClass, qos_class
from edgekube.model.status import PodStatus

IMAGE = "localhost/edgekube/busybox:1"
UID = PodUID("uid-1")
CREATED, RUNNING, EXITED = ContainerRunState.CREATED, ContainerRunState.RUNNING, ContainerRunState.EXITED


def manifest(*inits: dict[str, Any], policy: str = "Always", apps: tuple[str, ...] = ("app",)) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "uid": UID},
        "spec": {
            "restartPolicy": policy,
            "initContainers": [{"image": IMAGE, **c} for c in inits],
            "containers": [{"name": n, "image": IMAGE} for n in apps],
        },
    }


def desired(*inits: dict[str, Any], policy: str = "Always", apps: tuple[str, ...] = ("app",)) -> DesiredPod:
    return DesiredPod(UID, Pod.from_dict(manifest(*inits, policy=policy, apps=apps)), "hash")


def seen(name: str, state: ContainerRunState, code: int | None = None, *, sidecar: bool = False) -> ObservedContainer:
    finished = "2026-12-03T10:00:00Z" if state is EXITED else None
    started = None if state is CREATED else "2026-12-03T09:59:00Z"
    return ObservedContainer(
        name, f"id-{name}", IMAGE, state, exit_code=code, started_at=started, finished_at=finished, sidecar=sidecar
    )


def observed(inits: list[ObservedContainer], apps: list[ObservedContainer] | None = None) -> ObservedPod:
    return ObservedPod(
        UID, "default", "web", "hash", "pod-1",
        containers=tuple(apps if apps is not None else [seen("app", CREATED)]), init_containers=tuple(inits),
        ip="10.88.0.2",
    )  # fmt: skip


TWO = ({"name": "first"}, {"name": "second"})
SIDECAR = {"name": "proxy", "restartPolicy": "Always"}


# -- validation: validation.go -------------------------------------------------------------------------------------
def problems(*inits: dict[str, Any], apps: list[dict[str, Any]] | None = None, **spec: Any) -> str:
    data = manifest(*inits)
    if apps is not None:
        data["spec"]["containers"] = apps
    data["spec"].update(spec)
    with pytest.raises(ValidationError) as caught:
        Pod.from_dict(data)
    return str(caught.value)


def test_validate_init_containers_names_are_unique_across_init_and_app_containers() -> None:
    assert 'spec.initContainers[0].name: Duplicate value: "app"' in problems({"name": "app"})
    assert 'spec.initContainers[1].name: Duplicate value: "a"' in problems({"name": "a"}, {"name": "a"})


@pytest.mark.parametrize("probe", ["livenessProbe", "readinessProbe"])
def test_validate_init_containers_forbids_probes_without_restart_policy_always(probe: str) -> None:
    text = problems({"name": "setup", probe: {"exec": {"command": ["true"]}}})
    assert f"spec.initContainers[0].{probe}: Forbidden: may not be set for init containers without " in text
    assert "restartPolicy=Always" in text


def test_validate_init_containers_lets_a_sidecar_have_probes() -> None:
    probe = {"exec": {"command": ["true"]}}
    pod = Pod.from_dict(manifest({**SIDECAR, "livenessProbe": probe, "readinessProbe": probe}))
    assert pod.spec.init_containers is not None
    assert pod.spec.init_containers[0].restart_policy == "Always"


def test_validate_init_container_restart_policy_supports_only_always() -> None:
    text = problems({"name": "setup", "restartPolicy": "OnFailure"})
    assert 'spec.initContainers[0].restartPolicy: Unsupported value: "OnFailure": supported values: "Always"' in text


def test_validate_containers_forbids_restart_policy_on_an_app_container() -> None:
    text = problems(apps=[{"name": "app", "image": IMAGE, "restartPolicy": "Always"}])
    assert "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers" in text


def test_validate_init_containers_volume_mounts_name_a_volume() -> None:
    text = problems({"name": "setup", "volumeMounts": [{"name": "work", "mountPath": "/work"}]})
    assert 'spec.initContainers[0].volumeMounts[0].name: Not found: "work"' in text


def test_validate_init_containers_reports_every_problem_at_once() -> None:
    text = problems({"name": "app", "readinessProbe": {"exec": {"command": ["true"]}}})
    assert "initContainers[0].name: Duplicate value" in text
    assert "initContainers[0].readinessProbe: Forbidden" in text


def test_check_host_port_conflicts_is_per_init_container_as_they_run_one_by_one() -> None:
    port = {"containerPort": 80, "hostPort": 8080}
    Pod.from_dict(manifest({"name": "a", "ports": [port]}, {"name": "b", "ports": [port]}))
    text = problems({"name": "a", "ports": [port, {**port, "containerPort": 81}]})
    assert 'spec.initContainers[0].ports[1].hostPort: Duplicate value: "/TCP/8080"' in text


def test_unset_init_containers_stay_out_of_the_stored_spec_so_the_spec_hash_is_unchanged() -> None:
    data = manifest()
    del data["spec"]["initContainers"]
    stored = Pod.from_dict(data).spec.to_dict()
    assert "initContainers" not in stored
    assert all("restartPolicy" not in c for c in stored["containers"])


# -- the pure plan ------------------------------------------------------------------------------------------------
def test_a_new_pod_starts_its_first_init_container_only() -> None:
    obs = observed([seen("first", CREATED), seen("second", CREATED)])
    assert plan([desired(*TWO)], [obs]) == [StartContainers(UID, ("first",))]


def test_the_next_init_container_starts_only_after_the_previous_exited_zero() -> None:
    running = observed([seen("first", RUNNING), seen("second", CREATED)])
    done = observed([seen("first", EXITED, 0), seen("second", CREATED)])
    assert plan([desired(*TWO)], [running]) == []
    assert plan([desired(*TWO)], [done]) == [StartContainers(UID, ("second",))]


def test_app_containers_start_together_once_every_init_container_succeeded() -> None:
    obs = observed([seen("first", EXITED, 0), seen("second", EXITED, 0)], [seen("a", CREATED), seen("b", CREATED)])
    assert plan([desired(*TWO, apps=("a", "b"))], [obs]) == [StartContainers(UID, ("a", "b"))]


def test_a_sidecar_is_not_waited_for_to_exit_the_next_init_container_starts_once_it_runs() -> None:
    before = observed([seen("proxy", CREATED, sidecar=True), seen("first", CREATED)])
    after = observed([seen("proxy", RUNNING, sidecar=True), seen("first", CREATED)])
    assert plan([desired(SIDECAR, {"name": "first"})], [before]) == [StartContainers(UID, ("proxy",))]
    assert plan([desired(SIDECAR, {"name": "first"})], [after]) == [StartContainers(UID, ("first",))]


def test_a_failed_init_container_under_restart_policy_never_fails_the_pod_without_starting_the_apps() -> None:
    obs = observed([seen("first", EXITED, 0), seen("second", EXITED, 3)])
    [action] = plan([desired(*TWO, policy="Never")], [obs])
    assert isinstance(action, Stop)
    assert action.decision.verdict is Verdict.FAILED
    assert action.decision.culprits == ("second",)
    assert action.decision.why == "init container second exited with code 3"


@pytest.mark.parametrize("policy", ["OnFailure", "Always"])
def test_a_failed_init_container_is_run_again_alone_not_the_sequence_from_the_start(policy: str) -> None:
    obs = observed([seen("first", EXITED, 0), seen("second", EXITED, 1)])
    expected = RestartContainer(UID, "second", "2026-12-03T10:00:00Z")
    assert plan([desired(*TWO, policy=policy)], [obs]) == [expected]


def test_a_failed_init_container_waits_out_its_back_off() -> None:
    obs = observed([seen("first", EXITED, 1), seen("second", CREATED)])
    memory = {UID: PodMemory(container_back_off={"first": "back-off 10s restarting failed container=first"})}
    assert plan([desired(*TWO, policy="OnFailure")], [obs], memory=memory) == []


def test_a_sidecar_that_exited_is_restarted_whatever_the_pods_restart_policy_and_the_apps_run_on() -> None:
    obs = observed([seen("proxy", EXITED, 0, sidecar=True)], [seen("app", RUNNING)])
    assert plan([desired(SIDECAR, policy="Never")], [obs]) == [RestartContainer(UID, "proxy", "2026-12-03T10:00:00Z")]


def test_one_operation_per_pod_and_pass_a_second_exited_sidecar_and_a_failed_app_wait_their_turn() -> None:
    """PodActions runs one operation at a time per pod: the plan asks for one, in init order, heal() last."""
    inits = [seen("log", EXITED, 0, sidecar=True), seen("proxy", EXITED, 0, sidecar=True)]
    obs = observed(inits, [seen("app", EXITED, 1)])
    pod = desired({"name": "log", "restartPolicy": "Always"}, SIDECAR)
    assert plan([pod], [obs]) == [RestartContainer(UID, "log", "2026-12-03T10:00:00Z")]
    memory = {UID: PodMemory(container_back_off={"log": "back-off", "proxy": "back-off"})}
    [stop] = plan([pod], [obs], memory=memory)
    assert isinstance(stop, Stop)
    assert stop.decision.culprits == ("app",)


def test_a_sidecar_whose_liveness_probe_failed_is_restarted() -> None:
    obs = observed([seen("proxy", RUNNING, sidecar=True)], [seen("app", RUNNING)])
    memory = {UID: PodMemory(unhealthy=frozenset({"proxy"}))}
    expected = RestartContainer(UID, "proxy", "liveness:2026-12-03T09:59:00Z")
    assert plan([desired(SIDECAR)], [obs], memory=memory) == [expected]


def test_after_an_agent_restart_completed_init_containers_are_not_run_again() -> None:
    """Podman keeps completed init containers, exited 0, in the pod: what a new agent process reads back."""
    obs = observed(
        [seen("first", EXITED, 0), seen("proxy", RUNNING, sidecar=True), seen("second", EXITED, 0)],
        [seen("app", RUNNING)],
    )
    assert plan([desired({"name": "first"}, SIDECAR, {"name": "second"})], [obs]) == []


def test_the_sidecars_of_a_pod_that_ended_are_stopped_last_one_first() -> None:
    inits = [seen("log", RUNNING, sidecar=True), seen("proxy", RUNNING, sidecar=True)]
    obs = observed(inits, [seen("app", EXITED, 0)])
    memory = {UID: PodMemory(finished="Succeeded")}
    pod = desired({"name": "log", "restartPolicy": "Always"}, SIDECAR, policy="Never")
    assert plan([pod], [obs], memory=memory) == [StopSidecars(UID, ("proxy", "log"), 10)]


def test_apps_that_succeeded_end_the_pod_while_its_sidecar_runs() -> None:
    obs = observed([seen("proxy", RUNNING, sidecar=True)], [seen("app", EXITED, 0)])
    [action] = plan([desired(SIDECAR, policy="OnFailure")], [obs])
    assert isinstance(action, Stop)
    assert action.decision.verdict is Verdict.SUCCEEDED


def test_progress_counts_done_init_containers_in_order() -> None:
    pod = desired({"name": "first"}, SIDECAR, {"name": "second"})
    obs = observed([seen("first", EXITED, 0), seen("proxy", RUNNING, sidecar=True), seen("second", RUNNING)])
    step = progress(pod.pod.spec, obs)
    assert (step.done, step.total, step.current and step.current.name) == (2, 3, "second")


# -- status -------------------------------------------------------------------------------------------------------
def status_of(pod: DesiredPod, obs: ObservedPod | None, memory: PodMemory = NOTHING) -> dict[str, Any]:
    status = pod_status(pod, obs, None, memory)
    PodStatus.model_validate(status)  # the master's model takes it
    return status


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_status_while_initializing_is_pending_not_initialized_with_the_containers_left() -> None:
    status = status_of(desired(*TWO), observed([seen("first", EXITED, 0), seen("second", RUNNING)]))
    assert status["phase"] == "Pending"
    assert condition(status, "Initialized") == {
        "type": "Initialized", "status": "False", "reason": "ContainersNotInitialized",
        "message": "containers with incomplete status: [second]",
    }  # fmt: skip
    assert [c["state"] for c in status["initContainerStatuses"]][1] == {
        "running": {"startedAt": "2026-12-03T09:59:00Z"}
    }
    assert status["initContainerStatuses"][0]["ready"] is True  # done
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert pod_summary({"spec": manifest(*TWO)["spec"], "status": status}).status == "Init:1/2"


def test_status_of_a_failed_init_container_is_init_error_and_failed_under_never() -> None:
    status = status_of(desired(*TWO, policy="Never"), observed([seen("first", EXITED, 2), seen("second", CREATED)]))
    assert status["phase"] == "Failed"
    assert status["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Error"
    assert pod_summary({"spec": manifest(*TWO)["spec"], "status": status}).status == "Init:Error"


def test_status_of_an_init_container_in_back_off_is_init_crash_loop_back_off_and_pending() -> None:
    memory = PodMemory(container_back_off={"first": "back-off 2s restarting failed container=first pod=default/web"})
    status = status_of(desired(*TWO, policy="OnFailure"), observed([seen("first", EXITED, 1)]), memory)
    assert status["phase"] == "Pending"
    assert status["initContainerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert pod_summary({"spec": manifest(*TWO)["spec"], "status": status}).status == "Init:CrashLoopBackOff"


def test_status_of_a_running_pod_with_a_sidecar_counts_the_sidecar_as_ready_and_initialized() -> None:
    obs = observed([seen("proxy", RUNNING, sidecar=True)], [seen("app", RUNNING)])
    status = status_of(desired(SIDECAR), obs)
    assert status["phase"] == "Running"
    assert condition(status, "Initialized")["status"] == "True"
    assert condition(status, "Ready")["status"] == "True"
    assert status["initContainerStatuses"][0]["started"] is True
    summary = pod_summary({"spec": manifest(SIDECAR)["spec"], "status": status})
    assert (summary.ready, summary.status) == ("2/2", "Running")


def test_a_sidecar_that_is_not_ready_keeps_the_pod_not_ready() -> None:
    obs = observed([seen("proxy", RUNNING, sidecar=True)], [seen("app", RUNNING)])
    status = status_of(desired(SIDECAR), obs, PodMemory(not_ready=frozenset({"proxy"})))
    assert condition(status, "Ready")["status"] == "False"


def test_status_before_the_pod_is_created_has_every_init_container_pod_initializing() -> None:
    status = status_of(desired(*TWO), None)
    assert status["phase"] == "Pending"
    assert [c["state"] for c in status["initContainerStatuses"]] == [{"waiting": {"reason": "PodInitializing"}}] * 2
    assert pod_summary({"spec": manifest(*TWO)["spec"], "status": status}).status == "Init:0/2"


def test_a_pod_without_init_containers_has_neither_init_statuses_nor_the_initialized_condition() -> None:
    data = manifest()
    del data["spec"]["initContainers"]
    pod = DesiredPod(UID, Pod.from_dict(data), "hash")
    status = status_of(pod, replace(observed([], [seen("app", RUNNING)])))
    assert "initContainerStatuses" not in status
    assert [c["type"] for c in status["conditions"]] == ["Ready"]


# -- kubectl's STATUS, READY and RESTARTS (printPod) -------------------------------------------------------------------
def init_status(name: str, state: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": IMAGE, "ready": False, "restartCount": 0, "state": state, **extra}


def test_print_pod_shows_init_exit_code_and_signal_when_the_termination_has_no_reason() -> None:
    spec = manifest(*TWO)["spec"]
    for terminated, shown in (({"exitCode": 3}, "Init:ExitCode:3"), ({"exitCode": 137, "signal": 9}, "Init:Signal:9")):
        status = {"phase": "Pending", "initContainerStatuses": [init_status("first", {"terminated": terminated})]}
        assert pod_summary({"spec": spec, "status": status}).status == shown


def test_print_pod_counts_init_restarts_while_initializing_and_only_sidecar_ones_after() -> None:
    spec = manifest({"name": "first"}, SIDECAR)["spec"]
    inits = [
        init_status("first", {"terminated": {"exitCode": 0, "reason": "Completed"}}, restartCount=2),
        init_status("proxy", {"running": {}}, restartCount=1, started=True, ready=True),
    ]
    apps = [{"name": "app", "image": IMAGE, "ready": True, "restartCount": 0, "state": {"running": {}}}]
    status = {
        "phase": "Running", "initContainerStatuses": inits, "containerStatuses": apps,
        "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
    }  # fmt: skip
    summary = pod_summary({"spec": spec, "status": status})
    assert (summary.ready, summary.status, summary.restarts) == ("2/2", "Running", "1")


def test_get_pod_qos_counts_init_containers() -> None:
    limits = {"cpu": "100m", "memory": "64Mi"}
    data = manifest({"name": "setup"})
    data["spec"]["containers"][0]["resources"] = {"limits": limits}
    assert qos_class(Pod.from_dict(data).spec) is QOSClass.BURSTABLE  # the init container sets nothing
    data["spec"]["initContainers"][0]["resources"] = {"limits": limits}
    assert qos_class(Pod.from_dict(data).spec) is QOSClass.GUARANTEED


def test_describe_pod_has_kubectls_init_containers_section_before_containers() -> None:
    obs = observed([seen("first", EXITED, 0), seen("second", RUNNING)])
    status = status_of(desired(*TWO), obs)
    text = describe_pod(
        {"metadata": {"name": "web", "namespace": "default"}, "spec": manifest(*TWO)["spec"], "status": status}
    )
    init, rest = text.split("Init Containers:\n", 1)[1].split("\nContainers:\n", 1)
    assert init.index("first:") < init.index("second:")
    assert "Reason:       Completed" in init
    assert "app:" in rest and "PodInitializing" in rest
    assert "Initialized" in rest


def test_the_master_resolves_config_for_a_pod_whose_init_container_alone_reads_a_config_map() -> None:
    env = [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}}]
    data = manifest({"name": "prepare", "env": env})
    assert uses_config(data)
    del data["spec"]["initContainers"][0]["env"]
    assert not uses_config(data)


# -- devices (extended resources) as the device manager allocates them ----------------------------------------------
SERIAL = {"resources": {"limits": {"edgekube.io/serial": 1}}}


def serial_pod(*inits: dict[str, Any]) -> Pod:
    data = manifest(*inits)
    data["spec"]["containers"][0].update(SERIAL)
    return Pod.from_dict(data)


def test_a_regular_init_containers_device_is_reused_by_the_app_container_after_it() -> None:
    given = assign(serial_pod({"name": "flash", **SERIAL}), {"edgekube.io/serial": ["/dev/ttyUSB0"]}, ())
    assert given == {"flash": ["/dev/ttyUSB0"], "app": ["/dev/ttyUSB0"]}


def test_a_sidecars_device_is_its_own_as_it_runs_beside_the_app() -> None:
    pod = serial_pod({**SIDECAR, **SERIAL})
    two = {"edgekube.io/serial": ["/dev/ttyUSB0", "/dev/ttyUSB1"]}
    assert assign(pod, two, ()) == {"proxy": ["/dev/ttyUSB0"], "app": ["/dev/ttyUSB1"]}
    with pytest.raises(RuntimeFailure, match="Requested: 1, Available: 0"):
        assign(pod, {"edgekube.io/serial": ["/dev/ttyUSB0"]}, ())


def test_an_init_container_is_told_its_device_in_its_env() -> None:
    pod = serial_pod({"name": "flash", **SERIAL})
    advertised = {"edgekube.io/serial": ["/dev/ttyUSB0"]}
    told = with_device_env(pod, assign(pod, advertised, ()), advertised)
    assert told.spec.init_containers is not None
    assert [(e.name, e.value) for e in told.spec.init_containers[0].env] == [
        ("EDGEKUBE_DEVICES_SERIAL", "/dev/ttyUSB0")
    ]


def test_describe_rc_shows_the_templates_init_containers() -> None:
    template = {"metadata": {"labels": {"app": "web"}}, "spec": manifest(*TWO)["spec"]}
    rc = {"kind": "ReplicationController", "metadata": {"name": "web", "namespace": "default"},
          "spec": {"replicas": 1, "selector": {"app": "web"}, "template": template}}  # fmt: skip
    text = describe_controller(rc, [])
    assert text.index("  Init Containers:") < text.index("   first:") < text.index("  Containers:")


def test_a_pod_that_succeeded_shows_completed_though_its_stopped_sidecar_exited_143() -> None:
    obs = observed([seen("proxy", EXITED, 143, sidecar=True)], [seen("app", EXITED, 0)])
    status = status_of(desired(SIDECAR, policy="Never"), obs, PodMemory(finished="Succeeded"))
    assert status["phase"] == "Succeeded"
    assert condition(status, "Initialized")["status"] == "True"
    summary = pod_summary({"spec": manifest(SIDECAR)["spec"], "status": status})
    assert (summary.ready, summary.status) == ("0/2", "Completed")


def test_validate_init_containers_validates_a_sidecars_lifecycle_as_an_apps() -> None:
    hook = {"preStop": {"sleep": {"seconds": 60}}}
    text = problems({**SIDECAR, "lifecycle": hook}, terminationGracePeriodSeconds=30)
    assert (
        "spec.initContainers[0].lifecycle.preStop.sleep: Invalid value: 60: must be non-negative and less than " in text
    )
    Pod.from_dict(manifest({**SIDECAR, "lifecycle": {"preStop": {"sleep": {"seconds": 5}}}}))


def test_the_leds_count_a_pod_whose_init_container_crash_loops_as_failing_not_starting() -> None:
    memory = PodMemory(container_back_off={"first": "back-off 2s restarting failed container=first pod=default/web"})
    status = status_of(desired(*TWO, policy="OnFailure"), observed([seen("first", EXITED, 1)]), memory)
    assert led_pods.count([status]) == (0, 1)
    assert led_pods.count([status_of(desired(*TWO), observed([seen("first", RUNNING)]))]) == (1, 0)
