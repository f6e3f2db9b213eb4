"""ClusterIP and NodePort allocation (pure): the lowest free address of the service CIDR, the lowest free node port.

Used by the master when it creates a Service (master.services). What is taken is read from the stored Services
each time, so a deleted Service's address and ports are free again at once and nothing else must be kept.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from edgekube.model.errors import ValidationError
from edgekube.model.fielderrors import invalid
from edgekube.model.netstate import DEFAULT_SERVICE_CIDR

__all__ = ["DEFAULT_SERVICE_CIDR", "allocate_cluster_ip", "allocate_node_port", "check_cluster_ip", "check_node_port"]
NODE_PORT_RANGE = (30000, 32767)  # the API server's default --service-node-port-range


def parse_cidr(cidr: str) -> ipaddress.IPv4Network:
    """The `--service-cidr` value, or a one-line error naming the flag."""
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        raise ValidationError(f"--service-cidr: {cidr!r} is not a network (e.g. 10.43.0.0/16): {exc}") from None
    if not isinstance(network, ipaddress.IPv4Network) or network.num_addresses < 4:
        raise ValidationError(f"--service-cidr: {cidr!r} must be an IPv4 network of at least 4 addresses")
    return network


def check_cluster_ip(cidr: str, ip: str) -> None:
    """A requested clusterIP must be a usable address of the CIDR (the allocator's ErrNotInRange)."""
    network = parse_cidr(cidr)
    address = ipaddress.ip_address(ip)
    if address not in network or address in (network.network_address, network.broadcast_address):
        raise ValidationError(
            invalid("spec.clusterIP", ip, f"provided IP is not in the valid range. The range of valid IPs is {network}")
        )


def allocate_cluster_ip(cidr: str, taken: Iterable[str]) -> str:
    """The lowest free address of the CIDR (network and broadcast addresses excluded)."""
    network = parse_cidr(cidr)
    used = {ip for ip in taken if ip}
    for address in network.hosts():
        text = str(address)
        if text not in used:
            return text
    raise ValidationError(
        f"spec.clusterIP: Internal error: failed to allocate a serviceIP: range is full ({network})",
        hint="delete unused Services or start the master with a larger --service-cidr",
    )


def check_node_port(path: str, port: int, taken: Iterable[int]) -> None:
    """A requested nodePort must be in range and free (the port allocator's ErrNotInRange / ErrAllocated)."""
    low, high = NODE_PORT_RANGE
    if not low <= port <= high:
        raise ValidationError(
            invalid(path, port, f"provided port is not in the valid range. The range of valid ports is {low}-{high}")
        )
    if port in set(taken):
        raise ValidationError(invalid(path, port, "provided port is already allocated"))


def allocate_node_port(taken: Iterable[int]) -> int:
    """The lowest free port of the node-port range."""
    low, high = NODE_PORT_RANGE
    used = set(taken)
    for port in range(low, high + 1):
        if port not in used:
            return port
    raise ValidationError(f"spec.ports.nodePort: Internal error: range is full ({low}-{high})")
