"""Pod-level `spec.resources` (PodLevelResources): validation, defaults, the one pod_requests, QoS, eviction, Podman."""

from __future__ import annotations

from typing import Any

import pytest

from edgekube.agent.health.pressure import candidate
from edgekube.agent.runtime.podman.specgen import pod_spec
from edgekube.master.cache import CachedStore
from edgekube.master.scheduling.scheduler import NodeView, Request, schedule
from edgekube.model.manifest import ManifestError, parse_object
from edgekube.model.names import NodeName, PodUID
from edgekube.model.pod import Pod
from edgekube.model.podresources import PodRequests, pod_level_requests, pod_requests
from edgekube.model.qos import QOSClass, qos_class
from tests.unit.test_config_resolution import apply, resolve, store  # noqa: F401 - `store` is a fixture
from tests.unit.test_config_resolution import pod as config_pod

MI = 2**20


def manifest(resources: dict[str, Any] | None, *containers: dict[str, Any], **spec: Any) -> dict[str, Any]:
    given = list(containers) or [{}]
    body: dict[str, Any] = {
        "containers": [{"name": f"c{i}", "image": "busybox", **c} for i, c in enumerate(given)],
        **spec,
    }
    if resources is not None:
        body["resources"] = resources
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": body}


def pod(resources: dict[str, Any] | None, *containers: dict[str, Any], **spec: Any) -> Pod:
    obj = parse_object(manifest(resources, *containers, **spec))
    assert isinstance(obj, Pod)
    return obj


def problems(resources: dict[str, Any] | None, *containers: dict[str, Any]) -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_object(manifest(resources, *containers))
    return info.value.problems


def res(requests: dict[str, Any] | None = None, limits: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"resources": {"requests": requests or {}, "limits": limits or {}}}


# -- validation (pkg/apis/core/validation/validation.go) --------------------------------------------------------------


def test_pod_level_names_are_cpu_and_memory_only() -> None:
    """validatePodResourceName: any other name is NotSupported, with the supported values listed."""
    assert problems({"requests": {"ephemeral-storage": "1Gi"}, "limits": {"edgekube.io/serial": 1}}) == [
        'spec.resources.requests[ephemeral-storage]: Unsupported value: "ephemeral-storage": '
        'supported values: "cpu", "memory"',
        'spec.resources.limits[edgekube.io/serial]: Unsupported value: "edgekube.io/serial": '
        'supported values: "cpu", "memory"',
    ]


