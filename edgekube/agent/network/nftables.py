"""The node proxy in the kernel: pure ServiceTable → nftables ruleset text, applied atomically by NftProxy; by netagent.

Modelled on kube-proxy's nftables mode. One table, `ip edgekube`, replaced whole in one `nft -f` transaction
(delete + add: no half-applied state, no leftovers of an earlier agent):

- `service-ips` maps `clusterIP . protocol . port` to the service port's chain; `service-nodeports` maps
  `protocol . nodePort` on every local address (`fib daddr type local`) to an external chain that marks the packet
  for masquerade (the reply must come back through this node) and goes to the same service chain.
- A service chain picks a ready endpoint with `numgen random mod N` (kube-proxy's random balancing); with
  sessionAffinity ClientIP it first sends a client found in an endpoint's `affinity-…` set (dynamic, with the
  service's timeout) to that endpoint, whose chain adds the client to its set.
- An endpoint chain DNATs to `podIP:targetPort`. `postrouting` masquerades marked packets and hairpin traffic
  (a local pod reaching a local endpoint through the service), whose reply would otherwise bypass the DNAT.
- A service port without ready endpoints is rejected at once (`no-endpoint-services`), as kube-proxy does.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Iterator, Sequence
from typing import Protocol

from edgekube.model.errors import RuntimeFailure
from edgekube.model.netstate import EndpointEntry, ServiceEntry, ServicePortEntry, ServiceTable

TABLE = "edgekube"
MASQ_MARK = "0x4000"
_NO_ENDPOINTS = "ip daddr . meta l4proto . th dport vmap @no-endpoint-services"


def _port_id(svc: ServiceEntry, port: ServicePortEntry) -> str:
    return f"{svc.namespace}/{svc.name}/{port.protocol.lower()}/{port.name or port.port}"


def _target(port: ServicePortEntry, ep: EndpointEntry) -> int | None:
    """The endpoint's target port for this service port: by the port's name, a lone unnamed port by ""."""
    if port.name in ep.ports:
        return ep.ports[port.name]
    return None


def _backends(svc: ServiceEntry, port: ServicePortEntry) -> list[tuple[str, int]]:
    found = {(ep.ip, t) for ep in svc.endpoints if ep.ready and _v4(ep.ip) and (t := _target(port, ep)) is not None}
    return sorted(found, key=lambda b: (ipaddress.ip_address(b[0]), b[1]))


def _v4(address: str) -> bool:
    """The table is `ip` (IPv4): an IPv6 address in it would make nft refuse the whole transaction."""
    return ipaddress.ip_address(address).version == 4


def ruleset(table: ServiceTable, local_cidr: str = "") -> str:
    """The whole `nft -f` transaction for `table`; `local_cidr` is this node's podCIDR (hairpin masquerade)."""
    ips: list[str] = []
    nodeports: list[str] = []
    no_endpoints: list[str] = []
    no_endpoint_nodeports: list[str] = []
    chains: list[str] = []
    sets: list[str] = []
    for svc in sorted(table.services, key=lambda s: (s.namespace, s.name)):
        if svc.headless or not _v4(svc.cluster_ip):
            continue  # headless: DNS only, clients reach the pods' own addresses
        for port in svc.ports:
            pid = _port_id(svc, port)
            proto = port.protocol.lower()
            backends = _backends(svc, port)
            if not backends:
                no_endpoints.append(f"{svc.cluster_ip} . {proto} . {port.port} : goto reject-chain")
                if svc.type == "NodePort" and port.node_port:
                    no_endpoint_nodeports.append(f"{proto} . {port.node_port} : goto reject-chain")
                continue
            ips.append(f"{svc.cluster_ip} . {proto} . {port.port} : goto service-{pid}")
            if svc.type == "NodePort" and port.node_port:
                nodeports.append(f"{proto} . {port.node_port} : goto external-{pid}")
                chains.append(_chain(f"external-{pid}", ["jump mark-for-masquerade", f"goto service-{pid}"]))
            affinity = svc.session_affinity == "ClientIP"
            rules = [f"ip saddr @affinity-{pid}/{ip}/{tp} goto endpoint-{pid}/{ip}/{tp}" for ip, tp in backends]
            if not affinity:
                rules = []
            if len(backends) == 1:
                ip, tp = backends[0]
                rules.append(f"goto endpoint-{pid}/{ip}/{tp}")
            else:
                picks = ", ".join(f"{i} : goto endpoint-{pid}/{ip}/{tp}" for i, (ip, tp) in enumerate(backends))
                rules.append(f"numgen random mod {len(backends)} vmap {{ {picks} }}")
            chains.append(_chain(f"service-{pid}", rules))
            for ip, tp in backends:
                ep_rules = [f"meta l4proto {proto} dnat to {ip}:{tp}"]
                if affinity:
                    name = f"affinity-{pid}/{ip}/{tp}"
                    sets.append(
                        f"\tset {name} {{\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n"
                        f"\t\ttimeout {svc.affinity_timeout_seconds}s\n\t}}\n"
                    )
                    ep_rules.insert(0, f"update @{name} {{ ip saddr }}")
                chains.append(_chain(f"endpoint-{pid}/{ip}/{tp}", ep_rules))
    hairpin = [f"ct status dnat ip saddr {local_cidr} ip daddr {local_cidr} masquerade"] if local_cidr else []
    parts = [
        f"table ip {TABLE} {{\n}}\n",
        f"delete table ip {TABLE}\n",
        f"table ip {TABLE} {{\n",
        _map("service-ips", "ipv4_addr . inet_proto . inet_service : verdict", ips),
        _map("service-nodeports", "inet_proto . inet_service : verdict", nodeports),
        _map("no-endpoint-services", "ipv4_addr . inet_proto . inet_service : verdict", no_endpoints),
        _map("no-endpoint-nodeports", "inet_proto . inet_service : verdict", no_endpoint_nodeports),
        *sets,
        _chain("prerouting", ["jump services"], "type nat hook prerouting priority dstnat; policy accept;"),
        _chain("output", ["jump services"], "type nat hook output priority -100; policy accept;"),
        _chain(
            "postrouting",
            [f"meta mark & {MASQ_MARK} == {MASQ_MARK} masquerade fully-random", *hairpin],
            "type nat hook postrouting priority srcnat; policy accept;",
        ),
        _chain("mark-for-masquerade", [f"meta mark set meta mark | {MASQ_MARK}"]),
        _chain(
            "services",
            [
                "ip daddr . meta l4proto . th dport vmap @service-ips",
                # kube-proxy's nftables mode: NodePorts on every local address but loopback (no route_localnet).
                "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports",
            ],
        ),
        _chain("filter-forward", [_NO_ENDPOINTS], "type filter hook forward priority -10; policy accept;"),
        _chain("filter-output", [_NO_ENDPOINTS], "type filter hook output priority -10; policy accept;"),
        _chain(
            "filter-input",
            ["fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports"],
            "type filter hook input priority -10; policy accept;",
        ),
        _chain("reject-chain", ["reject"]),
        *chains,
        "}\n",
    ]
    return "".join(parts)


