"""ephemeral-storage: validated like memory, reported in allocatable, fitted by the scheduler, enforced by eviction."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from edgekube.agent import hostinfo
from edgekube.agent.events import EventRecorder
from edgekube.agent.localstorage import eviction_message, measured, quantity_text
from edgekube.agent.report import StatusReporter
from edgekube.agent.runtime.fake import FakeRuntime
from edgekube.cli.describe_node import describe_node
from edgekube.master.scheduling.scheduler import NodeView, Request, schedule
from edgekube.model.manifest import ManifestError, parse_object
from edgekube.model.names import NodeName, PodUID
from edgekube.model.pod import Pod
from edgekube.model.podresources import counted_allocatable, pod_requests, storage_limits
from tests.unit.test_volumes_agent import Node, node, pod_with  # noqa: F401 - `node` is a fixture

MI = 2**20
GI = 2**30


def pod(*containers: dict[str, Any], volumes: list[dict[str, Any]] | None = None) -> Pod:
    given = [{"name": f"c{i}", "image": "busybox", **c} for i, c in enumerate(containers or ({},))]
    spec: dict[str, Any] = {"containers": given, **({"volumes": volumes} if volumes else {})}
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}
    obj = parse_object(doc)
    assert isinstance(obj, Pod)
    return obj


def storage(request: str | None = None, limit: str | None = None) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if request:
        resources["requests"] = {"ephemeral-storage": request}
    if limit:
        resources["limits"] = {"ephemeral-storage": limit}
    return {"resources": resources}


# -- the manifest -----------------------------------------------------------------------------------------------------


def test_ephemeral_storage_is_a_standard_container_resource() -> None:
    """validateContainerResourceName: ephemeral-storage is one of the standard container resources."""
    p = pod(storage("1Gi", "2Gi"), storage(None, "512Mi"))
    assert pod_requests(p.spec).ephemeral_storage_bytes == GI + 512 * MI  # a limit alone is the request
    assert storage_limits(p.spec) == (2 * GI + 512 * MI, {"c0": 2 * GI, "c1": 512 * MI})


def test_an_ephemeral_storage_request_above_its_limit_is_invalid() -> None:
    """validateResourceRequirements: requests ≤ limits holds for ephemeral-storage as for memory."""
    with pytest.raises(ManifestError) as info:
        pod(storage("2Gi", "1Gi"))
    [problem] = info.value.problems
    assert "must be less than or equal to ephemeral-storage limit of 1Gi" in problem


# -- the node and the scheduler ------------------------------------------------------------------------------------


def test_allocatable_is_the_stores_filesystem_less_its_eviction_threshold(tmp_path: Path) -> None:
    st = os.statvfs(tmp_path)
    total = st.f_blocks * st.f_frsize
    assert hostinfo.ephemeral_storage(str(tmp_path), "imagefs.available<15%") == (total, total - int(total * 0.15))
    assert hostinfo.ephemeral_storage(str(tmp_path / "not" / "yet"), "nodefs.available<1Gi") == (total, total - GI)
    assert hostinfo.ephemeral_storage(str(tmp_path), "") == (total, total)


def test_the_node_reports_ephemeral_storage_in_the_kubelets_forms() -> None:
    reporter = StatusReporter(
        NodeName("pi-1"), "boot", FakeRuntime(NodeName("pi-1")), EventRecorder("pi-1"),
        labels={}, max_pods=10, report_interval=10.0, ephemeral_storage=(64 * GI, 50 * GI),
    )  # fmt: skip
    status = reporter._host_object()["status"]
    assert status["capacity"]["ephemeral-storage"] == f"{64 * GI // 1024}Ki"
    assert status["allocatable"]["ephemeral-storage"] == str(50 * GI)
    assert counted_allocatable(status["allocatable"]) == {"ephemeral-storage": 50 * GI}


def test_the_scheduler_fits_ephemeral_storage_requests_against_allocatable() -> None:
    """kube-scheduler's Fit: `Insufficient ephemeral-storage`, counted over the pods already bound."""
    p = pod(storage("6Gi"))
    req = Request.of_stored(p.spec.to_dict())
    assert req.extended == (("ephemeral-storage", 6 * GI),) and Request.of(p.spec).extended == req.extended
    small = NodeView(
        name=NodeName("pi-1"), ready=True, labels={}, cpu_millis=4000, memory_bytes=4 * GI,
        extended=counted_allocatable({"ephemeral-storage": str(10 * GI)}), used_extended={"ephemeral-storage": 5 * GI},
    )  # fmt: skip
    assert schedule(req, [small]).message == "0/1 nodes are available: 1 Insufficient ephemeral-storage."
    assert schedule(Request.of(pod(storage("5Gi")).spec), [small]).node == "pi-1"


