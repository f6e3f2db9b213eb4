"""A pod's effective requests and limits (Kubernetes' resource helpers); for scheduler, QoS, eviction, Podman.

One function, `pod_requests`, says what a pod asks of a node, as k8s.io/component-helpers/resource's PodRequests
does: the containers' requests summed (a limit alone counts as an equal request; init containers by Kubernetes'
max(sum, init) rule), with the pod-level `spec.resources` (PodLevelResources, Kubernetes 1.32+) overriding cpu
and memory where it sets them. Pod-level requests are taken as the API server's defaultPodRequests leaves them:
edgekube stores the manifest as written, so the defaults are applied here, on read.

`PodResourceRequirements` and `consistency_errors` are validation.go's validatePodResources: pod-level names are
cpu and memory only (validatePodResourceName), the pod's requests are at least the containers' aggregate and
each container's limit at most the pod's (validatePodResourceConsistency).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from edgekube.model.base import K8sModel
from edgekube.model.errors import ValidationError
from edgekube.model.quantity import Quantity, cpu_millis, format_bytes, format_millis, memory_bytes, parse_quantity
from edgekube.model.resources import extended_allocatable, extended_count, is_extended

if TYPE_CHECKING:
    from edgekube.model.pod import PodSpec

#: resourcehelper.SupportedPodLevelResources (hugepages aside: edgekube has none).
POD_LEVEL_RESOURCES = ("cpu", "memory")
EPHEMERAL_STORAGE = "ephemeral-storage"

Amounts = dict[str, int]


@dataclass(frozen=True)
class PodRequests:
    """What a pod asks of a node: millicores, bytes, and extended resources sorted by name."""

    cpu_millis: int = 0
    memory_bytes: int = 0
    ephemeral_storage_bytes: int = 0
    extended: tuple[tuple[str, int], ...] = ()

    def counted(self) -> tuple[tuple[str, int], ...]:
        """What the scheduler fits name by name against `counted_allocatable`, sorted by name.

        Extended resources (counts) and ephemeral-storage (bytes): kube-scheduler's Fit checks each alike.
        """
        storage = ((EPHEMERAL_STORAGE, self.ephemeral_storage_bytes),) if self.ephemeral_storage_bytes else ()
        return tuple(sorted((*self.extended, *storage)))


def counted_allocatable(allocatable: Mapping[str, Any]) -> dict[str, int]:
    """A node's allocatable extended resources and ephemeral-storage bytes (bad entries count 0)."""
    out = extended_allocatable(allocatable)
    raw = allocatable.get(EPHEMERAL_STORAGE)
    if raw is not None:
        try:
            out[EPHEMERAL_STORAGE] = memory_bytes(raw, EPHEMERAL_STORAGE)
        except ValueError:
            out[EPHEMERAL_STORAGE] = 0
    return out


def amount(name: str, raw: str | int | float) -> int:
    """A quantity in the unit edgekube counts `name` in: millicores for cpu, a count for extended ones, else bytes."""
    if name == "cpu":
        return cpu_millis(raw)
    if is_extended(name):
        return extended_count(raw, name)
    return memory_bytes(raw, name)


def _stored(spec: PodSpec | Mapping[str, Any]) -> Mapping[str, Any]:
    return spec if isinstance(spec, Mapping) else spec.to_dict()


def container_requests(resources: Mapping[str, Any] | None) -> Amounts:
    """One container's requests by resource name; as the API server defaults them, a limit alone is the request."""
    if not resources:
        return {}
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    return {name: amount(name, raw) for name, raw in merged.items()}


def _add(total: Amounts, more: Mapping[str, int]) -> None:
    for name, value in more.items():
        total[name] = total.get(name, 0) + value


def _aggregate(spec: Mapping[str, Any], of: Any = container_requests) -> Amounts:
    """AggregateContainerRequests: app containers and sidecars summed, or the largest init step if more."""
    total: Amounts = {}
    for container in spec.get("containers") or ():
        _add(total, of(container.get("resources")))
    sidecars: Amounts = {}
    init_peak: Amounts = {}
    for container in spec.get("initContainers") or ():
        own = of(container.get("resources"))
        if container.get("restartPolicy") == "Always":  # a sidecar runs beside everything after it
            _add(total, own)
            _add(sidecars, own)
            step = dict(sidecars)
        else:
            step = dict(sidecars)
            _add(step, own)
        for name, value in step.items():
            init_peak[name] = max(init_peak.get(name, 0), value)
    for name, value in init_peak.items():
        total[name] = max(total.get(name, 0), value)
    return total


def _limits_of(resources: Mapping[str, Any] | None) -> Amounts:
    limits = (resources or {}).get("limits") or {}
    return {name: amount(name, raw) for name, raw in limits.items()}


def pod_level_requests(spec: PodSpec | Mapping[str, Any]) -> Amounts:
    """The pod-level cpu/memory requests after defaultPodRequests (empty when `spec.resources` is unset).

    Set ones stand. When pod-level limits are set, an unset request defaults to the containers' aggregate
    request where some container asks for that resource, and else to the pod's limit.
    """
    stored = _stored(spec)
    pod = stored.get("resources")
    if not pod:
        return {}
    requests = {k: amount(k, v) for k, v in (pod.get("requests") or {}).items() if k in POD_LEVEL_RESOURCES}
    limits = {k: amount(k, v) for k, v in (pod.get("limits") or {}).items() if k in POD_LEVEL_RESOURCES}
    if limits:
        aggregate = _aggregate(stored)
        for name in POD_LEVEL_RESOURCES:
            if name in requests:
                continue
            if name in aggregate:
                requests[name] = aggregate[name]
            elif name in limits:
                requests[name] = limits[name]
    return requests


