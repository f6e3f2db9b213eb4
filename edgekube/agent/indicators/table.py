"""The LED table: which pattern a node shows for its state, highest priority first; pure, used by Indicator.

Two LEDs (green + red, or the board's ACT + PWR) or one RGB LED. Green means "pods are being served", red means
"something is wrong here"; solid is a steady state, a slow blink something in progress, a short blip a degraded
state, a fast blink "look at me". docs/leds.md shows the same table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class NodeState:
    """What the agent knows of its node at one pass (built by the agent; every field has a harmless default)."""

    #: The agent has finished its first pass (before it: starting).
    started: bool = False
    #: Pods being created or adopted, or not Ready yet, none failing.
    starting_pods: int = 0
    #: Pods in CrashLoopBackOff, failing to start (image, mount) or with a failing probe.
    failing_pods: int = 0
    #: Connected to the broker, and the master's presence says online.
    broker_connected: bool = True
    master_online: bool = True
    #: The master's view of this node: False while it marks it NotReady (lifecycle taint: pods evicted).
    master_ready: bool = True
    throttled: bool = False
    under_voltage: bool = False
    identify: bool = False


class Pattern(StrEnum):
    """The patterns, named for what they tell the person in front of the rack."""

    IDENTIFY = "Identify"
    UNDER_VOLTAGE = "UnderVoltage"
    CUT_OFF = "CutOff"
    NOT_READY = "NotReady"
    POD_FAILING = "PodFailing"
    THROTTLED = "Throttled"
    STARTING = "Starting"
    HEALTHY = "Healthy"
    #: The agent is not driving the LEDs (stopped): all dark.
    OFF = "Off"


@dataclass(frozen=True)
class Light:
    """One LED: dark (on_time 0), solid (off_time 0), or on_time seconds lit then off_time dark, repeated."""

    on_time: float = 0.0
    off_time: float = 0.0

    @property
    def dark(self) -> bool:
        return self.on_time <= 0

    @property
    def solid(self) -> bool:
        return self.on_time > 0 and self.off_time <= 0


DARK = Light()
SOLID = Light(1.0)
#: 5 Hz: look at me.
FAST = Light(0.1, 0.1)
#: 1 Hz, even: in progress / a problem with what runs here.
SLOW = Light(0.5, 0.5)
#: A short flash every 2 s: alive, but degraded.
BLIP = Light(0.1, 1.9)

Colour = tuple[int, int, int]
BLACK: Colour = (0, 0, 0)
RED: Colour = (1, 0, 0)
GREEN: Colour = (0, 1, 0)
BLUE: Colour = (0, 0, 1)
YELLOW: Colour = (1, 1, 0)
MAGENTA: Colour = (1, 0, 1)
WHITE: Colour = (1, 1, 1)


@dataclass(frozen=True)
class Show:
    """How one pattern looks: on a green + red pair (or ACT + PWR), and on one RGB LED (a colour and its light)."""

    pattern: Pattern
    description: str
    green: Light
    red: Light
    colour: Colour
    rgb: Light


@dataclass(frozen=True)
class Row:
    """One line of the table: the pattern shown when `applies` holds and no row above it applies."""

    show: Show
    applies: Callable[[NodeState], bool]
    #: The condition in words, for docs/leds.md and tests.
    when: str


def _row(  # noqa: PLR0917 - one table line: its columns in order
    pattern: Pattern, description: str, pair: tuple[Light, Light], rgb: tuple[Colour, Light], when: str,
    applies: Callable[[NodeState], bool],
) -> Row:  # fmt: skip
    return Row(Show(pattern, description, pair[0], pair[1], rgb[0], rgb[1]), applies, when)


#: Highest priority first: the first row that applies is shown. Columns: (green, red) and (RGB colour, its light).
TABLE: tuple[Row, ...] = (
    _row(Pattern.IDENTIFY, "identify requested (ekctl node identify)", (FAST, FAST), (WHITE, FAST),
         "`ekctl node identify` is running for this node", lambda s: s.identify),
    _row(Pattern.UNDER_VOLTAGE, "under-voltage: the power supply is too weak", (DARK, FAST), (RED, FAST),
         "the firmware reports under-voltage now", lambda s: s.under_voltage),
    _row(Pattern.CUT_OFF, "cut off from broker or master: running pods from the local copy", (BLIP, DARK),
         (BLUE, SLOW), "not connected to the broker, or the master's presence is offline",
         lambda s: not s.broker_connected or not s.master_online),
    _row(Pattern.NOT_READY, "the master sees this node NotReady (its pods may be evicted)", (DARK, SOLID),
         (RED, SOLID), "the master has tainted the node not-ready or unreachable", lambda s: not s.master_ready),
    _row(Pattern.POD_FAILING, "a pod is failing (CrashLoopBackOff, failed start or probe)", (SOLID, SLOW),
         (YELLOW, SLOW), "a pod is in CrashLoopBackOff or cannot start, or a probe failed lately",
         lambda s: s.failing_pods > 0),
    _row(Pattern.THROTTLED, "the CPU is throttled (too hot)", (SOLID, BLIP), (MAGENTA, SOLID),
         "the firmware reports throttling now", lambda s: s.throttled),
    _row(Pattern.STARTING, "starting: pods being created or adopted", (SLOW, DARK), (GREEN, SLOW),
         "before the agent's first pass, or while a pod is being created or is not Ready yet",
         lambda s: not s.started or s.starting_pods > 0),
    _row(Pattern.HEALTHY, "Ready, all pods healthy", (SOLID, DARK), (GREEN, SOLID), "otherwise", lambda s: True),
)  # fmt: skip

OFF = Show(Pattern.OFF, "the agent is not driving the LEDs", DARK, DARK, BLACK, DARK)
SHOWS: dict[Pattern, Show] = {row.show.pattern: row.show for row in TABLE} | {Pattern.OFF: OFF}


def choose(state: NodeState) -> Show:
    """The pattern for `state`: the first row of TABLE that applies."""
    return next(row.show for row in TABLE if row.applies(state))
