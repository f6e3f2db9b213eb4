"""Contract: a simulated node (tests/support/simnodes.py) speaks the node protocol as the real agent does.

The master's tests and the scheduling benchmark run on simulated nodes; they are only worth something if the
simulation says what a real agent says. One scenario runs against each: the real agent as a process on real
Podman (as the fleet harness runs it) and one SimNodes node, both on a real Mosquitto. A recorder, standing
where the master stands, collects in arrival order every message the node publishes under `nodes/<node>/`:

1. the node comes online: a presence `{"online": true, "bootId": B}` before anything else, which a client
   subscribing afterwards receives as a retained message;
2. heartbeats follow, with bootId B and seq counting up by one; and status reports with the Node object;
3. the recorder publishes a retained desired state (generation 1 of epoch E, one pod); the node reports the
   pod Pending (optional) and then Running and Ready, with observedGeneration 1 — never before it was sent;
4. a stale desired state (generation 0 of epoch E, no pods) is ignored: later heartbeats still say
   observedGeneration 1 and later reports still carry the pod;
5. the node dies (the agent SIGKILLed: the broker publishes its Last Will; SimNodes.kill() publishes the same):
   the last presence is `{"online": false}`.

Each step is asserted on both transcripts by the same tests, and a last test checks that every field the
simulation sends is one the real agent sends too (the simulation invents nothing the master could lean on).
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from edgekube.agent.runtime.protocol import LABEL_NODE
from edgekube.bus import topics
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.bus.protocol import Message
from edgekube.local.broker import Mosquitto
from edgekube.local.podman_service import PodmanService
from edgekube.model.wire import NodeDesired
from tests.support.fleet import SLEEP_FOREVER, Proc
from tests.support.simnodes import SimNodes

pytestmark = pytest.mark.integration

KINDS = ("real", "sim")
HEARTBEAT_S = 0.5
WAIT_S = 60.0


@dataclass
class Transcript:
    """What one node published, in arrival order: (kind, payload, retained); kind is the topic's last part."""

    node: str
    messages: list[tuple[str, dict[str, Any], bool]] = field(default_factory=list)
    #: The presence a client subscribing after the start received as retained.
    retained_online: dict[str, Any] = field(default_factory=dict)
    #: Index in `messages` at which the desired state, and then the stale one, were published.
    desired_at: int = -1
    stale_at: int = -1
    pod_uid: str = ""

    def of(self, kind: str, since: int = 0, until: int | None = None) -> list[dict[str, Any]]:
        return [payload for k, payload, _ in self.messages[since:until] if k == kind]


class Recorder:
    """Subscribes where the master would and keeps every message under nodes/<node>/ in arrival order."""

    def __init__(self, port: int, node: str) -> None:
        self.transcript = Transcript(node)
        self._lock = threading.Lock()
        self.bus = PahoBus(BusConfig(port=port))
        self.bus.subscribe(f"{topics.NODES}/{node}/+", self._on_message)
        self.bus.start(wait=10)

    def _on_message(self, msg: Message) -> None:
        kind = msg.topic.rsplit("/", 1)[-1]
        if kind in {"desired", "rpc"} or not msg.payload:
            return
        with self._lock:
            self.transcript.messages.append((kind, json.loads(msg.payload), msg.retain))

    def mark(self) -> int:
        with self._lock:
            return len(self.transcript.messages)

    def wait(self, what: str, check: Callable[[Transcript], bool]) -> None:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            with self._lock:
                if check(self.transcript):
                    return
            time.sleep(0.05)
        raise AssertionError(f"{self.transcript.node}: timed out waiting for {what}: {self.transcript.messages[-5:]}")


def pod_running(transcript: Transcript, since: int) -> bool:
    return any(
        report["observedGeneration"] == 1
        and any(p["uid"] == transcript.pod_uid and p["status"].get("phase") == "Running" for p in report["pods"])
        for report in transcript.of("status", since)
    )