def pod_limits(spec: PodSpec | Mapping[str, Any]) -> Amounts:
    """The pod-level cpu/memory limits (`spec.resources.limits`): the pod's cgroup, which bounds every container."""
    pod = _stored(spec).get("resources") or {}
    return {k: amount(k, v) for k, v in (pod.get("limits") or {}).items() if k in POD_LEVEL_RESOURCES}


def storage_limits(spec: PodSpec | Mapping[str, Any]) -> tuple[int | None, dict[str, int]]:
    """What the kubelet's local-storage eviction holds a pod to: its total limit, and each app container's.

    The total is PodLimits' ephemeral-storage (the containers' limits aggregated; None when none has one).
    """
    stored = _stored(spec)
    total = _aggregate(stored, _limits_of).get(EPHEMERAL_STORAGE)
    own = {
        str(c.get("name")): _limits_of(c.get("resources"))[EPHEMERAL_STORAGE]
        for c in stored.get("containers") or ()
        if EPHEMERAL_STORAGE in ((c.get("resources") or {}).get("limits") or {})
    }
    return total, own


def pod_requests(spec: PodSpec | Mapping[str, Any]) -> PodRequests:
    """Kubernetes' PodRequests: the aggregate of the containers, pod-level cpu/memory requests overriding it.

    Takes a PodSpec or its stored (camelCase) form, so the scheduler's hot path needs no model parse.
    """
    stored = _stored(spec)
    total = _aggregate(stored)
    if stored.get("resources"):
        total.update(pod_level_requests(stored))
    extended = tuple(sorted((k, v) for k, v in total.items() if v and is_extended(k)))
    return PodRequests(
        cpu_millis=total.get("cpu", 0),
        memory_bytes=total.get("memory", 0),
        ephemeral_storage_bytes=total.get(EPHEMERAL_STORAGE, 0),
        extended=extended,
    )


# -- validation.go: validatePodResources -----------------------------------------------------------------------------
def _shown(name: str, value: int) -> str:
    return format_millis(value) if name == "cpu" else format_bytes(value)


class PodResourceRequirements(K8sModel):
    """`spec.resources`: cpu and memory only; checked as validatePodResourceRequirements checks them."""

    requests: dict[str, Quantity] = Field(default_factory=dict)
    limits: dict[str, Quantity] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _requirements(self) -> PodResourceRequirements:
        problems = requirement_errors(self.requests, self.limits)
        if problems:
            raise ValidationError("\n".join(problems))
        return self


def requirement_errors(requests: Mapping[str, Quantity], limits: Mapping[str, Quantity]) -> list[str]:
    """Kubernetes' validatePodResourceName (cpu, memory), then each quantity's syntax, then requests ≤ limits."""
    errors = [
        f'{section}[{name}]: Unsupported value: "{name}": supported values: "cpu", "memory"'
        for section, values in (("requests", requests), ("limits", limits))
        for name in values
        if name not in POD_LEVEL_RESOURCES
    ]
    if errors:
        return errors
    for section, values in (("requests", requests), ("limits", limits)):
        for name, raw in values.items():
            try:
                parse_quantity(raw, f"{section}[{name}]")
            except ValueError as exc:
                errors.append(str(exc))
    if errors:
        return errors
    for name, raw in requests.items():
        if name in limits and amount(name, raw) > amount(name, limits[name]):
            errors.append(
                f'requests[{name}]: Invalid value: "{raw}": '
                f"must be less than or equal to {name} limit of {limits[name]}"
            )
    return errors


def consistency_errors(spec: Mapping[str, Any]) -> list[str]:
    """Kubernetes' validatePodResourceConsistency over a stored pod spec, on the pod-level requests as defaulted.

    Only cpu and memory are compared, and only where the pod sets (or defaults) a request: the rule as fixed
    for kubernetes#132449 (a container's ephemeral-storage request beside a pod-level cpu request is valid).
    Kubernetes names a too-high container limit `spec.resources.containers[0][cpu].limits`; edgekube names the
    container's field itself.
    """
    pod = spec.get("resources")
    if not pod:
        return []
    errors: list[str] = []
    effective = pod_level_requests(spec)
    aggregate = _aggregate(spec)
    for name in POD_LEVEL_RESOURCES:
        if name in effective and aggregate.get(name, 0) > effective[name]:
            errors.append(
                f'resources.requests[{name}]: Invalid value: "{_shown(name, effective[name])}": must be greater than '
                f"or equal to aggregate container requests of {_shown(name, aggregate[name])}"
            )
    limits = pod_limits(spec)
    for i, container in enumerate(spec.get("containers") or ()):
        for name, limit in _limits_of(container.get("resources")).items():
            if name in limits and limit > limits[name]:
                errors.append(
                    f'containers[{i}].resources.limits[{name}]: Invalid value: "{_shown(name, limit)}": must be less '
                    f"than or equal to pod limits of {_shown(name, limits[name])}"
                )
    return errors
