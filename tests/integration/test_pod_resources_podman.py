"""Pod-level resources and ephemeral-storage on a real Podman service: the pod's cgroup, and eviction by disk use."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.runtime.podman import PodmanRuntime, pod_name
from edgekube.local.podman_service import PodmanService
from edgekube.model.names import NodeName, PodUID
from tests.support.podman import EdgeNode, manifest
from tests.unit.test_runtime_contract import IDLE, make_pod, new_uid, wait_for

pytestmark = pytest.mark.integration

MI = 2**20
#: Allocates (and touches) a 100 MB buffer once, then reports how dd ended and stays up.
HOG = ["sh", "-c", "dd if=/dev/zero of=/dev/null bs=100M count=1 2>/dev/null; echo dd-exit=$?; " + IDLE[2]]


@pytest.fixture
def runtime(podman_service: PodmanService, demo_image: str) -> Iterator[PodmanRuntime]:
    rt = PodmanRuntime(podman_service.url, NodeName(f"node-{uuid.uuid4().hex[:8]}"))
    yield rt
    for pod in rt.list_pods():
        rt.remove_pod(pod.uid, grace_seconds=0)
    rt.close()


def _log_line(runtime: PodmanRuntime, uid: str, container: str, prefix: str) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for line in runtime.logs(uid, container).splitlines():  # type: ignore[arg-type]
            if line.startswith(prefix):
                return line
        time.sleep(0.1)
    pytest.fail(f"no {prefix!r} line in the logs of {container}")


def test_pod_level_limits_size_the_podman_pods_cgroup_and_hold_a_container_without_limits(
    runtime: PodmanRuntime, podman_service: PodmanService, demo_image: str
) -> None:
    limited, free = new_uid(), new_uid()
    hog = {"name": "hog", "image": demo_image, "command": HOG}
    runtime.create_pod(
        make_pod("capped", demo_image, hog, resources={"limits": {"cpu": "500m", "memory": "48Mi"}}), limited, "h1"
    )
    runtime.create_pod(make_pod("uncapped", demo_image, hog), free, "h2")
    wait_for(runtime, limited, lambda p: bool(p.containers))

    info = json.loads(podman_service.podman("pod", "inspect", pod_name("default", "capped", limited)).stdout)
    info = info[0] if isinstance(info, list) else info  # Podman 4.x prints one object, 5.x a list
    assert (info["memory_limit"], info["cpu_quota"], info["cpu_period"]) == (48 * MI, 50_000, 100_000)
    cgroup = Path("/sys/fs/cgroup/memory") / info["CgroupPath"].lstrip("/") / "memory.limit_in_bytes"
    if cgroup.exists():  # cgroup v1 with cgroupfs, as here; the pod inspect above is the portable check
        assert int(cgroup.read_text()) == 48 * MI
    # The container has no limit of its own: the pod's cgroup kills its 100 MB allocation, and only there.
    assert _log_line(runtime, limited, "hog", "dd-exit=") == "dd-exit=137"
    assert _log_line(runtime, free, "hog", "dd-exit=") == "dd-exit=0"


# -- ephemeral-storage: the agent measures (writable layer, logs, emptyDirs) and evicts as the kubelet does ----------


def _writer(name: str, megabytes: int, limit: str, wait: int = 0) -> dict[str, Any]:
    """A container that writes `megabytes` MB into its own root filesystem (its writable layer), then idles."""
    script = f"sleep {wait}; dd if=/dev/zero of=/fill bs=1M count={megabytes} 2>/dev/null; echo written; "
    return {
        "name": name,
        "command": ["sh", "-c", script + IDLE[2]],
        "resources": {"limits": {"ephemeral-storage": limit}},
    }


def test_a_container_writing_past_its_ephemeral_storage_limit_gets_its_pod_evicted_and_one_under_it_does_not(
    edge_node: EdgeNode,
) -> None:
    edge_node.config["volume_check_interval"] = 0.5
    edge_node.start_agent()
    # The modest pod writes 2 MB at once; the others wait 2 s, so the pass that evicts them measured it after.
    modest = manifest("modest", _writer("main", 2, "10Mi"))
    alone = manifest("alone", _writer("main", 20, "10Mi", wait=2))
    pair = manifest("pair", _writer("writer", 20, "10Mi", wait=2), _writer("quiet", 0, "100Mi"))
    edge_node.want(modest, alone, pair)

    status = edge_node.wait_status("eviction", "alone", lambda s: s.get("phase") == "Failed", timeout=60)
    total = "Pod ephemeral local storage usage exceeds the total limit of containers 10Mi."
    assert (status["reason"], status["message"]) == ("Evicted", total)
    status = edge_node.wait_status("eviction", "pair", lambda s: s.get("phase") == "Failed", timeout=60)
    one = 'Container writer exceeded its local ephemeral storage limit "10Mi".'
    assert (status["reason"], status["message"]) == ("Evicted", one)  # 20 MB of the pair's 110Mi: the container's

    modest_status = edge_node.status("modest")
    assert modest_status is not None and modest_status["phase"] == "Running"
    assert "written" in edge_node.runtime.logs(PodUID(modest["metadata"]["uid"]), "main")
    deadline = time.monotonic() + 5
    while ("Evicted", total) not in edge_node.event_reasons("alone") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ("Evicted", total) in edge_node.event_reasons("alone")
    assert not [r for r, _ in edge_node.event_reasons("modest") if r == "Evicted"]