def test_a_pod_level_request_above_its_limit_is_invalid() -> None:
    """validateResourceRequirements (through validatePodResourceRequirements): request ≤ limit, same words."""
    assert problems({"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}) == [
        'spec.resources.requests[memory]: Invalid value: "2Gi": must be less than or equal to memory limit of 1Gi'
    ]


def test_a_pod_level_quantity_must_parse() -> None:
    """validateResourceRequirements: each quantity is a valid, non-negative resource.Quantity."""
    [problem] = problems({"limits": {"cpu": "lots"}})
    assert problem.startswith("spec.resources.limits[cpu]: 'lots': quantities must match the regular expression")


def test_pod_requests_below_the_containers_aggregate_are_invalid() -> None:
    """validatePodResourceConsistency: pod-level requests ≥ AggregateContainerRequests (a limit alone counts)."""
    assert problems(
        {"requests": {"cpu": "100m", "memory": "64Mi"}}, res({"cpu": "60m"}), res(None, {"cpu": "50m"})
    ) == [
        'spec.resources.requests[cpu]: Invalid value: "100m": must be greater than or equal to aggregate container '
        "requests of 110m"
    ]


def test_a_container_limit_above_the_pod_limit_is_invalid() -> None:
    """validatePodResourceConsistency: each container's limit ≤ the pod-level limit of the same resource."""
    # (The pod's memory request defaults to the containers' aggregate, 256Mi, so only the limit is wrong.)
    assert problems({"limits": {"memory": "128Mi"}}, res(None, {"memory": "256Mi"})) == [
        'spec.containers[0].resources.limits[memory]: Invalid value: "256Mi": must be less than or equal to pod '
        "limits of 128Mi",
    ]


def test_container_limits_may_sum_above_the_pod_limit() -> None:
    """KEP-2837's rules (validatePodResourceConsistency checks each container, not their sum): valid."""
    p = pod({"limits": {"cpu": "1"}}, res({"cpu": "100m"}, {"cpu": "1"}), res({"cpu": "100m"}, {"cpu": "1"}))
    assert p.spec.resources is not None


def test_resources_the_pod_does_not_set_are_not_compared() -> None:
    """kubernetes#132449 (fixed): a container's memory or ephemeral request beside a pod-level cpu request is valid."""
    p = pod({"requests": {"cpu": "300m"}}, res({"memory": "10Mi"}))
    assert pod_requests(p.spec) == PodRequests(cpu_millis=300, memory_bytes=10 * MI)


# -- defaults and PodRequests -----------------------------------------------------------------------------------------


def test_pod_requests_default_to_the_pod_limits_when_no_container_asks() -> None:
    """defaultPodRequests case 2: no container requests a resource, so the pod-level limit is the request."""
    p = pod({"limits": {"cpu": "2", "memory": "1Gi"}})
    assert pod_level_requests(p.spec) == {"cpu": 2000, "memory": 1024 * MI}
    assert pod_requests(p.spec) == PodRequests(cpu_millis=2000, memory_bytes=1024 * MI)


def test_pod_requests_default_to_the_containers_aggregate_when_some_container_asks() -> None:
    """defaultPodRequests case 1: with pod-level limits, an unset pod request is the containers' aggregate."""
    p = pod({"limits": {"cpu": "2", "memory": "1Gi"}}, res({"memory": "100Mi"}), res({"memory": "28Mi"}))
    assert pod_level_requests(p.spec) == {"cpu": 2000, "memory": 128 * MI}


def test_without_pod_level_limits_only_set_requests_override() -> None:
    """PodRequests: a pod-level request wins for its resource; the others stay the containers' aggregate."""
    p = pod({"requests": {"memory": "512Mi"}}, res({"cpu": "250m", "memory": "100Mi"}))
    assert pod_requests(p.spec) == PodRequests(cpu_millis=250, memory_bytes=512 * MI)


def test_without_pod_level_resources_the_containers_are_summed_with_their_extended_resources() -> None:
    p = pod(None, res({"cpu": "250m"}), res(None, {"memory": "64Mi", "edgekube.io/serial": 1}))
    assert pod_requests(p.spec) == PodRequests(250, 64 * MI, 0, (("edgekube.io/serial", 1),))


def test_init_containers_count_by_the_max_rule_and_sidecars_add() -> None:
    """AggregateContainerRequests: max(app + sidecars, largest init step); a sidecar runs beside later steps."""
    spec = {
        "containers": [{"resources": {"requests": {"cpu": "100m"}}}],
        "initContainers": [
            {"resources": {"requests": {"cpu": "50m"}}, "restartPolicy": "Always"},
            {"resources": {"requests": {"cpu": "500m"}}},
        ],
    }
    assert pod_requests(spec).cpu_millis == 550  # the init step: 500m beside the 50m sidecar, above 150m


# -- every user of a pod's request --------------------------------------------------------------------------------


def test_the_scheduler_places_by_the_pod_level_request() -> None:
    p = pod({"requests": {"cpu": "3"}}, res({"cpu": "100m"}))
    stored = Request.of_stored(p.spec.to_dict())
    assert (stored.cpu_millis, Request.of(p.spec).cpu_millis) == (3000, 3000)
    small = NodeView(name=NodeName("pi-1"), ready=True, labels={}, cpu_millis=2000, memory_bytes=4096 * MI)
    big = NodeView(name=NodeName("pi-2"), ready=True, labels={}, cpu_millis=4000, memory_bytes=4096 * MI)
    assert schedule(stored, [small]).message == "0/1 nodes are available: 1 Insufficient cpu."
    assert schedule(stored, [small, big]).node == "pi-2"


@pytest.mark.parametrize(
    ("resources", "containers", "qos"),
    [
        ({"limits": {"cpu": "1", "memory": "1Gi"}}, [{}], QOSClass.GUARANTEED),  # requests default to limits
        ({"limits": {"cpu": "1"}}, [res({"memory": "1Gi"}, {"memory": "1Gi"})], QOSClass.BURSTABLE),
        ({"requests": {"cpu": "1", "memory": "1Gi"}}, [res({"cpu": "1"}, {"cpu": "1"})], QOSClass.BURSTABLE),
        ({}, [res({"cpu": "1", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"})], QOSClass.BEST_EFFORT),
    ],
)
def test_qos_comes_from_pod_level_resources_when_set(
    resources: dict[str, Any], containers: list[dict[str, Any]], qos: QOSClass
) -> None:
    """ComputePodQOS: pod-level requests and limits alone decide; Guaranteed needs cpu and memory limits = requests."""
    assert qos_class(pod(resources, *containers).spec) is qos


def test_eviction_ranks_by_the_pod_level_memory_request() -> None:
    p = pod({"requests": {"memory": "256Mi"}}, res({"memory": "16Mi"}))
    c = candidate(PodUID("u"), p, {"c0": (100 * MI, 1)})
    assert c.memory_request == 256 * MI and not c.exceeds_memory_request


def test_pod_level_limits_become_the_podman_pods_cgroup() -> None:
    p = pod({"requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "64Mi"}})
    assert pod_spec(p, "pod", {})["resource_limits"] == {
        "cpu": {"quota": 50_000, "period": 100_000, "shares": 256},
        "memory": {"limit": 64 * MI},
    }
    assert "resource_limits" not in pod_spec(pod(None), "pod", {})


def test_a_containers_missing_limit_in_the_downward_api_is_the_pod_level_one(store: CachedStore) -> None:  # noqa: F811
    """kubelet downward API with PodLevelResources (e2e "default limits.cpu/memory from pod level resources")."""
    apply(store, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    node = store.get("Node", "", "n1")
    store.update({**node, "status": {"allocatable": {"cpu": "4", "memory": "8Gi"}}})
    env = [
        {"name": "CPU_LIM", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
        {"name": "MEM_LIM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
    ]
    doc = config_pod({"env": env})
    doc["spec"]["resources"] = {"limits": {"cpu": "500m"}}
    config = resolve(store, doc)
    assert config.env["app"] == {"CPU_LIM": "500", "MEM_LIM": "8192"}  # memory: no pod limit, the node's