def _map(name: str, kind: str, elements: list[str]) -> str:
    body = f"\t\ttype {kind}\n"
    if elements:
        body += "\t\telements = {\n" + "".join(f"\t\t\t{e},\n" for e in elements) + "\t\t}\n"
    return f"\tmap {name} {{\n{body}\t}}\n"


def _chain(name: str, rules: list[str], hook: str = "") -> str:
    lines = ([f"\t\t{hook}"] if hook else []) + [f"\t\t{r}" for r in rules]
    return f"\tchain {name} {{\n" + "".join(f"{line}\n" for line in lines) + "\t}\n"


def table_names(text: str) -> Iterator[str]:
    """The chain names a ruleset text defines (for tests and `ekctl`-side checks)."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("chain "):
            yield stripped.split()[1]


class Firewall(Protocol):
    """Where a ruleset goes: `load` replaces edgekube's table atomically, `remove` deletes it."""

    def load(self, text: str) -> None: ...

    def remove(self) -> None: ...


class NftProxy:
    """Firewall with the `nft` command in the agent's network namespace (`prefix`: e.g. nsenter, for tests)."""

    def __init__(self, binary: str = "nft", timeout: float = 10.0, prefix: Sequence[str] = ()) -> None:
        self.argv = [*prefix, binary]
        self.timeout = timeout

    def _run(self, args: list[str], text: str | None = None) -> None:
        argv = [*self.argv, *args]
        try:
            done = subprocess.run(argv, input=text, capture_output=True, text=True, timeout=self.timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeFailure(f"{' '.join(argv)}: {exc}", reason="ProxyRulesError") from exc
        if done.returncode != 0:
            raise RuntimeFailure(f"{' '.join(argv)}: {done.stderr.strip()[:2000]}", reason="ProxyRulesError")

    def load(self, text: str) -> None:
        self._run(["-f", "-"], text)

    def remove(self) -> None:
        self._run(["-f", "-"], f"table ip {TABLE} {{\n}}\ndelete table ip {TABLE}\n")
