"""Pytest fixtures: a private Podman API service (own store and socket) per session, the demo image, edge nodes."""

from __future__ import annotations

import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.app import Agent, AgentConfig
from edgekube.agent.runtime.podman import PodmanRuntime
from edgekube.agent.runtime.protocol import LABEL_NODE, ContainerRunState, ObservedPod
from edgekube.agent.wiring import build_agent
from edgekube.bus import topics
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.bus.protocol import Message
from edgekube.local.broker import Mosquitto
from edgekube.local.images import DEMO_IMAGE, ensure_demo_image
from edgekube.local.podman_service import PodmanService
from edgekube.model.names import NodeName
from edgekube.model.wire import EventReport, NodeDesired, NodeReport
from tests.support.prerequisites import require_podman


@pytest.fixture(scope="session")
def podman_service() -> Iterator[PodmanService]:
    """A started `podman system service` on a fresh store; everything in it is deleted at session end.

    Lives under /tmp rather than pytest's tmp_path so the socket path stays far below the 108-byte limit.
    """
    require_podman()
    workdir = Path(tempfile.mkdtemp(prefix="ek-podman-", dir="/tmp"))
    service = PodmanService(workdir)
    try:
        service.start()
        yield service
    finally:
        service.destroy()


@pytest.fixture(scope="session")
def demo_image(podman_service: PodmanService) -> str:
    """Name of the busybox demo image, imported into the session's Podman store."""
    return ensure_demo_image(podman_service)


