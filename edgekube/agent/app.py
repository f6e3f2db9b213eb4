"""The agent daemon: bus handlers, heartbeats and the reconcile loop that drives pod actions, probes and reports."""

from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgekube.agent import hostinfo
from edgekube.agent.actions import PodActions
from edgekube.agent.backoff import BackoffPolicy
from edgekube.agent.configfiles import ConfigFiles
from edgekube.agent.desired import KEPT, DesiredState
from edgekube.agent.devices import DeviceTable, check_overrides, devices_of
from edgekube.agent.events import EventRecorder, PodRef
from edgekube.agent.fencing import Fencing
from edgekube.agent.fencing_keeper import Order, spawn, write_order
from edgekube.agent.fencing_plan import Node, Timing
from edgekube.agent.health.agent import build_monitor, settings_of
from edgekube.agent.health.pressure import DEFAULT_EVICTION_HARD
from edgekube.agent.indicators import pods as led_pods
from edgekube.agent.indicators.drivers import LedDriver, LedSettings
from edgekube.agent.indicators.indicator import DEFAULT_IDENTIFY, Indicator
from edgekube.agent.indicators.table import NodeState
from edgekube.agent.ledger import RestartLedger
from edgekube.agent.logfollow import Follows, FollowSpec
from edgekube.agent.network.proxymode import PROXY_MODES
from edgekube.agent.nfsprobe import NfsProber, ProbeFn, nfs_probe
from edgekube.agent.portforward import Relays
from edgekube.agent.probe_checks import ProbeResult, ProbeTarget
from edgekube.agent.probe_timing import ProbeKind
from edgekube.agent.probe_workers import Prober
from edgekube.agent.reconcile import DesiredPod, Failure, PodMemory, Remove, plan
from edgekube.agent.report import StatusReporter
from edgekube.agent.runtime.protocol import ContainerRunState, LogWindow, ObservedPod, PodRuntime
from edgekube.agent.runtime.volumes import FAILED_MOUNT
from edgekube.agent.telemetry.wiring import Telemetry, check_telemetry
from edgekube.agent.terminals import Terminals
from edgekube.agent.witness import MasterWatch
from edgekube.bus import topics
from edgekube.bus.guard import guarded
from edgekube.bus.protocol import Handler, Message, MessageBus
from edgekube.model.errors import EdgekubeError, NotFoundError, ValidationError
from edgekube.model.labels import validate_labels
from edgekube.model.names import NodeName, PodUID, check_dns1123_subdomain
from edgekube.model.node import DEFAULT_MAX_PODS, NodeConditionType
from edgekube.model.wire import ApiRequest, ApiResponse, ErrorInfo, Heartbeat, NodeDesired, Presence, Verb
from edgekube.sdnotify import SdNotify

log = logging.getLogger(__name__)
#: `ekctl exec`: commands one node runs at once, how long one may take unless asked, and the output answered
#: (under the 1 MiB message limit, JSON escaping included).
EXEC_SLOTS = 4
#: `ekctl cp`: the largest tar one copy carries either way (base64 in one message, under the 1 MiB limit).
MAX_CP_BYTES = 512 * 1024
DEFAULT_EXEC_TIMEOUT = 60.0
MAX_EXEC_REPLY = 256 * 1024


