"""The node proxy in the kernel: pure ServiceTable → nftables ruleset text, applied atomically by NftProxy; by netagent.

Modelled on kube-proxy's nftables mode. One table, `ip edgekube`, brought to the wanted state by one `nft -f`
transaction (every wanted chain and map added and flushed, then filled; anything else in the table deleted: no
half-applied state, no leftovers of an earlier agent; the affinity sets keep their clients):

- `service-ips` maps `clusterIP . protocol . port` to the service port's chain; `service-nodeports` maps
  `protocol . nodePort` on every local address (`fib daddr type local`) to an external chain that marks the packet
  for masquerade (the reply must come back through this node) and goes to the same service chain.
- A service chain picks a ready endpoint with `numgen random mod N` (kube-proxy's random balancing); with
  sessionAffinity ClientIP it first sends a client found in an endpoint's `affinity-…` set (dynamic, with the
  service's timeout) to that endpoint, whose chain adds the client to its set.
- An endpoint chain DNATs to `podIP:targetPort`. `postrouting` masquerades marked packets and hairpin traffic
  (a local pod reaching a local endpoint through the service), whose reply would otherwise bypass the DNAT.
- A service port without ready endpoints is rejected at once (`no-endpoint-services`), as kube-proxy does.

A transaction may leave out the chains and sets of Services the table already holds as wanted (`unchanged`, as
kube-proxy's partial syncs): a change of one Service's endpoints then writes that Service's chains and the four
maps, not all 1,000 endpoint chains (nftsync.py decides which, and when a full transaction is due).
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterable, Iterator, Sequence, Set
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

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
    return sorted(found, key=lambda b: (socket.inet_aton(b[0]), b[1]))  # numeric order (10.42.2.5 < 10.42.10.5)


def _v4(address: str) -> bool:
    """The table is `ip` (IPv4): an IPv6 address in it would make nft refuse the whole transaction.

    The wire model has validated every address (netstate._address), so a colon is what tells IPv6 apart; parsing
    each one with ipaddress was most of ruleset()'s time at 1,000 endpoints.
    """
    return ":" not in address


@dataclass
class _Objects:
    """What the table holds, by name: maps (type, elements), affinity sets (timeout), chains (hook, rules)."""

    maps: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    sets: dict[str, int] = field(default_factory=dict)
    chains: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    #: (kind, name) of the chains and sets of `unchanged` Services: wanted, but not written again.
    kept: set[tuple[str, str]] = field(default_factory=set)


def _service_objects(table: ServiceTable, objects: _Objects, unchanged: Set[tuple[str, str]]) -> None:
    ips, nodeports = objects.maps["service-ips"][1], objects.maps["service-nodeports"][1]
    no_endpoints, no_endpoint_nodeports = (
        objects.maps[m][1] for m in ("no-endpoint-services", "no-endpoint-nodeports")
    )
    for svc in sorted(table.services, key=lambda s: (s.namespace, s.name)):
        if svc.headless or not _v4(svc.cluster_ip):
            continue  # headless: DNS only, clients reach the pods' own addresses
        kept = (svc.namespace, svc.name) in unchanged
        affinity = svc.session_affinity == "ClientIP"
        for port in svc.ports:
            pid = _port_id(svc, port)
            proto = port.protocol.lower()
            backends = _backends(svc, port)
            node_port = port.node_port if svc.type == "NodePort" else None
            if not backends:
                no_endpoints.append(f"{svc.cluster_ip} . {proto} . {port.port} : goto reject-chain")
                if node_port:
                    no_endpoint_nodeports.append(f"{proto} . {node_port} : goto reject-chain")
                continue
            ips.append(f"{svc.cluster_ip} . {proto} . {port.port} : goto service-{pid}")
            if node_port:
                nodeports.append(f"{proto} . {node_port} : goto external-{pid}")
            endpoints = [f"{pid}/{ip}/{tp}" for ip, tp in backends]  # endpoint-… chain and affinity-… set names
            if kept:  # in the table as wanted: only the names, so that nothing of it is deleted
                objects.kept |= {("chain", f"service-{pid}")} | {("chain", f"endpoint-{e}") for e in endpoints}
                objects.kept |= {("chain", f"external-{pid}")} if node_port else set()
                objects.kept |= {("set", f"affinity-{e}") for e in endpoints} if affinity else set()
                continue
            if node_port:
                objects.chains[f"external-{pid}"] = ("", ["jump mark-for-masquerade", f"goto service-{pid}"])
            rules = [f"ip saddr @affinity-{e} goto endpoint-{e}" for e in endpoints] if affinity else []
            if len(endpoints) == 1:
                rules.append(f"goto endpoint-{endpoints[0]}")
            else:
                picks = ", ".join(f"{i} : goto endpoint-{e}" for i, e in enumerate(endpoints))
                rules.append(f"numgen random mod {len(endpoints)} vmap {{ {picks} }}")
            objects.chains[f"service-{pid}"] = ("", rules)
            for e, (ip, tp) in zip(endpoints, backends, strict=True):
                ep_rules = [f"meta l4proto {proto} dnat to {ip}:{tp}"]
                if affinity:
                    objects.sets[f"affinity-{e}"] = svc.affinity_timeout_seconds
                    ep_rules.insert(0, f"update @affinity-{e} {{ ip saddr }}")
                objects.chains[f"endpoint-{e}"] = ("", ep_rules)


def _objects(table: ServiceTable, local_cidr: str, unchanged: Set[tuple[str, str]]) -> _Objects:
    vip = "ipv4_addr . inet_proto . inet_service : verdict"
    port_only = "inet_proto . inet_service : verdict"
    objects = _Objects(
        maps={"service-ips": (vip, []), "service-nodeports": (port_only, []),
              "no-endpoint-services": (vip, []), "no-endpoint-nodeports": (port_only, [])},
    )  # fmt: skip
    hairpin = [f"ct status dnat ip saddr {local_cidr} ip daddr {local_cidr} masquerade"] if local_cidr else []
    local = "fib daddr type local ip daddr != 127.0.0.0/8"  # kube-proxy's nftables mode: no NodePort on loopback
    objects.chains.update({
        "prerouting": ("type nat hook prerouting priority dstnat; policy accept;", ["jump services"]),
        "output": ("type nat hook output priority -100; policy accept;", ["jump services"]),
        "postrouting": ("type nat hook postrouting priority srcnat; policy accept;",
                        [f"meta mark & {MASQ_MARK} == {MASQ_MARK} masquerade fully-random", *hairpin]),
        "mark-for-masquerade": ("", [f"meta mark set meta mark | {MASQ_MARK}"]),
        "services": ("", ["ip daddr . meta l4proto . th dport vmap @service-ips",
                          f"{local} meta l4proto . th dport vmap @service-nodeports"]),
        "filter-forward": ("type filter hook forward priority -10; policy accept;", [_NO_ENDPOINTS]),
        "filter-output": ("type filter hook output priority -10; policy accept;", [_NO_ENDPOINTS]),
        "filter-input": ("type filter hook input priority -10; policy accept;",
                         [f"{local} meta l4proto . th dport vmap @no-endpoint-nodeports"]),
        "reject-chain": ("", ["reject"]),
    })  # fmt: skip
    _service_objects(table, objects, unchanged)
    return objects


class Transaction(NamedTuple):
    """An `nft -f` transaction and the (kind, name) of every object the table holds once it is applied."""

    text: str
    objects: set[tuple[str, str]]


def ruleset(table: ServiceTable, local_cidr: str = "", existing: Iterable[tuple[str, str]] = ()) -> str:
    """The `nft -f` transaction that makes table `ip edgekube` hold `table`'s rules, whole; pure (`transaction`)."""
    return transaction(table, local_cidr, existing).text


