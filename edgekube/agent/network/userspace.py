"""The node proxy in userspace, where the kernel path is missing: pure ServiceTable → listeners plan; by netagent.

Chosen by `proxy_mode` (agent/network/proxymode.py). From the same level-triggered ServiceTable as the nftables
proxy: every clusterIP with a TCP port is a /32 on the loopback device (loopback.py), and every TCP Service port
with ready endpoints has a listener on `clusterIP:port`, and on `0.0.0.0:nodePort` for a NodePort Service; each
accepted connection is relayed to a ready endpoint (relay.py: round robin, sessionAffinity ClientIP honoured). A
port without ready endpoints has no listener, so the kernel refuses a connection at once (RST), as the nftables
proxy's reject does. UDP and SCTP ports are not proxied in this mode (logged once per port; docs/networking.md).

`plan(wanted, listening, addresses)` is pure; `UserspaceProxy.sync` lists the labelled addresses, plans and
applies. Leftover addresses of an earlier run are removed when the proxy starts: its listeners died with it.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from edgekube.agent.network.loopback import ServiceAddresses
from edgekube.model.errors import EdgekubeError
from edgekube.model.netstate import ServiceEntry, ServicePortEntry, ServiceTable

log = logging.getLogger(__name__)

#: A NodePort listens on every address of the node.
ANY = "0.0.0.0"


@dataclass(frozen=True, order=True)
class Frontend:
    """Where a listener is: a clusterIP and Service port, or ANY and a nodePort."""

    address: str
    port: int

    def __str__(self) -> str:
        return f"{self.address}:{self.port}"


@dataclass(frozen=True)
class Target:
    """Where its connections go: the ready endpoints (ip, target port), sorted; affinity 0 is none."""

    service: str
    backends: tuple[tuple[str, int], ...]
    affinity_seconds: int = 0


@dataclass
class Wanted:
    """What the table asks of this node: clusterIPs on loopback, listeners, and the ports this mode cannot serve."""

    addresses: set[str] = field(default_factory=set)
    frontends: dict[Frontend, Target] = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)


def _v4(address: str) -> bool:
    return ipaddress.ip_address(address).version == 4


def _target(svc: ServiceEntry, port: ServicePortEntry) -> Target:
    found = {(ep.ip, ep.ports[port.name]) for ep in svc.endpoints if ep.ready and _v4(ep.ip) and port.name in ep.ports}
    backends = tuple(sorted(found, key=lambda b: (ipaddress.ip_address(b[0]), b[1])))
    affinity = svc.affinity_timeout_seconds if svc.session_affinity == "ClientIP" else 0
    return Target(f"{svc.namespace}/{svc.name}:{port.name or port.port}", backends, affinity)


def desired(table: ServiceTable) -> Wanted:
    """Pure: the addresses and listeners the table wants (headless Services: DNS only, nothing here)."""
    wanted = Wanted()
    for svc in sorted(table.services, key=lambda s: (s.namespace, s.name)):
        if svc.headless or not _v4(svc.cluster_ip):
            continue
        for port in svc.ports:
            if port.protocol != "TCP":
                wanted.unsupported.append(f"{svc.namespace}/{svc.name} port {port.port}/{port.protocol}")
                continue
            wanted.addresses.add(svc.cluster_ip)  # even without endpoints: refused here, not routed away
            target = _target(svc, port)
            if not target.backends:
                continue
            wanted.frontends.setdefault(Frontend(svc.cluster_ip, port.port), target)
            if svc.type == "NodePort" and port.node_port:
                wanted.frontends.setdefault(Frontend(ANY, port.node_port), target)
    return wanted


@dataclass(frozen=True)
class AddAddress:
    address: str


@dataclass(frozen=True)
class RemoveAddress:
    address: str


@dataclass(frozen=True)
class Listen:
    frontend: Frontend
    target: Target


@dataclass(frozen=True)
class Retarget:
    """New endpoints for a listener that stays: its open connections and affinity are kept."""

    frontend: Frontend
    target: Target


@dataclass(frozen=True)
class Close:
    frontend: Frontend


Action = AddAddress | RemoveAddress | Listen | Retarget | Close


def plan(wanted: Wanted, listening: Mapping[Frontend, Target], addresses: set[str]) -> list[Action]:
    """Pure: addresses first (a listener binds to one), then listeners closed, opened, retargeted; addresses last."""
    actions: list[Action] = [AddAddress(a) for a in sorted(wanted.addresses - addresses)]
    actions += [Close(f) for f in sorted(set(listening) - set(wanted.frontends))]
    actions += [Listen(f, t) for f, t in sorted(wanted.frontends.items()) if f not in listening]
    actions += [Retarget(f, t) for f, t in sorted(wanted.frontends.items()) if f in listening and listening[f] != t]
    actions += [RemoveAddress(a) for a in sorted(addresses - wanted.addresses)]
    return actions


class Listeners(Protocol):
    """The proxy's listening sockets (relay.Relays): what each relays to, and how to change them."""

    def targets(self) -> dict[Frontend, Target]: ...

    def listen(self, frontend: Frontend, target: Target) -> None: ...

    def retarget(self, frontend: Frontend, target: Target) -> None: ...

    def close(self, frontend: Frontend) -> None: ...


class UserspaceProxy:
    """Keeps the loopback addresses and listeners in line with the ServiceTable (module docstring)."""

    def __init__(self, addresses: ServiceAddresses, listeners: Listeners) -> None:
        self.addresses = addresses
        self.listeners = listeners
        self._told: set[str] = set()

    def start(self) -> UserspaceProxy:
        """Remove the addresses an earlier run left (nothing listens on them any more)."""
        try:
            leftovers = self.addresses.list()
        except EdgekubeError as exc:
            log.warning("userspace proxy: cannot list leftover addresses: %s", exc)
            return self
        for address in sorted(leftovers):
            try:
                self.addresses.delete(address)
            except EdgekubeError as exc:
                log.warning("userspace proxy: cannot remove leftover address %s: %s", address, exc)
        return self

    def sync(self, table: ServiceTable) -> list[str]:
        """One pass; the failures, one line each naming the Service and port (retried next pass)."""
        wanted = desired(table)
        for port in wanted.unsupported:
            if port not in self._told:
                log.warning("userspace proxy: %s not proxied: only TCP is supported in userspace mode", port)
        self._told = set(wanted.unsupported)
        try:
            actions = plan(wanted, self.listeners.targets(), self.addresses.list())
        except EdgekubeError as exc:
            return [f"userspace proxy: {exc}"]
        failures = []
        for action in actions:
            try:
                self._apply(action)
            except EdgekubeError as exc:
                failures.append(f"userspace proxy: {exc}")
        return failures

    def _apply(self, action: Action) -> None:
        match action:
            case AddAddress(address):
                self.addresses.add(address)
            case RemoveAddress(address):
                self.addresses.delete(address)
            case Listen(frontend, target):
                self.listeners.listen(frontend, target)
                log.info("userspace proxy: %s on %s (%d endpoints)", target.service, frontend, len(target.backends))
            case Retarget(frontend, target):
                self.listeners.retarget(frontend, target)
            case Close(frontend):
                self.listeners.close(frontend)
                log.info("userspace proxy: closed %s", frontend)
