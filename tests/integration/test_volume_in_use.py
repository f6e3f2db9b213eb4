"""A deleted claim's NFS directory outlives the node's mount of it: real Mosquitto, master, agent, Podman, Ganesha.

One node mounting NFS through the FUSE helper, a StorageClass provisioning on the fleet's NFS-Ganesha, a claim
and a pod writing to it. The pod ignores SIGTERM, so its node holds the claim's Podman volume for the grace
period of its removal (the agent's 10 s, then SIGKILL) after `delete pod; delete pvc` has taken it out of the
store. Meanwhile the test samples, in this order, the directory on the server, the node's Podman volumes and the
Node's status.volumesInUse: the directory is never gone while the volume still exists, and it does go once the
volume has.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import wait_for
from tests.support.fleet import Fleet, container, phase
from tests.support.prerequisites import require_mosquitto, require_nfs, require_podman

pytestmark = pytest.mark.integration

#: Ignores SIGTERM: the agent's removal waits out the grace period, then SIGKILLs it.
STUBBORN = ["sh", "-c", "trap '' TERM; while true; do date >> /data/log; sleep 0.2; done"]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    require_podman()
    require_mosquitto()
    require_nfs()
    root = tmp_path_factory.mktemp("volume_in_use")
    with Fleet(root, 1, netns=False, nfs=True, agent_args=["--nfs-client", "userspace"]) as started:
        yield started


@dataclass(frozen=True)
class Sample:
    """One look, in this order: the claim's directory on the server, the Podman volume, the Node's status."""

    at: float
    directory: bool
    podman_volume: bool
    reported: bool


def manifests(fleet: Fleet) -> str:
    target = fleet.nfs_target()
    storage_class = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": "nfs"},
        "provisioner": "edgekube.io/nfs",
        "parameters": {"server": target.server, "share": target.path, "port": str(target.port)},
        "reclaimPolicy": "Delete",
    }
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {
            "storageClassName": "nfs",
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "counter"},
        "spec": {
            "containers": [container("counter", STUBBORN, volumeMounts=[{"name": "d", "mountPath": "/data"}])],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
        },
    }
    return "\n---\n".join(json.dumps(doc) for doc in (storage_class, claim, pod))


def podman_volumes(fleet: Fleet, node: str, pv: str) -> list[dict[str, Any]]:
    """The node's Podman volumes labelled with the PersistentVolume `pv`."""
    out = fleet.podman[node].podman("volume", "ls", "--format", "json", "--filter", f"label=edgekube.io/pv={pv}")
    return list(json.loads(out.stdout or "[]"))


def test_a_claims_directory_is_removed_only_after_the_nodes_podman_volume_is_gone(fleet: Fleet) -> None:
    assert fleet.ganesha is not None
    (node,) = fleet.nodes
    assert fleet.apply(manifests(fleet)).ok
    wait_for("pod counter Running", lambda: phase(fleet.api.pod("counter")) == "Running", timeout=120)
    pv = fleet.api.get("PersistentVolumeClaim", "data")["spec"]["volumeName"]
    directory: Path = fleet.ganesha.export_dir / f"default-data-{pv}"
    wait_for("the pod writing into its claim's directory", (directory / "log").exists)
    [volume] = podman_volumes(fleet, node, pv)
    labels = volume["Labels"]
    assert (labels["edgekube.io/pv"], labels["edgekube.io/pvc"]) == (pv, "default/data")
    in_use = f"edgekube.io/nfs/{pv}"
    wait_for("the node reporting the volume in use", lambda: in_use in volumes_in_use(fleet, node))

    deleted_at = time.monotonic()
    assert fleet.api.delete("Pod", "counter").ok
    assert fleet.api.delete("PersistentVolumeClaim", "data").ok
    samples: list[Sample] = []

    def look() -> bool:
        samples.append(
            Sample(
                time.monotonic() - deleted_at,
                directory.exists(),
                bool(podman_volumes(fleet, node, pv)),
                in_use in volumes_in_use(fleet, node),
            )
        )
        return not samples[-1].directory

    wait_for("the claim's directory removed", look, timeout=120, interval=0.1)

    early = [s for s in samples if not s.directory and s.podman_volume]
    assert early == [], f"the directory went while the node still had the Podman volume: {early}"
    held = [s for s in samples if s.directory and s.podman_volume and s.reported]
    assert held, f"no sample saw the directory kept while the node reported the volume in use: {samples}"
    assert podman_volumes(fleet, node, pv) == []
    wait_for("the claim and its volume gone", lambda: not claim_or_volume_left(fleet, pv))
    volume_gone = next(s.at for s in samples if not s.podman_volume)
    print(  # the measurement the report quotes: how long the reclaim waited after the pod's delete
        f"\nreclaim after pod delete: Podman volume gone at {volume_gone:.2f}s, directory removed at "
        f"{samples[-1].at:.2f}s ({samples[-1].at - volume_gone:.2f}s later), {len(samples)} samples"
    )


def volumes_in_use(fleet: Fleet, node: str) -> list[str]:
    return list((fleet.api.get("Node", node).get("status") or {}).get("volumesInUse") or ())


def claim_or_volume_left(fleet: Fleet, pv: str) -> bool:
    claims = [c["metadata"]["name"] for c in fleet.api.objects("PersistentVolumeClaim")]
    volumes = [v["metadata"]["name"] for v in fleet.api.objects("PersistentVolume")]
    return "data" in claims or pv in volumes
