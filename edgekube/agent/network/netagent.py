"""The agent's network loop: routes and services tables from MQTT → Podman network, host routes, nftables, DNS.

Built by agent.wiring when `pod_network` is on. Level-triggered: each pass recomputes from the last RouteTable and
ServiceTable received (both retained, so a restarted agent gets them at once) and what the kernel holds, on a
change and every `resync` seconds. Nothing is removed before the first table arrives: an agent restarted without a
broker keeps the routes and rules it had (edge autonomy); the first table then replaces leftovers atomically.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from edgekube.agent.network import routes as routeplan
from edgekube.agent.network.conntrack import Conntrack
from edgekube.agent.network.dnsserver import DnsServer
from edgekube.agent.network.nftables import Firewall
from edgekube.agent.network.nftsync import FULL_RESYNC, NftSync
from edgekube.agent.network.serviceenv import namespace_env
from edgekube.agent.network.userspace import UserspaceProxy
from edgekube.agent.runtime.podman.dns import read_host
from edgekube.agent.runtime.podman.network import PodNetwork
from edgekube.bus import topics
from edgekube.bus.protocol import Message, MessageBus
from edgekube.model.errors import EdgekubeError
from edgekube.model.netstate import RouteTable, ServiceTable, ServiceTableDecoder

log = logging.getLogger(__name__)


@runtime_checkable
class NetworkRuntime(Protocol):
    """The part of the runtime that puts pods on the node's network (PodmanRuntime.use_pod_network)."""

    def use_pod_network(self, network: PodNetwork | None, *, required: bool = True) -> None: ...

    def use_service_env(self, env: Callable[[str], dict[str, str]] | None) -> None: ...


class NetworkAgent:
    """Keeps this node's pod network, routes, proxy rules and DNS in line with the tables; see the module docstring."""

    def __init__(
        self,
        node: str,
        runtime: NetworkRuntime,
        routes: routeplan.HostRoutes,
        firewall: Firewall,
        conntrack: Conntrack | None = None,
        *,
        dns: bool = True,
        dns_port: int = 53,
        resync: float = 10.0,
        dns_factory: Callable[..., DnsServer] = DnsServer,
        full_resync: float = FULL_RESYNC,
        userspace: UserspaceProxy | None = None,
    ) -> None:
        self.node = node
        self.runtime = runtime
        self.routes = routes
        self.firewall = firewall
        self.conntrack = conntrack
        #: The nftables proxy: partial transactions, a full one now and then (nftsync.py).
        self.rules = NftSync(firewall, conntrack, full_resync=full_resync)
        #: proxy_mode userspace: this proxy takes the Services, and `firewall` is never loaded (userspace.py).
        self.userspace = userspace
        self.dns_enabled = dns
        self.dns_port = dns_port
        self.resync = resync
        self._dns_factory = dns_factory
        self.route_table: RouteTable | None = None
        self.service_table = ServiceTable()
        #: Validates only the Services that differ from the last table's (1,000 endpoints: ~9 ms -> ~1 ms a table).
        self._decoder = ServiceTableDecoder()
        self._services_seen = False
        self._network: PodNetwork | None = None
        self.dns: DnsServer | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="agent-network", daemon=True)
        #: Passes run, and the last failures (one line each): for tests and logs.
        self.passes = 0
        self.failures: list[str] = []

    def attach(self, bus: MessageBus) -> NetworkAgent:
        bus.subscribe(topics.ROUTES, self._on_routes)
        bus.subscribe(topics.SERVICES, self._on_services)
        self.runtime.use_pod_network(None, required=True)  # pods wait for the podCIDR, as for a kubelet's CNI
        self.runtime.use_service_env(lambda namespace: namespace_env(self.service_table, namespace))
        return self

    def start(self) -> NetworkAgent:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the loop; routes, rules and the Podman network stay (pods keep their data path). DNS stops."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        if self.dns is not None:
            self.dns.stop()

    def _on_routes(self, msg: Message) -> None:
        try:
            self.route_table = RouteTable.decode(msg.payload)
        except EdgekubeError as exc:
            log.warning("ignored a route table: %s", exc)
            return
        self._wake.set()

    def _on_services(self, msg: Message) -> None:
        try:
            self.service_table = self._decoder.decode(msg.payload)
        except EdgekubeError as exc:
            log.warning("ignored a service table: %s", exc)
            return
        self._services_seen = True
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.resync)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.sync()
            except Exception:
                log.exception("network pass failed")

    def sync(self) -> None:
        """One pass: network, routes, rules, DNS (each step on its own; a failure is retried next pass)."""
        failures: list[str] = []
        table = self.route_table
        mine = table.entry(self.node) if table is not None else None
        if mine is not None and (self._network is None or self._network.subnet != mine.pod_cidr):
            gateway = PodNetwork(mine.pod_cidr).gateway
            network = PodNetwork(mine.pod_cidr, dns_server=gateway if self.dns_enabled else "")
            try:
                self.runtime.use_pod_network(network)
                self._network = network
                self._stop_dns()
            except EdgekubeError as exc:
                failures.append(f"pod network: {exc}")
        if self._network is not None and self.dns_enabled and self.dns is None:
            try:
                self._start_dns(self._network)
            except OSError as exc:  # e.g. port 53 taken on the gateway: routes and rules go on, DNS is tried again
                failures.append(f"cluster DNS on {self._network.gateway}:{self.dns_port}: {exc}")
        if table is not None:
            try:
                failures += routeplan.apply(
                    routeplan.plan(routeplan.desired(table, self.node), self.routes.list()), self.routes
                )
            except EdgekubeError as exc:
                failures.append(str(exc))
        if self._services_seen and self.userspace is not None:
            failures += self.userspace.sync(self.service_table)
        elif self._services_seen:
            failures += self.rules.sync(self.service_table, self._network.subnet if self._network else "")
        for failure in failures:
            log.warning("network: %s", failure)
        self.failures = failures
        self.passes += 1

    def _stop_dns(self) -> None:
        if self.dns is not None:
            self.dns.stop()
            self.dns = None

    def _start_dns(self, network: PodNetwork) -> None:
        upstream = read_host().nameservers
        self.dns = self._dns_factory(
            network.gateway, lambda: self.service_table, upstream, port=self.dns_port, domain=network.domain
        ).start()
        log.info("cluster DNS on %s:%d (upstream %s)", network.gateway, self.dns_port, ", ".join(upstream) or "none")
