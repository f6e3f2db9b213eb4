"""Host-gw routes to other nodes' pod CIDRs: the HostRoutes protocol, `ip route` real one, pure plan; for netagent."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from edgekube.agent.network.iproute import IpCommand
from edgekube.model.errors import RuntimeFailure
from edgekube.model.netstate import RouteTable

#: The routing protocol number edgekube's routes carry (`ip route ... proto 211`), so the agent lists, replaces and
#: removes exactly its own routes and never a route someone else made.
PROTO = 211


class HostRoutes(Protocol):
    """The node's routing table, limited to edgekube's routes: {destination CIDR: gateway}."""

    def list(self) -> dict[str, str]: ...

    def replace(self, cidr: str, via: str) -> None: ...

    def delete(self, cidr: str) -> None: ...


@dataclass(frozen=True)
class Replace:
    cidr: str
    via: str

    def apply(self, routes: HostRoutes) -> None:
        routes.replace(self.cidr, self.via)


@dataclass(frozen=True)
class Delete:
    cidr: str

    def apply(self, routes: HostRoutes) -> None:
        routes.delete(self.cidr)


def desired(table: RouteTable, me: str) -> dict[str, str]:
    """{podCIDR: nodeIP} of every other node that has both (ready or not: see docs/networking.md)."""
    return {e.pod_cidr: e.node_ip for e in table.nodes if e.name != me and e.node_ip}


def plan(want: Mapping[str, str], have: Mapping[str, str]) -> list[Replace | Delete]:
    """Pure: replace every route missing or through the wrong gateway, delete every one no node holds any more."""
    actions: list[Replace | Delete] = [Delete(cidr) for cidr in sorted(set(have) - set(want))]
    actions += [Replace(cidr, via) for cidr, via in sorted(want.items()) if have.get(cidr) != via]
    return actions


class IpRoutes(IpCommand):
    """HostRoutes with iproute2's `ip` in the agent's network namespace (`prefix`: e.g. nsenter, for tests)."""

    reason = "RouteError"

    def list(self) -> dict[str, str]:
        routes = json.loads(self._run("-4", "-j", "route", "show", "proto", str(PROTO)) or "[]")
        return {_cidr(r["dst"]): r.get("gateway", "") for r in routes}

    def replace(self, cidr: str, via: str) -> None:
        self._run("-4", "route", "replace", cidr, "via", via, "proto", str(PROTO))

    def delete(self, cidr: str) -> None:
        self._run("-4", "route", "delete", cidr, "proto", str(PROTO))


def _cidr(dst: str) -> str:
    return str(ipaddress.ip_network(dst if "/" in dst else f"{dst}/32"))


def apply(actions: Sequence[Replace | Delete], routes: HostRoutes) -> list[str]:
    """Carry out a plan; every action is tried, the failures returned (one line each) for the next pass to redo."""
    failures = []
    for action in actions:
        try:
            action.apply(routes)
        except RuntimeFailure as exc:
            failures.append(str(exc))
    return failures
