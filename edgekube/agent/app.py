"""The agent daemon: wires bus, runtime, desired state, restarts, probes and events; keeps pods running alone."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgekube import __version__
from edgekube.agent import hostinfo
from edgekube.agent.backoff import Backoff, BackoffPolicy
from edgekube.agent.desired import DesiredState
from edgekube.agent.events import EventRecorder, PodRef
from edgekube.agent.ledger import RestartLedger
from edgekube.agent.prober import Prober, ProbeResult, ProbeTarget
from edgekube.agent.probes import ProbeKind
from edgekube.agent.reconcile import (
    Create,
    DesiredPod,
    Failure,
    PodMemory,
    Remove,
    Restart,
    Stop,
    plan,
    pod_status,
    terminated,
)
from edgekube.agent.restarts import Verdict
from edgekube.agent.runtime.protocol import ContainerRunState, ObservedPod, PodRuntime
from edgekube.bus import topics
from edgekube.bus.paho import BusConfig, PahoBus, Will
from edgekube.bus.protocol import Message, MessageBus
from edgekube.model.errors import EdgekubeError, NotFoundError, RuntimeFailure, ValidationError
from edgekube.model.labels import validate_labels
from edgekube.model.names import NodeName, PodUID, check_dns1123_subdomain
from edgekube.model.pod import PullPolicy
from edgekube.model.wire import (
    ApiRequest,
    ApiResponse,
    ErrorInfo,
    EventReport,
    Heartbeat,
    NodeDesired,
    NodeReport,
    PodReport,
    Presence,
    Verb,
)

log = logging.getLogger(__name__)

#: Create failures that mean the image could not be had (their back-off event says so).
_IMAGE_REASONS = frozenset({"ErrImagePull", "ImageNotFound", "ImagePullBackOff"})


@dataclass
class AgentConfig:
    node_name: str
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    podman_url: str = "unix:///run/podman/podman.sock"
    state_dir: Path = field(default_factory=lambda: Path("/var/lib/edgekube/agent"))
    labels: dict[str, str] = field(default_factory=dict)
    #: The master judges a node NotReady after 2 s without a heartbeat.
    heartbeat_interval: float = 0.5
    #: Podman is re-read this often even without events (level-triggered), and status resent this often.
    resync_interval: float = 2.0
    report_interval: float = 15.0
    max_pods: int = 110
    #: Restart back-off (CrashLoopBackOff), also for failed creates: first retry at once, then initial, twice,
    #: four times … that up to max seconds; a pod that ran `backoff_reset` seconds without trouble starts over.
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    backoff_reset: float = 60.0
    #: Probes run on at most this many threads at once.
    probe_workers: int = 4
    #: Events kept in memory while the broker is away (the oldest are dropped beyond this).
    event_queue: int = 1000

    def __post_init__(self) -> None:
        check_dns1123_subdomain(self.node_name, "node name")
        validate_labels(self.labels, path="node labels")
        for name in ("heartbeat_interval", "resync_interval", "backoff_initial", "backoff_max"):
            if getattr(self, name) <= 0:
                raise ValidationError(f"{name}: must be greater than 0")


@dataclass
class _PendingRestart:
    """A pod stopped by shared fate, waiting for its back-off before it is started again."""

    culprit: str  # the container that ended it ("" = the sandbox)
    why: str
    retry_at: float
    delay: float
    last_state: dict[str, dict[str, Any]] = field(default_factory=dict)


def _ref(d: DesiredPod) -> PodRef:
    return PodRef(d.pod.metadata.namespace, d.pod.metadata.name, d.uid)


def _since(started_at: str | None, now: float) -> float:
    """A container's start on the monotonic clock, from Podman's wall-clock start time."""
    if not started_at:
        return now
    try:
        started = datetime.strptime(started_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return now
    # Podman's list gives whole seconds, so the true start may be up to 1 s later than `started`: count from the
    # latest possible moment, so initialDelaySeconds is never cut short (a probe may start up to 1 s late instead).
    return now - max((datetime.now(UTC) - started).total_seconds() - 1.0, 0.0)


class Agent:
    """Reconciles desired pods against the runtime; handlers only record facts and wake the loop."""

    def __init__(
        self,
        config: AgentConfig,
        runtime: PodRuntime,
        bus: MessageBus | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.node = NodeName(config.node_name)
        self.runtime = runtime
        self.clock = clock
        self.boot_id = uuid.uuid4().hex
        self.desired = DesiredState.load(config.state_dir / "desired.json")
        self.ledger = RestartLedger.load(config.state_dir / "restarts.json")
        self.events = EventRecorder(self.node, capacity=config.event_queue)
        policy = BackoffPolicy(config.backoff_initial, config.backoff_max, config.backoff_reset)
        self._restart_backoff: Backoff[PodUID] = Backoff(policy)
        self._create_backoff: Backoff[PodUID] = Backoff(policy)
        self.prober = Prober(runtime, workers=config.probe_workers, on_result=self._on_probe, clock=clock)
        self._bus = bus
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards desired, _busy, _pending, _failures
        self._reconciling = threading.Lock()  # one reconcile at a time (the loop, or a test calling it)
        self._busy: set[PodUID] = set()  # a background stop/restart/removal is running for these pods
        self._pending: dict[PodUID, _PendingRestart] = {}
        self._failures: dict[PodUID, Failure] = {}
        self._next_due: float | None = None
        self._last_report: bytes = b""
        self._last_report_at = 0.0
        self._seq = 0
        self._host_ip = hostinfo.primary_address()
        self._node_object: dict[str, Any] | None = None
        self._threads = [
            threading.Thread(target=self._loop, name="agent-loop", daemon=True),
            threading.Thread(target=self._heartbeats, name="agent-heartbeat", daemon=True),
            threading.Thread(target=self._watch, name="agent-watch", daemon=True),
        ]

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self, wait: float | None = None) -> Agent:
        if self._bus is None:
            bus = PahoBus(
                BusConfig(
                    host=self.config.mqtt_host,
                    port=self.config.mqtt_port,
                    client_id=f"edgekube-agent-{self.node}",
                    persistent=True,
                    will=Will(topics.node_online(self.node), Presence(online=False).encode()),
                )
            )
            bus.on_connect(self._on_connected)
            self._bus = bus
            bus.subscribe(topics.node_desired(self.node), self._guard(self._on_desired))
            bus.subscribe(topics.node_rpc(self.node), self._guard(self._on_rpc))
            # The agent works without a broker (edge autonomy): never fail start because MQTT is down.
            bus.start()
            if wait is not None:
                bus.wait_connected(wait)
        else:
            self._bus.subscribe(topics.node_desired(self.node), self._guard(self._on_desired))
            self._bus.subscribe(topics.node_rpc(self.node), self._guard(self._on_rpc))
        for thread in self._threads:
            thread.start()
        self._wake.set()
        return self

    def stop(self) -> None:
        """Stop the daemon; pods keep running (a restarted agent adopts them)."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=10)
        self.prober.stop()
        # Let stops and restarts in flight finish, so what they learnt (counts, finished pods) is saved.
        if not self.wait_idle(timeout=15):
            log.warning("stopping with pod operations still running")
        if self._bus is not None:
            self._flush_events()
            self._bus.publish(topics.node_online(self.node), Presence(online=False).encode(), retain=True)
            self._bus.close()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no background stop, restart or removal is running; False if one still is."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if not self._busy:
                    return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)

    @property
    def bus(self) -> MessageBus:
        assert self._bus is not None, "agent not started"
        return self._bus

    def _on_connected(self, _msg: Message) -> None:
        self.bus.publish(
            topics.node_online(self.node), Presence(online=True, boot_id=self.boot_id).encode(), retain=True
        )
        self._last_report = b""  # the master may have missed reports while we were away
        self._wake.set()

    def _guard(self, handler: Any) -> Any:
        def run(msg: Message) -> None:
            try:
                handler(msg)
            except ValidationError as exc:
                log.warning("rejected message on %s: %s", msg.topic, exc)
                if msg.response_topic:
                    self._reply(msg, ApiResponse(ok=False, error=ErrorInfo(reason="Invalid", message=str(exc))))
            except Exception as exc:
                log.exception("failed to handle message on %s", msg.topic)
                if msg.response_topic:
                    error = ErrorInfo(reason="Internal", message=f"{type(exc).__name__}: {exc}")
                    self._reply(msg, ApiResponse(ok=False, error=error))

        return run

    def _reply(self, msg: Message, response: ApiResponse) -> None:
        if msg.response_topic:
            self.bus.publish(msg.response_topic, response.encode(), correlation=msg.correlation)

    # -- handlers ----------------------------------------------------------------------------------------
    def _on_desired(self, msg: Message) -> None:
        if not msg.payload:
            return
        message = NodeDesired.decode(msg.payload, what="desired state")
        if message.node != self.node:
            raise ValidationError(f"desired state: node: {message.node!r} is not this node ({self.node!r})")
        with self._lock:
            accepted = self.desired.offer(message, msg.payload)
        if accepted:
            log.info("desired state generation %s: %d pod(s)", message.generation, len(message.pods))
            self._wake.set()

    def _on_rpc(self, msg: Message) -> None:
        req = ApiRequest.decode(msg.payload, what="node rpc")
        if req.verb is not Verb.LOGS:
            raise ValidationError(f"verb: {req.verb.value!r} is not served by node agents (supported: logs)")
        with self._lock:
            match = [
                d
                for d in self.desired.pods
                if d.pod.metadata.name == req.name and d.pod.metadata.namespace == (req.namespace or "default")
            ]
        try:
            if not match:
                raise NotFoundError(f"pod {req.namespace or 'default'}/{req.name} is not on node {self.node}")
            pod = match[0]
            containers = [c.name for c in pod.pod.spec.containers]
            container = req.container or containers[0]
            if req.container is None and len(containers) > 1:
                log.debug("logs: defaulting to container %s", container)
            if container not in containers:
                raise NotFoundError(
                    f"container {container!r} is not valid for pod {req.name}",
                    hint=f"choose one of: {', '.join(containers)}",
                )
            text = self.runtime.logs(pod.uid, container, req.tail)
            self._reply(msg, ApiResponse(ok=True, text=text))
        except EdgekubeError as exc:
            reason = "NotFound" if isinstance(exc, NotFoundError) else "Unavailable"
            self._reply(msg, ApiResponse(ok=False, error=ErrorInfo(reason=reason, message=str(exc), hint=exc.hint)))

    def _on_probe(self, target: ProbeTarget, result: ProbeResult, flipped: bool) -> None:
        """On a probe worker: record failures as Unhealthy events; wake the loop when a result flipped."""
        if not result.ok:
            namespace, _, name = target.pod.partition("/")
            ref = PodRef(namespace, name, target.uid)
            message = f"{target.kind.value} probe failed: {result.message}"
            self.events.record(ref, "Unhealthy", f"container {target.container.name}: {message}", "Warning")
        if flipped:
            self._wake.set()

    # -- loops --------------------------------------------------------------------------------------------
    def _heartbeats(self) -> None:
        while not self._stop.wait(self.config.heartbeat_interval):
            self._seq += 1
            try:
                if not self.bus.connected:
                    continue  # QoS 0 and volatile: nothing to keep while the broker is away
                beat = Heartbeat(
                    node=self.node,
                    boot_id=self.boot_id,
                    seq=self._seq,
                    observed_generation=self.desired.generation,
                    usage=hostinfo.usage(),
                )
                self.bus.publish(topics.node_heartbeat(self.node), beat.encode(), qos=0)
            except Exception:
                log.exception("heartbeat failed")

    def _watch(self) -> None:
        """Wake the loop the moment a container exits (Podman events), not only on the next resync."""
        while not self._stop.is_set():
            try:
                if self.runtime.wait_for_exit(1.0):
                    self._wake.set()
            except Exception:
                log.exception("watching container exits failed")
                self._stop.wait(1.0)

    def _loop(self) -> None:
        while not self._stop.is_set():
            timeout = self.config.resync_interval
            if self._next_due is not None:
                timeout = min(timeout, max(self._next_due - self.clock(), 0.01))
            self._wake.wait(timeout)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.reconcile()
            except Exception:
                log.exception("reconcile failed; retrying in %ss", self.config.resync_interval)

    def reconcile(self) -> None:
        """Observe Podman, apply the plan, report status. Safe to run any number of times."""
        with self._reconciling:
            self._reconcile()

    def _reconcile(self) -> None:
        with self._lock:
            desired = list(self.desired.pods)
            generation = self.desired.generation
            busy = frozenset(self._busy)
        now = self.clock()
        found = self.runtime.list_pods()
        # A pod being stopped, restarted or removed is left alone until that finishes.
        observed = [o for o in found if o.uid not in busy]
        by_uid = {o.uid: o for o in observed}
        everything = {o.uid: o for o in found}  # busy pods too: their counts are still reported
        memory = {d.uid: self._memory(d, everything.get(d.uid), now) for d in desired}
        waiting = frozenset(u for u in self._create_backoff.tracked() if not self._create_backoff.due(u, now))
        actions = plan(desired, observed, busy | waiting, memory)
        wanted = {d.uid: d for d in desired}
        for action in actions:
            if isinstance(action, Remove):
                self._remove(action)
            elif isinstance(action, Create):
                with self._lock:
                    removing = action.desired.uid in self._busy
                if not removing:  # a replaced pod is created once its old version is gone
                    self._create(action)
            elif isinstance(action, Stop):
                self._stop_pod(action, wanted[action.uid], by_uid[action.uid], now)
            else:
                self._restart(action, wanted[action.uid], now)
        self._forget(set(wanted))
        if actions:
            self._wake.set()  # what the actions changed may call for more (e.g. a job that exited at once)
            with self._lock:
                busy = frozenset(self._busy)
            found = self.runtime.list_pods()
            observed = [o for o in found if o.uid not in busy]
            by_uid = {o.uid: o for o in observed}
            everything = {o.uid: o for o in found}
        now = self.clock()
        memory = {d.uid: self._memory(d, everything.get(d.uid), now) for d in desired}
        self._sync_probes(desired, by_uid, memory, now)
        self._report(desired, everything, memory, generation)
        self._flush_events()
        self._schedule_next(now)

    def _memory(self, d: DesiredPod, obs: ObservedPod | None, now: float) -> PodMemory:
        record = self.ledger.get(d.uid, obs.pod_id) if obs is not None else None
        with self._lock:
            pending = self._pending.get(d.uid)
        last_state: dict[str, Any] = dict(record.last_state) if record else {}
        back_off = None
        if pending is not None:
            last_state.update(pending.last_state)
            if pending.delay > 0 and now < pending.retry_at:
                back_off = (
                    f"back-off {pending.delay:g}s restarting failed container={pending.culprit or '<sandbox>'} "
                    f"pod={d.pod.metadata.namespace}/{d.pod.metadata.name}"
                )
        specs = d.pod.spec.containers
        return PodMemory(
            finished=record.finished if record else None,
            restart_pending=pending is not None,
            restart_due=pending is not None and now >= pending.retry_at,
            back_off=back_off,
            unhealthy=self.prober.unhealthy(d.uid),
            not_ready=frozenset(
                c.name for c in specs if c.readiness_probe is not None and not self.prober.ready(d.uid, c.name)
            ),
            restart_count=dict(record.restart_count) if record else {},
            last_state=last_state,
        )

    def _schedule_next(self, now: float) -> None:
        """Wake the loop when the earliest back-off ends, not only on the next resync."""
        with self._lock:
            dues = [p.retry_at for p in self._pending.values()]
        dues += [now + self._create_backoff.remaining(u, now) for u in self._create_backoff.tracked()]
        later = [d for d in dues if d > now]
        self._next_due = min(later) if later else None

    def _forget(self, wanted: set[PodUID]) -> None:
        """Drop what the agent remembers about pods no longer on this node (the ledger writes only if any)."""
        with self._lock:
            for uid in [u for u in self._pending if u not in wanted]:
                del self._pending[uid]
            for uid in [u for u in self._failures if u not in wanted]:
                del self._failures[uid]
        for backoff in (self._restart_backoff, self._create_backoff):
            for uid in backoff.tracked():
                if uid not in wanted:
                    backoff.forget(uid)
        self.ledger.retain(wanted)

    # -- actions ------------------------------------------------------------------------------------------
    def _in_background(self, uid: PodUID, what: str, work: Callable[[], None]) -> None:
        """Stops wait out grace periods: run them off the loop, one at a time per pod, so others go on."""
        with self._lock:
            self._busy.add(uid)

        def run() -> None:
            try:
                work()
            except Exception:
                log.exception("%s of pod %s failed; will retry", what, uid)
            finally:
                with self._lock:
                    self._busy.discard(uid)
                self._wake.set()

        threading.Thread(target=run, name=f"{what}-{uid[:8]}", daemon=True).start()

    def _remove(self, action: Remove) -> None:
        log.info("removing pod %s: %s", action.uid, action.reason)
        with self._lock:
            self._pending.pop(action.uid, None)
        self._restart_backoff.forget(action.uid)
        self._in_background(action.uid, "remove", lambda: self.runtime.remove_pod(action.uid, action.grace_seconds))

    def _image_events(self, d: DesiredPod) -> list[str]:
        """Pulled ("already present") or Pulling per image, as the kubelet reports; returns the images to pull."""
        to_pull = []
        for image in dict.fromkeys(c.image for c in d.pod.spec.containers):
            policy = next(c for c in d.pod.spec.containers if c.image == image).pull_policy()
            try:
                present = self.runtime.has_image(image)
            except RuntimeFailure:
                continue
            if present and policy is not PullPolicy.ALWAYS:
                self.events.record(_ref(d), "Pulled", f'Container image "{image}" already present on machine')
            elif policy is not PullPolicy.NEVER:
                self.events.record(_ref(d), "Pulling", f'Pulling image "{image}"')
                to_pull.append(image)
        return to_pull

    def _create(self, action: Create) -> None:
        d = action.desired
        meta = d.pod.metadata
        to_pull = self._image_events(d)
        try:
            self.runtime.create_pod(d.pod, d.uid, d.spec_hash)
        except RuntimeFailure as exc:
            delay = self._create_backoff.failed(d.uid, self.clock())
            with self._lock:
                self._failures[d.uid] = Failure(exc.reason, str(exc))
            self.events.record(_ref(d), "Failed", f"Error: {exc.reason}: {exc}", "Warning")
            if delay > 0:
                what = "pulling image" if exc.reason in _IMAGE_REASONS else "creating pod"
                self.events.record(_ref(d), "BackOff", f"Back-off {what} ({exc.reason})", "Warning")
            log.warning("pod %s/%s failed (%s), retry in %gs: %s", meta.namespace, meta.name, exc.reason, delay, exc)
            return
        self._create_backoff.forget(d.uid)
        with self._lock:
            self._failures.pop(d.uid, None)
        for image in to_pull:
            self.events.record(_ref(d), "Pulled", f'Successfully pulled image "{image}"')
        for c in d.pod.spec.containers:
            self.events.record(_ref(d), "Created", f"Created container {c.name}")
            self.events.record(_ref(d), "Started", f"Started container {c.name}")
        log.info("started pod %s/%s", meta.namespace, meta.name)

    def _stop_pod(self, action: Stop, d: DesiredPod, obs: ObservedPod, now: float) -> None:
        """Shared fate: stop the rest of the pod now; restart it after its back-off, or mark it finished."""
        decision = action.decision
        verdict = decision.verdict
        for c in obs.containers:
            if c.state is not ContainerRunState.RUNNING:
                continue
            if c.name in decision.culprits:
                then = "will be restarted" if verdict is Verdict.RESTART else "the pod fails (restartPolicy Never)"
                message = f"Container {c.name} failed liveness probe, {then}"
            else:
                message = f"Stopping container {c.name}: {decision.why}"
            self.events.record(_ref(d), "Killing", message)
        if verdict is Verdict.RESTART:
            delay = self._restart_backoff.failed(d.uid, now)
            culprit = decision.culprits[0] if decision.culprits else ""
            with self._lock:
                self._pending[d.uid] = _PendingRestart(culprit, decision.why, now + delay, delay)
            if delay > 0:
                failed = f"container {culprit}" if culprit else "pod sandbox"
                where = f"{d.pod.metadata.namespace}/{d.pod.metadata.name}"
                self.events.record(_ref(d), "BackOff", f"Back-off restarting failed {failed} in pod {where}", "Warning")
            log.info("pod %s/%s: %s; restart in %gs", d.pod.metadata.namespace, d.pod.metadata.name, decision.why,
                     delay)  # fmt: skip
        else:
            log.info("pod %s/%s %s: %s", d.pod.metadata.namespace, d.pod.metadata.name, verdict.value, decision.why)

        def work() -> None:
            try:
                self.runtime.stop_pod(d.uid, action.grace_seconds)
            except NotFoundError:
                return
            after = next((p for p in self.runtime.list_pods() if p.uid == d.uid), None)
            if after is None:
                return
            last = {
                c.name: {"terminated": terminated(c)} for c in after.containers if c.state is ContainerRunState.EXITED
            }
            if verdict is Verdict.RESTART:
                with self._lock:
                    pending = self._pending.get(d.uid)
                    if pending is not None:
                        pending.last_state = last
                if pending is not None and pending.delay == 0:
                    self._restart_now(d, pending, action.grace_seconds)  # no back-off: no need to wait for the loop
            else:
                self.ledger.finished(d.uid, after.pod_id, verdict.value, decision.why)

        self._in_background(d.uid, "stop", work)

    def _restart(self, action: Restart, d: DesiredPod, now: float) -> None:
        with self._lock:
            pending = self._pending.get(d.uid)
        if pending is not None:
            self._in_background(d.uid, "restart", lambda: self._restart_now(d, pending, action.grace_seconds))

    def _restart_now(self, d: DesiredPod, pending: _PendingRestart, grace_seconds: int) -> None:
        """Start the pod again (on a background thread); count it on disk, or back off if it cannot start."""
        try:
            restarted = self.runtime.restart_pod(d.uid, grace_seconds)
        except NotFoundError:
            with self._lock:
                self._pending.pop(d.uid, None)
            return
        except RuntimeFailure as exc:
            at = self.clock()
            delay = self._restart_backoff.failed(d.uid, at)
            pending.retry_at, pending.delay = at + delay, delay
            self.events.record(_ref(d), "Failed", f"Error: {exc.reason}: {exc}", "Warning")
            return
        self.ledger.restarted(d.uid, restarted.pod_id, [c.name for c in restarted.containers], pending.last_state)
        self._restart_backoff.retried(d.uid, self.clock())
        with self._lock:
            self._pending.pop(d.uid, None)
        for c in restarted.containers:
            self.events.record(_ref(d), "Started", f"Started container {c.name}")
        log.info("restarted pod %s/%s (%s)", d.pod.metadata.namespace, d.pod.metadata.name, pending.why)

    # -- probes, status, events ---------------------------------------------------------------------------
    def _sync_probes(
        self,
        desired: list[DesiredPod],
        observed: dict[PodUID, ObservedPod],
        memory: dict[PodUID, PodMemory],
        now: float,
    ) -> None:
        targets = []
        for d in desired:
            obs, mem = observed.get(d.uid), memory[d.uid]
            if obs is None or mem.finished or mem.restart_pending:
                continue
            running = {c.name: c for c in obs.containers if c.state is ContainerRunState.RUNNING}
            for spec in d.pod.spec.containers:
                seen = running.get(spec.name)
                if seen is None:
                    continue
                instance = f"{seen.container_id}/{seen.started_at}/{mem.restart_count.get(spec.name, 0)}"
                probes = ((ProbeKind.LIVENESS, spec.liveness_probe), (ProbeKind.READINESS, spec.readiness_probe))
                for kind, probe in probes:
                    if probe is not None:
                        targets.append(
                            ProbeTarget(
                                uid=d.uid, pod=f"{d.pod.metadata.namespace}/{d.pod.metadata.name}", container=spec,
                                kind=kind, instance=instance, since=_since(seen.started_at, now), ip=obs.ip,
                            )
                        )  # fmt: skip
        self.prober.sync(targets)

    def _report(
        self,
        desired: list[DesiredPod],
        observed: dict[PodUID, ObservedPod],
        memory: dict[PodUID, PodMemory],
        generation: int,
    ) -> None:
        pods = []
        with self._lock:
            failures = dict(self._failures)
        for d in desired:
            status = pod_status(d, observed.get(d.uid), failures.get(d.uid), memory[d.uid])
            status["hostIP"] = self._host_ip
            pods.append(
                PodReport(uid=d.uid, namespace=d.pod.metadata.namespace, name=d.pod.metadata.name, status=status)
            )
        if not self.bus.connected:
            return  # paho would queue every report unbounded; on reconnect the whole state is sent anyway
        # Only changes are sent, plus a periodic resend so a restarted master converges (level-triggered).
        now = time.monotonic()
        fingerprint = json.dumps([p.model_dump() for p in pods], sort_keys=True).encode()
        periodic = now - self._last_report_at > self.config.report_interval
        if fingerprint == self._last_report and not periodic:
            return
        if self._node_object is None or periodic:
            # Podman's /info costs ~1 s on a busy host: refresh it only on the periodic resend.
            self._node_object = self.node_object()
        report = NodeReport(
            node=self.node,
            boot_id=self.boot_id,
            observed_generation=generation,
            node_object=self._node_object,
            pods=pods,
        )
        self.bus.publish(topics.node_status(self.node), report.encode())
        self._last_report, self._last_report_at = fingerprint, now

    def _flush_events(self) -> None:
        """Publish recorded events in batches (QoS 1) while connected; they wait in memory otherwise."""
        if self._bus is None or not self._bus.connected or not self.events.pending:
            return
        topic = topics.node_events(self.node)
        try:
            self.events.flush(lambda batch: self.bus.publish(topic, EventReport(node=self.node, events=batch).encode()))
        except Exception:
            log.exception("publishing events failed; they stay queued")

    def node_object(self) -> dict[str, Any]:
        info = self.runtime.info()
        cap = hostinfo.capacity(self.config.max_pods)
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node,
                "namespace": "",
                "labels": {
                    "kubernetes.io/hostname": self.node,
                    "kubernetes.io/arch": hostinfo.architecture(),
                    "kubernetes.io/os": "linux",
                    **self.config.labels,
                },
            },
            "status": {
                "capacity": cap,
                "allocatable": cap,
                "addresses": [
                    {"type": "InternalIP", "address": self._host_ip},
                    {"type": "Hostname", "address": self.node},
                ],
                "nodeInfo": {
                    "architecture": hostinfo.architecture(),
                    "osImage": hostinfo.os_image(),
                    "kernelVersion": hostinfo.kernel_version(),
                    "containerRuntimeVersion": f"{info.name}://{info.version}",
                    "agentVersion": __version__,
                    "machineModel": hostinfo.machine_model(),
                },
            },
        }


def run_agent(config: AgentConfig, runtime: PodRuntime) -> None:
    """Run until SIGTERM/SIGINT; pods keep running after the agent stops."""
    agent = Agent(config, runtime).start()
    log.info(
        "agent %s up: mqtt %s:%s, podman %s", config.node_name, config.mqtt_host, config.mqtt_port, config.podman_url
    )
    try:
        while True:
            time.sleep(3600)
    finally:
        agent.stop()
