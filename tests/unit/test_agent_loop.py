"""The agent's self-healing on FakeRuntime: shared fate, restart policies, back-off, counts on disk, events.

No broker and no Podman: the in-memory bus (tests/support/membus.py) stands in for MQTT and the clock is
injected, so back-off is tested without sleeping. Background stops and restarts are waited for with `Agent.wait_idle()`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.app import Agent, AgentConfig
from edgekube.agent.events import EventRecorder, PodRef
from edgekube.agent.runtime.fake import FakeRuntime
from edgekube.bus import topics
from edgekube.model.errors import BusError, RuntimeFailure
from edgekube.model.event import Event
from edgekube.model.names import NodeName, PodUID
from edgekube.model.status import PodStatus
from edgekube.model.wire import EventReport, NodeDesired, NodeReport
from tests.support.membus import MemoryBroker, MemoryBus

NODE = NodeName("pi-1")
IMAGE = "localhost/edgekube/busybox:1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Node:
    """One agent on a fake engine; `restart_agent()` makes a new agent on the same disk and engine."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.runtime = FakeRuntime(NODE)
        self.runtime.add_image(IMAGE)
        self.clock = Clock()
        self.broker = MemoryBroker(inline=True)
        self.bus = self._bus()
        self.agent = self._agent()
        self.generation = 0

    def _bus(self) -> MemoryBus:
        """Started here: these tests drive `reconcile()` themselves and never start the agent's threads."""
        return self.broker.client(f"edgekube-agent-{NODE}", persistent=True).start()

    def _agent(self) -> Agent:
        config = AgentConfig(node_name=NODE, state_dir=self.state_dir)
        return Agent(config, self.runtime, self.bus, clock=self.clock)

    def restart_agent(self) -> None:
        self.agent.prober.stop()
        self.runtime = self.runtime.reopen()
        self.bus.close()
        self.bus = self._bus()
        self.agent = self._agent()

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
        assert reports, "no status report published"
        [pod] = [p for p in reports[-1].pods if p.uid == uid]
        PodStatus.model_validate(pod.status)
        return pod.status

    def ids(self, uid: str) -> list[str]:
        [pod] = [p for p in self.runtime.list_pods() if p.uid == uid]
        return [c.container_id for c in pod.containers]

    def events(self) -> list[tuple[str, str]]:
        return [(e["reason"], e["message"]) for e in self.agent.events.events()]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path / "agent")
    yield n
    n.agent.prober.stop()


def pod(name: str, *containers: str, policy: str = "Always", **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
        "spec": {
            "restartPolicy": policy,
            "containers": [{"name": c, "image": IMAGE, **extra.get(c, {})} for c in containers or ("app",)],
        },
    }


def states(status: dict[str, Any]) -> list[str]:
    return [next(iter(c["state"])) for c in status["containerStatuses"]]


def restarts(status: dict[str, Any]) -> list[int]:
    return [c["restartCount"] for c in status["containerStatuses"]]


def uid(name: str) -> PodUID:
    return PodUID(f"uid-{name}")


# -- shared fate ------------------------------------------------------------------------------------------------


def test_a_killed_container_restarts_the_whole_pod_keeping_container_ids(node: Node) -> None:
    node.want(pod("x", "web", "side"))
    node.settle()
    before = node.ids("uid-x")
    assert node.status("uid-x")["phase"] == "Running"
    node.runtime.kill_container(uid("x"), "web")
    node.settle()
    assert node.ids("uid-x") == before
    status = node.status("uid-x")
    assert (status["phase"], states(status), restarts(status)) == ("Running", ["running", "running"], [1, 1])
    web, side = status["containerStatuses"]
    assert web["lastState"]["terminated"]["exitCode"] == 137
    assert side["lastState"]["terminated"]["exitCode"] == 143  # stopped by shared fate
    assert ("stop", "uid-x") in node.runtime.calls and ("restart", "uid-x") in node.runtime.calls
    assert ("Killing", "Stopping container side: container web exited with code 137") in node.events()
    assert ("Started", "Started container side") in node.events()


