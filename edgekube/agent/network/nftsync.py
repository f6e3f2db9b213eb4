"""Keeps table `ip edgekube` in line with the newest ServiceTable through a Firewall, partial or full; for netagent.

The loaded state is known: what the last applied transaction made the table hold (per Service, the entry it was
written from, and every object's name), so a change writes only what changed, as kube-proxy's nftables mode does
partial syncs:

- nothing at all when the table and the node's podCIDR are what was loaded;
- else one transaction (nftables.transaction) that leaves out the chains and sets of every Service whose entry
  is the one loaded: one endpoint moving in 100 Services x 10 endpoints writes ~80 lines instead of ~3,700;
- a full transaction (every chain written again) for the first table, after the podCIDR changes, after a refused
  load (the kernel's table is then listed again: the state is unknown) and every `full_resync` seconds even when
  nothing changed, so a table someone else touched is repaired within that period (kube-proxy: one hour).

The kernel's table is listed (`nft -j list table`) only for the first transaction and after a refused one: any
leftover of an earlier agent is deleted by the first transaction; after that the agent's own loads are the only
writer. After new rules, the UDP flows of endpoints that left are deleted (conntrack.py).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from edgekube.agent.network.conntrack import Conntrack, stale_udp
from edgekube.agent.network.nftables import Firewall, transaction
from edgekube.model.errors import EdgekubeError
from edgekube.model.netstate import ServiceEntry, ServiceTable

_Key = tuple[str, str]

#: Seconds between two full transactions when nothing asks for one sooner (kube-proxy's nftables mode: an hour).
FULL_RESYNC = 3600.0


class NftSync:
    """The nftables proxy's state and its one operation, `sync(table, podCIDR)`; see the module docstring."""

    def __init__(
        self,
        firewall: Firewall,
        conntrack: Conntrack | None = None,
        *,
        full_resync: float = FULL_RESYNC,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.firewall = firewall
        self.conntrack = conntrack
        self.full_resync = full_resync
        self._clock = clock
        #: Per Service, the entry the table's chains were written from; None: unknown (nothing loaded, or refused).
        self._loaded: dict[_Key, ServiceEntry] | None = None
        self._cidr = ""
        #: (kind, name) of every object the table holds; None: to be listed from the kernel.
        self._objects: set[tuple[str, str]] | None = None
        self._last_full = -math.inf
        self._applied_table: ServiceTable | None = None
        #: Transactions applied, full and partial: for tests and logs.
        self.full_loads = 0
        self.partial_loads = 0

    def sync(self, table: ServiceTable, cidr: str) -> list[str]:
        """Bring the table in line with `table` on a node whose podCIDR is `cidr`; the failures, one line each."""
        services = {(s.namespace, s.name): s for s in table.services}
        full = self._loaded is None or cidr != self._cidr or self._clock() - self._last_full >= self.full_resync
        if not full and services == self._loaded:
            return []
        loaded = self._loaded or {}
        unchanged = set() if full else {key for key, entry in services.items() if loaded.get(key) == entry}
        try:
            existing = self._objects if self._objects is not None else self.firewall.existing()
            text, objects = transaction(table, cidr, existing, unchanged)
            self.firewall.load(text)
        except EdgekubeError as exc:
            self._loaded, self._objects = None, None  # unknown after a refused load: list it, write it all, again
            return [str(exc)]
        self._loaded, self._cidr, self._objects = services, cidr, objects
        if full:
            self._last_full = self._clock()
            self.full_loads += 1
        else:
            self.partial_loads += 1
        return self._forget_stale_flows(table)

    def _forget_stale_flows(self, table: ServiceTable) -> list[str]:
        """After new rules: delete the UDP flows of endpoints that left (conntrack.py); the failures, one line each."""
        before, self._applied_table = self._applied_table, table
        if self.conntrack is None or before is None:
            return []
        failures = []
        for flow in stale_udp(before, table):
            try:
                self.conntrack.delete(flow)
            except EdgekubeError as exc:
                failures.append(str(exc))
        return failures
