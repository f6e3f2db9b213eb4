"""Kubelet-style eviction thresholds and the pure pressure plan: node conditions, and the one pod to evict; pure.

Called by the health monitor each check. Thresholds use the kubelet's `--eviction-hard` syntax
(`memory.available<100Mi,nodefs.available<10%`). A condition is True while one of its thresholds is met, and stays
True for `transition_period` seconds after the last time it was (the kubelet's
`--eviction-pressure-transition-period`), so a node hovering at a threshold does not flap. While a threshold is met
now, one pod is evicted per check, ranked as the kubelet ranks them: pods using more than they request first, then
by QoS class (BestEffort, Burstable, Guaranteed), then by priority (lowest first), then by how far usage exceeds
the request. The Pi conditions (ThermalThrottling, UnderVoltage) never evict: they only keep new pods away (taints).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edgekube.agent.health.pi import ThrottleFlags
from edgekube.agent.health.signals import Amount, Signal, Signals
from edgekube.model.errors import ValidationError
from edgekube.model.names import PodUID
from edgekube.model.node import NodeConditionType
from edgekube.model.pod import Pod
from edgekube.model.podresources import pod_requests
from edgekube.model.qos import QOS_RANK, QOSClass, qos_class
from edgekube.model.quantity import format_bytes, parse_quantity

#: The kubelet's hard eviction defaults on Linux (imagefs.inodesFree left out: it follows nodefs here).
DEFAULT_EVICTION_HARD = "memory.available<100Mi,nodefs.available<10%,imagefs.available<15%,nodefs.inodesFree<5%"
#: Below this the firmware flags under-voltage (Pi 4 and 5 supplies).
UNDER_VOLTAGE_VOLTS = "4.63 V"

_RULE = re.compile(r"^\s*([A-Za-z.]+)\s*([<>=!]+)\s*(\S*)\s*$")

#: The condition each signal feeds, and the resource it names in eviction messages.
CONDITION_OF = {
    Signal.MEMORY_AVAILABLE: NodeConditionType.MEMORY_PRESSURE,
    Signal.NODEFS_AVAILABLE: NodeConditionType.DISK_PRESSURE,
    Signal.NODEFS_INODES_FREE: NodeConditionType.DISK_PRESSURE,
    Signal.IMAGEFS_AVAILABLE: NodeConditionType.DISK_PRESSURE,
    Signal.IMAGEFS_INODES_FREE: NodeConditionType.DISK_PRESSURE,
    Signal.PID_AVAILABLE: NodeConditionType.PID_PRESSURE,
}
RESOURCE_OF = {
    Signal.MEMORY_AVAILABLE: "memory",
    Signal.NODEFS_AVAILABLE: "ephemeral-storage",
    Signal.NODEFS_INODES_FREE: "inodes",
    Signal.IMAGEFS_AVAILABLE: "ephemeral-storage",
    Signal.IMAGEFS_INODES_FREE: "inodes",
    Signal.PID_AVAILABLE: "pids",
}
#: Which met threshold is reclaimed first when several are (the kubelet's order: memory before the rest).
_RECLAIM_ORDER = list(Signal)

#: (reason, message) of each condition when True and when False (the kubelet's reasons for its three).
_WORDS: dict[NodeConditionType, tuple[tuple[str, str], tuple[str, str]]] = {
    NodeConditionType.MEMORY_PRESSURE: (
        ("KubeletHasInsufficientMemory", "agent has insufficient memory available"),
        ("KubeletHasSufficientMemory", "agent has sufficient memory available"),
    ),
    NodeConditionType.DISK_PRESSURE: (
        ("KubeletHasDiskPressure", "agent has disk pressure"),
        ("KubeletHasNoDiskPressure", "agent has no disk pressure"),
    ),
    NodeConditionType.PID_PRESSURE: (
        ("KubeletHasInsufficientPID", "agent has insufficient PID available"),
        ("KubeletHasSufficientPID", "agent has sufficient PID available"),
    ),
}
#: The node event recorded when a condition turns True / False (the kubelet's `Node x status is now: ...`).
EVENT_REASONS: dict[NodeConditionType, tuple[str, str]] = {
    NodeConditionType.MEMORY_PRESSURE: ("NodeHasInsufficientMemory", "NodeHasSufficientMemory"),
    NodeConditionType.DISK_PRESSURE: ("NodeHasDiskPressure", "NodeHasNoDiskPressure"),
    NodeConditionType.PID_PRESSURE: ("NodeHasInsufficientPID", "NodeHasSufficientPID"),
    NodeConditionType.THERMAL_THROTTLING: ("NodeHasThermalThrottling", "NodeHasNoThermalThrottling"),
    NodeConditionType.UNDER_VOLTAGE: ("NodeHasUnderVoltage", "NodeHasNoUnderVoltage"),
}
PRESSURE_CONDITIONS = tuple(_WORDS)
PI_CONDITIONS = (NodeConditionType.THERMAL_THROTTLING, NodeConditionType.UNDER_VOLTAGE)


# -- thresholds ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Threshold:
    """`signal < quantity` or `signal < percentage of capacity`, as written in `rule`."""

    signal: Signal
    rule: str
    quantity: int | None = None
    percentage: float | None = None  # a fraction: 10% is 0.1

    def value(self, capacity: int) -> int:
        """The threshold in the signal's unit (bytes, inodes, PIDs) for a node with this capacity."""
        if self.percentage is not None:
            return int(capacity * self.percentage)
        return self.quantity or 0

    def met(self, amount: Amount) -> bool:
        return amount.available < self.value(amount.capacity)