def retained(port: int, topic: str) -> dict[str, Any]:
    """The retained message on `topic`, as a client subscribing now receives it."""
    got: list[Message] = []
    late = PahoBus(BusConfig(port=port))
    late.subscribe(topic, got.append)
    late.start(wait=10)
    try:
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        late.close()
    assert got and got[0].retain, f"no retained message on {topic}"
    return dict(json.loads(got[0].payload))


def desired(node: str, generation: int, epoch: str, pods: list[dict[str, Any]]) -> bytes:
    return NodeDesired(node=node, generation=generation, epoch=epoch, pods=pods).encode()


def run_scenario(port: int, node: str, start: Callable[[], object], kill: Callable[[], object]) -> Transcript:
    """The scenario of the module docstring against whatever `start` starts; returns what was recorded."""
    recorder = Recorder(port, node)
    master = PahoBus(BusConfig(port=port)).start(wait=10)
    try:
        start()
        recorder.wait(
            "2 heartbeats and a status report", lambda t: len(t.of("heartbeat")) >= 2 and bool(t.of("status"))
        )
        recorder.transcript.retained_online = retained(port, topics.node_online(node))
        epoch, uid = uuid.uuid4().hex, str(uuid.uuid4())
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "contract", "namespace": "default", "uid": uid},
            "spec": {
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 2,
                "containers": [{"name": "main", "image": "localhost/edgekube/busybox:1", "command": SLEEP_FOREVER}],
            },
        }
        recorder.transcript.pod_uid = uid
        recorder.transcript.desired_at = recorder.mark()
        master.publish(topics.node_desired(node), desired(node, 1, epoch, [pod]), retain=True)
        recorder.wait("the pod reported Running", lambda t: pod_running(t, t.desired_at))
        recorder.transcript.stale_at = at = recorder.mark()
        master.publish(topics.node_desired(node), desired(node, 0, epoch, []), retain=True)
        recorder.wait("3 heartbeats and a report after the stale state", lambda t: len(t.of("heartbeat", at)) >= 3)
        recorder.wait("a report after the stale state", lambda t: bool(t.of("status", at)))
        kill()
        recorder.wait("presence offline", lambda t: t.of("online")[-1]["online"] is False)
        master.publish(topics.node_desired(node), b"", retain=True)  # clear the retained states
        master.publish(topics.node_online(node), b"", retain=True)
        return recorder.transcript
    finally:
        master.close()
        recorder.bus.close()


@pytest.fixture(scope="module")
def transcripts(
    mosquitto_session: Mosquitto,
    podman_service: PodmanService,
    demo_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Transcript]:
    """Both nodes' transcripts of the same scenario, recorded once for the module."""
    port = mosquitto_session.port
    root = tmp_path_factory.mktemp("contract")
    result: dict[str, Transcript] = {}

    real = f"contract-real-{uuid.uuid4().hex[:6]}"
    argv = [
        sys.executable, "-m", "edgekube.main", "agent",
        "--node", real,
        "--mqtt-port", str(port),
        "--podman-url", podman_service.url,
        "--state-dir", str(root / "agent"),
        "--heartbeat-interval", str(HEARTBEAT_S),
        "--resync-interval", "0.5",
    ]  # fmt: skip
    agent = Proc(real, lambda: argv, root / "agent.log")
    try:
        result["real"] = run_scenario(port, real, agent.start, agent.kill)
    finally:
        agent.kill()
        ids = podman_service.podman("pod", "ps", "-q", "--filter", f"label={LABEL_NODE}={real}").stdout.split()
        if ids:
            podman_service.podman("pod", "rm", "-f", *ids)

    sim = f"contract-sim-{uuid.uuid4().hex[:6]}"
    sims = SimNodes(port, [sim], start_delay=0.2, heartbeat_interval=HEARTBEAT_S)
    try:
        result["sim"] = run_scenario(port, sim, sims.start, lambda: sims.kill(sim))
    finally:
        sims.close()
    return result


@pytest.fixture(params=KINDS)
def transcript(request: pytest.FixtureRequest, transcripts: dict[str, Transcript]) -> Iterator[Transcript]:
    yield transcripts[request.param]