def test_a_crash_loop_backs_off_and_shows_crash_loop_back_off(node: Node) -> None:
    node.want(pod("x"))
    node.settle()
    delays = []
    for _ in range(4):
        node.runtime.exit_container(uid("x"), "app", 1)
        node.settle()
        status = node.status("uid-x")
        waiting = status["containerStatuses"][0]["state"].get("waiting")
        if waiting is None:
            delays.append(0)
            continue
        assert waiting["reason"] == "CrashLoopBackOff"
        assert status["phase"] == "Running" and status["containerStatuses"][0]["ready"] is False
        delay = int(waiting["message"].split()[1].rstrip("s"))
        assert waiting["message"] == f"back-off {delay}s restarting failed container=app pod=default/x"
        delays.append(delay)
        node.clock.now += delay - 0.1
        node.settle()
        assert "waiting" in node.status("uid-x")["containerStatuses"][0]["state"]  # not yet
        node.clock.now += 0.1
        node.settle()
    assert delays == [0, 1, 2, 4]
    status = node.status("uid-x")
    assert (states(status), restarts(status)) == (["running"], [4])
    assert status["containerStatuses"][0]["lastState"]["terminated"] == {"exitCode": 1, "reason": "Error"} | {
        k: v for k, v in status["containerStatuses"][0]["lastState"]["terminated"].items() if k.endswith("At")
    }
    assert ("BackOff", "Back-off restarting failed container app in pod default/x") in node.events()
    [backoff] = [e for e in node.agent.events.events() if e["reason"] == "BackOff"]
    assert backoff["count"] == 3 and backoff["type"] == "Warning"


def test_back_off_resets_after_a_minute_of_quiet_running(node: Node) -> None:
    node.want(pod("x"))
    node.settle()
    for _ in range(3):  # restarts after 0, 1 and 2 seconds
        node.runtime.exit_container(uid("x"), "app", 1)
        node.settle()
        node.clock.now += 5
        node.settle()
    node.clock.now += 60
    node.runtime.exit_container(uid("x"), "app", 1)
    node.settle()
    assert states(node.status("uid-x")) == ["running"]  # restarted at once again
    assert restarts(node.status("uid-x")) == [4]


def test_restart_policy_never_fails_the_pod_and_stops_the_rest(node: Node) -> None:
    node.want(pod("x", "job", "side", policy="Never"))
    node.settle()
    node.runtime.exit_container(uid("x"), "job", 2)
    node.settle()
    status = node.status("uid-x")
    assert (status["phase"], states(status), restarts(status)) == ("Failed", ["terminated", "terminated"], [0, 0])
    assert ("restart", "uid-x") not in node.runtime.calls
    node.clock.now += 3600
    node.settle()
    assert node.status("uid-x")["phase"] == "Failed"
    assert ("restart", "uid-x") not in node.runtime.calls


def test_on_failure_exit_zero_succeeds_without_restart(node: Node) -> None:
    node.want(pod("x", "a", "b", policy="OnFailure"))
    node.settle()
    node.runtime.exit_container(uid("x"), "a", 0)
    node.settle()
    assert (node.status("uid-x")["phase"], states(node.status("uid-x"))) == ("Running", ["terminated", "running"])
    node.runtime.exit_container(uid("x"), "b", 0)
    node.settle()
    assert node.status("uid-x")["phase"] == "Succeeded"
    assert ("restart", "uid-x") not in node.runtime.calls


def test_on_failure_non_zero_restarts_the_pod(node: Node) -> None:
    node.want(pod("x", "a", "b", policy="OnFailure"))
    node.settle()
    node.runtime.exit_container(uid("x"), "a", 0)
    node.runtime.exit_container(uid("x"), "b", 1)
    node.settle()
    status = node.status("uid-x")
    assert (status["phase"], states(status), restarts(status)) == ("Running", ["running", "running"], [1, 1])


# -- what outlives the agent --------------------------------------------------------------------------------------


