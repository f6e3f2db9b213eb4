"""The Indicator: owns the pattern the LEDs show and the identify timer; the agent's loop and RPC handler call it.

`update(state)` chooses the pattern from the table (a failing pod is held for `hold_failing` seconds, so a crash
loop that is running between two restarts does not flicker back to Healthy) and touches the LEDs only when the
pattern changes. `identify` and `cancel` come from `ekctl node identify`; the end time is on the injected clock.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from edgekube.agent.events import NodeEvents
from edgekube.agent.indicators.drivers import LedDriver, NoLeds
from edgekube.agent.indicators.table import OFF, NodeState, Pattern, Show, choose

log = logging.getLogger(__name__)

#: Longest identify a request may ask for (an hour): a forgotten identify ends by itself.
MAX_IDENTIFY = 3600.0
DEFAULT_IDENTIFY = 30.0
#: Node events about pattern changes kept while the broker is away (the oldest go first): a cut-off node tells
#: the master, once back, what its LEDs showed meanwhile (`ekctl describe node`).
EVENT_QUEUE = 50
_NORMAL = frozenset({Pattern.HEALTHY, Pattern.STARTING, Pattern.IDENTIFY, Pattern.OFF})


class Indicator:
    """Thread-safe: the loop calls `update`, the RPC handler `identify`/`cancel`, the reporter `status`."""

    def __init__(
        self,
        driver: LedDriver | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        hold_failing: float = 30.0,
        node: str = "",
    ) -> None:
        self.driver: LedDriver = driver if driver is not None else NoLeds()
        self.clock = clock
        self.wall = wall
        self.hold_failing = hold_failing
        self._lock = threading.Lock()
        self._shown: Show | None = None
        self._state = NodeState()
        self._identify_until: float | None = None
        self._keyed: tuple[str, float] | None = None  # the last request's key and the end it set
        self._failing_at: float | None = None
        self._failing: int = 0
        self.node = node
        self.node_events = NodeEvents(node, capacity=EVENT_QUEUE)

    # -- identify ---------------------------------------------------------------------------------------------
    def identify(self, seconds: float, key: str = "") -> float:
        """Blink the identify pattern for `seconds` from now; returns the end (clock). Idempotent per `key`.

        A request delivered twice (MQTT QoS 1) carries the same key: it gets the end time the first one set,
        instead of starting the time again. `seconds` 0 cancels.
        """
        if seconds <= 0:
            self.cancel()
            return self.clock()
        with self._lock:
            if key and self._keyed is not None and self._keyed[0] == key:
                until = self._keyed[1]  # a duplicate: the same end (in the past: nothing starts again)
                self._identify_until = until if until > self.clock() else None
            else:
                until = self.clock() + min(seconds, MAX_IDENTIFY)
                self._identify_until = until
                self._keyed = (key, until) if key else None
        self.update(self._state)
        return until

    def cancel(self) -> None:
        with self._lock:
            self._identify_until = None
        self.update(self._state)

    def identifying(self) -> bool:
        with self._lock:
            return self._identify_until is not None and self.clock() < self._identify_until

    def next_due(self) -> float | None:
        """When identify ends (the clock's reading), so the loop wakes to end it; None if not identifying."""
        with self._lock:
            return self._identify_until

    # -- the pattern ------------------------------------------------------------------------------------------
    def update(self, state: NodeState) -> Show:
        """Choose the pattern for `state` (identify and the failing hold added) and show it if it changed."""
        now = self.clock()
        with self._lock:
            self._state = state
            if self._identify_until is not None and now >= self._identify_until:
                self._identify_until = None  # expired
            if state.failing_pods > 0:
                self._failing_at, self._failing = now, state.failing_pods
            held = self._failing_at is not None and now - self._failing_at < self.hold_failing
            effective = dataclasses.replace(
                state,
                identify=state.identify or self._identify_until is not None,
                failing_pods=state.failing_pods or (self._failing if held else 0),
            )
            show = choose(effective)
            before = self._shown
            changed = show != before
            self._shown = show
        if changed:
            log.info("LEDs: %s (%s)", show.pattern.value, show.description)
            self._drive(show)
            if show.pattern not in _NORMAL or (before is not None and before.pattern not in _NORMAL):
                self._event(show)  # a pattern asking for attention, and the end of one
        return show

    def _event(self, show: Show) -> None:
        """A node event `LEDs` saying what they show now (Warning for a pattern that asks for attention).

        Only patterns that ask for attention and the return from one are events, so a quiet node makes none.
        """
        if not self.node:
            return
        now = datetime.fromtimestamp(self.wall(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        message = f"LEDs show {show.pattern.value}: {show.description}"
        self.node_events.record("LEDs", message, "Normal" if show.pattern in _NORMAL else "Warning", now)

    def flush_events(self, publish: Callable[[list[dict[str, Any]]], None]) -> int:
        """Hand the pattern-change events recorded so far to `publish`; they stay queued if it raises."""
        return self.node_events.flush(publish)

    def _drive(self, show: Show) -> None:
        try:
            self.driver.show(show)
        except Exception as exc:  # a pin or LED that fails mid-run: warn once, keep reporting the pattern
            log.warning("LEDs: %s failed (%s: %s); running without LEDs", self.driver.name, type(exc).__name__, exc)
            self._close_driver()
            self.driver = NoLeds()

    @property
    def shown(self) -> Show | None:
        with self._lock:
            return self._shown

    def status(self) -> dict[str, Any]:
        """node.status.leds: the pattern shown, what it means, the driver, and when identify ends (RFC 3339)."""
        with self._lock:
            show, until = self._shown, self._identify_until
        out: dict[str, Any] = {
            "pattern": (show or OFF).pattern.value,
            "description": (show or OFF).description,
            "driver": self.driver.name,
        }
        if until is not None:
            at = self.wall() + (until - self.clock())
            out["identifyUntil"] = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return out

    def close(self) -> None:
        """Dark, and the driver let go (sysfs LEDs get their own triggers back)."""
        with self._lock:
            self._shown = OFF
        self._drive(OFF)
        self._close_driver()

    def _close_driver(self) -> None:
        try:
            self.driver.close()
        except Exception as exc:
            log.warning("LEDs: closing %s failed (%s)", self.driver.name, exc)
