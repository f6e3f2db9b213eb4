"""Lifecycle hooks as the agent runs them (agent/hooks.py) on the fake runtime, and their effect on restartPolicy.

Each test creates a pod on FakeRuntime, runs its postStart or preStop hooks through Hooks, and reads the
outcome: which containers failed, the events recorded, the grace left for the stop signal.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.events import EventRecorder, PodRef
from edgekube.agent.hooks import MIN_GRACE_SECONDS, Hooks
from edgekube.agent.restarts import Verdict, decide
from edgekube.agent.runtime.fake import FakeRuntime
from edgekube.agent.runtime.protocol import ObservedPod
from edgekube.model.names import NodeName, PodUID
from edgekube.model.pod import Pod, RestartPolicy
from tests.unit.test_runtime_contract import closed_port, make_pod, new_uid
from tests.unit.test_volumes_agent import Node

IMAGE = "localhost/edgekube/busybox:1"


class _Clock:
    """Monotonic seconds that only move when a hook sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def runtime() -> FakeRuntime:
    rt = FakeRuntime(NodeName("node-a"))
    rt.add_image(IMAGE)
    return rt


@pytest.fixture
def clock() -> _Clock:
    return _Clock()


@pytest.fixture
def events() -> EventRecorder:
    return EventRecorder("node-a")


@pytest.fixture
def hooks(runtime: FakeRuntime, events: EventRecorder, clock: _Clock) -> Hooks:
    return Hooks(runtime, events, clock=clock, sleep=clock.sleep)


class _Answer(BaseHTTPRequestHandler):
    """Answers every GET with 500 and records the path: a lifecycle hook succeeds on any HTTP answer."""

    paths: list[str] = []

    def do_GET(self) -> None:
        self.paths.append(self.path)
        self.send_response(500)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_port() -> Iterator[int]:
    _Answer.paths = []
    server = HTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _create(runtime: FakeRuntime, *lifecycles: dict[str, Any], grace: int = 30) -> tuple[Pod, ObservedPod]:
    containers = [
        {"name": f"c{i}", "image": IMAGE, "lifecycle": lc, "ports": [{"name": "admin", "containerPort": 1}]}
        for i, lc in enumerate(lifecycles)
    ]
    pod = make_pod("hooked", IMAGE, *containers, terminationGracePeriodSeconds=grace)
    uid = new_uid()
    observed = runtime.create_pod(pod, uid, "h")
    return pod, observed


def _ref(observed: ObservedPod) -> PodRef:
    return PodRef(observed.namespace, observed.name, observed.uid)


def _reasons(events: EventRecorder) -> list[tuple[str, str, str]]:
    return [(e["reason"], e["message"], e["type"]) for e in events.events()]


def test_a_post_start_exec_hook_that_exits_0_fails_nothing(
    runtime: FakeRuntime, hooks: Hooks, events: EventRecorder
) -> None:
    pod, observed = _create(runtime, {"postStart": {"exec": {"command": ["true"]}}})
    assert hooks.post_start(_ref(observed), pod.spec.containers, observed) == frozenset()
    assert _reasons(events) == []


def test_a_failed_post_start_hook_names_its_container_and_records_the_kubelets_event_without_its_output(
    runtime: FakeRuntime, hooks: Hooks, events: EventRecorder
) -> None:
    pod, observed = _create(
        runtime, {"postStart": {"exec": {"command": ["register"]}}}, {"postStart": {"exec": {"command": ["true"]}}}
    )
    runtime.engine.exec_results[(observed.uid, "c0")] = (3, "token=s3cret")
    assert hooks.post_start(_ref(observed), pod.spec.containers, observed) == frozenset({"c0"})
    assert _reasons(events) == [("FailedPostStartHook", "PostStartHook failed", "Warning")]
    assert "s3cret" not in repr(events.events())


def test_post_start_skips_a_container_that_is_not_running(
    runtime: FakeRuntime, hooks: Hooks, events: EventRecorder
) -> None:
    pod, observed = _create(runtime, {"postStart": {"exec": {"command": ["false"]}}})
    runtime.exit_container(observed.uid, "c0", 1)
    [now] = [p for p in runtime.list_pods() if p.uid == observed.uid]
    assert hooks.post_start(_ref(now), pod.spec.containers, now) == frozenset()


