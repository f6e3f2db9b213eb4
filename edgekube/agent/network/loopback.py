"""The userspace proxy's clusterIPs on the loopback device: the ServiceAddresses protocol and `ip addr`; userspace.py.

Each clusterIP is a /32 on `lo` with the label `lo:edgekube`: the kernel then delivers a packet for it, from a pod
through its bridge or from the node itself, to a socket listening on it (no NAT, no kernel module). The label is
how the agent knows its own addresses: it lists, adds and removes only addresses that carry it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from typing import Protocol

from edgekube.model.errors import RuntimeFailure

DEVICE = "lo"
LABEL = "lo:edgekube"


class ServiceAddresses(Protocol):
    """The node's clusterIP addresses, limited to edgekube's own."""

    def list(self) -> set[str]: ...

    def add(self, address: str) -> None: ...

    def delete(self, address: str) -> None: ...


class IpLoopback:
    """ServiceAddresses with iproute2's `ip` in the agent's network namespace (`prefix`: e.g. nsenter, for tests)."""

    def __init__(self, binary: str = "ip", timeout: float = 10.0, prefix: Sequence[str] = ()) -> None:
        self.argv = [*prefix, binary]
        self.timeout = timeout

    def _run(self, *args: str) -> str:
        argv = [*self.argv, *args]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeFailure(f"{' '.join(argv)}: {exc}", reason="ProxyAddressError") from exc
        if done.returncode != 0:
            raise RuntimeFailure(f"{' '.join(argv)}: {done.stderr.strip()}", reason="ProxyAddressError")
        return done.stdout

    def list(self) -> set[str]:
        links = json.loads(self._run("-4", "-j", "addr", "show", "dev", DEVICE) or "[]")
        return {str(a["local"]) for link in links for a in link.get("addr_info", []) if a.get("label") == LABEL}

    def add(self, address: str) -> None:
        self._run("-4", "addr", "add", f"{address}/32", "dev", DEVICE, "label", LABEL)

    def delete(self, address: str) -> None:
        self._run("-4", "addr", "delete", f"{address}/32", "dev", DEVICE, "label", LABEL)
