"""Node liveness kept in memory (never on disk): Last Will presence + heartbeat age → Ready/NotReady.

`Liveness.decorate` adds the live Ready condition to a Node as the API shows it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from edgekube.model.types import Obj

Clock = Callable[[], float]


class Health(StrEnum):
    """How a node looks from here; the node lifecycle controller maps the last two to different taints."""

    READY = "Ready"
    #: The agent said goodbye, or its Last Will fired: the broker saw the connection die.
    OFFLINE = "Offline"
    #: No heartbeat for `timeout` seconds (or never heard of since the master started): a cut network.
    UNREACHABLE = "Unreachable"


@dataclass
class _Seen:
    online: bool = False
    boot_id: str = ""
    last_heartbeat: float = float("-inf")
    usage: dict[str, float] = field(default_factory=dict)
    observed_generation: int = -1
    offline_at: float | None = None


@dataclass
class Liveness:
    """A node is Ready while its presence says online and a heartbeat arrived within `timeout` seconds."""

    timeout: float = 4.0
    clock: Clock = time.monotonic
    #: A Last Will counts only after this long: a broker shutting down gracefully publishes every client's Will
    #: a moment before it drops the master too; waiting lets them all arrive, so the unhealthy-zone rule sees them.
    will_settle: float = 0.25
    _nodes: dict[str, _Seen] = field(default_factory=dict)

    def presence(self, node: str, online: bool, boot_id: str = "") -> None:
        seen = self._nodes.setdefault(node, _Seen())
        if online:
            seen.online = True
            seen.offline_at = None
            seen.boot_id = boot_id
            seen.last_heartbeat = self.clock()
        elif seen.online:
            # Only a node that was up settles; a retained "offline" for a node never seen counts at once.
            seen.online = False
            seen.offline_at = self.clock()

    def heartbeat(self, node: str, boot_id: str, usage: dict[str, float], observed_generation: int) -> None:
        seen = self._nodes.setdefault(node, _Seen())
        # A heartbeat proves the agent is up even if its retained "online" was lost (e.g. broker restart).
        seen.online = True
        seen.offline_at = None
        seen.boot_id = boot_id
        seen.last_heartbeat = self.clock()
        if usage:  # a status report counts as a heartbeat but carries no usage: keep the last one
            seen.usage = dict(usage)
        seen.observed_generation = observed_generation

    def ready(self, node: str) -> bool:
        return self.health(node) is Health.READY

    def _settling(self, seen: _Seen) -> bool:
        return not seen.online and seen.offline_at is not None and self.clock() - seen.offline_at < self.will_settle

    def health(self, node: str) -> Health:
        seen = self._nodes.get(node)
        if seen is None:
            return Health.UNREACHABLE
        if self._settling(seen):
            return Health.READY if self.clock() - seen.last_heartbeat <= self.timeout else Health.UNREACHABLE
        if not seen.online:
            return Health.OFFLINE
        return Health.READY if self.clock() - seen.last_heartbeat <= self.timeout else Health.UNREACHABLE

    def reset(self) -> None:
        """Restart every online node's heartbeat clock (after the master itself was cut off or stalled).

        Heartbeats missed then say nothing about the nodes, so each gets a full `timeout` again.
        """
        now = self.clock()
        for seen in self._nodes.values():
            if seen.online:
                seen.last_heartbeat = max(seen.last_heartbeat, now)

    def reason(self, node: str) -> str:
        seen = self._nodes.get(node)
        if seen is None:
            return "NodeStatusUnknown: the agent has not been heard from since the master started"
        if not seen.online:
            return "AgentOffline: the agent disconnected (Last Will received)"
        age = self.clock() - seen.last_heartbeat
        if age > self.timeout:
            return f"NodeStatusUnknown: no heartbeat for {age:.1f}s (timeout {self.timeout:g}s)"
        return "AgentReady: heartbeats arriving"

    def next_expiry(self) -> float | None:
        """The clock reading at which the next Ready node turns NotReady unless it beats first."""
        now = self.clock()
        moments = [
            s.last_heartbeat + self.timeout
            for s in self._nodes.values()
            if s.online and s.last_heartbeat + self.timeout >= now
        ]
        moments += [s.offline_at + self.will_settle for s in self._nodes.values() if self._settling(s) and s.offline_at]
        return min(moments, default=None)

    def heartbeat_age(self, node: str) -> float | None:
        seen = self._nodes.get(node)
        return None if seen is None else self.clock() - seen.last_heartbeat

    def usage(self, node: str) -> dict[str, float]:
        seen = self._nodes.get(node)
        return dict(seen.usage) if seen else {}

    def decorate(self, node: Obj) -> Obj:
        """A stored Node with its live Ready condition (and usage) added, as the API shows it; never stored."""
        name = node["metadata"]["name"]
        reason = self.reason(name)
        status = dict(node.get("status") or {})
        conditions = [c for c in status.get("conditions", []) if c.get("type") != "Ready"]
        conditions.append(
            {
                "type": "Ready",
                "status": "True" if self.ready(name) else ("Unknown" if "Unknown" in reason else "False"),
                "reason": reason.split(":", 1)[0],
                "message": reason.split(": ", 1)[-1],
            }
        )
        status["conditions"] = conditions
        usage = self.usage(name)
        if usage:
            node = {**node, "usage": usage}
        return {**node, "status": status}
