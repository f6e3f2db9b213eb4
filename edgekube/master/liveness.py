"""Node liveness kept in memory (never on disk): Last Will presence + heartbeat age → Ready/NotReady."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

Clock = Callable[[], float]


@dataclass
class _Seen:
    online: bool = False
    boot_id: str = ""
    last_heartbeat: float = float("-inf")
    usage: dict[str, float] = field(default_factory=dict)
    observed_generation: int = -1


@dataclass
class Liveness:
    """A node is Ready while its presence says online and a heartbeat arrived within `timeout` seconds."""

    timeout: float = 4.0
    clock: Clock = time.monotonic
    _nodes: dict[str, _Seen] = field(default_factory=dict)

    def presence(self, node: str, online: bool, boot_id: str = "") -> None:
        seen = self._nodes.setdefault(node, _Seen())
        seen.online = online
        if online:
            seen.boot_id = boot_id
            seen.last_heartbeat = self.clock()

    def heartbeat(self, node: str, boot_id: str, usage: dict[str, float], observed_generation: int) -> None:
        seen = self._nodes.setdefault(node, _Seen())
        # A heartbeat proves the agent is up even if its retained "online" was lost (e.g. broker restart).
        seen.online = True
        seen.boot_id = boot_id
        seen.last_heartbeat = self.clock()
        seen.usage = dict(usage)
        seen.observed_generation = observed_generation

    def ready(self, node: str) -> bool:
        seen = self._nodes.get(node)
        return bool(seen and seen.online and self.clock() - seen.last_heartbeat <= self.timeout)

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

    def heartbeat_age(self, node: str) -> float | None:
        seen = self._nodes.get(node)
        return None if seen is None else self.clock() - seen.last_heartbeat

    def usage(self, node: str) -> dict[str, float]:
        seen = self._nodes.get(node)
        return dict(seen.usage) if seen else {}