def transaction(
    table: ServiceTable,
    local_cidr: str = "",
    existing: Iterable[tuple[str, str]] = (),
    unchanged: Set[tuple[str, str]] = frozenset(),
) -> Transaction:
    """The transaction that makes table `ip edgekube` hold `table`'s rules; pure.

    kube-proxy's way: every wanted chain and map is added (a no-op when it exists) and flushed, then filled; the
    affinity sets are added but never flushed, so clients keep their endpoint across syncs; whatever `existing`
    (kind, name) pairs (`NftProxy.existing`) are no longer wanted is flushed and deleted last. One transaction:
    the kernel applies all of it or nothing. `local_cidr` is this node's podCIDR (the hairpin masquerade).

    The chains and sets of the `unchanged` Services, (namespace, name) pairs, are left out (neither added, flushed
    nor filled, nor deleted): the caller vouches that the table holds them as this table wants them, i.e. that
    the same entry was in the last transaction applied. The four maps and the base chains are always rewritten.
    """
    objects = _objects(table, local_cidr, unchanged)
    t = f"ip {TABLE}"
    lines = [f"add table {t}"]
    lines += [f"add map {t} {name} {{ type {kind}; }}" for name, (kind, _) in objects.maps.items()]
    lines += [
        f"add set {t} {name} {{ type ipv4_addr; flags dynamic,timeout; timeout {timeout}s; }}"
        for name, timeout in objects.sets.items()
    ]
    lines += [
        f"add chain {t} {name}" + (f" {{ {hook} }}" if hook else "") for name, (hook, _) in objects.chains.items()
    ]
    lines += [f"flush chain {t} {name}" for name in objects.chains]
    lines += [f"flush map {t} {name}" for name in objects.maps]
    lines += [f"add rule {t} {name} {rule}" for name, (_, rules) in objects.chains.items() for rule in rules]
    for name, (_, elements) in objects.maps.items():
        if elements:
            lines.append(f"add element {t} {name} {{ " + ", ".join(elements) + " }")
    wanted = (
        {("chain", n) for n in objects.chains} | {("map", n) for n in objects.maps} | {("set", n) for n in objects.sets}
    ) | objects.kept
    return Transaction("\n".join(lines) + "\n" + deletions(wanted, existing), wanted)


