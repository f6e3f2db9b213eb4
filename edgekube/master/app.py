"""The master daemon: bus handlers and one level-triggered reconcile loop over the parts it is handed.

Handlers (master.ingest for the node topics, master.requests for API requests and applies) only record facts
(under the master's lock) and wake the loop. One pass = every registered controller
(controllers.registry: node lifecycle, replication, volumes) → scheduler → dispatch of every node's desired set that
changed. Bus, store and clocks are built by master.wiring and handed in; the master closes them when it stops.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from edgekube.bus import topics
from edgekube.bus.guard import guarded
from edgekube.bus.protocol import Handler, MessageBus
from edgekube.master.api import Api
from edgekube.master.cache import CachedStore
from edgekube.master.config import MasterConfig
from edgekube.master.configdata import ConfigResolver
from edgekube.master.controllers.base import Effects, Setup, Snapshot, apply
from edgekube.master.controllers.registry import CONTROLLERS
from edgekube.master.controllers.volumes.nfsio import NoShareFs, ShareFs
from edgekube.master.controllers.volumes.services import VolumeServices
from edgekube.master.controllers.volumes.users import ClaimUsers
from edgekube.master.controllers.volumes.worker import VolumeWorker
from edgekube.master.dispatch import Dispatcher, VolumeResolver
from edgekube.master.echo import Echo
from edgekube.master.eventlog import EventLog
from edgekube.master.ha.gate import CommitGate, NoGate
from edgekube.master.ingest import StatusIngest
from edgekube.master.liveness import Liveness
from edgekube.master.nodemetrics import NodeMetricsCache
from edgekube.master.requests import Requests
from edgekube.master.routes import RoutePublisher
from edgekube.master.scheduling.placer import Placer
from edgekube.master.scheduling.specs import SpecCache
from edgekube.master.scheduling.usage import NodeUsage
from edgekube.master.scheduling.volumes import VolumeGate
from edgekube.master.servicetable import ServiceTablePublisher
from edgekube.master.top import Top
from edgekube.master.watch import Watches
from edgekube.master.watch import publish as publish_watch_events
from edgekube.model.errors import EdgekubeError
from edgekube.model.wire import Presence

if TYPE_CHECKING:
    from edgekube.master.dashboard import Dashboard
    from edgekube.metrics_http import MetricsServer
from edgekube.sdnotify import SdNotify

__all__ = ["Master", "MasterConfig"]

log = logging.getLogger(__name__)
Clock = Callable[[], float]
#: Passes start at least this far apart (and at least as far apart as the last one took): a storm of status
#: reports then costs a few passes, not one each.
MIN_PASS_GAP = 0.02
#: An answer owed after a write waits this long for company before the group commit that releases it.
COMMIT_DELAY = 0.002


class Master:
    """Owns the store; every handler only records facts and wakes the loop, which does the deciding."""

    def __init__(
        self,
        config: MasterConfig,
        *,
        bus: MessageBus,
        store: CachedStore,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
        notify: SdNotify | None = None,
        share_fs: ShareFs | None = None,
        gate: CommitGate | None = None,
    ) -> None:
        self.config = config
        #: Replication (master/ha): what a group commit waits for before answering and publishing; NoGate alone.
        self.gate: CommitGate = gate if gate is not None else NoGate()
        self.bus = bus
        self.store = store
        #: systemd: READY once serving, STATUS, WATCHDOG from the loop (a hung loop gets the master restarted).
        self.notify = notify if notify is not None else SdNotify.disabled()
        #: Heartbeat ages are measured on the self-ping watermark, not the wall clock (see master.echo).
        self.echo = Echo(config.client_id, clock)
        self.liveness = Liveness(
            timeout=config.node_timeout, will_settle=config.will_settle, clock=lambda: self.echo.watermark
        )
        self.events = EventLog(config.event_capacity, clock=lambda: datetime.fromtimestamp(wall(), UTC))
        self._wake = threading.Event()
        #: NFS provisioning runs on the worker's own thread (started with the loop); it wakes the loop when done.
        worker = VolumeWorker(
            share_fs if share_fs is not None else NoShareFs(),
            clock=wall,
            on_done=self._wake.set,
            retry_base=config.volume_retry_base,
            retry_max=config.volume_retry_max,
        )
        self.volumes = VolumeServices(ClaimUsers(), worker)
        self.dispatcher = Dispatcher(volumes=VolumeResolver(self.store), config=ConfigResolver(self.store))
        self.dispatcher.term = self.gate.term
        #: The ServiceTable retained on edgekube/v1/services (docs/services.md), published after a pass changed it.
        self.service_table = ServiceTablePublisher(self.store, wall)
        self.specs = SpecCache()
        self.routes = RoutePublisher(wall)
        self.usage = NodeUsage(self.specs)
        self.placer = Placer(
            self.store,
            self.usage,
            self.specs,
            self.events,
            self.liveness.ready,
            volumes=VolumeGate(self.store, self.volumes.users),
        )
        #: The nodes' telemetry reports, in memory only: `ekctl top`, describe node's recent usage, /metrics.
        self.node_metrics = NodeMetricsCache(clock, grace=config.node_timeout + 5.0)
        decorate = self.liveness.decorate
        self.api = Api(
            self.store, lambda node: self.node_metrics.decorate(decorate(node)), self.events, binder=self.placer,
            wall=wall, service_cidr=config.service_cidr,
        )  # fmt: skip
        # Kept current by every Pod write: what each node is told, what each node has bound, who uses each claim.
        self.store.listen("Pod", self.volumes.users.observe)
        self.store.listen("Pod", self.dispatcher.observe)
        self.store.listen("Node", self.dispatcher.node_changed)  # lifecycle taints: the node's LEDs show NotReady
        self.store.listen("Pod", self.usage.observe)
        self.store.listen("PersistentVolumeClaim", self.dispatcher.claim_changed)
        self.store.listen("PersistentVolume", self.dispatcher.volume_changed)
        for kind in ("ConfigMap", "Secret"):  # a pod using one gets its new values (files) or starts (it was missing)
            self.store.listen(kind, functools.partial(self.dispatcher.config_changed, kind=kind))
        setup = Setup(config, self.store, self.volumes)
        self.controllers = [build(setup) for build in CONTROLLERS]
        self._effects = Effects(self.store, self.events, self.placer)
        self._clock = clock
        self._wall = wall
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self.ingest = StatusIngest(
            self.store, self.liveness, self.events, self.dispatcher, lock=self._lock, wake=self._wake.set,
            metrics=self.node_metrics,
        )  # fmt: skip
        top = Top(self.store, self.node_metrics, self.liveness.usage, self.liveness.ready)
        self.requests = Requests(
            self.bus, self.store, self.api, self.liveness, lock=self._lock, wake=self._wake.set, top=top
        )
        #: `ekctl get -w`: changes queued by the store's listeners, sent after each group commit (master/watch.py).
        self.watches = Watches(self.store, clock, lambda k, obj: self.api.decorate_node(obj) if k == "Node" else obj)
        self.requests.watches = self.watches
        #: Prometheus /metrics (config.metrics_port; 0: none), started with the loop.
        self.metrics_server: MetricsServer | None = None
        if config.metrics_port:
            # prometheus_client costs ~10 MB of RSS: loaded only when /metrics is on.
            from prometheus_client import CollectorRegistry  # noqa: PLC0415

            from edgekube.master.prometheus import MasterCollector  # noqa: PLC0415
            from edgekube.metrics_http import MetricsServer  # noqa: PLC0415

            registry = CollectorRegistry(auto_describe=False)
            registry.register(
                MasterCollector(self._node_names, self.liveness.usage, self.liveness.ready, self.node_metrics)
            )
            self.metrics_server = MetricsServer(registry, config.metrics_address, config.metrics_port)
        #: The live dashboard (config.dashboard HOST:PORT; empty: none, docs/dashboard.md), started with the loop.
        self.dashboard: Dashboard | None = None
        if config.dashboard:
            from edgekube.master.dashboard import Dashboard, tls_context  # noqa: PLC0415 - off by default

            self.dashboard = Dashboard(
                config.dashboard, bus=self.bus, store=self.store, lock=self._lock, liveness=self.liveness,
                events=self.events, tls=tls_context(config.dashboard_cert, config.dashboard_key),
            )  # fmt: skip
            self.requests.dashboard_login = self.dashboard.login
        #: Nodes are judged (tainted, their pods evicted) only after this moment: a full node_timeout after the
        #: master (re)connected to the broker; infinity while it is disconnected.
        self._judge_after = math.inf
        self._not_before = -math.inf
        self._threads = [
            threading.Thread(target=self._loop, name="master-loop", daemon=True),
            threading.Thread(target=self._pinger, name="master-ping", daemon=True),
            threading.Thread(target=self._committer, name="master-commit", daemon=True),
        ]

    @property
    def lock(self) -> threading.RLock:
        """The lock every write is made under (master.ha's Replicator exports a snapshot under it)."""
        return self._lock

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self, wait: float | None = None, *, loop: bool = True) -> Master:
        """Subscribe, then start the bus; `loop=False` leaves the loop off (tests call `reconcile()` themselves)."""
        self._subscribe(self.bus)
        self.bus.on_connect(self._on_connected)
        self.bus.start(wait=wait)
        if loop:
            self.volumes.worker.start()
            for thread in self._threads:
                thread.start()
            if self.metrics_server is not None:
                try:
                    self.metrics_server.start()
                except EdgekubeError as exc:  # the master serves on without /metrics rather than not at all
                    log.error("%s", exc)
                    self.metrics_server = None
            if self.dashboard is not None:
                try:
                    self.dashboard.start()
                except EdgekubeError as exc:  # likewise without the dashboard
                    log.error("%s", exc)
                    self.dashboard = None
                    self.requests.dashboard_login = None
        return self

    def _subscribe(self, bus: MessageBus) -> None:
        bus.subscribe(topics.API_REQUEST, self._guard(self.requests.on_api))
        bus.subscribe(topics.API_READ, self._guard(self.requests.on_read))
        bus.subscribe(topics.APPLY, self._guard(self.requests.on_apply))
        bus.subscribe(topics.ALL_NODE_STATUS, self._guard(self.ingest.status))
        bus.subscribe(topics.ALL_NODE_HEARTBEAT, self._guard(self.ingest.heartbeat), qos=0)
        bus.subscribe(topics.ALL_NODE_ONLINE, self._guard(self.ingest.presence))
        bus.subscribe(topics.ALL_NODE_EVENTS, self._guard(self.ingest.node_events))
        bus.subscribe(topics.ALL_NODE_METRICS, self._guard(self.ingest.node_metrics), qos=0)
        bus.subscribe(self.echo.topic, self._guard(lambda msg: self.echo.heard(msg.payload)), qos=0)

    def stop(self, *, announce: bool = True) -> None:
        """Stop; `announce=False` (a deposed HA master) leaves master/online to the new active."""
        self.notify.stopping()
        self._stop.set()
        self._wake.set()
        self.requests.owed.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=5)
        self.volumes.worker.stop()
        if self.metrics_server is not None:
            self.metrics_server.stop()
        if self.dashboard is not None:
            self.dashboard.stop()
        self.commit()  # answers still owed go out once their writes are on flash
        if announce:
            self.bus.publish(topics.MASTER_ONLINE, Presence(online=False).encode(), retain=True)
        self.bus.close()
        with self._lock:
            self.store.close()

    def _on_connected(self) -> None:
        self.bus.publish(topics.MASTER_ONLINE, Presence(online=True).encode(), retain=True)
        with self._lock:
            # After a broker restart retained desired states may be gone: send every node's set again.
            self.dispatcher.forget_all()
            self.service_table.forget()
            self.routes.forget()
            # Heartbeats missed while we were away say nothing about the nodes: a full timeout each, again.
            self.echo.catch_up()
            self.liveness.reset()
            self._judge_after = self._clock() + self.config.node_timeout
        log.info("connected to the broker; judging nodes again in %gs", self.config.node_timeout)
        self._wake.set()

    def _node_names(self) -> list[str]:
        with self._lock:
            return [name for (_, name) in self.store.objects("Node")]

    def _guard(self, handler: Handler) -> Handler:
        """Malformed or hostile payloads are logged and dropped (or answered); they never reach the loop."""
        return guarded(handler, answer=self.requests.reply, component="master", log=log, stopping=self._stop.is_set)

    def ping(self) -> None:
        """Publish one self-ping (the pinger thread does this every node_timeout / 16, at most every 0.25 s)."""
        if self.bus.connected:
            self.bus.publish(self.echo.topic, self.echo.ping(), qos=0)

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
            shipped = self.gate.ship()
            acks = self.requests.take()
            acks.append(functools.partial(publish_watch_events, self.bus, self.watches.take()))
        self._answer(shipped, acks)

    def _answer(self, shipped: int, acks: list[Callable[[], None]]) -> None:
        """Send the answers (and watch events) once the gate says their writes are safe (an HA standby holds them)."""
        if not self.gate.settle(shipped):
            if len(acks) > 1:
                log.warning("%d answer(s) dropped: this master was deposed before its standby held them", len(acks))
            return
        for ack in acks:
            ack()

    def _committer(self) -> None:
        while not self._stop.is_set():
            self.requests.owed.wait()
            if self._stop.wait(COMMIT_DELAY):
                return
            self.requests.owed.clear()
            try:
                self.commit()
            except Exception:
                log.exception("group commit failed")

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
            self._tell_systemd()

    def _tell_systemd(self) -> None:
        """After a pass: the watchdog ping, READY once connected (serving), and what the master is doing."""
        self.notify.watchdog()
        if not self.bus.connected:
            self.notify.status(f"waiting for the MQTT broker at {self.config.mqtt_host}:{self.config.mqtt_port}")
            return
        nodes, pods = len(self.store.objects("Node")), len(self.store.objects("Pod"))
        status = f"serving: {nodes} node(s), {pods} pod(s)"
        self.notify.serving(status)

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
        if not self.bus.connected:
            self._judge_after = math.inf  # until the next connect restarts the grace period
            return False
        if now < self._judge_after:
            return False
        return not self.echo.lagging(self.config.node_timeout)

    def reconcile(self) -> bool:
        """One pass: the registered controllers → scheduling → dispatch; True if it wrote to the store.

        Safe to run any number of times: every step recomputes from what is stored (level-triggered). The
        pass ends with one group commit; only then are answers sent and desired states published.
        """
        with self._lock:
            with self.store.batch("sync"):
                writes = self.store.writes
                snapshot = Snapshot(
                    self.store, self._wall(), self.judging(), self.liveness.health, self.specs.tolerations
                )
                for controller in self.controllers:
                    apply(controller.plan(snapshot), self._effects)  # the next controller sees these writes
                self.placer.place_pending()
                wrote = self.store.writes != writes
            changes = self.dispatcher.flush(name for _, name in self.store.objects("Node"))
            table = self.service_table.flush()
            self.specs.prune(self.store.objects("Pod"))
            routes = self.routes.flush(self.store.objects("Node").values(), self.liveness.ready)
            shipped = self.gate.ship()
            acks = self.requests.take()
            acks.append(functools.partial(publish_watch_events, self.bus, self.watches.take()))
        settled = not (changes or table is not None) or self.gate.settle(shipped)
        # Not settled: deposed (its desired state must never reach a node again), or alone without the cluster told.
        with self.gate.publishing() as allowed:
            if allowed and settled:
                # The ServiceTable first: a deleted or evicted pod leaves the endpoints before its node stops it.
                if table is not None:
                    self.bus.publish(topics.SERVICES, table.encode(), retain=True)
                for desired in changes:
                    self.bus.publish(topics.node_desired(desired.node), desired.encode(), retain=True)
                if routes is not None:
                    self.bus.publish(topics.ROUTES, routes.encode(), retain=True)
            else:  # not sent (an HA standby, or publishing not yet allowed): each goes again once publishing may
                with self._lock:
                    if changes:
                        self.dispatcher.forget_all()
                    if table is not None:
                        self.service_table.forget()
                    if routes is not None:
                        self.routes.forget()
        if settled:
            self._answer(shipped, acks)
        return wrote
