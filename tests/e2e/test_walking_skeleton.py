"""End to end on real parts: manifest → master (TinyDB) → MQTT → agent → Podman → status back → API.

Each test starts its own Mosquitto on a free port (TLS, a certificate per identity, the generated ACL), a master
with a fresh state directory and an agent on a shared Podman service (own store and socket), and talks to the
master the way ekctl does, with an admin's certificate.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.app import Agent
from edgekube.agent.runtime.protocol import LABEL_CONTAINER, LABEL_POD_UID
from edgekube.bus import topics
from edgekube.bus.paho import PahoBus
from edgekube.local.broker import Mosquitto
from edgekube.local.pki import ADMIN, MASTER, LocalPki
from edgekube.local.podman_service import PodmanService
from edgekube.model.wire import MAX_PAYLOAD_BYTES, ApiRequest, ApplyResult, Verb
from tests.support.cluster import ApiClient, bus_config, phase, start_agent, wait_for

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HELLO = (EXAMPLES / "hello-pod.yaml").read_text()

SLEEPER = """
apiVersion: v1
kind: Pod
metadata: {name: sleeper, labels: {app: sleeper}}
spec:
  volumes: [{name: scratch, emptyDir: {}}]
  containers:
  - name: main
    image: localhost/edgekube/busybox:1
    command: ["sh", "-c", "echo started > /scratch/marker; exec sleep 3600"]
    volumeMounts: [{name: scratch, mountPath: /scratch}]
"""


def podman_json(service: PodmanService, *args: str) -> list[dict[str, object]]:
    out = service.podman(*args, "--format", "json").stdout
    return list(json.loads(out or "[]"))


def test_hello_pod_runs_and_its_containers_talk_over_localhost(agent: Agent, client: ApiClient) -> None:
    resp = client.apply(HELLO)
    assert resp.ok, resp.error
    assert [o.action for o in resp.outcomes or []] == ["created"]
    wait_for("hello Running", lambda: phase(client, "hello") == "Running")
    pod = client.pod("hello")
    assert pod["spec"]["nodeName"] == "node-1"
    # Running once one container runs; the second may still be starting on a loaded machine.

    def ready() -> list[str]:
        statuses = client.pod("hello")["status"].get("containerStatuses") or []
        return sorted(c["name"] for c in statuses if c["ready"])

    wait_for("both containers ready", lambda: ready() == ["client", "web"])

    def fetched() -> bool:
        logs = client.logs("hello", "client")
        return logs.ok and "fetched over localhost" in (logs.text or "")

    wait_for("the client container to fetch the page from the web container", fetched, timeout=30)
    again = client.apply(HELLO)
    assert [o.action for o in again.outcomes or []] == ["unchanged"]


def test_mosquitto_pub_to_apply_topic_works_like_ekctl_apply(
    agent: Agent, client: ApiClient, broker: Mosquitto, pki: LocalPki
) -> None:
    admin = pki.files(ADMIN)
    results = PahoBus(bus_config(broker.port, admin)).start(wait=10)
    seen: list[ApplyResult] = []
    results.subscribe(topics.APPLY_RESULT, lambda m: seen.append(ApplyResult.decode(m.payload)))
    pub = shutil.which("mosquitto_pub")
    assert pub, "mosquitto-clients must be installed (scripts/install.sh)"
    subprocess.run(
        [
            *(pub, "-h", "localhost", "-p", str(broker.port), "-q", "1", "-t", topics.APPLY),
            *("--cafile", admin.ca, "--cert", admin.cert, "--key", admin.key),
            *("-f", str(EXAMPLES / "hello-pod.yaml")),
        ],
        check=True,
        timeout=10,
    )
    wait_for("an apply result", lambda: seen, timeout=10)
    assert seen[0].ok and seen[0].outcomes[0].action == "created"
    wait_for("hello Running", lambda: phase(client, "hello") == "Running")
    results.close()


def test_delete_removes_pod_containers_and_volumes(agent: Agent, client: ApiClient, e2e_podman: PodmanService) -> None:
    assert client.apply(SLEEPER).ok
    wait_for("sleeper Running", lambda: phase(client, "sleeper") == "Running")
    uid = client.pod("sleeper")["metadata"]["uid"]
    label = f"label={LABEL_POD_UID}={uid}"
    assert podman_json(e2e_podman, "pod", "ps", "--filter", label)
    assert podman_json(e2e_podman, "volume", "ls", "--filter", label)

    resp = client.delete("Pod", "sleeper")
    assert resp.ok and resp.outcomes and resp.outcomes[0].action == "deleted"
    wait_for("pod gone from podman", lambda: not podman_json(e2e_podman, "pod", "ps", "--filter", label))
    assert not podman_json(e2e_podman, "ps", "-a", "--filter", label)
    assert not podman_json(e2e_podman, "volume", "ls", "--filter", label)
    assert client.delete("Pod", "sleeper").error is not None


@dataclass(frozen=True)
class Held:
    """One app container as Podman holds it: what a restart (new start time) or a re-create (new id) changes."""

    container_id: str
    started_at: str  # State.StartedAt, nanosecond precision
    status: str


def held(service: PodmanService, uid: str) -> dict[str, Held]:
    """The app containers of one pod in the store, by container name (the infra container is left out)."""
    ids = [str(c["Id"]) for c in podman_json(service, "ps", "-a", "--filter", f"label={LABEL_POD_UID}={uid}")]
    found: dict[str, Held] = {}
    for entry in json.loads(service.podman("inspect", *ids).stdout) if ids else []:
        name = (entry["Config"].get("Labels") or {}).get(LABEL_CONTAINER)
        if name:
            found[name] = Held(entry["Id"], entry["State"]["StartedAt"], entry["State"]["Status"])
    return found


def test_restarted_agent_adopts_running_pods(
    broker: Mosquitto, pki: LocalPki, agent: Agent, client: ApiClient, e2e_podman: PodmanService, tmp_path: Path
) -> None:
    assert client.apply(HELLO).ok
    wait_for("hello Running", lambda: phase(client, "hello") == "Running")
    uid = client.pod("hello")["metadata"]["uid"]
    before = held(e2e_podman, uid)
    assert set(before) == {"web", "client"} and {c.status for c in before.values()} == {"running"}
    agent.stop()
    again = start_agent(broker.port, "node-1", e2e_podman, tmp_path / "agent", tls=pki.files("node-1"))
    try:
        wait_for(
            "node ready again",
            lambda: any(
                c["type"] == "Ready" and c["status"] == "True"
                for n in client.nodes()
                for c in n["status"]["conditions"]
            ),
            timeout=20,
        )
        again.reconcile()  # one full pass of the new agent over what it found, done before we look
        assert held(e2e_podman, uid) == before, "Podman must hold the same containers, never restarted"
        reported = {c["name"]: c["containerID"] for c in client.pod("hello")["status"]["containerStatuses"]}
        assert reported == {name: f"podman://{c.container_id}" for name, c in before.items()}
        assert phase(client, "hello") == "Running"
    finally:
        again.stop()


def test_missing_image_keeps_the_pod_pending_in_image_pull_back_off(agent: Agent, client: ApiClient) -> None:
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: ghost}
spec:
  containers: [{name: main, image: "localhost/does-not-exist:1"}]
"""
    assert client.apply(manifest).ok

    def waiting() -> dict[str, Any]:
        statuses = client.pod("ghost").get("status", {}).get("containerStatuses") or [{}]
        return dict(statuses[0].get("state", {}).get("waiting") or {})

    wait_for("ghost ImagePullBackOff", lambda: waiting().get("reason") == "ImagePullBackOff", timeout=60)
    assert phase(client, "ghost") == "Pending"
    assert waiting()["message"] == 'Back-off pulling image "localhost/does-not-exist:1"'


