"""The API's Service rules: clusterIP and nodePort allocation at create, kept across updates; called by master.api.

What is taken is read from the stored Services (and those of the same manifest) at each create, so a deleted
Service's address and ports are free again with nothing else to keep (model.serviceips). An update keeps the
allocated clusterIP (ValidateServiceUpdate: immutable once set) and each port's nodePort.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from edgekube.model.errors import ValidationError
from edgekube.model.fielderrors import invalid
from edgekube.model.service import CLUSTER_IP_NONE
from edgekube.model.serviceips import allocate_cluster_ip, allocate_node_port, check_cluster_ip, check_node_port
from edgekube.model.types import Obj


def _taken(services: Iterable[Mapping[str, Any]]) -> tuple[set[str], set[int]]:
    ips: set[str] = set()
    ports: set[int] = set()
    for svc in services:
        spec = svc.get("spec") or {}
        ips.add(str(spec.get("clusterIP") or ""))
        ports.update(int(p["nodePort"]) for p in spec.get("ports") or () if p.get("nodePort"))
    return ips, ports


def _node_ports(spec: dict[str, Any], taken: set[int], keep: Mapping[tuple[str, int], int]) -> None:
    """Give each port of a NodePort Service its nodePort: asked for (checked), kept from before, or the next free."""
    if spec.get("type") != "NodePort":
        return
    for i, port in enumerate(spec.get("ports") or ()):
        key = (str(port.get("protocol") or "TCP"), int(port["port"]))
        asked = port.get("nodePort")
        if asked and asked == keep.get(key):
            continue
        if asked:
            check_node_port(f"spec.ports[{i}].nodePort", int(asked), taken)
        else:
            port["nodePort"] = keep.get(key) or allocate_node_port(taken)
        taken.add(int(port["nodePort"]))


def admit_new(obj: Obj, stored: Iterable[Mapping[str, Any]], cidr: str) -> Obj:
    """A Service being created, with its clusterIP and nodePorts allocated (or the requested ones checked)."""
    ips, ports = _taken(stored)
    spec = obj["spec"]
    asked = str(spec.get("clusterIP") or "")
    if asked == CLUSTER_IP_NONE:
        spec["clusterIPs"] = [CLUSTER_IP_NONE]
    elif asked:
        check_cluster_ip(cidr, asked)
        if asked in ips:
            raise ValidationError(invalid("spec.clusterIP", asked, "provided IP is already allocated"))
    else:
        spec["clusterIP"] = allocate_cluster_ip(cidr, ips)
        spec["clusterIPs"] = [spec["clusterIP"]]
    _node_ports(spec, ports, {})
    return obj


def merge(current: Obj, new: Obj, merged: Obj, stored: Iterable[Mapping[str, Any]]) -> Obj:
    """An update: the new spec, with the allocated clusterIP and the ports' nodePorts kept."""
    old_spec = current.get("spec") or {}
    spec = dict(new.get("spec") or {})
    spec["ports"] = [dict(p) for p in spec.get("ports") or ()]
    old_ip = str(old_spec.get("clusterIP") or "")
    asked = str(spec.get("clusterIP") or "")
    if asked and asked != old_ip:
        raise ValidationError(
            invalid("spec.clusterIP", asked, "field is immutable"),
            hint="delete the Service and create it again to change its clusterIP",
        )
    spec["clusterIP"] = old_ip
    spec["clusterIPs"] = list(old_spec.get("clusterIPs") or ([old_ip] if old_ip else []))
    others = [s for s in stored if s.get("metadata", {}).get("uid") != current["metadata"].get("uid")]
    _, taken = _taken(others)
    keep = {
        (str(p.get("protocol") or "TCP"), int(p["port"])): int(p["nodePort"])
        for p in old_spec.get("ports") or ()
        if p.get("nodePort")
    }
    _node_ports(spec, taken, keep)
    merged["spec"] = spec
    return merged
