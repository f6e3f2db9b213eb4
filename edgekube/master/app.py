"""The master daemon: wires bus, store, API, controllers, scheduler and dispatch; one level-triggered reconcile loop.

Handlers only record facts (under the master's lock) and wake the loop. One pass = node lifecycle (taints,
evictions) → replication controllers → scheduler → dispatch of every node's desired set that changed.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgekube.bus import topics
from edgekube.bus.paho import BusConfig, PahoBus, Will
from edgekube.bus.protocol import Message, MessageBus
from edgekube.master.api import Api
from edgekube.master.cache import CachedStore
from edgekube.master.controllers.nodelifecycle import NodeLifecycle, NodeState, PodState, Settings, node_taints
from edgekube.master.controllers.replicas import ReplicationManager
from edgekube.master.dispatch import Dispatcher
from edgekube.master.echo import Echo
from edgekube.master.eventlog import EventLog
from edgekube.master.liveness import Health, Liveness
from edgekube.master.scheduling.placer import Placer
from edgekube.master.scheduling.specs import SpecCache
from edgekube.master.scheduling.usage import NodeUsage
from edgekube.model import jsoncodec
from edgekube.model.errors import EdgekubeError, NotFoundError, ValidationError
from edgekube.model.node import Node
from edgekube.model.types import Obj
from edgekube.model.wire import (
    MAX_PAYLOAD_BYTES,
    ApiRequest,
    ApiResponse,
    ApplyResult,
    ErrorInfo,
    EventReport,
    Heartbeat,
    NodeReport,
    Presence,
    Verb,
)
from edgekube.store.protocol import StateStore
from edgekube.store.state import TinyStateStore

log = logging.getLogger(__name__)
Clock = Callable[[], float]
#: Passes start at least this far apart (and at least as far apart as the last one took): a storm of status
#: reports then costs a few passes, not one each.
MIN_PASS_GAP = 0.02
#: An answer owed after a write waits this long for company before the group commit that releases it.
COMMIT_DELAY = 0.002


@dataclass
class MasterConfig:
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    data_dir: Path = field(default_factory=lambda: Path("/var/lib/edgekube/master"))
    #: A node is NotReady after this long without a heartbeat (agents beat every 0.5 s by default).
    node_timeout: float = 2.0
    #: Seconds a Last Will waits before it counts (so a broker's graceful shutdown, which sends every Will, is
    #: recognised as "most nodes at once" and evicts nothing).
    will_settle: float = 0.25
    #: Seconds a pod with no matching toleration stays on a NotReady node before it is evicted and replaced.
    pod_eviction_timeout: float = 0.0
    #: Evictions stop while more than this share of the nodes (and at least 2) are NotReady at once.
    unhealthy_zone_threshold: float = 0.55
    #: MQTT keep-alive in seconds; the broker fires a vanished client's Last Will after 1.5 times this.
    mqtt_keepalive: int = 5
    #: Level-triggered resync period of the reconcile loop; events also wake it at once.
    resync_interval: float = 1.0
    #: Seconds between passes that plan every ReplicationController/ReplicaSet; passes in between plan only those
    #: whose pods or spec changed (a safety net: the change feed is complete, this bounds the cost of a bug).
    controller_resync: float = 5.0
    #: Events kept in memory (never written to disk); the oldest make room.
    event_capacity: int = 2000
    client_id: str = "edgekube-master"


class Master:
    """Owns the store; every handler only records facts and wakes the loop, which does the deciding."""

    def __init__(
        self,
        config: MasterConfig,
        store: StateStore | None = None,
        bus: MessageBus | None = None,
        *,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
    ) -> None:
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = CachedStore(store or TinyStateStore(config.data_dir / "state"))
        #: Heartbeat ages are measured on the self-ping watermark, not the wall clock (see master.echo).
        self.echo = Echo(config.client_id, clock)
        self.liveness = Liveness(
            timeout=config.node_timeout, will_settle=config.will_settle, clock=lambda: self.echo.watermark
        )
        self.events = EventLog(config.event_capacity)
        self.dispatcher = Dispatcher()
        self.specs = SpecCache()
        self.usage = NodeUsage(self.specs)
        self.placer = Placer(self.store, self.usage, self.specs, self.events, self.liveness.ready)
        self.api = Api(self.store, self._decorate_node, self.events, binder=self.placer)
        self.lifecycle = NodeLifecycle(
            Settings(
                pod_eviction_timeout=config.pod_eviction_timeout,
                unhealthy_threshold=config.unhealthy_zone_threshold,
            )
        )
        self.replication = ReplicationManager(self.store, binder=self.placer, resync=config.controller_resync)
        # Kept current by every Pod write: what each node is told, and what each node has bound.
        self.store.listen("Pod", self.dispatcher.observe)
        self.store.listen("Pod", self.usage.observe)
        self._clock = clock
        self._wall = wall
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._bus = bus
        #: Nodes are judged (tainted, their pods evicted) only after this moment: a full node_timeout after the
        #: master (re)connected to the broker; infinity while it is disconnected.
        self._judge_after = math.inf
        self._not_before = -math.inf
        #: Answers to requests whose writes wait for the next group commit (see CachedStore.batch).
        self._acks: list[Callable[[], None]] = []
        self._acks_owed = threading.Event()
        #: The Node object each agent last reported (validated and registered).
        self._node_objects: dict[str, Obj] = {}
        self._threads = [
            threading.Thread(target=self._loop, name="master-loop", daemon=True),
            threading.Thread(target=self._pinger, name="master-ping", daemon=True),
            threading.Thread(target=self._committer, name="master-commit", daemon=True),
        ]

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self, wait: float | None = None, *, loop: bool = True) -> Master:
        """Connect and run; `loop=False` leaves the reconcile loop off (tests call `reconcile()` themselves)."""
        if self._bus is None:
            bus = PahoBus(
                BusConfig(
                    host=self.config.mqtt_host,
                    port=self.config.mqtt_port,
                    client_id=self.config.client_id,
                    persistent=True,
                    keepalive=self.config.mqtt_keepalive,
                    will=Will(topics.MASTER_ONLINE, Presence(online=False).encode()),
                )
            )
            bus.on_connect(self._on_connected)
            self._bus = bus
            self._subscribe(bus)
            bus.start(wait=wait)
        else:
            self._subscribe(self._bus)
            if self._bus.connected:
                self._on_connected()
        if loop:
            for thread in self._threads:
                thread.start()
        return self

    def _subscribe(self, bus: MessageBus) -> None:
        bus.subscribe(topics.API_REQUEST, self._guard(self._on_api))
        bus.subscribe(topics.APPLY, self._guard(self._on_apply))
        bus.subscribe(topics.ALL_NODE_STATUS, self._guard(self._on_status))
        bus.subscribe(topics.ALL_NODE_HEARTBEAT, self._guard(self._on_heartbeat), qos=0)
        bus.subscribe(topics.ALL_NODE_ONLINE, self._guard(self._on_online))
        bus.subscribe(topics.ALL_NODE_EVENTS, self._guard(self._on_events))
        bus.subscribe(self.echo.topic, self._guard(lambda msg: self.echo.heard(msg.payload)), qos=0)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._acks_owed.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=5)
        if self._bus is not None:
            self.commit()  # answers still owed go out once their writes are on flash
            self._bus.publish(topics.MASTER_ONLINE, Presence(online=False).encode(), retain=True)
            self._bus.close()
        with self._lock:
            self.store.close()

    @property
    def bus(self) -> MessageBus:
        assert self._bus is not None, "master not started"
        return self._bus

    def _on_connected(self) -> None:
        self.bus.publish(topics.MASTER_ONLINE, Presence(online=True).encode(), retain=True)
        with self._lock:
            # After a broker restart retained desired states may be gone: send every node's set again.
            self.dispatcher.forget_all()
            # Heartbeats missed while we were away say nothing about the nodes: a full timeout each, again.
            self.echo.catch_up()
            self.liveness.reset()
            self._judge_after = self._clock() + self.config.node_timeout
        log.info("connected to the broker; judging nodes again in %gs", self.config.node_timeout)
        self._wake.set()

    def _guard(self, handler: Callable[[Message], None]) -> Callable[[Message], None]:
        """Malformed or hostile payloads are logged and dropped (or answered); they never reach the loop."""

        def run(msg: Message) -> None:
            if self._stop.is_set():
                return  # shutting down: the store may already be closed
            try:
                handler(msg)
            except Exception as exc:
                if isinstance(exc, EdgekubeError):
                    log.warning("rejected message on %s: %s", msg.topic, exc)
                else:
                    log.exception("failed to handle message on %s", msg.topic)
                if msg.response_topic:
                    self._reply(msg, ApiResponse(ok=False, error=ErrorInfo.of(exc)))

        return run

    def ping(self) -> None:
        """Publish one self-ping (the pinger thread does this every node_timeout / 16, at most every 0.25 s)."""
        if self._bus is not None and self._bus.connected:
            self._bus.publish(self.echo.topic, self.echo.ping(), qos=0)

    def _pinger(self) -> None:
        interval = min(0.25, self.config.node_timeout / 16)
        while not self._stop.wait(interval):
            try:
                self.ping()
            except Exception:
                log.exception("self-ping failed")

    def commit(self) -> None:
        """Group commit of every deferred write, then send the answers that waited for it."""
        with self._lock:
            with self.store.batch("sync"):
                pass
            acks, self._acks = self._acks, []
        for ack in acks:
            ack()

    def _committer(self) -> None:
        while not self._stop.is_set():
            self._acks_owed.wait()
            if self._stop.wait(COMMIT_DELAY):
                return
            self._acks_owed.clear()
            try:
                self.commit()
            except Exception:
                log.exception("group commit failed")

    def _reply(self, msg: Message, response: ApiResponse | ApplyResult) -> None:
        if msg.response_topic:
            self.bus.publish(msg.response_topic, fitted(encode_response(response)), correlation=msg.correlation)

    # -- handlers ----------------------------------------------------------------------------------------
    def _on_api(self, msg: Message) -> None:
        req = ApiRequest.decode(msg.payload, what="api request")
        if req.verb is Verb.LOGS:
            self._forward_logs(msg, req)
            return
        with self._lock, self.store.batch("defer"):
            writes = self.store.writes
            response = self.api.handle(req)
            wrote = self.store.writes != writes
            if wrote:
                # Answered once on flash: by the committer's next group commit (or a pass's, if sooner).
                self._acks.append(lambda: self._reply(msg, response))
                self._acks_owed.set()
        if not wrote:
            self._reply(msg, response)
        self._wake.set()

    def _on_apply(self, msg: Message) -> None:
        """`edgekube/v1/apply`: any MQTT client publishes YAML/JSON; the outcome goes to apply/result."""
        with self._lock, self.store.batch("defer"):
            writes = self.store.writes
            try:
                result = ApplyResult(ok=True, outcomes=self.api.apply(msg.payload, source="edgekube/v1/apply"))
            except Exception as exc:
                if not isinstance(exc, EdgekubeError):
                    log.exception("apply failed")
                else:
                    log.warning("apply rejected: %s", exc)
                result = ApplyResult(ok=False, error=ErrorInfo.of(exc))
            wrote = self.store.writes != writes
            if wrote:
                self._acks.append(lambda: self._publish_apply_result(msg, result))
                self._acks_owed.set()
        if not wrote:
            self._publish_apply_result(msg, result)
        self._wake.set()

    def _publish_apply_result(self, msg: Message, result: ApplyResult) -> None:
        self.bus.publish(topics.APPLY_RESULT, result.encode())
        if msg.response_topic:
            self.bus.publish(msg.response_topic, result.encode(), correlation=msg.correlation)

    def _forward_logs(self, msg: Message, req: ApiRequest) -> None:
        """Logs live on the node: forward the request with the caller's response topic; the agent answers."""
        name, namespace = req.name or "", req.namespace or "default"
        with self._lock:
            try:
                node = self.store.peek("Pod", namespace, name)["spec"].get("nodeName")
            except NotFoundError as exc:
                self._reply(msg, ApiResponse(ok=False, error=ErrorInfo.of(exc)))
                return
        if not node:
            problem = EdgekubeError(
                f"pod {namespace}/{name} is not scheduled to a node yet", hint=f"see `ekctl describe pod {name}`"
            )
            self._reply(msg, ApiResponse(ok=False, error=ErrorInfo.of(problem)))
            return
        if not self.liveness.ready(node):
            problem = EdgekubeError(
                f"node {node} is not ready: {self.liveness.reason(node)}", hint="logs come from the node itself"
            )
            self._reply(msg, ApiResponse(ok=False, error=ErrorInfo.of(problem)))
            return
        self.bus.publish(
            topics.node_rpc(node), msg.payload, response_topic=msg.response_topic, correlation=msg.correlation
        )

    def _on_online(self, msg: Message) -> None:
        node = topics.node_of(msg.topic)
        if not msg.payload:
            return  # a cleared retained message
        presence = Presence.decode(msg.payload, what=f"presence of {node}")
        self.liveness.presence(node, presence.online, presence.boot_id)
        if presence.online:
            with self._lock:
                self.dispatcher.forget(node)
        self._wake.set()

    def _on_heartbeat(self, msg: Message) -> None:
        node = topics.node_of(msg.topic)
        beat = Heartbeat.decode(msg.payload, what=f"heartbeat of {node}")
        if beat.node != node:
            raise ValidationError(f"heartbeat: node: {beat.node!r} does not match the topic's node {node!r}")
        was_ready = self.liveness.ready(node)
        self.liveness.heartbeat(node, beat.boot_id, beat.usage, beat.observed_generation)
        if not was_ready:
            self._wake.set()

    def _on_events(self, msg: Message) -> None:
        node = topics.node_of(msg.topic)
        report = EventReport.decode(msg.payload, what=f"events of {node}")
        with self._lock:
            self.events.ingest(node, report)

    def _on_status(self, msg: Message) -> None:
        node = topics.node_of(msg.topic)
        report = NodeReport.decode(msg.payload, what=f"status of {node}")
        if report.node != node:
            raise ValidationError(f"status: node: {report.node!r} does not match the topic's node {node!r}")
        # Agents resend the same Node object with every report: validate and register it only when it changed.
        registered = None if report.node_object == self._node_objects.get(node) else Node.from_dict(report.node_object)
        if registered is not None and registered.metadata.name != node:
            raise ValidationError(f"status: nodeObject.metadata.name: must be {node!r}")
        with self._lock, self.store.batch("lazy"):
            if registered is None and ("", node) not in self.store.objects("Node"):
                registered = Node.from_dict(report.node_object)  # deleted meanwhile: register it again
            if registered is not None:
                self._register(registered)
                self._node_objects[node] = report.node_object
            for item in report.pods:
                self._record_pod_status(node, item.uid, item.namespace, item.name, item.status)
        self.liveness.heartbeat(node, report.boot_id, {}, report.observed_generation)
        self._wake.set()

    def _register(self, node: Node) -> None:
        """First report creates the Node; later ones refresh status but keep labels and spec (the master's)."""
        data = node.to_dict()
        try:
            current = self.store.peek("Node", "", node.metadata.name)
        except NotFoundError:
            data["metadata"]["namespace"] = ""
            self.store.create(data)
            log.info("node %s registered", node.metadata.name)
            return
        status = data.get("status", {})
        if current.get("status") != status:
            self.store.update({**current, "status": status})

    def _record_pod_status(self, node: str, uid: str, namespace: str, name: str, status: Obj) -> None:
        try:
            pod = self.store.peek("Pod", namespace, name)
        except NotFoundError:
            return  # deleted meanwhile; the agent removes it on the next desired state
        if pod["metadata"].get("uid") != uid or pod["spec"].get("nodeName") != node:
            return  # a report about an older incarnation, or from a node the pod was moved away from
        if pod.get("status") != status:
            self.store.update({**pod, "status": status})

    # -- the loop --------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._next_wait())
            self._wake.clear()
            pause = self._not_before - self._clock()
            if pause > 0 and self._stop.wait(pause):
                return
            if self._stop.is_set():
                return
            self._wake.clear()  # whatever happened during the pause, this pass sees it
            started = self._clock()
            try:
                if self.reconcile():
                    self._wake.set()  # what this pass wrote may call for more (e.g. a controller's status)
            except Exception:
                log.exception("reconcile failed; retrying in %ss", self.config.resync_interval)
            spent = self._clock() - started
            self._not_before = self._clock() + max(MIN_PASS_GAP, spent)

    def _next_wait(self) -> float:
        """The resync period, or sooner when a node's heartbeat or the reconnect grace runs out before then."""
        now = self._clock()
        wait = self.config.resync_interval
        expiry = self.liveness.next_expiry()  # on the watermark's clock
        if expiry is not None:
            wait = min(wait, expiry - self.echo.watermark + 0.01)
        if self._judge_after > now:
            wait = min(wait, self._judge_after - now + 0.01)
        return max(wait, 0.02)

    def judging(self) -> bool:
        """May nodes be judged now? Not while cut off from the broker, nor in the grace after connecting.

        Nor while the master's own messages are more than a node timeout behind (its self-ping comes back
        that late, or not at all): then it knows too little about anyone's heartbeats.
        """
        now = self._clock()
        if self._bus is None or not self._bus.connected:
            self._judge_after = math.inf  # until the next connect restarts the grace period
            return False
        if now < self._judge_after:
            return False
        return not self.echo.lagging(self.config.node_timeout)

    def reconcile(self) -> bool:
        """One pass: node lifecycle → replication → scheduling → dispatch; True if it wrote to the store.

        Safe to run any number of times: every step recomputes from what is stored (level-triggered). The
        pass ends with one group commit; only then are answers sent and desired states published.
        """
        with self._lock:
            with self.store.batch("sync"):
                writes = self.store.writes
                self._lifecycle()
                self.replication.run(self.store, self.events, self._wall())
                self.placer.place_pending()
                wrote = self.store.writes != writes
            changes = self.dispatcher.flush(name for _, name in self.store.objects("Node"))
            self.specs.prune(self.store.objects("Pod"))
            acks, self._acks = self._acks, []
        for desired in changes:
            self.bus.publish(topics.node_desired(desired.node), desired.encode(), retain=True)
        for ack in acks:
            ack()
        return wrote

    def _lifecycle(self) -> None:
        states = []
        watched: set[str] = set()
        for node in self.store.objects("Node").values():
            name = node["metadata"]["name"]
            state = NodeState(name, self.liveness.health(name), node_taints(node))
            states.append(state)
            if state.health is not Health.READY or any(t.effect.value == "NoExecute" for t in state.taints):
                watched.add(name)
        pods_by_node: dict[str, list[PodState]] = {}
        if watched:
            for pod in self.store.objects("Pod").values():
                node_name = pod["spec"].get("nodeName")
                if node_name in watched:
                    meta = pod["metadata"]
                    pods_by_node.setdefault(node_name, []).append(
                        PodState(meta["namespace"], meta["name"], meta["uid"], node_name, self.specs.tolerations(pod))
                    )
        self.lifecycle.run(
            states, pods_by_node, self._wall(), judging=self.judging(), store=self.store, events=self.events
        )

    # -- views ---------------------------------------------------------------------------------------------
    def _decorate_node(self, obj: Obj) -> Obj:
        """Add the live Ready condition (kept in memory, never written) to a stored Node."""
        name = obj["metadata"]["name"]
        ready = self.liveness.ready(name)
        reason = self.liveness.reason(name)
        status = dict(obj.get("status") or {})
        conditions = [c for c in status.get("conditions", []) if c.get("type") != "Ready"]
        conditions.append(
            {
                "type": "Ready",
                "status": "True" if ready else ("Unknown" if "Unknown" in reason else "False"),
                "reason": reason.split(":", 1)[0],
                "message": reason.split(": ", 1)[-1],
            }
        )
        status["conditions"] = conditions
        usage = self.liveness.usage(name)
        if usage:
            obj = {**obj, "usage": usage}
        return {**obj, "status": status}


