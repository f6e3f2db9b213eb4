"""What every node has bound to it, and which pods wait for one; kept current from the cache's change feed.

The scheduler's picture of the cluster (kube-scheduler keeps the same cache): building NodeViews costs
O(nodes), not O(pods), so pods can be placed one request at a time without rescanning thousands of pods.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgekube.master.scheduling.scheduler import Request
from edgekube.master.scheduling.specs import SpecCache
from edgekube.master.scheduling.topology import BoundPod

_TERMINAL = ("Succeeded", "Failed")
_Key = tuple[str, str]


@dataclass
class Usage:
    """The sum of the requests bound to one node (terminal pods free what they held)."""

    cpu_millis: int = 0
    memory_bytes: int = 0
    pods: int = 0
    ports: Counter[tuple[int, str]] = field(default_factory=Counter)
    owners: Counter[str] = field(default_factory=Counter)
    #: Extended resources (edgekube.io/serial, ...) requested by the bound pods.
    extended: Counter[str] = field(default_factory=Counter)
    #: The bound pods themselves (namespace, labels, required anti-affinity), for inter-pod affinity.
    members: dict[_Key, BoundPod] = field(default_factory=dict)
    #: How many of them have required anti-affinity terms.
    anti: int = 0

    def add(self, req: Request, sign: int) -> None:
        self.cpu_millis += sign * req.cpu_millis
        self.memory_bytes += sign * req.memory_bytes
        self.pods += sign
        for port in req.host_ports:
            self.ports[port] += sign
        if req.owner is not None:
            self.owners[req.owner] += sign
        for name, count in req.extended:
            self.extended[name] += sign * count
        if req.extended:
            self.extended += Counter()
        self.ports += Counter()  # drops ports no pod holds any more
        self.owners += Counter()


class NodeUsage:
    """Listener for Pod writes (CachedStore.listen): per-node usage, and the set of pending pods."""

    def __init__(self, specs: SpecCache) -> None:
        self.specs = specs
        self.nodes: dict[str, Usage] = {}
        #: Pods with no node yet and not finished, by (namespace, name).
        self.pending: dict[_Key, Mapping[str, Any]] = {}
        self._counted: dict[_Key, tuple[str, Request]] = {}

    def observe(self, key: _Key, pod: Mapping[str, Any] | None) -> None:
        old = self._counted.pop(key, None)
        if old is not None:
            usage = self.nodes[old[0]]
            usage.add(old[1], -1)
            usage.members.pop(key, None)
            usage.anti -= bool(old[1].topology is not None and old[1].topology.anti)
        self.pending.pop(key, None)
        if pod is None or (pod.get("status") or {}).get("phase") in _TERMINAL:
            return
        node = pod["spec"].get("nodeName")
        if not node:
            self.pending[key] = pod
            return
        req = self.specs.request(pod)
        usage = self.nodes.setdefault(node, Usage())
        usage.add(req, 1)
        # Labels can change after scheduling (the request is cached per uid): take them from the pod itself.
        anti = req.topology.anti if req.topology is not None else ()
        usage.members[key] = BoundPod(key[0], pod["metadata"].get("labels") or {}, anti, req.affinity_key)
        usage.anti += bool(anti)
        self._counted[key] = (node, req)

    def usage(self, node: str) -> Usage:
        return self.nodes.get(node) or Usage()
