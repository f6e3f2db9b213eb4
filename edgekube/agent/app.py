"""The agent daemon: wires bus, runtime, desired state and reconcile loop; keeps pods running with no master."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekube import __version__
from edgekube.agent import hostinfo
from edgekube.agent.desired import DesiredState
from edgekube.agent.reconcile import Create, Failure, Remove, plan, pod_status
from edgekube.agent.runtime.protocol import PodRuntime
from edgekube.bus import topics
from edgekube.bus.paho import BusConfig, PahoBus, Will
from edgekube.bus.protocol import Message, MessageBus
from edgekube.model.errors import EdgekubeError, NotFoundError, RuntimeFailure, ValidationError
from edgekube.model.labels import validate_labels
from edgekube.model.names import NodeName, PodUID, check_dns1123_subdomain
from edgekube.model.wire import (
    ApiRequest,
    ApiResponse,
    ErrorInfo,
    Heartbeat,
    NodeDesired,
    NodeReport,
    PodReport,
    Presence,
    Verb,
)

log = logging.getLogger(__name__)


@dataclass
class AgentConfig:
    node_name: str
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    podman_url: str = "unix:///run/podman/podman.sock"
    state_dir: Path = field(default_factory=lambda: Path("/var/lib/edgekube/agent"))
    labels: dict[str, str] = field(default_factory=dict)
    heartbeat_interval: float = 1.0
    #: Podman is re-read this often even without events (level-triggered), and status resent this often.
    resync_interval: float = 2.0
    report_interval: float = 15.0
    max_pods: int = 110

    def __post_init__(self) -> None:
        check_dns1123_subdomain(self.node_name, "node name")
        validate_labels(self.labels, path="node labels")


@dataclass
class _Backoff:
    failure: Failure
    attempts: int
    retry_at: float


class Agent:
    """Reconciles desired pods against the runtime; handlers only record facts and wake the loop."""

    def __init__(self, config: AgentConfig, runtime: PodRuntime, bus: MessageBus | None = None) -> None:
        self.config = config
        self.node = NodeName(config.node_name)
        self.runtime = runtime
        self.boot_id = uuid.uuid4().hex
        self.desired = DesiredState.load(config.state_dir / "desired.json")
        self._bus = bus
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._backoff: dict[PodUID, _Backoff] = {}
        self._removing: set[PodUID] = set()
        self._last_report: bytes = b""
        self._last_report_at = 0.0
        self._seq = 0
        self._host_ip = hostinfo.primary_address()
        self._node_object: dict[str, Any] | None = None
        self._threads = [
            threading.Thread(target=self._loop, name="agent-loop", daemon=True),
            threading.Thread(target=self._heartbeats, name="agent-heartbeat", daemon=True),
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
        if self._bus is not None:
            self._bus.publish(topics.node_online(self.node), Presence(online=False).encode(), retain=True)
            self._bus.close()

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

    # -- loops --------------------------------------------------------------------------------------------
    def _heartbeats(self) -> None:
        while not self._stop.wait(self.config.heartbeat_interval):
            self._seq += 1
            try:
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

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.config.resync_interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.reconcile()
            except Exception:
                log.exception("reconcile failed; retrying in %ss", self.config.resync_interval)

    def reconcile(self) -> None:
        """Observe Podman, apply the plan, report status. Safe to run any number of times."""
        with self._lock:
            desired = list(self.desired.pods)
            generation = self.desired.generation
        now = time.monotonic()
        with self._lock:
            removing = frozenset(self._removing)
        blocked = frozenset(uid for uid, b in self._backoff.items() if b.retry_at > now) | removing
        # A pod being stopped is neither observed nor recreated until its removal finishes.
        observed = [o for o in self.runtime.list_pods() if o.uid not in removing]
        for action in plan(desired, observed, blocked):
            if isinstance(action, Remove):
                self._remove_in_background(action)
            elif isinstance(action, Create):
                self._create(action)
        wanted = {d.uid for d in desired}
        for uid in list(self._backoff):
            if uid not in wanted:
                del self._backoff[uid]
        self._report(desired, self.runtime.list_pods(), generation)

    def _remove_in_background(self, action: Remove) -> None:
        """Stopping waits out the grace period; do it off the loop so other pods start meanwhile."""
        log.info("removing pod %s: %s", action.uid, action.reason)
        with self._lock:
            self._removing.add(action.uid)
        self._backoff.pop(action.uid, None)

        def run() -> None:
            try:
                self.runtime.remove_pod(action.uid, action.grace_seconds)
            except Exception:
                log.exception("removing pod %s failed; will retry", action.uid)
            finally:
                with self._lock:
                    self._removing.discard(action.uid)
                self._wake.set()

        threading.Thread(target=run, name=f"remove-{action.uid[:8]}", daemon=True).start()

    def _create(self, action: Create) -> None:
        d = action.desired
        meta = d.pod.metadata
        try:
            self.runtime.create_pod(d.pod, d.uid, d.spec_hash)
            self._backoff.pop(d.uid, None)
            log.info("started pod %s/%s", meta.namespace, meta.name)
        except RuntimeFailure as exc:
            previous = self._backoff.get(d.uid)
            attempts = previous.attempts + 1 if previous else 1
            delay = min(5.0 * 2 ** (attempts - 1), 300.0)
            self._backoff[d.uid] = _Backoff(Failure(exc.reason, str(exc)), attempts, time.monotonic() + delay)
            log.warning("pod %s/%s failed (%s), retry in %.0fs: %s", meta.namespace, meta.name, exc.reason, delay, exc)

    def _report(self, desired: list[Any], observed: list[Any], generation: int) -> None:
        by_uid = {o.uid: o for o in observed}
        pods = []
        for d in desired:
            backoff = self._backoff.get(d.uid)
            status = pod_status(d, by_uid.get(d.uid), backoff.failure if backoff else None)
            status["hostIP"] = self._host_ip
            pods.append(
                PodReport(uid=d.uid, namespace=d.pod.metadata.namespace, name=d.pod.metadata.name, status=status)
            )
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