class Junk:
    """A raw MQTT client that sends what no edgekube component would, and waits until a daemon has read it.

    Both daemons handle messages one at a time in arrival order, and the broker keeps one client's messages in
    order: once a daemon answers a request sent after a payload, it has handled that payload.
    """

    def __init__(self, port: int, pki: LocalPki) -> None:
        # The master's identity: the ACL lets it write every topic, so the payloads reach the daemons' own checks.
        self.bus = PahoBus(bus_config(port, pki.files(MASTER))).start(wait=10)
        self.results: list[ApplyResult] = []
        self.bus.subscribe(topics.APPLY_RESULT, lambda m: self.results.append(ApplyResult.decode(m.payload)))

    def to_master(self, topic: str, payload: bytes) -> None:
        self.bus.publish(topic, payload)
        barrier = ApiRequest(verb=Verb.LIST, kind="Node").encode()
        assert json.loads(self.bus.request(topics.API_REQUEST, barrier, timeout=10).payload)["ok"]

    def to_agent(self, topic: str, payload: bytes) -> None:
        self.bus.publish(topic, payload)
        barrier = ApiRequest(verb=Verb.LOGS, name="hello", container="web").encode()
        assert json.loads(self.bus.request(topics.node_rpc("node-1"), barrier, timeout=10).payload)["ok"]

    def apply(self, payload: bytes) -> ApplyResult:
        """Publish to the apply topic as mosquitto_pub would (no response topic); the result it publishes."""
        seen = len(self.results)
        self.bus.publish(topics.APPLY, payload)
        wait_for("an apply result", lambda: len(self.results) > seen, timeout=10)
        return self.results[seen]


def rejected_on(caplog: pytest.LogCaptureFixture, topic: str) -> bool:
    """True once the daemon logged a warning naming the topic (how a fire-and-forget message is refused)."""
    return any(r.levelno >= logging.WARNING and topic in r.getMessage() for r in caplog.records)


