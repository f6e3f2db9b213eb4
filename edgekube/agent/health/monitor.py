"""The agent's periodic health check, on its own thread: signals → pressure plan → conditions, node events, eviction.

Started and stopped by the Agent; the StatusReporter puts `node_status()` (the conditions) into every report and
publishes the node events. A condition object changes only when its status or reason does, so a steady node sends
the same Node status and the master writes nothing (no lastHeartbeatTime, unlike the kubelet: SD cards). Reading
signals costs a few small files and two statvfs calls; the pods and their usage (Podman stats) are asked for only
while a threshold is met. A check that fails is logged and retried at the next interval; it never stops the agent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from edgekube.agent.events import NodeEvents
from edgekube.agent.health.pressure import EVENT_REASONS, Condition, Eviction, PodCandidate, Settings, plan
from edgekube.agent.health.signals import Signals
from edgekube.model.node import NodeCondition, NodeConditionType

log = logging.getLogger(__name__)

#: Node events waiting for the broker beyond this are dropped, oldest first (transitions only: they are few).
EVENT_QUEUE = 100
EVICTION_THRESHOLD_MET = "EvictionThresholdMet"


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class HealthMonitor:
    """Checks the node every `interval` seconds; holds the conditions it reports and the node events to publish.

    `read` takes one reading of the signals; `pods` lists the running pods that may be evicted (with their usage);
    `evict` stops one for good (the agent's eviction path: Failed, reason Evicted). `on_change` is called when a
    condition changed, so the agent reports it at once.
    """

    def __init__(
        self,
        node: str,
        settings: Settings,
        read: Callable[[], Signals],
        *,
        pods: Callable[[], Sequence[PodCandidate]],
        evict: Callable[[Eviction], None],
        interval: float = 10.0,
        on_change: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], str] = _timestamp,
    ) -> None:
        self.node = node
        self.settings = settings
        self.read = read
        self.pods = pods
        self.evict = evict
        self.interval = interval
        self.on_change = on_change
        self.clock = clock
        self.wall = wall
        self._checking = threading.Lock()  # one check at a time (the thread, or a test calling check())
        self._lock = threading.Lock()  # guards everything below
        self._reported: dict[NodeConditionType, NodeCondition] = {}
        self._previous: dict[NodeConditionType, Condition] = {}
        self._observed_at: dict[NodeConditionType, float] = {}
        self._reclaiming: str | None = None
        self.node_events = NodeEvents(node, capacity=EVENT_QUEUE, clock=self.wall)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="health-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception:
                log.exception("node health check failed; retrying in %gs", self.interval)
            self._stop.wait(self.interval)

    # -- one check -----------------------------------------------------------------------------------------------
    def check(self) -> Eviction | None:
        """Read, plan, record what changed, evict the chosen pod; returns the eviction made, if any."""
        with self._checking:
            return self._check()

    def _check(self) -> Eviction | None:
        signals = self.read()
        met = any((a := signals.get(t.signal)) is not None and t.met(a) for t in self.settings.thresholds)
        pods = self.pods() if met else ()
        now = self.clock()
        with self._lock:
            result = plan(signals, self.settings, pods, previous=self._previous, observed_at=self._observed_at, now=now)
            self._observed_at = result.observed_at
            changed = self._take(result.conditions)
            if result.reclaiming is not None and result.reclaiming != self._reclaiming:
                self.node_events.record(EVICTION_THRESHOLD_MET, f"Attempting to reclaim {result.reclaiming}", "Warning")
            self._reclaiming = result.reclaiming
        if changed:
            self.on_change()
        if result.evict is not None:
            self.evict(result.evict)
        return result.evict

    def _take(self, conditions: Sequence[Condition]) -> bool:
        """Keep the new conditions (a same status and reason keeps the old object); events on status changes."""
        changed = False
        wall = self.wall()
        kept: dict[NodeConditionType, NodeCondition] = {}
        for c in conditions:
            status: Literal["True", "False"] = "True" if c.status else "False"
            before = self._reported.get(c.type)
            if before is not None and (before.status, before.reason) == (status, c.reason):
                kept[c.type] = before
                continue
            flipped = before.status != status if before is not None else c.status
            since = wall if before is None or flipped else before.last_transition_time
            kept[c.type] = NodeCondition(
                type=c.type.value, status=status, reason=c.reason, message=c.message, last_transition_time=since
            )
            changed = True
            if flipped:
                reason = EVENT_REASONS[c.type][0 if c.status else 1]
                self.node_events.record(
                    reason, f"Node {self.node} status is now: {reason}", "Warning" if c.status else "Normal"
                )
        changed = changed or set(kept) != set(self._reported)
        self._reported = kept
        self._previous = {c.type: c for c in conditions}
        return changed

    # -- what the node reports ---------------------------------------------------------------------------------------
    def conditions(self) -> list[NodeCondition]:
        with self._lock:
            return list(self._reported.values())

    def holds(self, kind: NodeConditionType) -> bool:
        """Whether the condition is True now (for the LEDs: ThermalThrottling, UnderVoltage); False before a check."""
        with self._lock:
            condition = self._reported.get(kind)
            return condition is not None and condition.status == "True"

    def node_status(self) -> dict[str, Any]:
        """`conditions` for the Node's status ({} before the first check)."""
        conditions = self.conditions()
        return {"conditions": [c.to_dict() for c in conditions]} if conditions else {}

    def events(self) -> list[dict[str, Any]]:
        """The node events not published yet, oldest first."""
        return self.node_events.events()

    def flush_events(self, publish: Callable[[list[dict[str, Any]]], None]) -> int:
        """Hand the node events recorded so far to `publish`; they stay queued if it raises."""
        return self.node_events.flush(publish)