def parse_thresholds(text: str, setting: str = "eviction_hard") -> tuple[Threshold, ...]:
    """`memory.available<100Mi,nodefs.available<10%` → thresholds; ValidationError naming the setting and rule.

    An empty text is no thresholds (nothing is ever evicted, no pressure condition turns True).
    """
    out: list[Threshold] = []
    seen: set[Signal] = set()
    for raw in text.split(","):
        if not raw.strip():
            continue
        rule = raw.strip()
        where = f"{setting}: {rule!r}"
        match = _RULE.match(rule)
        if match is None:
            raise ValidationError(f"{where}: must be SIGNAL<QUANTITY or SIGNAL<PERCENT% (e.g. memory.available<100Mi)")
        name, operator, value = match.groups()
        try:
            signal = Signal(name)
        except ValueError:
            known = ", ".join(s.value for s in Signal)
            raise ValidationError(f"{where}: unknown signal {name!r} (supported: {known})") from None
        if operator != "<":
            raise ValidationError(f"{where}: unsupported operator {operator!r}: only '<' is supported")
        if signal in seen:
            raise ValidationError(f"{where}: duplicate threshold for {signal.value}")
        seen.add(signal)
        if not value:
            raise ValidationError(f"{where}: missing quantity after '<'")
        if value.endswith("%"):
            try:
                percent = float(value[:-1])
            except ValueError:
                percent = -1.0
            if not 0 <= percent <= 100:
                raise ValidationError(f"{where}: percentage must be a number from 0% to 100%")
            out.append(Threshold(signal, rule, percentage=percent / 100))
            continue
        try:
            quantity = int(parse_quantity(value, f"{setting}: {signal.value}"))
        except ValidationError:
            raise ValidationError(
                f"{where}: {value!r} is not a quantity (e.g. 100Mi, 1Gi, 1000) or a percentage"
            ) from None
        out.append(Threshold(signal, rule, quantity=quantity))
    return tuple(out)


# -- pods --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ContainerUse:
    """One container's memory request and what it uses (None: not measured)."""

    name: str
    memory_request: int
    memory: int | None = None
    pids: int | None = None


@dataclass(frozen=True)
class PodCandidate:
    """A running pod the plan may evict: its identity, QoS class, priority and per-container use."""

    uid: PodUID
    namespace: str
    name: str
    qos: QOSClass
    priority: int = 0
    containers: tuple[ContainerUse, ...] = ()
    #: The pod's memory request (model.podresources.pod_requests: pod-level `resources` win); None: the sum of
    #: the containers' requests.
    requested_memory: int | None = None

    @property
    def memory_request(self) -> int:
        if self.requested_memory is not None:
            return self.requested_memory
        return sum(c.memory_request for c in self.containers)

    @property
    def memory(self) -> int | None:
        used = [c.memory for c in self.containers if c.memory is not None]
        return sum(used) if used else None

    @property
    def pids(self) -> int:
        return sum(c.pids or 0 for c in self.containers)

    @property
    def exceeds_memory_request(self) -> bool:
        return self.memory is not None and self.memory > self.memory_request


