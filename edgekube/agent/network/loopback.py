"""The userspace proxy's clusterIPs on the loopback device: the ServiceAddresses protocol and `ip addr`; userspace.py.

Each clusterIP is a /32 on `lo` with the label `lo:edgekube`: the kernel then delivers a packet for it, from a pod
through its bridge or from the node itself, to a socket listening on it (no NAT, no kernel module). The label is
how the agent knows its own addresses: it lists, adds and removes only addresses that carry it.
"""

from __future__ import annotations

import json
from typing import Protocol

from edgekube.agent.network.iproute import IpCommand

DEVICE = "lo"
LABEL = "lo:edgekube"


class ServiceAddresses(Protocol):
    """The node's clusterIP addresses, limited to edgekube's own."""

    def list(self) -> set[str]: ...

    def add(self, address: str) -> None: ...

    def delete(self, address: str) -> None: ...


class IpLoopback(IpCommand):
    """ServiceAddresses with iproute2's `ip` in the agent's network namespace (`prefix`: e.g. nsenter, for tests)."""

    reason = "ProxyAddressError"

    def list(self) -> set[str]:
        links = json.loads(self._run("-4", "-j", "addr", "show", "dev", DEVICE) or "[]")
        return {str(a["local"]) for link in links for a in link.get("addr_info", []) if a.get("label") == LABEL}

    def add(self, address: str) -> None:
        self._run("-4", "addr", "add", f"{address}/32", "dev", DEVICE, "label", LABEL)

    def delete(self, address: str) -> None:
        self._run("-4", "addr", "delete", f"{address}/32", "dev", DEVICE, "label", LABEL)
