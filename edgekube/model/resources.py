"""Resource names of pods and nodes (cpu, memory, extended resources such as `edgekube.io/serial`); for all layers.

Extended resources follow Kubernetes' rules: a fully qualified name outside the `kubernetes.io` domain, whole
numbers only, never overcommitted (a request needs a limit, and the two must be equal). edgekube's own are the
Pi's device nodes, which agents discover in /dev and advertise in the Node's capacity.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal

from edgekube.model.errors import ValidationError
from edgekube.model.quantity import Quantity, parse_quantity

#: Device resources an agent discovers and advertises (docs/devices.md).
GPIOCHIP = "edgekube.io/gpiochip"
I2C = "edgekube.io/i2c"
SPI = "edgekube.io/spi"
SERIAL = "edgekube.io/serial"
VIDEO = "edgekube.io/video"
DEVICE_RESOURCES = (GPIOCHIP, I2C, SPI, SERIAL, VIDEO)

#: Container resources that are not extended ones (what edgekube enforces; ephemeral-storage by eviction).
STANDARD = ("cpu", "memory", "ephemeral-storage")

_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


def is_extended(name: str) -> bool:
    """Kubernetes' IsExtendedResourceName: `domain/name`, the domain not `kubernetes.io` nor under it."""
    prefix, sep, rest = name.partition("/")
    if not sep or prefix == "kubernetes.io" or prefix.endswith(".kubernetes.io") or prefix.startswith("requests."):
        return False
    return bool(_PREFIX.match(prefix)) and len(prefix) <= 253 and bool(_NAME.match(rest)) and len(rest) <= 63


def check_resource_name(name: str, field: str) -> str:
    """A container resource name: cpu, memory or an extended resource; else a one-line field error."""
    if name in STANDARD:
        return name
    if "/" not in name:
        raise ValidationError(
            f'{field}: Invalid value: "{name}": must be a standard resource for containers '
            "(cpu, memory, ephemeral-storage) or an extended resource such as edgekube.io/serial"
        )
    if not is_extended(name):
        raise ValidationError(f'{field}: Invalid value: "{name}": doesn\'t follow extended resource name standard')
    return name


def extended_count(raw: str | int | float, field: str) -> int:
    """An extended resource's quantity: a whole number (`1`, `2`, `1k`), never `0.5` or `500m`."""
    value = parse_quantity(raw, field)
    if value != value.to_integral_value():
        raise ValidationError(f'{field}: Invalid value: "{raw}": must be an integer')
    return int(value)


def check_extended(requests: Mapping[str, Quantity], limits: Mapping[str, Quantity], section: str = "") -> None:
    """Kubernetes' rules for non-overcommitable resources: integers, a request needs an equal limit."""
    for key, raw in limits.items():
        if is_extended(key):
            extended_count(raw, f"{section}limits[{key}]")
    for key, raw in requests.items():
        if not is_extended(key):
            continue
        count = extended_count(raw, f"{section}requests[{key}]")
        if key not in limits:
            raise ValidationError(
                f"{section}limits[{key}]: Required value: Limit must be set for non overcommitable resources"
            )
        if Decimal(count) != parse_quantity(limits[key]):
            raise ValidationError(
                f'{section}requests[{key}]: Invalid value: "{raw}": must be equal to {key} limit of {limits[key]}'
            )


def extended_requests(requests: Mapping[str, Quantity], limits: Mapping[str, Quantity]) -> dict[str, int]:
    """Extended resources a container asks for: its requests, or its limits alone (requests default to them)."""
    out: dict[str, int] = {}
    for key, raw in {**limits, **requests}.items():
        if is_extended(key):
            count = extended_count(raw, key)
            if count:
                out[key] = count
    return out


def extended_allocatable(allocatable: Mapping[str, Quantity]) -> dict[str, int]:
    """A node's extended resources from its status.allocatable (what the scheduler counts); bad entries are 0."""
    out: dict[str, int] = {}
    for key, raw in allocatable.items():
        if is_extended(key):
            try:
                out[key] = extended_count(raw, key)
            except ValidationError:
                out[key] = 0
    return out