def candidate(uid: PodUID, pod: Pod, usage: Mapping[str, tuple[int | None, int | None]]) -> PodCandidate:
    """A desired pod as the plan sees it; `usage` holds (memory bytes, pids) by container name (missing: unknown)."""
    containers = tuple(
        ContainerUse(c.name, c.resources.request_memory_bytes(), *usage.get(c.name, (None, None)))
        for c in pod.spec.containers
    )
    meta = pod.metadata
    return PodCandidate(
        uid,
        meta.namespace,
        meta.name,
        qos_class(pod.spec),
        pod.spec.priority or 0,
        containers,
        requested_memory=pod_requests(pod.spec).memory_bytes,
    )


def rank(pods: Sequence[PodCandidate], signal: Signal) -> list[PodCandidate]:
    """Eviction order for a starved signal: the first pod goes first (the kubelet's rankers, QoS made explicit)."""

    def key(pod: PodCandidate) -> tuple[int, int, int, int]:
        if signal is Signal.MEMORY_AVAILABLE:
            excess = (pod.memory or 0) - pod.memory_request
            return (0 if pod.exceeds_memory_request else 1, QOS_RANK[pod.qos], pod.priority, -excess)
        if signal is Signal.PID_AVAILABLE:
            return (0, QOS_RANK[pod.qos], pod.priority, -pod.pids)
        return (0, QOS_RANK[pod.qos], pod.priority, 0)  # no per-pod disk usage measured: QoS, then priority

    return sorted(pods, key=key)


# -- the plan ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PiSettings:
    """Which Pi conditions are judged, and the SoC temperature at which ThermalThrottling turns True (0: flags only)."""

    thermal_throttling: bool = True
    under_voltage: bool = True
    temperature_limit: float = 80.0


@dataclass(frozen=True)
class Settings:
    thresholds: tuple[Threshold, ...] = parse_thresholds(DEFAULT_EVICTION_HARD)
    #: Seconds a condition stays True after its cause was last seen (the kubelet's default is 5 minutes).
    transition_period: float = 300.0
    pi: PiSettings = PiSettings()


@dataclass(frozen=True)
class Condition:
    type: NodeConditionType
    status: bool
    reason: str
    message: str


@dataclass(frozen=True)
class Eviction:
    uid: PodUID
    namespace: str
    name: str
    signal: Signal
    #: The pod's status message and event text, in the kubelet's words.
    message: str


@dataclass(frozen=True)
class Plan:
    conditions: tuple[Condition, ...]
    #: When each condition's cause was last seen (hand it to the next plan).
    observed_at: dict[NodeConditionType, float]
    #: The thresholds met now, in reclaim order.
    met: tuple[Threshold, ...] = ()
    evict: Eviction | None = None

    @property
    def reclaiming(self) -> str | None:
        """The resource being reclaimed now (`memory`), None when no threshold is met."""
        return RESOURCE_OF[self.met[0].signal] if self.met else None


def _format(signal: Signal, value: int) -> str:
    if signal in (Signal.NODEFS_INODES_FREE, Signal.IMAGEFS_INODES_FREE, Signal.PID_AVAILABLE):
        return str(value)
    exact = format_bytes(value)
    return exact if not exact.isdigit() or value == 0 else f"{value // 1024}Ki"


def eviction_message(threshold: Threshold, amount: Amount, pod: PodCandidate) -> str:
    """The kubelet's text: `The node was low on resource: memory. Threshold quantity: ..., available: .... ...`."""
    signal = threshold.signal
    resource = RESOURCE_OF[signal]
    parts = [
        f"The node was low on resource: {resource}.",
        f"Threshold quantity: {_format(signal, threshold.value(amount.capacity))}, "
        f"available: {_format(signal, amount.available)}.",
    ]
    if signal is Signal.MEMORY_AVAILABLE:
        for c in pod.containers:
            if c.memory is not None and c.memory > c.memory_request:
                parts.append(
                    f"Container {c.name} was using {_format(signal, c.memory)}, request is "
                    f"{_format(signal, c.memory_request)}, has larger consumption of memory."
                )
    return " ".join(parts)


