"""The nodes' telemetry reports (NodeMetrics) as the master holds them: in memory only, the latest per node.

Fed by master.ingest from `edgekube/v1/nodes/<node>/metrics`; read by `ekctl top` (master.top), describe node
(`decorate` adds the recent-usage summary) and the master's /metrics. Never written to the store.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edgekube.model.types import Obj
from edgekube.model.wire import NodeMetrics

Clock = Callable[[], float]
#: A report counts as current for this many of its own windows (a node whose sampler stalled drops out of top).
STALE_WINDOWS = 3.0


@dataclass(frozen=True)
class Received:
    report: NodeMetrics
    at: float  # the master's clock when it arrived


class NodeMetricsCache:
    """Latest NodeMetrics per node; thread-safe (the bus thread writes, requests and scrapes read)."""

    def __init__(self, clock: Clock = time.monotonic, *, grace: float = 5.0) -> None:
        self.clock = clock
        #: Added to STALE_WINDOWS x window before a report is too old (bus delays, a slow sample).
        self.grace = grace
        self._nodes: dict[str, Received] = {}
        self._lock = threading.Lock()

    def record(self, report: NodeMetrics) -> None:
        with self._lock:
            self._nodes[report.node] = Received(report, self.clock())

    def current(self, node: str) -> NodeMetrics | None:
        """The node's latest report if it is recent enough to show; None otherwise."""
        with self._lock:
            got = self._nodes.get(node)
        if got is None or self.clock() - got.at > STALE_WINDOWS * got.report.window + self.grace:
            return None
        return got.report

    def nodes(self) -> list[str]:
        with self._lock:
            return sorted(self._nodes)

    def decorate(self, node: Obj) -> Obj:
        """A Node as the API shows it, with `usageHistory` (the agent's window summaries) added; never stored."""
        report = self.current(str((node.get("metadata") or {}).get("name", "")))
        if report is None or not report.history:
            return node
        return {**node, "usageHistory": [dict(h) for h in report.history]}
