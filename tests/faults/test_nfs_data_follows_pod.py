"""A claim's data reaches every node and follows its pod: real Ganesha, real Podman per node, the userspace NFS mount.

Real parts: Mosquitto, the master and three agents as processes (each agent in its own network namespace), Podman
per node, NFS-Ganesha on the host's main address, agents mounting NFS through edgekube-nfs-mount over FUSE. The
tests read what the pods wrote both through the API (a pod's log) and on the server's export directory.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from edgekube.local.podman_service import PodmanService
from tests.faults.conftest import NODES
from tests.support.cluster import wait_for
from tests.support.fleet import Fleet, container, node_of, phase
from tests.support.prerequisites import require_netns, require_nfs

pytestmark = pytest.mark.integration

#: A short lease, as in test_rwo_fencing.py: the replacement of a pod on a dead node waits it out.
LEASE_SECONDS = 6


@pytest.fixture(scope="module")
def fleet(fleet_podman: dict[str, PodmanService], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    require_netns()
    require_nfs()
    assert shutil.which("podman")
    agent_args = ["--lease-duration", str(LEASE_SECONDS), "--nfs-client", "userspace"]
    root = tmp_path_factory.mktemp("nfs_follows")
    with Fleet(root, NODES, netns=True, podman=fleet_podman, nfs=True, agent_args=agent_args) as started:
        yield started


def volume_and_claim(fleet: Fleet, name: str, mode: str) -> list[dict[str, Any]]:
    """A static NFS PersistentVolume on its own export directory and the claim bound to it."""
    target = fleet.nfs_target(name)
    return [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": f"pv-{name}"},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": [mode],
                "storageClassName": "",
                "mountOptions": [f"port={target.port}"],
                "nfs": {"server": target.server, "path": target.path},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": name},
            "spec": {
                "accessModes": [mode],
                "storageClassName": "",
                "volumeName": f"pv-{name}",
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    ]


def pod_on(node: str, name: str, claim: str, script: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "containers": [container("main", ["sh", "-c", script], volumeMounts=[{"name": "d", "mountPath": "/d"}])],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }


def apply(fleet: Fleet, docs: list[dict[str, Any]]) -> None:
    fleet.apply("\n---\n".join(json.dumps(doc) for doc in docs))


def running_pod(fleet: Fleet, name: str, timeout: float = 120.0) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        pods = fleet.try_list("Pod") or []
        found = [p for p in pods if p["metadata"]["name"] == name and phase(p) == "Running"]
        return found[0] if found else None

    found: dict[str, Any] = wait_for(f"pod {name} Running", check, timeout)
    return found


def log_of(fleet: Fleet, name: str, expected: str, timeout: float = 60.0) -> str:
    def check() -> str | None:
        answer = fleet.api.logs(name)  # an error answer (the container not started yet) is retried
        text = answer.text or "" if answer.ok else ""
        return text if expected in text else None

    found: str = wait_for(f"{expected!r} in the log of {name}", check, timeout)
    return found


def test_a_pod_on_one_node_writes_a_file_that_lands_in_the_export_and_a_pod_on_another_node_reads_it(
    fleet: Fleet,
) -> None:
    writer_node, reader_node = "node-1", "node-2"
    assert {writer_node, reader_node} <= set(fleet.agents)
    docs = volume_and_claim(fleet, "shared", "ReadWriteMany")
    docs.append(pod_on(writer_node, "writer", "shared", "echo written-on-$(hostname) > /d/msg; sleep 100000"))
    apply(fleet, docs)
    assert node_of(running_pod(fleet, "writer")) == writer_node
    assert fleet.ganesha is not None
    on_server = fleet.ganesha.export_dir / "shared" / "msg"
    wait_for(f"{on_server} written", lambda: on_server.exists() and on_server.read_text().strip(), 60)
    assert on_server.read_text() == "written-on-writer\n"

    reader = pod_on(reader_node, "reader", "shared", "echo read:$(cat /d/msg); sleep 100000")
    apply(fleet, [reader])
    assert node_of(running_pod(fleet, "reader")) == reader_node
    assert "read:written-on-writer" in log_of(fleet, "reader", "read:")


def test_a_claims_data_survives_its_pods_eviction_after_agent_kill_9_and_the_replacement_reads_it(
    fleet: Fleet,
) -> None:
    docs = volume_and_claim(fleet, "follows", "ReadWriteOnce")
    script = "echo previous:$(cat /d/log 2>/dev/null | tr '\\n' ,); echo $(hostname) >> /d/log; sleep 100000"
    docs.append(
        {
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "metadata": {"name": "follows"},
            "spec": {
                "replicas": 1,
                "selector": {"app": "follows"},
                "template": {
                    "metadata": {"labels": {"app": "follows"}},
                    "spec": {
                        "containers": [
                            container("main", ["sh", "-c", script], volumeMounts=[{"name": "d", "mountPath": "/d"}])
                        ],
                        "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "follows"}}],
                    },
                },
            },
        }
    )
    apply(fleet, docs)
    (first,) = fleet.wait_replicas("app=follows", 1, timeout=120)
    first_name, victim = first["metadata"]["name"], node_of(first)
    assert log_of(fleet, first_name, "previous:").strip().endswith("previous:"), "the first pod found no data"
    assert fleet.ganesha is not None
    on_server = fleet.ganesha.export_dir / "follows" / "log"
    wait_for("the first pod's line on the server", lambda: on_server.exists() and on_server.read_text(), 30)

    fleet.kill_agent(victim)  # kill -9: the node goes NotReady, the master evicts and replaces the pod elsewhere
    assert not fleet.agents[victim].running, "the agent is dead"
    (second,) = fleet.wait_replicas("app=follows", 1, avoid=victim, timeout=120)
    second_name = second["metadata"]["name"]
    assert second_name != first_name and node_of(second) != victim
    assert f"previous:{first_name}," in log_of(fleet, second_name, "previous:"), "the replacement read the first's data"
    assert on_server.read_text().splitlines() == [first_name, second_name]