def test_the_first_message_is_an_online_presence_with_a_boot_id_and_it_is_retained(transcript: Transcript) -> None:
    kind, payload, _ = transcript.messages[0]
    assert (kind, payload["online"]) == ("online", True)
    assert payload["bootId"]
    assert transcript.retained_online == payload


def test_heartbeats_carry_the_boot_id_and_a_seq_that_counts_up_by_one(transcript: Transcript) -> None:
    boot_id = transcript.of("online")[0]["bootId"]
    beats = transcript.of("heartbeat")
    assert {"schema", "node", "bootId", "seq", "observedGeneration", "usage"} <= set(beats[0])
    assert {b["bootId"] for b in beats} == {boot_id}
    assert {b["node"] for b in beats} == {transcript.node}
    seqs = [b["seq"] for b in beats]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))


def test_status_reports_carry_the_node_object_with_capacity(transcript: Transcript) -> None:
    report = transcript.of("status")[0]
    assert {"schema", "node", "bootId", "observedGeneration", "nodeObject", "pods"} <= set(report)
    node = report["nodeObject"]
    assert (node["kind"], node["metadata"]["name"]) == ("Node", transcript.node)
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == transcript.node
    assert {"cpu", "memory", "pods"} <= set(node["status"]["capacity"])
    assert {"cpu", "memory", "pods"} <= set(node["status"]["allocatable"])


def test_a_desired_pod_is_reported_pending_then_running_and_ready_for_its_generation(transcript: Transcript) -> None:
    before = transcript.of("status", until=transcript.desired_at)
    assert all(r["observedGeneration"] != 1 for r in before), "no report may claim generation 1 before it was sent"
    phases: list[str] = []
    running: dict[str, Any] = {}
    for report in transcript.of("status", transcript.desired_at):
        for pod in report["pods"]:
            if pod["uid"] == transcript.pod_uid and pod["status"]["phase"] not in phases[-1:]:
                phases.append(pod["status"]["phase"])
                running = pod if pod["status"]["phase"] == "Running" else running
        if running:
            assert report["observedGeneration"] == 1
            break
    assert phases in (["Pending", "Running"], ["Running"]), phases
    assert {"uid", "namespace", "name", "status"} <= set(running)
    assert (running["namespace"], running["name"]) == ("default", "contract")
    status = running["status"]
    assert {"type": "Ready", "status": "True"}.items() <= status["conditions"][0].items()
    assert status["startTime"]
    [main] = status["containerStatuses"]
    assert (main["name"], main["ready"], main["restartCount"]) == ("main", True, 0)
    assert main["state"]["running"]["startedAt"]


def test_a_stale_desired_state_of_the_same_epoch_is_ignored(transcript: Transcript) -> None:
    beats = transcript.of("heartbeat", transcript.stale_at)
    assert {b["observedGeneration"] for b in beats} == {1}
    for report in transcript.of("status", transcript.stale_at):
        assert report["observedGeneration"] == 1
        assert [p["uid"] for p in report["pods"]] == [transcript.pod_uid], "the pod must stay"


def test_a_dead_node_ends_offline(transcript: Transcript) -> None:
    assert transcript.of("online")[-1]["online"] is False


#: Label and capacity keys are the node's own data, not protocol: only the maps holding them must match.
NODE_DATA = (".nodeObject.metadata.labels.", ".nodeObject.status.capacity.", ".nodeObject.status.allocatable.")


def keys(value: Any, path: str = "") -> set[str]:
    """Every field path in a JSON value (list items share their list's path)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            found |= {f"{path}.{key}"} | keys(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            found |= keys(item, f"{path}[]")
    return found


def test_the_simulation_sends_no_field_the_real_agent_does_not(transcripts: dict[str, Transcript]) -> None:
    for kind in ("online", "heartbeat", "status"):
        real = set().union(*(keys(p) for p in transcripts["real"].of(kind)))
        sim = set().union(*(keys(p) for p in transcripts["sim"].of(kind)))
        invented = {k for k in sim - real if not k.startswith(NODE_DATA)}
        assert not invented, f"{kind}: fields only the simulation sends: {sorted(invented)}"