# -- eviction (the kubelet's localStorageEviction) ------------------------------------------------------------------


def test_the_pods_total_is_checked_first_with_the_kubelets_message() -> None:
    """podEphemeralStorageLimitEviction: containers and disk emptyDirs together over the containers' limits."""
    p = pod(
        storage(None, "10Mi"), volumes=[{"name": "d", "emptyDir": {}}, {"name": "m", "emptyDir": {"medium": "Memory"}}]
    )
    assert eviction_message(p, {"d": 4 * MI, "m": 100 * MI}, lambda: {"c0": 5 * MI}) is None  # tmpfs is memory
    assert eviction_message(p, {"d": 6 * MI}, lambda: {"c0": 5 * MI}) == (
        "Pod ephemeral local storage usage exceeds the total limit of containers 10Mi."
    )


def test_a_container_over_its_own_limit_is_evicted_when_the_total_is_not() -> None:
    """containerEphemeralStorageLimitEviction: writable layer and logs over the container's limit."""
    p = pod(storage(None, "10Mi"), storage(None, "100Mi"))
    assert eviction_message(p, {}, lambda: {"c0": 20 * MI, "c1": 0}) == (
        'Container c0 exceeded its local ephemeral storage limit "10Mi".'
    )


def test_an_empty_dir_over_its_size_limit_wins_and_a_pod_without_limits_is_not_measured() -> None:
    """emptyDirLimitEviction comes first; a pod with no limit at all is never measured (nor its containers)."""
    sized = pod(storage(None, "1Mi"), volumes=[{"name": "x", "emptyDir": {"sizeLimit": "1Mi"}}])
    assert eviction_message(sized, {"x": 2 * MI}, lambda: {"c0": 2 * MI}) == (
        'Usage of EmptyDir volume "x" exceeds the limit "1Mi".'
    )
    free = pod(volumes=[{"name": "x", "emptyDir": {}}])
    assert not measured(free) and measured(pod(storage(None, "1Gi")))

    def never() -> dict[str, int]:
        raise AssertionError("containers measured without a limit")

    assert eviction_message(free, {"x": GI}, never) is None


@pytest.mark.parametrize(
    ("value", "written", "text"),
    [
        (10 * MI, ["10Mi"], "10Mi"),
        (110 * MI, ["10Mi", "100Mi"], "110Mi"),
        (20_000_000, ["20M"], "20M"),
        (7, ["7"], "7"),
    ],
)
def test_limits_are_printed_as_kubernetes_prints_their_sum(value: int, written: list[str], text: str) -> None:
    assert quantity_text(value, written) == text


def test_a_container_over_its_limit_evicts_the_pod_for_good_on_the_next_measurement(node: Node) -> None:  # noqa: F811
    want = pod_with("w", [])
    want["spec"]["containers"][0]["resources"] = {"limits": {"ephemeral-storage": "10Mi"}}
    node.want(want)
    node.settle()
    uid = PodUID("uid-w")
    node.runtime.fill_container(uid, "app", 10 * MI)  # at the limit: kept
    node.clock.now += 5
    node.settle()
    assert node.status(uid)["phase"] == "Running"
    node.runtime.fill_container(uid, "app", 20 * MI)
    node.clock.now += 5
    node.settle()
    message = "Pod ephemeral local storage usage exceeds the total limit of containers 10Mi."
    status = node.status(uid)
    assert (status["phase"], status["reason"], status["message"]) == ("Failed", "Evicted", message)
    assert node.events("Evicted") == [message]


def test_describe_node_lists_ephemeral_storage_after_memory_like_kubectl() -> None:
    pi = {
        "metadata": {"name": "pi-1"},
        "status": {"allocatable": {"cpu": "4", "memory": "4Gi", "ephemeral-storage": "10Gi"}},
    }
    spec = {"containers": [{"name": "c", "image": "i", **storage("1Gi", "2Gi")}]}
    pod_obj = {"metadata": {"name": "p", "namespace": "default"}, "spec": spec, "status": {"phase": "Running"}}
    lines = describe_node(pi, [pod_obj]).splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("Resource"))
    assert lines[at + 4].split() == ["ephemeral-storage", "1Gi", "(10%)", "2Gi", "(20%)"]