def test_an_http_hook_succeeds_on_any_http_answer_even_500_and_uses_named_ports(
    runtime: FakeRuntime, hooks: Hooks, http_port: int
) -> None:
    """The kubelet's runHTTPHandler returns only the request's error: the status code does not matter."""
    handler = {"httpGet": {"host": "127.0.0.1", "port": "admin", "path": "/started"}}
    pod, observed = _create(runtime, {"postStart": handler})
    pod.spec.containers[0].ports[0].container_port = http_port
    assert hooks.post_start(_ref(observed), pod.spec.containers, observed) == frozenset()
    assert _Answer.paths == ["/started"]


def test_an_http_hook_that_cannot_connect_fails(runtime: FakeRuntime, hooks: Hooks, events: EventRecorder) -> None:
    handler = {"httpGet": {"host": "127.0.0.1", "port": closed_port(), "path": "/started"}}
    pod, observed = _create(runtime, {"postStart": handler})
    assert hooks.post_start(_ref(observed), pod.spec.containers, observed) == frozenset({"c0"})
    assert _reasons(events) == [("FailedPostStartHook", "PostStartHook failed", "Warning")]


def test_a_tcp_socket_hook_fails_as_the_kubelets_invalid_handler(runtime: FakeRuntime, hooks: Hooks) -> None:
    """tcpSocket passes validation but the kubelet cannot run it ("Cannot run handler: invalid handler")."""
    pod, observed = _create(runtime, {"postStart": {"tcpSocket": {"port": 80}}})
    assert hooks.post_start(_ref(observed), pod.spec.containers, observed) == frozenset({"c0"})


def test_a_sleep_hook_sleeps_its_seconds(runtime: FakeRuntime, hooks: Hooks, clock: _Clock) -> None:
    pod, observed = _create(runtime, {"postStart": {"sleep": {"seconds": 3}}})
    assert hooks.post_start(_ref(observed), pod.spec.containers, observed) == frozenset()
    assert clock.slept == [3.0]


def test_pre_stop_time_counts_against_the_grace_period(runtime: FakeRuntime, hooks: Hooks, clock: _Clock) -> None:
    _, observed = _create(runtime, {"preStop": {"sleep": {"seconds": 4}}}, grace=10)
    assert hooks.pre_stop(_ref(observed), observed, 10) == 6
    assert clock.slept == [4.0]


def test_the_stop_signal_gets_at_least_two_seconds_after_pre_stop_hooks(runtime: FakeRuntime, hooks: Hooks) -> None:
    """killContainer: `if gracePeriod < minimumGracePeriodInSeconds { gracePeriod = minimumGracePeriodInSeconds }`."""
    _, observed = _create(runtime, {"preStop": {"sleep": {"seconds": 10}}}, grace=10)
    assert hooks.pre_stop(_ref(observed), observed, 10) == MIN_GRACE_SECONDS


def test_without_pre_stop_hooks_the_grace_is_unchanged(runtime: FakeRuntime, hooks: Hooks, clock: _Clock) -> None:
    _, observed = _create(runtime, {"postStart": {"sleep": {"seconds": 1}}}, grace=1)
    assert hooks.pre_stop(_ref(observed), observed, 1) == 1
    assert clock.slept == []


def test_a_grace_of_zero_runs_no_pre_stop_hook(runtime: FakeRuntime, hooks: Hooks, clock: _Clock) -> None:
    """killContainer runs the hook only `if ... gracePeriod > 0` (an eviction with no grace skips it)."""
    _, observed = _create(runtime, {"preStop": {"sleep": {"seconds": 1}}})
    assert hooks.pre_stop(_ref(observed), observed, 0) == 0
    assert clock.slept == []


def test_a_failed_pre_stop_hook_is_an_event_and_the_stop_goes_on(
    runtime: FakeRuntime, hooks: Hooks, events: EventRecorder
) -> None:
    _, observed = _create(runtime, {"preStop": {"exec": {"command": ["false"]}}}, grace=5)
    assert hooks.pre_stop(_ref(observed), observed, 5) == 5
    assert _reasons(events) == [("FailedPreStopHook", "PreStopHook failed", "Warning")]


