"""ConfigMaps and Secrets on real parts: Mosquitto, the master (TinyDB store), one agent on real Podman.

Applied over MQTT as ekctl does. A ConfigMap mounted in a running pod is updated: the container sees the new
content at the same path without a restart (the agent swaps `..data`), while its env keeps the old value. A
Secret is given as env and as a file whose mode (0400) `stat` shows inside the container. A pod naming a
ConfigMap that does not exist waits in ContainerCreating with the kubelet's message and starts once it is applied.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.app import Agent
from edgekube.local.broker import Mosquitto
from edgekube.local.podman_service import PodmanService
from edgekube.master.app import Master
from edgekube.model.errors import EdgekubeError
from edgekube.model.names import PodUID
from tests.support.cluster import ApiClient, start_agent, start_master, wait_for

pytestmark = pytest.mark.integration


class Cluster:
    def __init__(self, master: Master, agent: Agent, client: ApiClient, image: str, root: Path) -> None:
        self.master, self.agent, self.client, self.image = master, agent, client, image
        self.root, self.volumes = root, root / "config-volumes"

    def apply(self, *docs: dict[str, Any]) -> None:
        response = self.client.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": list(docs)}))
        assert response.ok, response.error

    def running(self, name: str) -> dict[str, Any]:
        return wait_for(  # type: ignore[no-any-return]
            f"{name} running", lambda: (p := self.client.pod(name)).get("status", {}).get("phase") == "Running" and p
        )

    def exec(self, name: str, *command: str) -> str:
        uid = PodUID(self.client.pod(name)["metadata"]["uid"])
        code, out = self.agent.runtime.exec(uid, "app", list(command), timeout=10)
        assert code == 0, out
        return out.strip()

    def pod(self, name: str, container: dict[str, Any], volumes: list[dict[str, Any]]) -> dict[str, Any]:
        base = {"name": "app", "image": self.image, "command": ["sleep", "600"]}
        spec = {"containers": [{**base, **container}], "volumes": volumes, "terminationGracePeriodSeconds": 0}
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


@pytest.fixture
def cluster(mosquitto: Mosquitto, podman_service: PodmanService, demo_image: str, tmp_path: Path) -> Iterator[Cluster]:
    master = start_master(mosquitto.port, tmp_path / "master")
    agent = start_agent(
        mosquitto.port, "node-config", podman_service, tmp_path / "agent", device_dir="", fence_dir="",
        config_volume_dir=str(tmp_path / "config-volumes"),
    )  # fmt: skip
    client = ApiClient(mosquitto.port)
    cluster = Cluster(master, agent, client, demo_image, tmp_path)
    try:
        yield cluster
    finally:
        client.close()
        master.stop()
        for pod in cluster.agent.runtime.list_pods():
            cluster.agent.runtime.remove_pod(pod.uid, 0)
        cluster.agent.stop()


def config_map(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def test_a_config_map_update_reaches_a_running_pods_file_but_not_its_env(cluster: Cluster) -> None:
    container = {
        "env": [{"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "greeting"}}}],
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/app"},
            {"name": "config", "mountPath": "/greeting.txt", "subPath": "greeting"},
        ],
    }
    pod = cluster.pod("reader", container, [{"name": "config", "configMap": {"name": "app-config"}}])
    cluster.apply(config_map("app-config", greeting="hello"), pod)
    started = cluster.running("reader")
    assert cluster.exec("reader", "cat", "/etc/app/greeting") == "hello"
    assert cluster.exec("reader", "sh", "-c", "echo $GREETING") == "hello"
    assert cluster.exec("reader", "cat", "/greeting.txt") == "hello"

    cluster.apply(config_map("app-config", greeting="bonjour"))
    wait_for("the new content in the file", lambda: cluster.exec("reader", "cat", "/etc/app/greeting") == "bonjour")
    assert cluster.exec("reader", "sh", "-c", "echo $GREETING") == "hello"  # env waits for a restart
    assert cluster.exec("reader", "cat", "/greeting.txt") == "hello"  # a subPath file does not follow (as Kubernetes)
    after = cluster.client.pod("reader")
    assert after["metadata"]["uid"] == started["metadata"]["uid"]
    assert after["status"]["containerStatuses"][0]["restartCount"] == 0
    assert cluster.exec("reader", "sh", "-c", "touch /etc/app/x 2>&1 || echo refused").endswith("refused")

    uid = started["metadata"]["uid"]
    assert (cluster.volumes / uid / "config" / "..data").is_symlink()
    cluster.client.delete("Pod", "reader")
    wait_for("the pod's config files removed", lambda: not (cluster.volumes / uid).exists())


def test_a_secret_as_env_and_as_a_file_with_its_mode(cluster: Cluster) -> None:
    secret = {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
        "stringData": {"password": "s3cr3t", "user": "admin"},
    }  # fmt: skip
    container = {
        "env": [
            {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            {"name": "DSN", "value": "db://$(DB_user)@db-host"},
        ],
        "envFrom": [{"prefix": "DB_", "secretRef": {"name": "db"}}],
        "volumeMounts": [{"name": "creds", "mountPath": "/run/creds"}],
    }
    volume = {"name": "creds", "secret": {"secretName": "db", "defaultMode": 0o400, "items": [
        {"key": "password", "path": "pw"}, {"key": "user", "path": "user", "mode": 0o440},
    ]}}  # fmt: skip
    cluster.apply(secret, cluster.pod("db-client", container, [volume]))
    cluster.running("db-client")
    assert cluster.exec("db-client", "sh", "-c", "echo $DB_PASSWORD $DB_user") == "s3cr3t admin"
    assert cluster.exec("db-client", "sh", "-c", "echo $DSN") == "db://admin@db-host"  # $(VAR) expanded
    assert cluster.exec("db-client", "cat", "/run/creds/pw") == "s3cr3t"
    assert cluster.exec("db-client", "stat", "-L", "-c", "%a", "/run/creds/pw") == "400"
    assert cluster.exec("db-client", "stat", "-L", "-c", "%a", "/run/creds/user") == "440"
    # Neither the master's store nor the agent's local copy of its desired state holds the value (or its base64).
    on_disk = b"".join(
        p.read_bytes() for d in ("master", "agent") for p in (cluster.root / d).rglob("*") if p.is_file()
    )
    assert b"s3cr3t" not in on_disk and base64.b64encode(b"s3cr3t") not in on_disk
    assert (cluster.root / "agent" / "desired.json").exists()


def test_a_pod_waits_for_a_missing_config_map_then_starts(cluster: Cluster) -> None:
    pod = cluster.pod(
        "waiter",
        {"volumeMounts": [{"name": "config", "mountPath": "/etc/app"}]},
        [{"name": "config", "configMap": {"name": "late"}}],
    )
    cluster.apply(pod)
    message = 'MountVolume.SetUp failed for volume "config" : configmap "late" not found'

    def waiting() -> dict[str, Any] | None:
        statuses = cluster.client.pod("waiter").get("status", {}).get("containerStatuses") or []
        state = statuses[0].get("state", {}).get("waiting") if statuses else None
        return state if state and state.get("message") == message else None

    assert wait_for("waiting for the ConfigMap", waiting)["reason"] == "ContainerCreating"
    assert cluster.client.pod("waiter")["status"]["phase"] == "Pending"
    events = cluster.client.objects("Event")
    assert any(e["reason"] == "FailedMount" and e["message"] == message for e in events)

    cluster.apply(config_map("late", ready="yes"))
    cluster.running("waiter")
    assert cluster.exec("waiter", "cat", "/etc/app/ready") == "yes"


def test_the_config_example_runs_and_its_log_follows_a_config_map_change(cluster: Cluster) -> None:
    """examples/config-pod.yaml as the README shows it: applied, Running, its log follows the ConfigMap."""
    example = Path(__file__).resolve().parents[2] / "examples" / "config-pod.yaml"
    response = cluster.client.apply(example.read_text())
    assert response.ok, response.error
    cluster.running("settings")
    assert cluster.exec("settings", "cat", "/etc/podinfo/labels") == 'app="settings"'
    assert cluster.exec("settings", "stat", "-L", "-c", "%a", "/run/secrets/db/password") == "400"
    wait_for("the greeting in the log", lambda: "hello (db password is 9 characters)" in _logs(cluster))
    cluster.apply(config_map("settings", greeting="bonjour"))
    wait_for("the new greeting in the log", lambda: "bonjour (db password is 9 characters)" in _logs(cluster))


def _logs(cluster: Cluster) -> str:
    return cluster.client.logs("settings").text or ""


def test_after_a_node_reboot_a_pod_using_a_secret_runs_again_with_its_value(
    cluster: Cluster, mosquitto: Mosquitto, podman_service: PodmanService
) -> None:
    """The agent's disk has no Secret values; the master's retained desired state gives them back after a reboot."""
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token"}, "stringData": {"t": "abc123"}}
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "token", "key": "t"}}}]
    cluster.apply(secret, cluster.pod("worker", {"env": env}, []))
    cluster.running("worker")
    cluster.agent.stop()
    for pod in cluster.agent.runtime.list_pods():  # the reboot took the containers
        cluster.agent.runtime.remove_pod(pod.uid, 0)
    assert b"abc123" not in (cluster.root / "agent" / "desired.json").read_bytes()
    cluster.agent = start_agent(
        mosquitto.port, "node-config", podman_service, cluster.root / "agent", device_dir="", fence_dir="",
        config_volume_dir=str(cluster.volumes),
    )  # fmt: skip
    wait_for("its token", lambda: _try_exec(cluster, "worker", "sh", "-c", "echo $TOKEN") == "abc123")


def _try_exec(cluster: Cluster, name: str, *command: str) -> str:
    uid = PodUID(cluster.client.pod(name)["metadata"]["uid"])
    try:
        code, out = cluster.agent.runtime.exec(uid, "app", list(command), timeout=10)
    except EdgekubeError:  # not created, or not started, yet
        return ""
    return out.strip() if code == 0 else ""


def test_a_pod_whose_env_names_a_missing_secret_waits_with_create_container_config_error(cluster: Cluster) -> None:
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "later", "key": "t"}}}]
    cluster.apply(cluster.pod("env-waiter", {"env": env}, []))

    def waiting() -> dict[str, Any] | None:
        statuses = cluster.client.pod("env-waiter").get("status", {}).get("containerStatuses") or []
        state = statuses[0].get("state", {}).get("waiting") if statuses else None
        return state if state and state.get("reason") == "CreateContainerConfigError" else None

    assert wait_for("waiting for the Secret", waiting)["message"] == 'secret "later" not found'
    assert cluster.client.pod("env-waiter")["status"]["phase"] == "Pending"
    events = cluster.client.objects("Event")
    assert any(e["reason"] == "Failed" and e["message"] == 'Error: secret "later" not found' for e in events)
    cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "later"}, "stringData": {"t": "ok"}})
    cluster.running("env-waiter")
    assert cluster.exec("env-waiter", "sh", "-c", "echo $TOKEN") == "ok"
