"""Fakes of the node network's outside systems (routes, firewall, pod network runtime) for unit tests.

FakeRoutes is held to IpRoutes by tests/integration/test_network_contract.py, FakeAddresses to IpLoopback by
tests/integration/test_userspace_proxy_contract.py.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

from edgekube.agent.network.conntrack import StaleFlow
from edgekube.agent.runtime.podman.network import PodNetwork
from edgekube.model.errors import RuntimeFailure


class FakeRoutes:
    """HostRoutes in memory: {cidr: gateway}; `on_link` is the subnet a gateway must be in (as the kernel checks)."""

    def __init__(self, on_link: str = "0.0.0.0/0") -> None:
        self.routes: dict[str, str] = {}
        self.on_link = ipaddress.ip_network(on_link)
        self.calls: list[tuple[str, ...]] = []

    def list(self) -> dict[str, str]:
        return dict(self.routes)

    def replace(self, cidr: str, via: str) -> None:
        self.calls.append(("replace", cidr, via))
        if ipaddress.ip_address(via) not in self.on_link:
            raise RuntimeFailure(f"ip route replace {cidr} via {via}: Nexthop has invalid gateway", reason="RouteError")
        self.routes[str(ipaddress.ip_network(cidr))] = via

    def delete(self, cidr: str) -> None:
        self.calls.append(("delete", cidr))
        if cidr not in self.routes:
            raise RuntimeFailure(f"ip route delete {cidr}: No such process", reason="RouteError")
        del self.routes[cidr]


class FakeFirewall:
    """Firewall that keeps what was loaded."""

    def __init__(self) -> None:
        self.loaded: list[str] = []
        self.removed = 0
        #: What `existing` answers: (kind, name) of the objects the kernel's table holds.
        self.objects: set[tuple[str, str]] = set()

    def existing(self) -> set[tuple[str, str]]:
        return set(self.objects)

    def load(self, text: str) -> None:
        self.loaded.append(text)

    def remove(self) -> None:
        self.removed += 1


class FakeNetworkRuntime:
    """NetworkRuntime recording the networks it was told to use."""

    def __init__(self) -> None:
        self.networks: list[PodNetwork | None] = []
        self.required: bool | None = None
        self.service_env: Callable[[str], dict[str, str]] | None = None

    def use_pod_network(self, network: PodNetwork | None, *, required: bool = True) -> None:
        self.networks.append(network)
        self.required = required

    def use_service_env(self, env: Callable[[str], dict[str, str]] | None) -> None:
        self.service_env = env


class FakeConntrack:
    """Conntrack recording the flows it was told to delete."""

    def __init__(self) -> None:
        self.deleted: list[StaleFlow] = []

    def delete(self, flow: StaleFlow) -> None:
        self.deleted.append(flow)


class FakeAddresses:
    """ServiceAddresses in memory; `foreign` are addresses someone else put on the device (add refuses them).

    Held to IpLoopback by tests/integration/test_userspace_proxy_contract.py.
    """

    def __init__(self, *, foreign: set[str] | None = None) -> None:
        self.addresses: set[str] = set()
        self.foreign = set(foreign or ())

    def list(self) -> set[str]:
        return set(self.addresses)

    def add(self, address: str) -> None:
        if address in self.addresses | self.foreign:
            raise RuntimeFailure(
                f"ip -4 addr add {address}/32 dev lo: Error: ipv4: Address already assigned.",
                reason="ProxyAddressError",
            )
        self.addresses.add(address)

    def delete(self, address: str) -> None:
        if address not in self.addresses:
            raise RuntimeFailure(
                f"ip -4 addr delete {address}/32 dev lo: Error: ipv4: Address not found.", reason="ProxyAddressError"
            )
        self.addresses.discard(address)