def deletions(wanted: Iterable[tuple[str, str]], existing: Iterable[tuple[str, str]]) -> str:
    """The end of a transaction: flush, then delete, every existing object not wanted (chains before sets/maps)."""
    stale = sorted(set(existing) - set(wanted))
    t = f"ip {TABLE}"
    lines = [f"flush chain {t} {name}" for kind, name in stale if kind == "chain"]
    lines += [f"delete {kind} {t} {name}" for kind, name in stale if kind == "chain"]
    lines += [f"delete {kind} {t} {name}" for kind, name in stale if kind != "chain"]
    return "".join(f"{line}\n" for line in lines)


def object_names(text: str) -> Iterator[tuple[str, str]]:
    """The (kind, name) of every chain, map and set a ruleset adds (for tests)."""
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 5 and words[0] == "add" and words[1] in ("chain", "map", "set"):
            yield words[1], words[4]


class Firewall(Protocol):
    """Where a ruleset goes: `existing` lists the table's objects, `load` applies a transaction, `remove` deletes it."""

    def existing(self) -> set[tuple[str, str]]: ...

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

    def existing(self) -> set[tuple[str, str]]:
        """(kind, name) of every chain, map and set of table `ip edgekube`; empty when there is none."""
        argv = [*self.argv, "-j", "list", "table", "ip", TABLE]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeFailure(f"{' '.join(argv)}: {exc}", reason="ProxyRulesError") from exc
        if done.returncode != 0:
            return set()
        items = json.loads(done.stdout).get("nftables", [])
        return {(kind, str(item[kind]["name"])) for item in items for kind in ("chain", "map", "set") if kind in item}

    def load(self, text: str) -> None:
        self._run(["-f", "-"], text)

    def remove(self) -> None:
        self._run(["-f", "-"], f"table ip {TABLE} {{\n}}\ndelete table ip {TABLE}\n")
