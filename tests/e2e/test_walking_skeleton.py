"""End to end on real parts: manifest → master (TinyDB) → MQTT → agent → Podman → status back → API.

Each test starts its own Mosquitto on a free port, a master with a fresh state directory and an agent on a
shared Podman service (own store and socket), and talks to the master the way ekctl does.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from edgekube.agent.app import Agent
from edgekube.agent.runtime.protocol import LABEL_POD_UID
from edgekube.bus import topics
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.local.broker import Mosquitto
from edgekube.local.podman_service import PodmanService
from edgekube.model.wire import MAX_PAYLOAD_BYTES, ApplyResult
from tests.support.cluster import ApiClient, phase, start_agent, wait_for

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
    assert all(c["ready"] for c in pod["status"]["containerStatuses"])

    def fetched() -> bool:
        logs = client.logs("hello", "client")
        return logs.ok and "fetched over localhost" in (logs.text or "")

    wait_for("the client container to fetch the page from the web container", fetched, timeout=30)
    again = client.apply(HELLO)
    assert [o.action for o in again.outcomes or []] == ["unchanged"]


def test_mosquitto_pub_to_apply_topic_works_like_ekctl_apply(
    agent: Agent, client: ApiClient, broker: Mosquitto
) -> None:
    results = PahoBus(BusConfig(port=broker.port)).start(wait=10)
    seen: list[ApplyResult] = []
    results.subscribe(topics.APPLY_RESULT, lambda m: seen.append(ApplyResult.decode(m.payload)))
    pub = shutil.which("mosquitto_pub")
    assert pub, "mosquitto-clients must be installed (scripts/install.sh)"
    subprocess.run(
        [pub, "-p", str(broker.port), "-q", "1", "-t", topics.APPLY, "-f", str(EXAMPLES / "hello-pod.yaml")],
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


def test_restarted_agent_adopts_running_pods(
    broker: Mosquitto, agent: Agent, client: ApiClient, e2e_podman: PodmanService, tmp_path: Path
) -> None:
    assert client.apply(HELLO).ok
    wait_for("hello Running", lambda: phase(client, "hello") == "Running")
    before = {c["name"]: c["containerID"] for c in client.pod("hello")["status"]["containerStatuses"]}
    agent.stop()
    again = start_agent(broker.port, "node-1", e2e_podman, tmp_path / "agent")
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
        again.reconcile()
        after = {c["name"]: c["containerID"] for c in client.pod("hello")["status"]["containerStatuses"]}
        assert after == before
        assert phase(client, "hello") == "Running"
    finally:
        again.stop()


def test_missing_image_reports_failed_with_reason(agent: Agent, client: ApiClient) -> None:
    manifest = """
apiVersion: v1
kind: Pod
metadata: {name: ghost}
spec:
  containers: [{name: main, image: "localhost/does-not-exist:1"}]
"""
    assert client.apply(manifest).ok
    wait_for("ghost Failed", lambda: phase(client, "ghost") == "Failed", timeout=60)
    status = client.pod("ghost")["status"]
    assert status["reason"] in {"ErrImagePull", "ImageNotFound"}
    assert "localhost/does-not-exist:1" in status["message"]


def test_bad_payloads_are_rejected_and_both_daemons_keep_working(
    agent: Agent, client: ApiClient, broker: Mosquitto
) -> None:
    raw = PahoBus(BusConfig(port=broker.port)).start(wait=10)
    # To the master: garbage, oversized, wrong schema, unknown field, unknown verb — with a response topic.
    for payload in (
        b"\x00\xff not json",
        b"{" + b" " * (MAX_PAYLOAD_BYTES + 10) + b"}",
        b'{"schema":"other/v9","verb":"list"}',
        b'{"schema":"edgekube/v1","verb":"list","evil":1}',
        b'{"schema":"edgekube/v1","verb":"explode"}',
        b"[1,2,3]",
    ):
        reply = json.loads(raw.request(topics.API_REQUEST, payload, timeout=10).payload)
        assert reply["ok"] is False and reply["error"]["reason"] == "Invalid", reply
    raw.publish(topics.APPLY, b"kind: [unclosed")
    raw.publish(topics.APPLY, b"apiVersion: v1\nkind: Pod\nmetadata: {name: BAD_NAME}\nspec: {containers: []}\n")
    # Node-scoped status/heartbeat/online with lies and garbage.
    raw.publish(topics.node_status("node-1"), b'{"schema":"edgekube/v1","node":"node-2"}')
    raw.publish(topics.node_heartbeat("node-1"), b"null")
    raw.publish(topics.node_online("node-1"), b"\x80\x81")
    # To the agent: a desired state that is garbage, for another node, or oversized; an rpc with junk.
    raw.publish(topics.node_desired("node-1"), b'{"schema":"edgekube/v1","node":"node-1","generation":-5}')
    raw.publish(topics.node_desired("node-1"), b'{"schema":"edgekube/v1","node":"node-9","generation":1,"epoch":"x"}')
    raw.publish(topics.node_desired("node-1"), b"x" * (MAX_PAYLOAD_BYTES + 1))
    reply = json.loads(raw.request(topics.node_rpc("node-1"), b"{}", timeout=10).payload)
    assert reply["ok"] is False
    raw.close()
    # Both still work: a new pod is scheduled, dispatched and runs.
    assert client.apply(HELLO).ok
    wait_for("hello Running after the junk", lambda: phase(client, "hello") == "Running")