@dataclass
class AgentConfig:
    node_name: str
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    #: The cluster's brokers in failover order, "HOST:PORT" each (`--broker`, repeatable; docs/ha.md); empty: the
    #: one at mqtt_host:mqtt_port. The agent is on one at a time and moves to the next when it is lost.
    brokers: list[str] = field(default_factory=list)
    podman_url: str = "unix:///run/podman/podman.sock"
    state_dir: Path = field(default_factory=lambda: Path("/var/lib/edgekube/agent"))
    labels: dict[str, str] = field(default_factory=dict)
    #: The master judges a node NotReady after 2 s without a heartbeat.
    heartbeat_interval: float = 0.5
    #: Podman is re-read this often even without events (level-triggered), and status resent this often.
    resync_interval: float = 2.0
    report_interval: float = 15.0
    max_pods: int = DEFAULT_MAX_PODS
    #: Restart back-off (CrashLoopBackOff), also for failed creates: first retry at once, then initial, twice,
    #: four times … that up to max seconds; a pod that ran `backoff_reset` seconds without trouble starts over.
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    backoff_reset: float = 60.0
    #: Probes run on at most this many threads at once.
    probe_workers: int = 4
    #: Pods created at once (Podman creates them in parallel: 4 pods took 1.0 s instead of 1.4-1.7 s one by one on
    #: 2 cores); 1 creates them one after another.
    parallel_creates: int = 4
    #: Events kept in memory while the broker is away (the oldest are dropped beyond this).
    event_queue: int = 1000
    #: TLS (all empty: plain TCP): the fleet's CA certificate, this node's certificate and key (edgekube ca issue).
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    #: How this node mounts NFS volumes: `kernel` (type=nfs), `userspace` (edgekube-nfs-mount over FUSE) or `auto`
    #: (kernel when /proc/filesystems lists nfs4). `nfs_timeout`: seconds an NFS server has to answer a pod's mount.
    nfs_client: str = "auto"
    nfs_timeout: float = 5.0
    #: Local storage is measured this often (reads only): disk emptyDirs with a sizeLimit (du), and pods with
    #: ephemeral-storage limits (writable layers, logs, emptyDirs); a pod over a limit is evicted, as by the kubelet.
    volume_check_interval: float = 10.0
    #: The cluster's NFS servers are probed this often (node status nfsServers, condition NFSReachable).
    nfs_probe_interval: float = 10.0
    #: ReadWriteOnce fencing (docs/storage.md): the lease on an exclusive NFS volume lasts `lease_duration` seconds;
    #: the holder renews it every `lease_renew` (0: a quarter of it) and stops its pods `lease_margin` (0: a third
    #: of it) before it runs out; another node takes it over only after `lease_duration + lease_margin`.
    lease_duration: float = 15.0
    lease_renew: float = 0.0
    lease_margin: float = 0.0
    #: The fence keeper's orders (tmpfs), under a directory per node; the keeper stops the pods of a lease that ran
    #: out even when the agent is frozen or dead. Empty: no keeper.
    fence_dir: str = "/run/edgekube/fence"
    #: Node telemetry (docs/telemetry.md): the node and its containers sampled every `telemetry_interval` seconds
    #: (0: off), the last `telemetry_history` seconds kept in memory only; `container_store` is Podman's graph root
    #: (its filesystem is the node's image filesystem). Prometheus /metrics on `metrics_port` (0: off).
    telemetry_interval: float = 10.0
    telemetry_history: float = 900.0
    container_store: str = "/var/lib/containers/storage"
    metrics_port: int = 0
    metrics_address: str = "0.0.0.0"
    #: Pi hardware as extended resources (docs/devices.md): device nodes are discovered in `device_dir` (empty: no
    #: discovery); `devices` (a `[devices]` table in the config file) maps a resource to its paths, replacing what
    #: was discovered for it: `"edgekube.io/serial" = ["/dev/ttyUSB0"]`, `[]` hides one.
    device_dir: str = "/dev"
    devices: dict[str, list[str]] = field(default_factory=dict)
    #: Where ConfigMap, Secret and downward API volumes are written, per pod (docs/config.md); on tmpfs, as
    #: Secrets must never reach the SD card. Empty: /dev/shm/edgekube/<node_name>.
    config_volume_dir: str = ""
    #: Node health (docs/node-health.md), checked every `health_check_interval` seconds: kubelet-style hard eviction
    #: thresholds (MemoryPressure, DiskPressure, PIDPressure; "" = none); a condition stays True
    #: `eviction_pressure_transition_period` seconds after its cause was last seen. `nodefs_path` is the node's
    #: filesystem (imagefs is `container_store`'s). Pi: ThermalThrottling (firmware flags, or the SoC at
    #: `soc_temperature_limit` °C; 0: flags only) and UnderVoltage, each tainting the node NoSchedule while True.
    eviction_hard: str = DEFAULT_EVICTION_HARD
    eviction_pressure_transition_period: float = 300.0
    health_check_interval: float = 10.0
    nodefs_path: str = "/"
    thermal_throttling: bool = True
    under_voltage: bool = True
    soc_temperature_limit: float = 80.0
    #: The trees health signals are read from (tests point them at temporary directories).
    proc_root: str = "/proc"
    sys_root: str = "/sys"

    #: Status LEDs (docs/leds.md): BCM pins, comma-separated, of a green + red pair ("17,27"; one pin: green only)
    #: or, with `led_rgb`, of one RGB LED's red, green, blue; `led_pin_factory`: default, lgpio (Pi 5, bookworm),
    #: rpigpio or mock. Without pins, `led_sysfs` (e.g. /sys/class/leds) drives the board's ACT and PWR LEDs.
    led_pins: str = ""
    led_active_high: bool = True
    led_rgb: bool = False
    led_pin_factory: str = "default"
    led_sysfs: str = ""
    #: The pod network and node proxy (docs/networking.md): pods on the `edgekube` bridge with the node's podCIDR,
    #: host-gw routes to the other nodes', Services in nftables, the cluster DNS on the bridge's gateway
    #: (`cluster_dns`). `node_ip`: the address other nodes reach this one at (empty: the default route's source).
    pod_network: bool = False
    cluster_dns: bool = True
    node_ip: str = ""
    #: The node proxy: `nftables` (in the kernel), `userspace` (the agent relays, where the kernel cannot), or `auto`
    #: (nftables when `nft` loads the rules it needs, else userspace; agent/network/proxymode.py).
    proxy_mode: str = "auto"

    def led_settings(self) -> LedSettings:
        text = self.led_pins.strip().strip("[]")  # a TOML list arrives as its text
        try:
            pins = tuple(int(p) for p in text.replace(" ", "").split(",") if p)
        except ValueError:
            raise ValidationError(f"led_pins: {self.led_pins!r}: expected BCM numbers separated by commas") from None
        return LedSettings(pins, self.led_active_high, self.led_rgb, self.led_pin_factory, self.led_sysfs)

    def lease_timing(self) -> Timing:
        return Timing(self.lease_duration, self.lease_renew, self.lease_margin, poll=min(1.0, self.lease_duration / 4))

    def __post_init__(self) -> None:
        check_dns1123_subdomain(self.node_name, "node name")
        validate_labels(self.labels, path="node labels")
        for name in ("heartbeat_interval", "resync_interval", "backoff_initial", "backoff_max"):
            if getattr(self, name) <= 0:
                raise ValidationError(f"{name}: must be greater than 0")
        if self.parallel_creates < 1:
            raise ValidationError("parallel_creates: must be at least 1")
        if self.nfs_client not in ("auto", "kernel", "userspace"):
            supported = "supported values: auto, kernel, userspace"
            raise ValidationError(f"nfs_client: Unsupported value: {self.nfs_client!r}: {supported}")
        if self.proxy_mode not in PROXY_MODES:
            supported = f"supported values: {', '.join(PROXY_MODES)}"
            raise ValidationError(f"proxy_mode: Unsupported value: {self.proxy_mode!r}: {supported}")
        for name in ("nfs_timeout", "volume_check_interval", "nfs_probe_interval"):
            if getattr(self, name) <= 0:
                raise ValidationError(f"{name}: must be greater than 0")
        self.devices = check_overrides(self.devices)
        try:
            self.lease_timing()
        except ValueError as exc:
            raise ValidationError(f"lease_duration, lease_renew, lease_margin: {exc}") from None
        check_telemetry(self.telemetry_interval, self.telemetry_history, self.metrics_port)
        self.led_settings()
        settings_of(self)


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
        bus: MessageBus,
        *,
        clock: Callable[[], float] = time.monotonic,
        notify: SdNotify | None = None,
        nfs_probe_fn: ProbeFn = nfs_probe,
        leds: LedDriver | None = None,
        pi_flags: Callable[[], tuple[bool, bool]] | None = None,
    ) -> None:
        self.config = config
        self.node = NodeName(config.node_name)
        #: systemd: READY after the first pass (connected or running from the local copy), STATUS, WATCHDOG.
        self.notify = notify if notify is not None else SdNotify.disabled()
        self.runtime = runtime
        self.clock = clock
        self.boot_id = uuid.uuid4().hex
        self.desired = DesiredState.load(config.state_dir / "desired.json")
        #: Two masters (docs/ha.md): their presences, the term this node holds, the Witness it publishes.
        self.masters = MasterWatch(self.node, self.desired.term)
        self.ledger = RestartLedger.load(config.state_dir / "restarts.json")
        self.events = EventRecorder(self.node, capacity=config.event_queue)
        self.prober = Prober(runtime, workers=config.probe_workers, on_result=self._on_probe, clock=clock)
        self._bus = bus
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards desired
        self._exec_slots = threading.BoundedSemaphore(EXEC_SLOTS)
        #: `ekctl logs -f`: followed containers, their lines pushed to each client's stream (agent/logfollow.py).
        self.follows = Follows(runtime, self._publish_stream, time.time)
        #: `ekctl exec -it`: interactive commands with a terminal (agent/terminals.py).
        self.terminals = Terminals(runtime, self._publish_stream, time.time)
        #: `ekctl port-forward`: TCP connections to pods, relayed to each client's stream (agent/portforward.py).
        self.relays = Relays(self._publish_stream, time.time, time.sleep)
        self._reconciling = threading.Lock()  # one reconcile at a time (the loop, or a test calling it)
        policy = BackoffPolicy(config.backoff_initial, config.backoff_max, config.backoff_reset)
        #: The devices this node advertises as extended resources; PodActions hands them to containers.
        self.devices = DeviceTable(config.device_dir, config.devices)
        self._actions = PodActions(
            runtime,
            self.events,
            self.ledger,
            policy,
            clock=clock,
            wake=self._wake.set,
            parallel_creates=config.parallel_creates,
            volume_check_interval=config.volume_check_interval,
            devices=self.devices,
            config_files=ConfigFiles(Path(config.config_volume_dir or f"/dev/shm/edgekube/{config.node_name}")),
        )
        #: Probes the NFS servers the master names, on its own thread; a change wakes the loop to report it.
        self.nfs = NfsProber(self.node, nfs_probe_fn, interval=config.nfs_probe_interval, on_change=self._wake.set)
        #: ReadWriteOnce leases, one worker thread per exclusive volume in use; a change wakes the loop.
        self.fencing = Fencing(
            Node(self.node, self.boot_id), config.lease_timing(), self.events, clock=clock, wake=self._wake.set,
            keeper=self._keeper() if clock is time.monotonic else None,  # its deadlines are CLOCK_MONOTONIC
        )  # fmt: skip
        #: Node pressure and Pi conditions, checked on its own thread; evicts through PodActions (Failed, Evicted).
        self.health = build_monitor(
            config, self.node, self._desired_pods, runtime, self._actions, on_change=self._wake.set, clock=clock
        )
        self._reporter = StatusReporter(
            self.node,
            self.boot_id,
            runtime,
            self.events,
            labels=config.labels,
            max_pods=config.max_pods,
            report_interval=config.report_interval,
            nfs=self.nfs,
            devices=self.devices,
            health=self.health,
            ephemeral_storage=hostinfo.ephemeral_storage(config.container_store, config.eviction_hard),
        )
        if config.node_ip:
            self._reporter._host_ip = config.node_ip
        if config.pod_network and config.proxy_mode != "auto":  # wiring resolves auto before building the agent
            self._reporter.proxy_mode = config.proxy_mode
        #: Node and container usage sampled on its own thread (None: telemetry off); /metrics when configured.
        self.telemetry = Telemetry.of(config, runtime, self._bus, self.boot_id)
        #: The LEDs (docs/leds.md): the pattern is chosen each pass from what the agent knows (`_led_state`).
        self.indicator = Indicator(leds, clock=clock, node=self.node)
        self._reporter.leds = self.indicator.status
        self._reporter.on_pods = self._show_leds
        self._reporter.led_events = self.indicator.flush_events
        self._reporter.master_events = self.masters.flush_events
        #: (throttled, under-voltage) now, from the Pi's firmware; None: both False.
        self._pi_flags = pi_flags
        self._master_online = True  # until the master's retained presence says otherwise
        self._master_not_ready: str | None = None  # the master's view, from the desired state
        self._probe_failed = False  # a probe failed since the last pass
        self._next_due: float | None = None
        self._seq = 0
        self._threads = [
            threading.Thread(target=self._loop, name="agent-loop", daemon=True),
            threading.Thread(target=self._heartbeats, name="agent-heartbeat", daemon=True),
            threading.Thread(target=self._watch, name="agent-watch", daemon=True),
        ]

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self, wait: float | None = None, *, loop: bool = True) -> Agent:
        """Subscribe, start the bus and the loops; `wait` bounds how long to wait for the broker (never fails).

        `loop=False` leaves the loop, heartbeat and watch threads off: tests call `reconcile()` themselves.

        The agent works without a broker (edge autonomy): pods are run from the local copy of the desired state.
        """
        self._bus.on_connect(self._on_connected)
        self._bus.subscribe(topics.node_desired(self.node), self._guard(self._on_desired))
        self._bus.subscribe(topics.node_rpc(self.node), self._guard(self._on_rpc))
        self._bus.subscribe(topics.MASTER_ONLINE, self._guard(self._on_master_presence))
        self._bus.subscribe(topics.ALL_MASTERS_ONLINE, self._guard(self._on_masters))
        self._bus.start()
        if wait is not None:
            self._bus.wait_connected(wait)
        if loop:
            for thread in self._threads:
                thread.start()
            self.nfs.start()
            if self.telemetry is not None:
                self.telemetry.start()
            self.health.start()
        self._wake.set()
        return self

    def stop(self) -> None:
        """Stop the daemon; pods keep running (a restarted agent adopts them)."""
        self.notify.stopping()
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=10)
        self.prober.stop()
        self.follows.stop_all()
        self.terminals.close_all()
        self.relays.close_all()
        self.nfs.stop()
        if self.telemetry is not None:
            self.telemetry.stop()
        self.health.stop()
        self.fencing.stop()  # leases are kept: the pods run on, and a restarted agent takes them again at once
        # Let stops and restarts in flight finish, so what they learnt (counts, finished pods) is saved.
        if not self.wait_idle(timeout=15):
            log.warning("stopping with pod operations still running")
        self._reporter.flush_events(self._bus)
        self.indicator.close()
        self._bus.publish(topics.node_online(self.node), Presence(online=False).encode(), retain=True)
        self._bus.close()

    def _keeper(self) -> Callable[[str, Order | None], None] | None:
        """Hands the fence keeper (started on the first order) each held volume's order; None without fence_dir."""
        if not self.config.fence_dir:
            return None
        directory = Path(self.config.fence_dir) / self.node

        def hand(key: str, order: Order | None) -> None:
            if order is not None:
                spawn(directory, self.config.podman_url, self.node)
            write_order(directory, key, order)

        return hand

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no background stop, restart or removal is running; False if one still is."""
        return self._actions.wait_idle(timeout)

    @property
    def bus(self) -> MessageBus:
        return self._bus

    def _on_connected(self) -> None:
        self.bus.publish(
            topics.node_online(self.node), Presence(online=True, boot_id=self.boot_id).encode(), retain=True
        )
        self._reporter.resend()  # the master may have missed reports while we were away
        self.masters.publish(self.bus)  # on this broker too, after a failover
        self._wake.set()

    def _guard(self, handler: Handler) -> Handler:
        """Malformed or hostile payloads are logged and dropped (or answered); they never reach the loop."""
        return guarded(handler, answer=self._reply, component=f"agent on {self.node}", log=log)

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
            stale = self.desired.stale(message)
            accepted = self.desired.offer(message, msg.payload)
            current = accepted or (message.epoch, message.generation) == (self.desired.epoch, self.desired.generation)
        if stale:  # a deposed master: nothing of it is taken, not even its view of this node
            self.masters.refused(message.term, message.epoch)
            return
        if self.masters.on_term(message.term):
            self.masters.publish(self.bus)
        if current:  # also the retained copy of the generation loaded from disk: it names the NFS servers
            self.nfs.set_servers(message.nfs_servers)
            if message.not_ready != self._master_not_ready:
                self._master_not_ready = message.not_ready
                self._wake.set()
        if accepted:
            log.info("desired state generation %s: %d pod(s)", message.generation, len(message.pods))
            self._report_undecodable()
            with self._lock:
                uids = {str(d.uid) for d in self.desired.pods}
            self.relays.keep(uids)  # port-forwards to a pod deleted or moved end, saying so
            self._wake.set()

    def _report_undecodable(self) -> None:
        """A Warning event for each pod of the new desired state this agent cannot read (kept running: _reconcile)."""
        with self._lock:
            undecodable = dict(self.desired.undecodable)
        for uid, (namespace, name, why) in undecodable.items():
            self.events.record(PodRef(namespace, name, uid), "FailedToDecode", f"{why}; {KEPT}", "Warning")

    def _on_masters(self, msg: Message) -> None:
        if self.masters.on_presence(msg):
            self.masters.publish(self.bus)

    def _on_master_presence(self, msg: Message) -> None:
        online = Presence.decode(msg.payload, what="master presence").online if msg.payload else False
        if online != self._master_online:
            self._master_online = online
            self._wake.set()

    def _identify(self, msg: Message, req: ApiRequest) -> None:
        """`ekctl node identify`: blink for `seconds` (0: stop); a duplicate delivery keeps the first end time."""
        if req.name not in (None, self.node):
            raise ValidationError(f"identify: node: {req.name!r} is not this node ({self.node!r})")
        seconds = DEFAULT_IDENTIFY if req.seconds is None else req.seconds
        key = msg.correlation.hex() if msg.correlation else ""
        self.indicator.identify(seconds, key=key)
        self._wake.set()  # the next report carries it; the loop wakes again when it ends
        self._reply(msg, ApiResponse(ok=True, object=self.indicator.status()))

    def _on_rpc(self, msg: Message) -> None:
        req = ApiRequest.decode(msg.payload, what="node rpc")
        if req.verb is Verb.IDENTIFY:
            self._identify(msg, req)
            return
        if req.verb not in (Verb.LOGS, Verb.EXEC, Verb.CP, Verb.PORT_FORWARD):
            raise ValidationError(
                f"verb: {req.verb.value!r} is not served by node agents (supported: logs, exec, cp, identify)"
            )
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
            containers += [c.name for c in pod.pod.spec.init_containers or []]  # `logs -c <init container>` too
            if req.container is None and len(containers) > 1:
                log.debug("logs: defaulting to container %s", container)
            if container not in containers:
                raise NotFoundError(
                    f"container {container!r} is not valid for pod {req.name}",
                    hint=f"choose one of: {', '.join(containers)}",
                )
            if req.verb is Verb.CP:
                self._reply(msg, self._copy(req, pod.uid, container))
                return
            if req.verb is Verb.PORT_FORWARD:
                self._port_forward(msg, req, pod)
                return
            if req.verb is Verb.EXEC and req.tty:
                self._terminal(msg, req, pod.uid, container)
                return
            if req.verb is Verb.EXEC:
                self._exec(msg, req, pod.uid, container)
                return
            if req.follow:
                self._follow(msg, req, pod.uid, container)
                return
            text = self.runtime.logs(pod.uid, container, req.tail, log_window(req, time.time()))
            self._reply(msg, ApiResponse(ok=True, text=text))
        except EdgekubeError as exc:
            self._reply(msg, ApiResponse(ok=False, error=ErrorInfo.of(exc)))

    def _port_forward(self, msg: Message, req: ApiRequest, pod: DesiredPod) -> None:
        """`ekctl port-forward`: open a connection to the pod's port (answer `opened`), or relay bytes into it.

        Opening looks up the pod's IP and connects on a thread of its own: never on the bus thread.
        """
        client = topics.client_of_reply(msg.response_topic or "")
        if client is None or not req.stream:
            raise ValidationError("port-forward: needs a stream id and a response topic edgekube/v1/clients/<id>/reply")
        topic = topics.client_stream(client, req.stream)

        def done(problem: EdgekubeError | None) -> None:
            ok = ApiResponse(ok=True, object={"stream": req.stream, "opened": False})
            self._reply(msg, ok if problem is None else ApiResponse(ok=False, error=ErrorInfo.of(problem)))

        if req.port is None:
            self.relays.handle(req, str(pod.uid), "", topic, done)
            return

        def open_it() -> None:
            try:
                host = "127.0.0.1"  # a hostNetwork pod listens on the node itself
                if not pod.pod.spec.host_network:
                    ips = [o.ip for o in self.runtime.list_pods() if o.uid == pod.uid and o.ip]
                    if not ips:
                        raise EdgekubeError(f"port-forward: pod {req.name} has no IP on node {self.node} yet")
                    host = ips[0]
                if self.relays.handle(req, str(pod.uid), host, topic, done):  # else a duplicate: `done` answered
                    self._reply(msg, ApiResponse(ok=True, object={"stream": req.stream, "opened": True}))
            except EdgekubeError as exc:
                self._reply(msg, ApiResponse(ok=False, error=ErrorInfo.of(exc)))

        threading.Thread(target=open_it, name=f"pf-open-{req.stream}", daemon=True).start()

    def _publish_stream(self, topic: str, payload: bytes) -> None:
        self.bus.publish(topic, payload)

    def _follow(self, msg: Message, req: ApiRequest, uid: PodUID, container: str) -> None:
        """`ekctl logs -f`: start following (answer `opened`), or renew a follow and take the client's ack."""
        client = topics.client_of_reply(msg.response_topic or "")
        if client is None or not req.stream:
            raise ValidationError("logs -f: needs a stream id and a response topic edgekube/v1/clients/<id>/reply")
        window = log_window(req, time.time())
        spec = FollowSpec(
            uid, container, topics.client_stream(client, req.stream), req.stream, req.tail,
            window.since if window is not None else None, req.timestamps,
        )  # fmt: skip
        opened = self.follows.start_or_renew(spec, req.ack)
        self._reply(msg, ApiResponse(ok=True, object={"stream": req.stream, "opened": opened}))

    def _copy(self, req: ApiRequest, uid: PodUID, container: str) -> ApiResponse:
        """`ekctl cp`: a tar of `path` out of the container (base64 in `text`), or `archive` unpacked into it."""
        if not req.path:
            raise ValidationError("cp: path: Required value")
        if req.archive is None:
            tar = self.runtime.copy_from(uid, container, req.path, MAX_CP_BYTES)
            return ApiResponse(ok=True, text=base64.b64encode(tar).decode())
        tar = base64.b64decode(req.archive)
        if len(tar) > MAX_CP_BYTES:
            raise ValidationError(f"cp: the archive is more than the {MAX_CP_BYTES} bytes one copy carries")
        self.runtime.copy_to(uid, container, req.path, tar)
        return ApiResponse(ok=True)

    def _terminal(self, msg: Message, req: ApiRequest, uid: PodUID, container: str) -> None:
        """`ekctl exec -it`: start the command with a terminal, or pass it keystrokes and resizes."""
        client = topics.client_of_reply(msg.response_topic or "")
        if client is None or not req.stream:
            raise ValidationError("exec -it: needs a stream id and a response topic edgekube/v1/clients/<id>/reply")
        opened = self.terminals.handle(req, uid, container, topics.client_stream(client, req.stream))
        self._reply(msg, ApiResponse(ok=True, object={"stream": req.stream, "opened": opened}))

    def _exec(self, msg: Message, req: ApiRequest, uid: PodUID, container: str) -> None:
        """`ekctl exec`: run on a thread of its own (never on the bus thread), at most EXEC_SLOTS at once."""
        if not req.command:
            raise ValidationError("exec: command: Required value", hint="ekctl exec POD -- COMMAND [ARG...]")
        if not self._exec_slots.acquire(blocking=False):
            raise EdgekubeError(f"exec: {EXEC_SLOTS} commands already run on node {self.node}", hint="try again")
        timeout = req.seconds or DEFAULT_EXEC_TIMEOUT
        command = list(req.command)

        def run() -> None:
            try:
                code, output = self.runtime.exec(uid, container, command, timeout, max_output=MAX_EXEC_REPLY)
                self._reply(msg, ApiResponse(ok=True, text=output, object={"exitCode": code}))
            except Exception as exc:  # every failure is the caller's answer, never the thread's end
                self._reply(msg, ApiResponse(ok=False, error=ErrorInfo.of(exc, component="agent")))
            finally:
                self._exec_slots.release()

        threading.Thread(target=run, name=f"exec-{container}", daemon=True).start()

    def _on_probe(self, target: ProbeTarget, result: ProbeResult, flipped: bool) -> None:
        """On a probe worker: record failures as Unhealthy events; wake the loop when a result flipped."""
        if not result.ok:
            namespace, _, name = target.pod.partition("/")
            ref = PodRef(namespace, name, target.uid)
            message = f"{target.kind.value} probe failed: {result.message}"
            self.events.record(ref, "Unhealthy", f"container {target.container.name}: {message}", "Warning")
            self._probe_failed = True  # the LEDs show a failing pod (read and cleared by the next pass)
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
                    usage=hostinfo.usage() | (self.telemetry.usage() if self.telemetry is not None else {}),
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
            self._tell_systemd()

    def _tell_systemd(self) -> None:
        """After a pass: the watchdog ping, READY after the first one, and what the agent is doing."""
        self.notify.watchdog()
        with self._lock:
            pods = len(self.desired.pods)
        broker = "connected" if self.bus.connected else "not connected (running pods from the local copy)"
        status = f"{pods} pod(s) desired; broker {broker}"
        self.notify.serving(status)

    def reconcile(self) -> None:
        """Observe Podman, apply the plan, report status. Safe to run any number of times."""
        with self._reconciling:
            self._reconcile()

    def _reconcile(self) -> None:
        with self._lock:
            desired = list(self.desired.pods)
            generation = self.desired.generation
            undecodable = set(self.desired.undecodable)  # never removed only because this agent cannot read them
            busy = self._actions.busy()  # the same snapshot as desired (PodActions' lock never takes this one)
        now = self.clock()
        found = self.runtime.list_pods()
        # A pod being stopped, restarted or removed is left alone until that finishes.
        observed = [o for o in found if o.uid not in busy]
        by_uid = {o.uid: o for o in observed}
        everything = {o.uid: o for o in found}  # busy pods too: their counts are still reported
        memory = {d.uid: self._memory(d, everything.get(d.uid), now) for d in desired}
        # ReadWriteOnce: a pod whose exclusive volumes this node does not hold is not created, and stopped if present.
        finished = [uid for uid, m in memory.items() if m.finished]
        present = set(everything) | busy  # a pod being created counts: its lease is not released under it
        fence = self.fencing.sync(desired, present, finished=finished, connected=self.bus.connected)
        fenced = [Remove(uid, f"fenced: {why}", 0) for uid, why in fence.fence.items() if uid in by_uid]
        unfenced = [o for o in observed if o.uid not in fence.fence and o.uid not in undecodable]
        actions = [*fenced, *plan(desired, unfenced, busy | self._actions.waiting(now) | set(fence.blocked), memory)]
        wanted = {d.uid: d for d in desired}
        # The devices each pod on Podman holds; a finished pod holds none (Kubernetes frees them too).
        held = {o.uid: () if memory.get(o.uid, PodMemory()).finished else devices_of(o) for o in found}
        self._actions.apply(actions, wanted, by_uid, now, held=held)
        # Drop what the agent remembers about pods no longer on this node (the ledger writes only if any).
        keep = set(wanted) | undecodable
        self._actions.forget(keep)
        self.ledger.retain(keep)
        self.events.retain(keep)
        if actions:
            self._wake.set()  # what the actions changed may call for more (e.g. a job that exited at once)
            busy = self._actions.busy()
            found = self.runtime.list_pods()
            observed = [o for o in found if o.uid not in busy]
            by_uid = {o.uid: o for o in observed}
            everything = {o.uid: o for o in found}
        now = self.clock()
        memory = {d.uid: self._memory(d, everything.get(d.uid), now) for d in desired}
        self._sync_probes(desired, by_uid, memory, now)
        failures = self._actions.failures_to_report()  # ErrImagePull once, then ImagePullBackOff
        for uid, why in fence.blocked.items():
            if uid not in everything:  # waiting for the lease: ContainerCreating with the reason
                failures[uid] = Failure(FAILED_MOUNT, why)
        self._reporter.report(self.bus, desired, everything, memory, failures=failures, generation=generation)
        self._reporter.flush_events(self._bus)
        self._actions.measure_volumes(desired, now)  # sizeLimits, ephemeral-storage: on a thread of its own
        self._next_due = self._actions.next_due(now)  # wake the loop when a back-off ends, not only on resync
        if fence.next_due is not None:  # ... and when a lease runs out (the self-fence needs no read to happen)
            self._next_due = min(fence.next_due, self._next_due or fence.next_due)
        identify_ends = self.indicator.next_due()
        if identify_ends is not None:  # ... and when identify ends
            self._next_due = min(identify_ends, self._next_due or identify_ends)

    def _led_state(self, statuses: list[dict[str, Any]]) -> NodeState:
        """What the LEDs show, from what this pass saw (docs/leds.md)."""
        starting, failing = led_pods.count(statuses)
        if self._probe_failed:
            self._probe_failed = False
            failing = max(failing, 1)
        if self._pi_flags is not None:
            throttled, under_voltage = self._pi_flags()
        else:  # the node's own conditions, so the LEDs and `describe node` never disagree
            throttled = self.health.holds(NodeConditionType.THERMAL_THROTTLING)
            under_voltage = self.health.holds(NodeConditionType.UNDER_VOLTAGE)
        return NodeState(
            started=True, starting_pods=starting, failing_pods=failing, broker_connected=self.bus.connected,
            master_online=self._master_online, master_ready=self._master_not_ready is None, throttled=throttled,
            under_voltage=under_voltage,
        )  # fmt: skip

    def _show_leds(self, statuses: list[dict[str, Any]]) -> None:
        """Update the LEDs from this pass's pod statuses (the reporter calls it before building its report)."""
        try:
            self.indicator.update(self._led_state(statuses))
        except Exception:  # the LEDs never stop the loop
            log.exception("updating the LEDs failed")

    def _memory(self, d: DesiredPod, obs: ObservedPod | None, now: float) -> PodMemory:
        record = self.ledger.get(d.uid, obs.pod_id) if obs is not None else None
        pending = self._actions.pending(d.uid)
        last_state: dict[str, Any] = dict(record.last_state) if record else {}
        back_off = None
        if pending is not None:
            last_state.update(pending.last_state)
            if pending.delay > 0 and now < pending.retry_at:
                back_off = (
                    f"back-off {pending.delay:g}s restarting failed container={pending.culprit or '<sandbox>'} "
                    f"pod={d.pod.metadata.namespace}/{d.pod.metadata.name}"
                )
        specs = [*(c for c in d.pod.spec.init_containers or [] if c.restart_policy == "Always"), *d.pod.spec.containers]
        return PodMemory(
            finished=record.finished if record else None,
            restart_pending=pending is not None,
            restart_due=pending is not None and now >= pending.retry_at,
            back_off=back_off,
            unhealthy=self.prober.unhealthy(d.uid),
            hook_failed=self._actions.hook_failed(d.uid),
            not_ready=frozenset(
                c.name for c in specs if c.readiness_probe is not None and not self.prober.ready(d.uid, c.name)
            ),
            restart_count=dict(record.restart_count) if record else {},
            last_state=last_state,
            container_back_off=self._actions.init.back_off(d, now),
        )

    # -- probes -------------------------------------------------------------------------------------------
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
            seen_all = (*obs.init_containers, *obs.containers)
            running = {c.name: c for c in seen_all if c.state is ContainerRunState.RUNNING}
            sidecars = [c for c in d.pod.spec.init_containers or [] if c.restart_policy == "Always"]
            for spec in [*sidecars, *d.pod.spec.containers]:  # sidecars are probed too (Kubernetes 1.29+)
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

    def _desired_pods(self) -> list[DesiredPod]:
        with self._lock:
            return list(self.desired.pods)

    # -- status -------------------------------------------------------------------------------------------
    def node_object(self) -> dict[str, Any]:
        """Describe this node as a Kubernetes Node object (labels, capacity, addresses, versions)."""
        return self._reporter.node_object()


def log_window(req: ApiRequest, now: float) -> LogWindow | None:
    """The lines `logs` asks for: since a time or these many seconds ago by this node's clock, until a time."""
    if req.since_time is None and req.since_seconds is None and req.until_time is None and not req.timestamps:
        return None
    starts = [unix_time(req.since_time, "sinceTime")] if req.since_time else []
    if req.since_seconds is not None:
        starts.append(now - req.since_seconds)
    until = unix_time(req.until_time, "untilTime") if req.until_time else None
    return LogWindow(since=max(starts) if starts else None, until=until, timestamps=req.timestamps)


def unix_time(text: str, field: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ValidationError(f"logs: {field}: Invalid value: {text!r}: must be an RFC 3339 time") from None