def test_pre_stop_runs_from_what_the_runtime_recorded_without_the_pod_spec(
    runtime: FakeRuntime, hooks: Hooks, clock: _Clock
) -> None:
    """A pod deleted from the desired state: only the runtime's record of its containers is left."""
    _, observed = _create(runtime, {"preStop": {"sleep": {"seconds": 2}}})
    [listed] = [p for p in runtime.reopen().list_pods() if p.uid == observed.uid]
    hooks.pre_stop(_ref(listed), listed, 30)
    assert clock.slept == [2.0]


@pytest.mark.parametrize(
    ("policy", "verdict"),
    [
        (RestartPolicy.ALWAYS, Verdict.RESTART),
        (RestartPolicy.ON_FAILURE, Verdict.RESTART),
        (RestartPolicy.NEVER, Verdict.FAILED),
    ],
)
def test_a_failed_post_start_hook_fails_its_container_per_restart_policy(
    runtime: FakeRuntime, policy: RestartPolicy, verdict: Verdict
) -> None:
    """ "If the handler fails, the container is terminated and restarted according to its restart policy." """
    _, observed = _create(runtime, {"postStart": {"exec": {"command": ["false"]}}}, {})
    decision = decide(policy, observed.containers, hook_failed=frozenset({"c0"}))
    assert decision.verdict is verdict
    assert decision.culprits == ("c0",)
    assert decision.why == "container c0 failed its postStart hook"


# -- through the agent, on the fake runtime ------------------------------------------------------------------


def test_the_agent_restarts_a_pod_whose_post_start_hook_failed_and_runs_the_hook_again(tmp_path: Path) -> None:
    node = Node(tmp_path / "agent")
    uid = PodUID("uid-hooked")
    node.runtime.engine.exec_results[(uid, "app")] = (1, "not registered")
    pod = {
        "metadata": {"name": "hooked", "namespace": "default", "uid": uid},
        "spec": {"containers": [{"name": "app", "image": IMAGE,
                                 "lifecycle": {"postStart": {"exec": {"command": ["register"]}}}}]},
    }  # fmt: skip
    try:
        node.want(pod)
        node.settle()  # created, the hook fails, the pod is stopped and (first back-off: none) started again
        assert set(node.events("FailedPostStartHook")) == {"PostStartHook failed"}
        assert "FailedPostStartHook" in node.events("Killing")
        assert node.status(uid)["containerStatuses"][0]["ready"] is False
        failed_runs = node.runtime.calls.count(("restart", uid)) + 1
        node.runtime.engine.exec_results[(uid, "app")] = (0, "")  # the hook succeeds from now on
        node.clock.now += 600  # past any back-off
        node.settle()
        status = node.status(uid)
        assert status["containerStatuses"][0]["restartCount"] == failed_runs
        assert status["containerStatuses"][0]["ready"] is True
        assert "running" in status["containerStatuses"][0]["state"]
    finally:
        node.agent.prober.stop()


def test_a_pre_stop_hook_still_running_when_the_grace_ends_is_left_behind_and_the_stop_goes_on(
    events: EventRecorder,
) -> None:
    """executePreStopHook waits at most the grace period; the container is then signalled anyway."""
    release = threading.Event()
    started = threading.Event()

    class Hanging(FakeRuntime):
        def exec(
            self, uid: PodUID, container: str, command: list[str], timeout: float, max_output: int = 10240
        ) -> tuple[int, str]:
            started.set()
            release.wait(30)
            return 0, ""

    runtime = Hanging(NodeName("node-a"))
    runtime.add_image(IMAGE)
    _, observed = _create(runtime, {"preStop": {"exec": {"command": ["drain"]}}}, grace=1)
    try:
        assert Hooks(runtime, events).pre_stop(_ref(observed), observed, 1) == MIN_GRACE_SECONDS
        assert started.is_set() and not release.is_set()  # returned while the hook still ran
        assert _reasons(events) == []  # not a failure: it ran out of time
    finally:
        release.set()