def test_restart_counts_survive_an_agent_restart_and_are_written_only_on_restarts(node: Node) -> None:
    node.want(pod("x"))
    node.settle()
    node.runtime.kill_container(uid("x"), "app")
    node.settle(5)
    assert node.agent.ledger.writes == 1
    for _ in range(10):
        node.agent.reconcile()  # resyncs write nothing
    assert node.agent.ledger.writes == 1
    saved = json.loads((node.state_dir / "restarts.json").read_text())
    assert saved["pods"]["uid-x"]["restartCount"] == {"app": 1}
    node.restart_agent()
    node.settle()
    assert restarts(node.status("uid-x")) == [1]
    assert node.status("uid-x")["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 137
    assert node.agent.ledger.writes == 0


def test_after_a_reboot_the_pods_come_back_from_the_local_copy(node: Node) -> None:
    node.want(pod("x", "web", "side"), pod("done", policy="Never"))
    node.settle()
    node.runtime.exit_container(uid("done"), "app", 0)
    node.settle()
    assert node.status("uid-done")["phase"] == "Succeeded"
    before = node.ids("uid-x")
    node.runtime.power_off()
    node.restart_agent()  # no broker: the desired state comes from state_dir/desired.json
    node.settle()
    assert node.ids("uid-x") == before
    status = node.status("uid-x")
    assert (status["phase"], states(status), restarts(status)) == ("Running", ["running", "running"], [1, 1])
    assert status["podIP"]
    # A finished job stays finished after the reboot.
    assert node.status("uid-done")["phase"] == "Succeeded"
    assert ("restart", "uid-done") not in node.runtime.calls


def test_a_liveness_failure_kills_and_restarts_the_pod(node: Node) -> None:
    probe = {"livenessProbe": {"exec": {"command": ["check"]}, "failureThreshold": 1}}
    node.want(pod("x", "web", "side", web=probe))
    node.settle()
    node.runtime.set_exec_result(uid("x"), "web", 1, "unhealthy!")
    node.clock.now += 10  # the probe's period
    node.agent.reconcile()

    def unhealthy() -> bool:  # the prober runs on real threads
        return node.agent.prober.unhealthy(uid("x")) == {"web"}

    deadline = time.monotonic() + 5
    while not unhealthy() and time.monotonic() < deadline:
        time.sleep(0.01)
    node.runtime.set_exec_result(uid("x"), "web", 0)
    node.settle()
    assert restarts(node.status("uid-x")) == [1, 1]
    reasons = node.events()
    assert ("Unhealthy", "container web: Liveness probe failed: command ['check'] exited with 1: unhealthy!") in reasons
    assert ("Killing", "Container web failed liveness probe, will be restarted") in reasons


# -- create failures ----------------------------------------------------------------------------------------------


def creates(node: Node, name: str) -> int:
    return len([c for c in node.runtime.calls if c == ("create", f"uid-{name}")])


def waiting(status: dict[str, Any]) -> tuple[str, str, str]:
    [c] = status["containerStatuses"]
    w = c["state"]["waiting"]
    return status["phase"], w["reason"], w["message"]


@pytest.mark.parametrize("policy", ["Always", "Never"])
def test_an_image_that_cannot_be_pulled_keeps_the_pod_pending_errimagepull_then_imagepullbackoff(
    node: Node, policy: str
) -> None:
    node.runtime.make_image_missing("registry.example/nope:1")
    node.want(pod("x", app={"image": "registry.example/nope:1"}, policy=policy))
    node.settle(1)
    assert waiting(node.status("uid-x")) == (
        "Pending", "ErrImagePull", "failed to pull image 'registry.example/nope:1': not found"
    )  # fmt: skip
    assert "reason" not in node.status("uid-x")
    node.settle(1)
    back_off = ("Pending", "ImagePullBackOff", 'Back-off pulling image "registry.example/nope:1"')
    assert waiting(node.status("uid-x")) == back_off
    node.settle(3)
    assert creates(node, "x") == 1  # the kubelet's image back-off: no retry at once
    assert waiting(node.status("uid-x")) == back_off
    events = node.events()
    assert events.index(("Failed", "Error: ErrImagePull")) < events.index(("BackOff", back_off[2]))
    assert ("Failed", 'Failed to pull image "registry.example/nope:1": not found') in events
    assert ("Failed", "Error: ImagePullBackOff") in events


def test_image_pull_back_off_is_10s_doubling_and_the_pod_starts_at_the_retry_that_finds_the_image(
    node: Node,
) -> None:
    node.runtime.make_image_missing("registry.example/nope:1")
    node.want(pod("x", app={"image": "registry.example/nope:1"}))
    node.settle(2)
    node.clock.now += 9.9
    node.settle(1)
    assert creates(node, "x") == 1
    node.clock.now += 0.1
    node.settle(1)
    assert creates(node, "x") == 2
    assert node.status("uid-x")["phase"] == "Pending"
    node.clock.now += 19.9
    node.settle(2)
    assert creates(node, "x") == 2  # the second back-off is 20 s
    node.runtime.add_image("registry.example/nope:1")  # e.g. `podman import` on the node
    node.clock.now += 0.1
    node.settle()
    assert creates(node, "x") == 3
    assert node.status("uid-x")["phase"] == "Running"


def test_image_never_pull_keeps_the_pod_pending_with_errimageneverpull(node: Node) -> None:
    node.runtime.make_image_missing("registry.example/nope:1")
    node.want(pod("x", app={"image": "registry.example/nope:1", "imagePullPolicy": "Never"}, policy="Never"))
    node.settle(3)
    never = 'Container image "registry.example/nope:1" is not present with pull policy of Never'
    assert waiting(node.status("uid-x")) == ("Pending", "ErrImageNeverPull", never)
    assert ("ErrImageNeverPull", never) in node.events()
    assert ("Failed", "Error: ErrImageNeverPull") in node.events()
    node.runtime.add_image("registry.example/nope:1")
    node.clock.now += 10
    node.settle()
    assert node.status("uid-x")["phase"] == "Running"


def test_create_failures_back_off_and_report_failed_with_the_reason(node: Node) -> None:
    original = node.runtime.create_pod

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeFailure("no such device", reason="CreateContainerError")

    node.runtime.create_pod = broken  # type: ignore[method-assign]
    node.want(pod("x"))
    node.settle(2)
    status = node.status("uid-x")
    assert (status["phase"], status["reason"]) == ("Failed", "CreateContainerError")
    assert ("BackOff", "Back-off creating pod (CreateContainerError)") in node.events()
    node.runtime.create_pod = original  # type: ignore[method-assign]
    node.clock.now += 2
    node.settle()
    assert node.status("uid-x")["phase"] == "Running"


def test_a_failed_restart_is_backed_off_too(node: Node) -> None:
    node.want(pod("x"))
    node.settle()
    node.runtime.exit_container(uid("x"), "app", 1)
    original = node.runtime.restart_pod

    def broken(uid: PodUID, grace_seconds: int = 10) -> Any:
        raise RuntimeFailure("cannot start", reason="RunContainerError")

    node.runtime.restart_pod = broken  # type: ignore[method-assign]
    node.settle()
    assert ("Failed", "Error: RunContainerError: cannot start") in node.events()
    node.runtime.restart_pod = original  # type: ignore[method-assign]
    node.clock.now += 1
    node.settle()
    assert states(node.status("uid-x")) == ["running"]


# -- events -------------------------------------------------------------------------------------------------------


def test_events_are_published_in_batches_and_kept_while_the_broker_is_away(node: Node) -> None:
    node.broker.outage()
    node.want(pod("x"))
    node.settle()
    assert not node.broker.published(topics.node_events(NODE))
    assert not node.broker.published(topics.node_status(NODE))  # not queued either
    node.broker.recover()
    node.settle(1)
    reports = [EventReport.decode(m.payload) for m in node.broker.published(topics.node_events(NODE))]
    # The node's own events (its LEDs showed CutOff meanwhile, docs/leds.md) come in a batch of their own.
    [report] = [r for r in reports if any(e["involvedObject"]["kind"] == "Pod" for e in r.events)]
    assert report.node == NODE
    events = [Event.model_validate(e) for e in report.events]
    assert [(e.reason, e.message) for e in events] == [
        ("Pulled", f'Container image "{IMAGE}" already present on machine'),
        ("Created", "Created container app"),
        ("Started", "Started container app"),
    ]
    first = events[0]
    assert (first.source.component, first.source.host) == ("edgekube-agent", NODE)
    assert (first.involved_object.kind, first.involved_object.name, first.involved_object.uid) == ("Pod", "x", "uid-x")
    assert first.metadata.namespace == "default" and first.metadata.name.startswith("x.")
    node.settle(2)
    assert len(node.broker.published(topics.node_events(NODE))) == len(reports)  # nothing new


# -- EventRecorder ------------------------------------------------------------------------------------------------

REF = PodRef("default", "web", "uid-web")


def test_a_repeated_event_counts_up_instead_of_piling_up() -> None:
    times = iter(["2024-05-01T10:00:00Z", "2024-05-01T10:00:05Z", "2024-05-01T10:00:09Z"])
    recorder = EventRecorder("pi-1", clock=lambda: next(times))
    first = recorder.record(REF, "BackOff", "Back-off restarting failed container app in pod default/web", "Warning")
    again = recorder.record(REF, "BackOff", "Back-off restarting failed container app in pod default/web", "Warning")
    other = recorder.record(REF, "Started", "Started container app")
    assert again["metadata"]["name"] == first["metadata"]["name"] != other["metadata"]["name"]
    assert (again["count"], again["firstTimestamp"], again["lastTimestamp"]) == (
        2, "2024-05-01T10:00:00Z", "2024-05-01T10:00:05Z"
    )  # fmt: skip
    assert recorder.pending == 2
    Event.model_validate(again)


def test_a_removed_pod_s_events_are_forgotten_once_published_and_not_before() -> None:
    recorder = EventRecorder("pi-1")
    gone = PodRef("default", "old", "uid-old")
    recorder.record(REF, "Started", "Started container app")
    recorder.record(gone, "Killing", "Stopping container app")
    recorder.retain({"uid-web"})
    assert [e["involvedObject"]["uid"] for e in recorder.events()] == ["uid-web", "uid-old"]  # not published yet
    batches: list[list[dict[str, Any]]] = []
    recorder.flush(batches.append)
    assert [e["involvedObject"]["uid"] for e in batches[0]] == ["uid-web", "uid-old"]
    recorder.retain({"uid-web"})
    assert [e["involvedObject"]["uid"] for e in recorder.events()] == ["uid-web"]
    again = recorder.record(REF, "Started", "Started container app")
    assert again["count"] == 2  # a pod still here keeps counting its repeats


def test_the_agent_forgets_the_events_of_pods_it_no_longer_runs(node: Node) -> None:
    node.want(pod("a"), pod("b"))
    node.settle()
    node.want(pod("a"))
    node.settle()
    node.agent._reporter.flush_events(node.bus)
    node.settle()
    assert {e["involvedObject"]["name"] for e in node.agent.events.events()} == {"a"}


def test_the_queue_is_bounded_and_drops_the_oldest() -> None:
    recorder = EventRecorder("pi-1", capacity=3)
    for i in range(5):
        recorder.record(REF, "Started", f"Started container c{i}")
    assert (recorder.pending, recorder.dropped) == (3, 2)
    batches: list[list[dict[str, Any]]] = []
    recorder.flush(batches.append)
    assert [e["message"] for e in batches[0]] == [f"Started container c{i}" for i in (2, 3, 4)]


def test_a_failed_publish_keeps_the_events_and_big_queues_go_in_batches() -> None:
    recorder = EventRecorder("pi-1", capacity=1200)
    for i in range(1100):
        recorder.record(REF, "Started", f"Started container c{i}")

    def broken(batch: list[dict[str, Any]]) -> None:
        raise BusError("broker away")

    with pytest.raises(BusError):
        recorder.flush(broken)
    assert recorder.pending == 1100
    sizes: list[int] = []
    assert recorder.flush(lambda batch: sizes.append(len(batch))) == 1100
    assert sizes == [500, 500, 100]
    assert recorder.pending == 0
    assert recorder.flush(lambda batch: sizes.append(len(batch))) == 0


def test_pods_are_created_side_by_side_up_to_parallel_creates(node: Node, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each create holds until `parallel_creates` of them are in at once: reaching 4 proves they overlap, and
    the peak shows no fifth one got in (no sleeps: a pool of 3 would leave the gate shut and the peak at 3)."""
    running = peak = 0
    lock = threading.Lock()
    full = threading.Event()
    real_create = node.runtime.create_pod

    def slow_create(*args: Any) -> Any:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            if running == node.agent.config.parallel_creates:
                full.set()
        full.wait(10)
        try:
            return real_create(*args)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(node.runtime, "create_pod", slow_create)
    node.want(*(pod(f"p{n}") for n in range(6)))
    node.settle()
    assert peak == node.agent.config.parallel_creates == 4
    assert {p.uid for p in node.runtime.list_pods()} == {uid(f"p{n}") for n in range(6)}