def _pressure(kind: NodeConditionType, on: bool) -> Condition:
    reason, message = _WORDS[kind][0 if on else 1]
    return Condition(kind, on, reason, message)


def _thermal(signals: Signals, pi: PiSettings) -> tuple[bool, Condition]:
    kind = NodeConditionType.THERMAL_THROTTLING
    flags, temperature = signals.throttle, signals.temperature
    hot = pi.temperature_limit > 0 and temperature is not None and temperature >= pi.temperature_limit
    reading = f"temperature {temperature:.1f}°C" if temperature is not None else "no temperature reading"
    limit = f" (limit {pi.temperature_limit:g}°C)" if pi.temperature_limit > 0 else ""
    if flags is not None and flags.slowed:
        what = ", ".join(n for n in flags.now() if n != "under-voltage")
        message = f"the firmware slows the SoC down: {what} (get_throttled {flags}); {reading}{limit}"
        return True, Condition(kind, True, "SoCThrottled", message)
    if hot:
        message = f"the SoC is at its temperature limit: {reading}{limit}"
        return True, Condition(kind, True, "SoCTemperatureHigh", message)
    return False, Condition(kind, False, "SoCNotThrottled", "the SoC runs at full speed")


def _voltage(flags: ThrottleFlags) -> tuple[bool, Condition]:
    kind = NodeConditionType.UNDER_VOLTAGE
    if flags.under_voltage:
        message = f"the supply voltage is below {UNDER_VOLTAGE_VOLTS} (get_throttled {flags})"
        return True, Condition(kind, True, "UnderVoltageDetected", message)
    if flags.under_voltage_occurred:
        message = f"no under-voltage now; it occurred since boot (get_throttled {flags})"
        return False, Condition(kind, False, "UnderVoltageOccurred", message)
    return False, Condition(kind, False, "NoUnderVoltage", "the supply voltage is sufficient")


def plan(
    signals: Signals,
    settings: Settings,
    pods: Sequence[PodCandidate],
    *,
    previous: Mapping[NodeConditionType, Condition],
    observed_at: Mapping[NodeConditionType, float],
    now: float,
) -> Plan:
    """The node's conditions and the pod to evict for this reading; `now` on the monotonic clock.

    `previous` are the conditions the last plan reported and `observed_at` its `observed_at`: a condition whose
    cause is gone stays as it was until `transition_period` has passed since its cause was last seen.
    """
    met = [t for t in settings.thresholds if (a := signals.get(t.signal)) is not None and t.met(a)]
    met.sort(key=lambda t: _RECLAIM_ORDER.index(t.signal))
    seen: dict[NodeConditionType, float] = dict(observed_at)
    fresh: dict[NodeConditionType, tuple[bool, Condition]] = {}
    for kind in PRESSURE_CONDITIONS:
        on = any(CONDITION_OF[t.signal] is kind for t in met)
        fresh[kind] = (on, _pressure(kind, on))
    pi = settings.pi
    if pi.thermal_throttling and (signals.temperature is not None or signals.throttle is not None):
        fresh[NodeConditionType.THERMAL_THROTTLING] = _thermal(signals, pi)
    if pi.under_voltage and signals.throttle is not None:
        fresh[NodeConditionType.UNDER_VOLTAGE] = _voltage(signals.throttle)
    conditions: list[Condition] = []
    for kind, (on, condition) in fresh.items():
        if on:
            seen[kind] = now
        held, last = previous.get(kind), seen.get(kind)
        recent = last is not None and now - last < settings.transition_period
        # The cause went away only just now: the condition stays as it was until the period has passed.
        conditions.append(held if not on and held is not None and held.status and recent else condition)
    evict = None
    if met and pods:
        threshold = met[0]
        amount = signals.get(threshold.signal)
        assert amount is not None
        victim = rank(pods, threshold.signal)[0]
        message = eviction_message(threshold, amount, victim)
        evict = Eviction(victim.uid, victim.namespace, victim.name, threshold.signal, message)
    return Plan(tuple(conditions), seen, tuple(met), evict)
