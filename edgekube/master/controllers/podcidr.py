"""Pod CIDR allocator: every Node gets a `spec.podCIDR` cut from the cluster CIDR; pure `allocate` + controller.

Like Kubernetes' range allocator, the state is what the Nodes hold: a node keeps the CIDR it has (stable for its
name while its object exists), a deleted node's CIDR is free again, a new node gets the lowest free one. A CIDR
outside the cluster range or held by two nodes is given again (the second by name), so a changed `--cluster-cidr`
moves the nodes into it. When the range is full a node waits without one (logged), as the kubelet waits for its CIDR.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edgekube.master.controllers.base import Effects, Setup, Snapshot
from edgekube.model.errors import ValidationError

log = logging.getLogger(__name__)

_Net = ipaddress.IPv4Network


def cluster_range(cidr: str, mask: int) -> _Net:
    """The cluster CIDR, checked: an IPv4 network that holds at least one /`mask`."""
    try:
        net = ipaddress.ip_network(cidr, strict=True)
    except ValueError as exc:
        raise ValidationError(f"cluster_cidr: {cidr!r} is not a valid IPv4 CIDR ({exc})") from None
    if not isinstance(net, _Net):
        raise ValidationError(f"cluster_cidr: {cidr!r}: only IPv4 is supported")
    if not net.prefixlen <= mask <= 30:
        raise ValidationError(f"node_cidr_mask: {mask} must be between the cluster CIDR's /{net.prefixlen} and /30")
    return net


def allocate(current: Mapping[str, str | None], cluster: _Net, mask: int) -> dict[str, str | None]:
    """The nodes whose podCIDR must change, with their new CIDR (None: the range is full); pure.

    `current` maps every node name to the podCIDR it holds (None: none yet).
    """
    taken: set[_Net] = set()
    wanting: list[str] = []
    for name in sorted(current):
        held = _parse(current[name])
        if held is not None and held.prefixlen == mask and held.subnet_of(cluster) and held not in taken:
            taken.add(held)
        else:
            wanting.append(name)
    free = (n for n in cluster.subnets(new_prefix=mask) if n not in taken)
    changes: dict[str, str | None] = {}
    for name in wanting:
        subnet = next(free, None)
        if subnet is None and current[name] is None:
            continue  # still none to give: nothing changes
        changes[name] = None if subnet is None else str(subnet)
    return changes


def _parse(cidr: str | None) -> _Net | None:
    if not cidr:
        return None
    try:
        net = ipaddress.ip_network(cidr, strict=True)
    except ValueError:
        return None
    return net if isinstance(net, _Net) else None


@dataclass(frozen=True)
class SetPodCIDR:
    """Write the node's spec.podCIDR (and podCIDRs); None removes them (the range is full)."""

    node: str
    cidr: str | None

    def apply(self, effects: Effects) -> None:
        node = effects.store.peek("Node", "", self.node)
        spec = {k: v for k, v in (node.get("spec") or {}).items() if k not in ("podCIDR", "podCIDRs")}
        if self.cidr is not None:
            spec.update(podCIDR=self.cidr, podCIDRs=[self.cidr])
            log.info("node %s: podCIDR %s", self.node, self.cidr)
        else:
            log.warning("node %s: no pod CIDR left in the cluster CIDR; it waits for one", self.node)
        effects.store.update({**node, "spec": spec})


class PodCIDRAllocator:
    """The controller: one SetPodCIDR per node that has no valid, unique podCIDR of the cluster range."""

    name = "podcidr"

    def __init__(self, cluster_cidr: str, mask: int) -> None:
        self.cluster = cluster_range(cluster_cidr, mask)
        self.mask = mask

    @classmethod
    def build(cls, setup: Setup) -> PodCIDRAllocator:
        return cls(setup.config.cluster_cidr, setup.config.node_cidr_mask)

    def plan(self, snapshot: Snapshot) -> Sequence[SetPodCIDR]:
        current = dict(_held(snapshot.store.objects("Node").values()))
        return [SetPodCIDR(name, cidr) for name, cidr in allocate(current, self.cluster, self.mask).items()]


def _held(nodes: Iterable[Mapping[str, Any]]) -> Iterator[tuple[str, str | None]]:
    for node in nodes:
        cidr = (node.get("spec") or {}).get("podCIDR")
        yield node["metadata"]["name"], cidr if isinstance(cidr, str) else None