class EdgeNode:
    """One in-process Agent on the session's Podman, driven as the master would drive it (no master needed).

    `want()` publishes a retained NodeDesired on the node's desired topic; every NodeReport and EventReport
    the agent publishes is collected, so tests read pod status exactly as the master receives it.
    """

    def __init__(self, service: PodmanService, broker: Mosquitto, state_dir: Path, **config: Any) -> None:
        self.name = NodeName(f"node-{uuid.uuid4().hex[:8]}")
        self.service = service
        self.broker = broker
        self.state_dir = state_dir
        self.config: dict[str, Any] = {"resync_interval": 0.5, **config}
        self.runtime = PodmanRuntime(service.url, self.name)
        self.agent: Agent | None = None
        self.generation = 0
        self.epoch = uuid.uuid4().hex
        self.reports: list[NodeReport] = []
        self.events: dict[str, dict[str, Any]] = {}  # by name: a repeated event comes back with count + 1
        self._lock = threading.Lock()
        self.master = PahoBus(BusConfig(port=broker.port))
        self.master.subscribe(topics.node_status(self.name), self._on_status)
        self.master.subscribe(topics.node_events(self.name), self._on_events)
        self.master.start(wait=10)

    def _on_status(self, msg: Message) -> None:
        with self._lock:
            self.reports.append(NodeReport.decode(msg.payload))

    def _on_events(self, msg: Message) -> None:
        with self._lock:
            for event in EventReport.decode(msg.payload).events:
                self.events[event["metadata"]["name"]] = event

    # -- the agent ------------------------------------------------------------------------------------------
    def start_agent(self, wait: float | None = 10.0) -> Agent:
        """Start an agent on this node's state dir; `wait=None` does not wait for the broker (it may be down)."""
        config = AgentConfig(
            node_name=self.name, mqtt_port=self.broker.port, podman_url=self.service.url, state_dir=self.state_dir,
            **self.config,
        )  # fmt: skip
        self.agent = build_agent(config, PodmanRuntime(self.service.url, self.name)).start(wait=wait)
        return self.agent

    def stop_agent(self) -> None:
        if self.agent is not None:
            self.agent.stop()
            runtime = self.agent.runtime
            if isinstance(runtime, PodmanRuntime):
                runtime.close()
            self.agent = None

    # -- as the master ----------------------------------------------------------------------------------------
    def want(self, *pods: dict[str, Any]) -> None:
        self.generation += 1
        desired = NodeDesired(node=self.name, generation=self.generation, epoch=self.epoch, pods=list(pods))
        self.master.publish(topics.node_desired(self.name), desired.encode(), retain=True)

    def status(self, pod: str) -> dict[str, Any] | None:
        """The pod's status in the latest report, or None."""
        with self._lock:
            report = self.reports[-1] if self.reports else None
        if report is None:
            return None
        return next((p.status for p in report.pods if p.name == pod), None)

    def wait_status(
        self, what: str, pod: str, check: Callable[[dict[str, Any]], bool], timeout: float = 30.0
    ) -> dict[str, Any]:
        """Poll the reports until the pod's status passes `check`; fails naming `what` and the last status."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            last = self.status(pod)
            if last is not None and check(last):
                return last
            time.sleep(0.05)
        pytest.fail(f"timed out after {timeout}s waiting for {what}; last status of {pod}: {last}")

    def event_reasons(self, pod: str) -> list[tuple[str, str]]:
        with self._lock:
            return [(e["reason"], e["message"]) for e in self.events.values() if e["involvedObject"]["name"] == pod]

    def event_log(self, pod: str) -> list[tuple[str, str, int]]:
        """(reason, message, count) of the pod's events, in the order each was first received."""
        with self._lock:
            return [(e["reason"], e["message"], e["count"]) for e in self.events.values()
                    if e["involvedObject"]["name"] == pod]  # fmt: skip

    def event_count(self, pod: str, reason: str) -> int:
        with self._lock:
            return sum(e["count"] for e in self.events.values() if e["involvedObject"]["name"] == pod
                       and e["reason"] == reason)  # fmt: skip

    # -- as Podman shows it -------------------------------------------------------------------------------------
    def observed(self, pod: str) -> ObservedPod | None:
        return next((p for p in self.runtime.list_pods() if p.name == pod), None)

    def wait_observed(
        self, what: str, pod: str, check: Callable[[ObservedPod], bool], timeout: float = 30.0
    ) -> ObservedPod:
        deadline = time.monotonic() + timeout
        last: ObservedPod | None = None
        while time.monotonic() < deadline:
            last = self.observed(pod)
            if last is not None and check(last):
                return last
            time.sleep(0.05)
        pytest.fail(f"timed out after {timeout}s waiting for {what}; last seen: {last}")

    def kill(self, pod: str, container: str) -> None:
        """`podman kill` one container of the pod, from outside the agent."""
        found = self.observed(pod)
        assert found is not None, f"pod {pod} not on node {self.name}"
        self.service.podman("kill", next(c.container_id for c in found.containers if c.name == container))

    def power_off(self) -> None:
        """What a reboot leaves behind: every pod of this node stopped, infra containers included."""
        ids = self.service.podman("pod", "ps", "-q", "--filter", f"label={LABEL_NODE}={self.name}").stdout.split()
        if ids:
            self.service.podman("pod", "stop", "-t", "2", *ids)

    def close(self) -> None:
        self.stop_agent()
        self.master.close()
        for pod in self.runtime.list_pods():
            self.runtime.remove_pod(pod.uid, grace_seconds=0)
        self.runtime.close()


def running(pod: ObservedPod) -> bool:
    return pod.infra_running and all(c.state == ContainerRunState.RUNNING for c in pod.containers)


def manifest(name: str, *containers: dict[str, Any], policy: str = "Always", grace: int = 2) -> dict[str, Any]:
    """A Pod as the master dispatches it (uid set); containers default to the demo image."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": str(uuid.uuid4())},
        "spec": {
            "restartPolicy": policy,
            "terminationGracePeriodSeconds": grace,
            "containers": [{"image": DEMO_IMAGE, **c} for c in containers],
        },
    }


@pytest.fixture
def edge_node(
    podman_service: PodmanService, demo_image: str, mosquitto: Mosquitto, tmp_path: Path
) -> Iterator[EdgeNode]:
    """A node with a fresh state dir on the test's own broker; the agent is not started yet."""
    node = EdgeNode(podman_service, mosquitto, tmp_path / "agent")
    yield node
    node.close()
