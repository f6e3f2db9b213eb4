"""The node's recent usage in memory: a ring of (time, CPU cores, memory bytes) points and window summaries.

Filled by the sampler; its summaries go in the metrics report the master keeps for `ekctl describe node`.
Fixed size (history ÷ interval points), so memory does not grow with uptime; nothing of it is written to disk.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

#: The windows summarised for describe node, in seconds (kubectl-like 1, 5 and 15 minutes).
WINDOWS = (60.0, 300.0, 900.0)


@dataclass(frozen=True, slots=True)
class Point:
    time: float
    cpu_cores: float | None
    memory_bytes: int | None


@dataclass(frozen=True)
class Summary:
    """Min, average and max of CPU cores and memory bytes over the points inside one window."""

    window: float
    points: int
    cpu: tuple[float, float, float] | None
    memory: tuple[float, float, float] | None

    def to_dict(self) -> dict[str, float]:
        out: dict[str, float] = {"windowSeconds": self.window, "samples": float(self.points)}
        for name, values in (("cpuCores", self.cpu), ("memoryBytes", self.memory)):
            if values is not None:
                low, mean, high = values
                out |= {f"{name}Min": low, f"{name}Avg": mean, f"{name}Max": high}
        return out


def _stats(values: list[float]) -> tuple[float, float, float] | None:
    return (min(values), sum(values) / len(values), max(values)) if values else None


class History:
    """Thread-safe ring of the last `capacity` points (the sampler appends; reports and /metrics read)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("history capacity must be at least 1")
        self._points: deque[Point] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    @property
    def capacity(self) -> int:
        return self._points.maxlen or 0

    def append(self, point: Point) -> None:
        with self._lock:
            self._points.append(point)

    def points(self) -> list[Point]:
        with self._lock:
            return list(self._points)

    def summary(self, now: float, window: float) -> Summary:
        inside = [p for p in self.points() if p.time > now - window]
        cpu = _stats([p.cpu_cores for p in inside if p.cpu_cores is not None])
        memory = _stats([float(p.memory_bytes) for p in inside if p.memory_bytes is not None])
        return Summary(window, len(inside), cpu, memory)

    def summaries(self, now: float, windows: tuple[float, ...] = WINDOWS) -> list[Summary]:
        return [self.summary(now, w) for w in windows]
