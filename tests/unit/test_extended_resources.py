"""Extended resources (edgekube.io/serial, ...): name rules, and the scheduler fitting them like cpu and memory."""

from __future__ import annotations

from typing import Any

import pytest

from edgekube.master.scheduling.scheduler import NodeView, Placement, Request, bind, schedule, schedule_all
from edgekube.master.scheduling.specs import SpecCache
from edgekube.master.scheduling.usage import NodeUsage
from edgekube.model.errors import ValidationError
from edgekube.model.names import NodeName
from edgekube.model.pod import PodSpec
from edgekube.model.resources import extended_allocatable, extended_count, is_extended

SERIAL = "edgekube.io/serial"


def spec(*resources: dict[str, Any]) -> PodSpec:
    return PodSpec.model_validate(
        {"containers": [{"name": f"c{i}", "image": "busybox", "resources": r} for i, r in enumerate(resources)]}
    )


def node(name: str, **extended: int) -> NodeView:
    devices = {f"edgekube.io/{k}": v for k, v in extended.items()}
    return NodeView(NodeName(name), True, {}, 4000, 4096 * 2**20, extended=devices)


@pytest.mark.parametrize(
    ("name", "extended"),
    [
        ("edgekube.io/serial", True),
        ("example.com/foo", True),
        ("cpu", False),
        ("kubernetes.io/foo", False),
        ("node.kubernetes.io/foo", False),
        ("requests.example.com/foo", False),
        ("Example.com/foo", False),
        ("example.com/", False),
    ],
)
def test_extended_resource_names_follow_kubernetes(name: str, extended: bool) -> None:
    assert is_extended(name) is extended


def test_an_extended_quantity_must_be_whole() -> None:
    assert extended_count("2", "x") == 2
    assert extended_count("1k", "x") == 1000
    with pytest.raises(ValidationError, match=r'^x: Invalid value: "1.5": must be an integer$'):
        extended_count("1.5", "x")


def test_a_nodes_allocatable_extended_resources_ignore_cpu_memory_and_bad_values() -> None:
    allocatable: dict[str, str | int | float] = {
        "cpu": "4", "memory": "1Gi", "pods": 110, SERIAL: 2, "edgekube.io/i2c": "half"
    }  # fmt: skip
    assert extended_allocatable(allocatable) == {SERIAL: 2, "edgekube.io/i2c": 0}


def test_a_request_sums_extended_resources_over_containers_from_model_and_store_alike() -> None:
    pod = spec({"limits": {SERIAL: 1}}, {"requests": {SERIAL: 2}, "limits": {SERIAL: 2, "edgekube.io/i2c": 1}})
    assert Request.of(pod).extended == (("edgekube.io/i2c", 1), (SERIAL, 3))
    assert Request.of_stored(pod.model_dump(by_alias=True, exclude_none=True)) == Request.of(pod)


def test_a_pod_requesting_a_device_goes_only_where_it_is_advertised() -> None:
    nodes = [node("a"), node("b", serial=1), node("c")]
    assert schedule(spec({"limits": {SERIAL: 1}}), nodes) == Placement(NodeName("b"))


def test_a_device_taken_by_a_bound_pod_is_not_free() -> None:
    pod = Request.of(spec({"limits": {SERIAL: 1}}))
    nodes = [node("a"), node("b", serial=1), node("c")]
    assert schedule_all([pod, pod], nodes) == [
        Placement(NodeName("b")),
        Placement(None, "0/3 nodes are available: 3 Insufficient edgekube.io/serial."),
    ]
    assert bind(nodes[1], pod).used_extended == {SERIAL: 1}


def test_the_explanation_counts_nodes_without_the_device_like_kube_scheduler() -> None:
    pod = spec({"limits": {SERIAL: 2}})
    placement = schedule(pod, [node("a"), node("b", serial=1), node("c", i2c=4)])
    assert placement == Placement(None, "0/3 nodes are available: 3 Insufficient edgekube.io/serial.")


def test_pods_without_extended_requests_ignore_them() -> None:
    assert schedule(spec({}), [node("a"), node("b", serial=1)]).node is not None


def test_node_usage_counts_and_frees_the_devices_of_bound_pods() -> None:
    usage = NodeUsage(SpecCache())
    pod = {
        "metadata": {"uid": "u1", "name": "p", "namespace": "default"},
        "spec": {"nodeName": "b", "containers": [{"name": "c", "image": "i", "resources": {"limits": {SERIAL: 1}}}]},
        "status": {"phase": "Running"},
    }
    usage.observe(("default", "p"), pod)
    assert dict(usage.usage("b").extended) == {SERIAL: 1}
    usage.observe(("default", "p"), {**pod, "status": {"phase": "Succeeded"}})
    assert dict(usage.usage("b").extended) == {}
