"""A pod's Quality of Service class (Guaranteed, Burstable, BestEffort) by Kubernetes' rules; for eviction ranking.

Only cpu and memory count, as in Kubernetes: a pod with no request or limit for either in any container is
BestEffort; one whose every container has cpu and memory limits, with requests equal to them (a missing request
defaults to its limit), is Guaranteed; any other is Burstable.
"""

from __future__ import annotations

from enum import StrEnum

from edgekube.model.pod import PodSpec
from edgekube.model.podresources import pod_level_requests, pod_limits
from edgekube.model.quantity import parse_quantity

_COMPUTE = ("cpu", "memory")


class QOSClass(StrEnum):
    GUARANTEED = "Guaranteed"
    BURSTABLE = "Burstable"
    BEST_EFFORT = "BestEffort"


#: Eviction order: the lower ranks go first.
QOS_RANK = {QOSClass.BEST_EFFORT: 0, QOSClass.BURSTABLE: 1, QOSClass.GUARANTEED: 2}


def qos_class(spec: PodSpec) -> QOSClass:
    """Kubernetes' GetPodQOS over the pod's containers (zero quantities count as unset, as there).

    With pod-level `resources` set, ComputePodQOS reads only them: the pod-level requests as defaulted
    (model.podresources.pod_level_requests) and limits; Guaranteed needs both cpu and memory limits, each equal
    to its request.
    """
    if spec.resources is not None:
        pod_requests = {k: v for k, v in pod_level_requests(spec).items() if v > 0}
        limits_set = {k: v for k, v in pod_limits(spec).items() if v > 0}
        if not pod_requests and not limits_set:
            return QOSClass.BEST_EFFORT
        equal = all(limits_set.get(k) == v for k, v in pod_requests.items()) and len(pod_requests) == len(limits_set)
        return QOSClass.GUARANTEED if equal and set(limits_set) == set(_COMPUTE) else QOSClass.BURSTABLE
    any_set = False
    guaranteed = True
    for container in spec.all_containers():  # GetPodQOS: init containers count too
        requests, limits = container.resources.requests, container.resources.limits
        for key in _COMPUTE:
            limit = parse_quantity(limits[key], key) if key in limits else 0
            # The API server defaults a missing request to its limit; edgekube stores the manifest as written.
            request = parse_quantity(requests[key], key) if key in requests else limit
            any_set = any_set or request > 0 or limit > 0
            guaranteed = guaranteed and limit > 0 and request == limit
    if not any_set:
        return QOSClass.BEST_EFFORT
    return QOSClass.GUARANTEED if guaranteed else QOSClass.BURSTABLE
