"""Stale UDP flows after an endpoint leaves: which ones (pure), and the `conntrack` tool that deletes them; netagent.

TCP needs nothing (a connection to a gone pod fails and the client reconnects through the new rules), but a UDP
"connection" is a conntrack entry that keeps its DNAT as long as packets flow (a DNS client's socket, a syslog
sender), so it would keep going to the gone endpoint. As kube-proxy does, the agent deletes the entries of UDP
flows to a Service port (clusterIP, and NodePort on any address) whose reply came from an endpoint that left.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from edgekube.model.errors import RuntimeFailure
from edgekube.model.netstate import ServiceEntry, ServiceTable


@dataclass(frozen=True, order=True)
class StaleFlow:
    """UDP flows to `port` (on `destination`, or on any address for a NodePort: "") answered by `endpoint`."""

    destination: str
    port: int
    endpoint: str


def _udp_backends(svc: ServiceEntry) -> Iterator[tuple[str, int, str]]:
    for port in svc.ports:
        if port.protocol != "UDP" or svc.headless:
            continue
        for ep in svc.endpoints:
            if ep.ready and port.name in ep.ports:
                yield svc.cluster_ip, port.port, ep.ip
                if port.node_port:
                    yield "", port.node_port, ep.ip


def stale_udp(before: ServiceTable, after: ServiceTable) -> list[StaleFlow]:
    """Pure: the UDP (destination, port, endpoint) triples ready in `before` and gone from `after`."""
    now = {b for svc in after.services for b in _udp_backends(svc)}
    gone = {b for svc in before.services for b in _udp_backends(svc)} - now
    return sorted(StaleFlow(*b) for b in gone)


class Conntrack(Protocol):
    def delete(self, flow: StaleFlow) -> None: ...


class ConntrackTool:
    """Conntrack with conntrack-tools' `conntrack -D` (`prefix`: e.g. nsenter, for tests)."""

    def __init__(self, binary: str = "conntrack", timeout: float = 10.0, prefix: Sequence[str] = ()) -> None:
        self.argv = [*prefix, binary]
        self.timeout = timeout

    def delete(self, flow: StaleFlow) -> None:
        argv = [*self.argv, "-D", "-p", "udp", "--orig-port-dst", str(flow.port), "--reply-src", flow.endpoint]
        if flow.destination:
            argv[3:3] = ["--orig-dst", flow.destination]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeFailure(f"{' '.join(argv)}: {exc}", reason="ConntrackError") from exc
        # Exit status 1 with "0 flow entries have been deleted": there was nothing to delete, which is fine.
        if done.returncode != 0 and "0 flow entries" not in done.stderr:
            raise RuntimeFailure(f"{' '.join(argv)}: {done.stderr.strip()}", reason="ConntrackError")