def test_bad_payloads_are_rejected_and_both_daemons_keep_working(
    agent: Agent,
    client: ApiClient,
    broker: Mosquitto,
    pki: LocalPki,
    e2e_podman: PodmanService,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert client.apply(HELLO).ok
    wait_for("hello Running", lambda: phase(client, "hello") == "Running")
    hello = client.pod("hello")
    uid, containers = hello["metadata"]["uid"], held(e2e_podman, hello["metadata"]["uid"])
    node_1 = client.get("Node", "node-1")
    desired = (agent.desired.epoch, agent.desired.generation)
    junk = Junk(broker.port, pki)

    def untouched() -> None:
        """What every refused payload leaves as it was: the pods, node-1, hello in the API and in Podman."""
        assert [p["metadata"]["name"] for p in client.pods()] == ["hello"]
        assert [n["metadata"]["name"] for n in client.nodes()] == ["node-1"]
        assert client.get("Node", "node-1")["metadata"]["labels"] == node_1["metadata"]["labels"]
        assert client.get("Node", "node-1")["spec"] == node_1["spec"]
        assert phase(client, "hello") == "Running"
        assert (agent.desired.epoch, agent.desired.generation) == desired
        assert held(e2e_podman, uid) == containers

    # To the master with a response topic: each answered Invalid, nothing stored.
    for payload in (
        b"\x00\xff not json",
        b"{" + b" " * (MAX_PAYLOAD_BYTES + 10) + b"}",
        b'{"schema":"other/v9","verb":"list"}',
        b'{"schema":"edgekube/v1","verb":"list","evil":1}',
        b'{"schema":"edgekube/v1","verb":"explode"}',
        b"[1,2,3]",
    ):
        reply = json.loads(junk.bus.request(topics.API_REQUEST, payload, timeout=10).payload)
        assert reply["ok"] is False and reply["error"]["reason"] == "Invalid", reply
        untouched()

    # To the apply topic, as mosquitto_pub would: each refused on apply/result, nothing stored.
    unclosed = junk.apply(b"kind: [unclosed")
    assert not unclosed.ok and unclosed.error is not None and unclosed.error.reason == "Invalid", unclosed
    untouched()
    bad_name = junk.apply(b"apiVersion: v1\nkind: Pod\nmetadata: {name: BAD_NAME}\nspec: {containers: []}\n")
    assert not bad_name.ok and bad_name.error is not None and bad_name.error.reason == "Invalid", bad_name
    assert "BAD_NAME" in bad_name.error.message
    untouched()

    # node-1 posing as node-2: a well-formed report whose only flaw is the node, saying hello failed.
    lie = {
        "schema": "edgekube/v1",
        "node": "node-2",
        "bootId": "impostor",
        "nodeObject": {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-2"}},
        "pods": [{"uid": uid, "namespace": "default", "name": "hello", "status": {"phase": "Failed"}}],
    }
    caplog.clear()
    junk.to_master(topics.node_status("node-1"), json.dumps(lie).encode())
    assert rejected_on(caplog, topics.node_status("node-1")), "the master must refuse node-1's report as node-2"
    untouched()  # no node-2, hello still Running
    caplog.clear()
    junk.to_master(topics.node_heartbeat("node-1"), b"null")
    assert rejected_on(caplog, topics.node_heartbeat("node-1")), "the master must refuse a null heartbeat"
    untouched()
    caplog.clear()
    junk.to_master(topics.node_online("node-1"), b"\x80\x81")
    assert rejected_on(caplog, topics.node_online("node-1")), "the master must refuse undecodable presence"
    untouched()
    conditions = {c["type"]: c["status"] for c in client.get("Node", "node-1")["status"]["conditions"]}
    assert conditions["Ready"] == "True", "node-1 still Ready"

    # To the agent: desired states that would empty node-1 if taken (no pods), each with one flaw.
    for flaw, payload in (
        ("negative generation", b'{"schema":"edgekube/v1","node":"node-1","generation":-5,"epoch":"x","pods":[]}'),
        ("another node", b'{"schema":"edgekube/v1","node":"node-9","generation":1,"epoch":"x","pods":[]}'),
        ("oversized", b"x" * (MAX_PAYLOAD_BYTES + 1)),
    ):
        caplog.clear()
        junk.to_agent(topics.node_desired("node-1"), payload)
        assert rejected_on(caplog, topics.node_desired("node-1")), f"the agent must refuse a desired state: {flaw}"
        untouched()  # same desired generation, hello's containers neither stopped nor restarted
    reply = json.loads(junk.bus.request(topics.node_rpc("node-1"), b"{}", timeout=10).payload)
    assert reply["ok"] is False and reply["error"]["reason"] == "Invalid", reply
    untouched()
    junk.bus.close()

    # Both still work: a new pod is scheduled, dispatched and runs.
    assert client.apply(SLEEPER).ok
    wait_for("sleeper Running after the junk", lambda: phase(client, "sleeper") == "Running")
