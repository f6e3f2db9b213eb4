"""The PodRuntime contract for init containers, run here on FakeRuntime and in tests/integration on PodmanRuntime.

A pod with init containers is created whole but started only as far as its sandbox; the agent then starts its
containers one by one (start_containers), stops single ones (stop_containers), and a restarted agent reads every
init container back, exited or running, in spec order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from edgekube.agent.runtime.fake import FakeRuntime
from edgekube.agent.runtime.protocol import ContainerRunState, ObservedPod, PodRuntime
from edgekube.model.errors import NotFoundError
from edgekube.model.names import NodeName, PodUID
from edgekube.model.pod import Pod
from tests.unit.test_runtime_contract import IDLE, make_pod, new_uid, wait_for

CREATED, RUNNING, EXITED = ContainerRunState.CREATED, ContainerRunState.RUNNING, ContainerRunState.EXITED


@dataclass
class InitHarness:
    runtime: PodRuntime
    image: str
    reopen: Callable[[], PodRuntime]  # another instance on the same engine and node
    kill: Callable[[PodUID, str], None]  # `podman kill` one container (init or app) from outside


def sidecar_pod(image: str) -> Pod:
    """`setup` (init), `proxy` (sidecar), then `app`: all idle until stopped."""
    inits = [
        {"name": "setup", "image": image, "command": IDLE},
        {"name": "proxy", "image": image, "command": IDLE, "restartPolicy": "Always"},
    ]
    return make_pod("init", image, {"name": "app", "image": image, "command": IDLE}, initContainers=inits)


def states(pod: ObservedPod) -> dict[str, ContainerRunState]:
    return {c.name: c.state for c in (*pod.init_containers, *pod.containers)}


class InitContainerContract:
    """Behaviour every PodRuntime must have for init containers; a subclass provides the `init_harness` fixture."""

    def test_a_pod_with_init_containers_is_created_with_only_its_sandbox_started(
        self, init_harness: InitHarness
    ) -> None:
        rt, uid = init_harness.runtime, new_uid()
        created = rt.create_pod(sidecar_pod(init_harness.image), uid, "h1")
        assert created.infra_running
        assert [(c.name, c.sidecar) for c in created.init_containers] == [("setup", False), ("proxy", True)]
        assert states(created) == {"setup": CREATED, "proxy": CREATED, "app": CREATED}
        [listed] = [p for p in rt.list_pods() if p.uid == uid]
        assert states(listed) == states(created)

    def test_start_containers_runs_one_and_an_exited_one_runs_again_with_the_same_id(
        self, init_harness: InitHarness
    ) -> None:
        rt, uid = init_harness.runtime, new_uid()
        rt.create_pod(sidecar_pod(init_harness.image), uid, "h1")
        first = rt.start_containers(uid, ["setup"])
        assert states(first) == {"setup": RUNNING, "proxy": CREATED, "app": CREATED}
        init_harness.kill(uid, "setup")
        wait_for(rt, uid, lambda p: states(p)["setup"] is EXITED)
        again = rt.start_containers(uid, ["setup"])
        assert states(again)["setup"] is RUNNING
        assert again.init_containers[0].container_id == first.init_containers[0].container_id

    def test_stop_containers_stops_only_the_named_ones(self, init_harness: InitHarness) -> None:
        rt, uid = init_harness.runtime, new_uid()
        rt.create_pod(sidecar_pod(init_harness.image), uid, "h1")
        rt.start_containers(uid, ["proxy", "app"])
        rt.stop_containers(uid, ["proxy"], grace_seconds=2)
        [after] = [p for p in rt.list_pods() if p.uid == uid]
        assert states(after) == {"setup": CREATED, "proxy": EXITED, "app": RUNNING}

    def test_a_new_instance_reads_the_init_containers_back_in_order_exited_or_running(
        self, init_harness: InitHarness
    ) -> None:
        rt, uid = init_harness.runtime, new_uid()
        rt.create_pod(sidecar_pod(init_harness.image), uid, "h1")
        rt.start_containers(uid, ["setup"])
        rt.stop_containers(uid, ["setup"], grace_seconds=2)
        rt.start_containers(uid, ["proxy"])
        [adopted] = [p for p in init_harness.reopen().list_pods() if p.uid == uid]
        assert [(c.name, c.state, c.sidecar) for c in adopted.init_containers] == [
            ("setup", EXITED, False),
            ("proxy", RUNNING, True),
        ]

    def test_restart_pod_starts_a_stopped_sidecar_and_the_apps_but_not_a_completed_init_container(
        self, init_harness: InitHarness
    ) -> None:
        rt, uid = init_harness.runtime, new_uid()
        rt.create_pod(sidecar_pod(init_harness.image), uid, "h1")
        rt.start_containers(uid, ["setup"])
        rt.stop_containers(uid, ["setup"], grace_seconds=2)
        rt.start_containers(uid, ["proxy"])
        rt.start_containers(uid, ["app"])
        init_harness.kill(uid, "proxy")
        init_harness.kill(uid, "app")
        wait_for(rt, uid, lambda p: states(p)["proxy"] is EXITED and states(p)["app"] is EXITED)
        restarted = rt.restart_pod(uid, grace_seconds=2)
        assert states(restarted) == {"setup": EXITED, "proxy": RUNNING, "app": RUNNING}

    def test_remove_pod_removes_the_init_containers_too(self, init_harness: InitHarness) -> None:
        rt, uid = init_harness.runtime, new_uid()
        rt.create_pod(sidecar_pod(init_harness.image), uid, "h1")
        rt.start_containers(uid, ["proxy", "app"])
        rt.remove_pod(uid, grace_seconds=2)
        assert [p for p in rt.list_pods() if p.uid == uid] == []

    def test_create_is_idempotent_with_init_containers(self, init_harness: InitHarness) -> None:
        rt, uid = init_harness.runtime, new_uid()
        first = rt.create_pod(sidecar_pod(init_harness.image), uid, "h1")
        again = rt.create_pod(sidecar_pod(init_harness.image), uid, "h1")
        assert again.pod_id == first.pod_id
        assert [c.container_id for c in again.init_containers] == [c.container_id for c in first.init_containers]

    def test_starting_an_unknown_container_or_pod_is_not_found(self, init_harness: InitHarness) -> None:
        rt, uid = init_harness.runtime, new_uid()
        rt.create_pod(sidecar_pod(init_harness.image), uid, "h1")
        with pytest.raises(NotFoundError):
            rt.start_containers(uid, ["nope"])
        with pytest.raises(NotFoundError):
            rt.start_containers(new_uid(), ["app"])
        with pytest.raises(NotFoundError):
            rt.stop_containers(new_uid(), ["app"])


class TestFakeInitContainerContract(InitContainerContract):
    @pytest.fixture
    def init_harness(self) -> InitHarness:
        rt = FakeRuntime(NodeName("fake-init"))
        image = "localhost/edgekube/busybox:1"
        rt.add_image(image)
        return InitHarness(rt, image, reopen=rt.reopen, kill=rt.kill_container)
