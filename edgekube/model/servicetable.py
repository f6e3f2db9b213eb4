"""Builds the ServiceTable (model.netstate) from stored Services and Endpoints; called by master.servicetable.

Level-triggered: every message is the whole table (each Service's virtual address and ports, its endpoints with
their readiness and resolved ports), so an agent rebuilds its proxy rules and DNS answers from the newest one
alone. The publisher makes `generation` grow across master restarts too: an agent may drop a lower one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from edgekube.model.netstate import EndpointEntry, ServiceEntry, ServicePortEntry, ServiceTable
from edgekube.model.service import CLUSTER_IP_NONE


def _endpoints(endpoints: Mapping[str, Any] | None) -> list[EndpointEntry]:
    """An Endpoints object's subsets as one entry per address (ready ones first), ports by Service port name."""
    found: dict[str, EndpointEntry] = {}
    for subset in (endpoints or {}).get("subsets") or ():
        ports = {str(p.get("name") or ""): int(p["port"]) for p in subset.get("ports") or ()}
        for key, ready in (("addresses", True), ("notReadyAddresses", False)):
            for address in subset.get(key) or ():
                ip = str(address["ip"])
                entry = found.setdefault(ip, EndpointEntry(ip=ip, node=str(address.get("nodeName") or ""), ready=ready))
                entry.ports.update(ports)
    return sorted(found.values(), key=lambda e: (not e.ready, e.ip))


def table_service(service: Mapping[str, Any], endpoints: Mapping[str, Any] | None) -> ServiceEntry:
    """One Service's entry: its stored spec (clusterIP and nodePorts allocated) and its Endpoints object."""
    meta, spec = service["metadata"], service.get("spec") or {}
    affinity = spec.get("sessionAffinity") or "None"
    timeout = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}).get("timeoutSeconds") or 0
    cluster_ip = str(spec.get("clusterIP") or "")
    return ServiceEntry(
        namespace=meta.get("namespace") or "default",
        name=meta["name"],
        cluster_ip="" if cluster_ip == CLUSTER_IP_NONE else cluster_ip,
        type=spec.get("type") or "ClusterIP",
        session_affinity=affinity,
        affinity_timeout_seconds=int(timeout) if affinity == "ClientIP" else 0,
        ports=[
            ServicePortEntry(
                name=str(p.get("name") or ""),
                protocol=str(p.get("protocol") or "TCP"),
                port=int(p["port"]),
                node_port=int(p["nodePort"]) if p.get("nodePort") else None,
            )
            for p in spec.get("ports") or ()
        ],
        endpoints=_endpoints(endpoints),
    )


def build(
    services: Iterable[Mapping[str, Any]], endpoints: Mapping[tuple[str, str], Mapping[str, Any]], generation: int
) -> ServiceTable:
    """The whole table, Services sorted by namespace and name (so equal contents encode equally)."""
    entries = [
        table_service(s, endpoints.get((s["metadata"].get("namespace") or "", s["metadata"]["name"]))) for s in services
    ]
    entries.sort(key=lambda e: (e.namespace, e.name))
    return ServiceTable(generation=generation, services=entries)
