"""`ekctl top`'s answers (verb top): current node and pod usage from what the master holds in memory.

Called by master.requests for Verb.TOP under the master's lock. Node usage comes from the heartbeats (liveness),
pod and container usage from the latest NodeMetrics of the pod's node; only pods the store has bound to that node
count. The items are plain dicts the CLI turns into kubectl's tables.
"""

from __future__ import annotations

from collections.abc import Callable

from edgekube.master.cache import CachedStore
from edgekube.master.nodemetrics import NodeMetricsCache
from edgekube.model.errors import EdgekubeError, ValidationError
from edgekube.model.labels import parse_selector
from edgekube.model.quantity import cpu_millis, memory_bytes
from edgekube.model.types import Obj
from edgekube.model.wire import ApiRequest, ApiResponse

#: The error kubectl gives when the metrics pipeline has nothing yet.
NOT_YET = "metrics not available yet"
_HINT = "the agents send usage every telemetry_interval seconds (default 10); try again shortly"


def _allocatable(node: Obj, resource: str) -> float | None:
    status = node.get("status") or {}
    raw = (status.get("allocatable") or {}).get(resource, (status.get("capacity") or {}).get(resource))
    if raw is None:
        return None
    try:
        return cpu_millis(raw) / 1000 if resource == "cpu" else float(memory_bytes(raw))
    except ValidationError:
        return None


class Top:
    """Builds top answers; `usage(node)` is the node's heartbeat usage, `ready(node)` its liveness."""

    def __init__(
        self,
        store: CachedStore,
        metrics: NodeMetricsCache,
        usage: Callable[[str], dict[str, float]],
        ready: Callable[[str], bool],
    ) -> None:
        self.store = store
        self.metrics = metrics
        self.usage = usage
        self.ready = ready

    def answer(self, req: ApiRequest) -> ApiResponse:
        if req.kind == "Node":
            return ApiResponse(ok=True, items=self.nodes(req.selector))
        if req.kind == "Pod":
            return ApiResponse(ok=True, items=self.pods(req.namespace, req.selector))
        raise ValidationError(f"kind: {req.kind!r}: top shows Node or Pod")

    def nodes(self, selector: str | None) -> list[Obj]:
        sel = parse_selector(selector or "")
        items = []
        for node in sorted(self.store.list("Node"), key=lambda n: str(n["metadata"]["name"])):
            meta = node["metadata"]
            if not sel.matches(meta.get("labels") or {}):
                continue
            name = str(meta["name"])
            usage = self.usage(name) if self.ready(name) else {}
            item: Obj = {
                "name": name,
                "cpuAllocatableCores": _allocatable(node, "cpu"),
                "memoryAllocatableBytes": _allocatable(node, "memory"),
            }
            if "cpuCores" in usage and "memoryWorkingSetBytes" in usage:
                item |= {"cpuCores": usage["cpuCores"], "memoryBytes": usage["memoryWorkingSetBytes"]}
            items.append(item)
        if items and not any("cpuCores" in i for i in items):
            raise EdgekubeError(NOT_YET, hint=_HINT)
        return items

    def pods(self, namespace: str | None, selector: str | None) -> list[Obj]:
        sel = parse_selector(selector or "")
        wanted = [
            p
            for p in self.store.list("Pod", namespace)
            if sel.matches(p["metadata"].get("labels") or {})
            and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        ]
        by_node: dict[str, dict[tuple[str, str], list[Obj]]] = {}
        items = []
        for pod in sorted(wanted, key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"])):
            node = (pod.get("spec") or {}).get("nodeName")
            if not node:
                continue
            if node not in by_node:
                report = self.metrics.current(node) if self.ready(node) else None
                by_node[node] = {}
                for c in report.containers if report is not None else []:
                    if c.cpu_cores is not None:
                        entry = {"name": c.container, "cpuCores": c.cpu_cores, "memoryBytes": c.memory_bytes}
                        by_node[node].setdefault((c.namespace, c.pod), []).append(entry)
            meta = pod["metadata"]
            containers = by_node[node].get((meta["namespace"], meta["name"]))
            if containers:
                items.append({"namespace": meta["namespace"], "name": meta["name"], "containers": containers})
        if wanted and not items:
            raise EdgekubeError(NOT_YET, hint=_HINT)
        return items