def encode_response(response: ApiResponse | ApplyResult) -> bytes:
    """`response.encode()`, only faster: stored objects are plain JSON already, encoded by orjson.

    They skip pydantic's walk over every nested dict, which costs more than the rest of a 250-pod list request.
    """
    if not isinstance(response, ApiResponse) or (response.items is None and response.object is None):
        return response.encode()
    data = response.model_dump(by_alias=True, exclude_none=True, mode="json", exclude={"items", "object"})
    if response.items is not None:
        data["items"] = response.items
    if response.object is not None:
        data["object"] = response.object
    return jsoncodec.dumpb(data)


def fitted(payload: bytes) -> bytes:
    """The answer, or an error saying why not when it is over the message limit (its receiver would refuse it)."""
    if len(payload) <= MAX_PAYLOAD_BYTES:
        return payload
    problem = EdgekubeError(
        f"the answer is {len(payload)} bytes, over the {MAX_PAYLOAD_BYTES}-byte message limit",
        hint="narrow the request (a label selector, one namespace); lists can be asked for in pages",
    )
    return ApiResponse(ok=False, error=ErrorInfo.of(problem)).encode()


#: Young-generation threshold of the garbage collector (CPython's default is 700). The master holds every stored
#: object as dicts; with the default, full collections walking all of them took over half of opening a 10,000-pod
#: store and a good share of a burst's CPU. Its data are plain JSON trees without cycles, which reference counting
#: frees anyway, so collecting rarely loses nothing.
GC_THRESHOLD = 50_000


def run_master(config: MasterConfig) -> None:
    """Run until SIGTERM/SIGINT (systemd stop, Ctrl-C)."""
    gc.set_threshold(GC_THRESHOLD, 20, 20)
    master = Master(config).start()
    gc.freeze()  # what was loaded at start stays: later collections skip it
    log.info("master up: mqtt %s:%s, data %s", config.mqtt_host, config.mqtt_port, config.data_dir)
    try:
        while True:
            time.sleep(3600)
    finally:
        master.stop()
