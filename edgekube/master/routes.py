"""The pod network's RouteTable (every node's podCIDR and node IP) built from the Nodes; published by master.app."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from edgekube.model.errors import ValidationError
from edgekube.model.netstate import RouteEntry, RouteTable


def route_entries(nodes: Iterable[Mapping[str, Any]], ready: Callable[[str], bool]) -> list[RouteEntry]:
    """One entry per node that holds a podCIDR, by name; its node IP is the InternalIP it reports ("" if none)."""
    entries = []
    for node in nodes:
        name = node["metadata"]["name"]
        cidr = (node.get("spec") or {}).get("podCIDR")
        if not isinstance(cidr, str):
            continue
        addresses = (node.get("status") or {}).get("addresses") or []
        node_ip = next((a.get("address", "") for a in addresses if a.get("type") == "InternalIP"), "")
        try:
            entries.append(RouteEntry(name=name, pod_cidr=cidr, node_ip=node_ip, ready=ready(name)))
        except ValueError:
            # An address the agent got wrong keeps that node out of the table, not every node.
            entries.append(RouteEntry(name=name, pod_cidr=cidr, node_ip="", ready=False))
    return sorted(entries, key=lambda e: e.name)


class RoutePublisher:
    """Remembers the last table sent; `flush` returns a new one only when an entry changed (or after `forget`).

    The generation is the wall clock in milliseconds, so a restarted master's table is still newer.
    """

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._sent: list[RouteEntry] | None = None
        self._generation = 0

    def forget(self) -> None:
        """Send the table again next time (after a reconnect the broker may have lost the retained copy)."""
        self._sent = None

    def flush(self, nodes: Iterable[Mapping[str, Any]], ready: Callable[[str], bool]) -> RouteTable | None:
        try:
            entries = route_entries(nodes, ready)
        except ValidationError:
            return None
        if entries == self._sent:
            return None
        self._sent = entries
        self._generation = max(self._generation + 1, int(self._wall() * 1000))
        return RouteTable(generation=self._generation, nodes=entries)
