"""The master daemon: wires bus, store, API, scheduler, liveness and dispatch; one reconcile loop, level-triggered."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgekube.bus import topics
from edgekube.bus.paho import BusConfig, PahoBus, Will
from edgekube.bus.protocol import Message, MessageBus
from edgekube.master.api import Api, error_info
from edgekube.master.dispatch import Dispatcher, desired_sets
from edgekube.master.liveness import Liveness
from edgekube.master.scheduler import bind, node_view, schedule
from edgekube.model.errors import EdgekubeError, NotFoundError, ValidationError
from edgekube.model.names import NodeName
from edgekube.model.node import Node
from edgekube.model.pod import PodSpec
from edgekube.model.wire import (
    ApiRequest,
    ApiResponse,
    ApplyResult,
    Heartbeat,
    NodeReport,
    Presence,
    Verb,
)
from edgekube.store.protocol import StateStore
from edgekube.store.state import TinyStateStore

log = logging.getLogger(__name__)


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class MasterConfig:
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    data_dir: Path = field(default_factory=lambda: Path("/var/lib/edgekube/master"))
    #: A node is NotReady after this long without a heartbeat (agents beat every second by default).
    node_timeout: float = 4.0
    #: Level-triggered resync period of the reconcile loop; events also wake it at once.
    resync_interval: float = 1.0
    client_id: str = "edgekube-master"


class Master:
    """Owns the store; every handler only records facts and wakes the loop, which does the deciding."""

    def __init__(self, config: MasterConfig, store: StateStore | None = None, bus: MessageBus | None = None):
        self.config = config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.store: StateStore = store or TinyStateStore(config.data_dir / "state")
        self.liveness = Liveness(timeout=config.node_timeout)
        self.dispatcher = Dispatcher()
        self.api = Api(self.store, self._decorate_node)
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._ready_seen: dict[str, bool] = {}
        self._bus = bus
        self._thread = threading.Thread(target=self._loop, name="master-loop", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self, wait: float | None = None) -> Master:
        if self._bus is None:
            self._bus = PahoBus(
                BusConfig(
                    host=self.config.mqtt_host,
                    port=self.config.mqtt_port,
                    client_id=self.config.client_id,
                    persistent=True,
                    will=Will(topics.MASTER_ONLINE, Presence(online=False).encode()),
                )
            )
            self._bus.on_connect(self._on_connected)
            self._bus.start(wait=wait)
        bus = self._bus
        bus.subscribe(topics.API_REQUEST, self._guard(self._on_api))
        bus.subscribe(topics.APPLY, self._guard(self._on_apply))
        bus.subscribe(topics.ALL_NODE_STATUS, self._guard(self._on_status))
        bus.subscribe(topics.ALL_NODE_HEARTBEAT, self._guard(self._on_heartbeat), qos=0)
        bus.subscribe(topics.ALL_NODE_ONLINE, self._guard(self._on_online))
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        if self._bus is not None:
            self._bus.publish(topics.MASTER_ONLINE, Presence(online=False).encode(), retain=True)
            self._bus.close()
        self.store.close()

    @property
    def bus(self) -> MessageBus:
        assert self._bus is not None, "master not started"
        return self._bus

    def _on_connected(self, _msg: Message) -> None:
        self.bus.publish(topics.MASTER_ONLINE, Presence(online=True).encode(), retain=True)
        with self._lock:
            # After a broker restart retained desired states may be gone: send every node's set again.
            self.dispatcher = Dispatcher(epoch=self.dispatcher.epoch, generation=self.dispatcher.generation)
        self._wake.set()

    def _guard(self, handler: Any) -> Any:
        """Malformed or hostile payloads are logged and dropped (or answered); they never reach the loop."""

        def run(msg: Message) -> None:
            try:
                handler(msg)
            except ValidationError as exc:
                log.warning("rejected message on %s: %s", msg.topic, exc)
                if msg.response_topic:
                    self._reply(msg, ApiResponse(ok=False, error=error_info(exc)))
            except Exception as exc:
                log.exception("failed to handle message on %s", msg.topic)
                if msg.response_topic:
                    self._reply(msg, ApiResponse(ok=False, error=error_info(exc)))

        return run

    def _reply(self, msg: Message, response: ApiResponse | ApplyResult) -> None:
        if msg.response_topic:
            self.bus.publish(msg.response_topic, response.encode(), correlation=msg.correlation)

    # -- handlers ----------------------------------------------------------------------------------------
    def _on_api(self, msg: Message) -> None:
        req = ApiRequest.decode(msg.payload, what="api request")
        if req.verb is Verb.LOGS:
            self._forward_logs(msg, req)
            return
        with self._lock:
            response = self.api.handle(req)
        self._reply(msg, response)
        self._wake.set()

    def _on_apply(self, msg: Message) -> None:
        """`edgekube/v1/apply`: any MQTT client publishes YAML/JSON; the outcome goes to apply/result."""
        try:
            with self._lock:
                result = ApplyResult(ok=True, outcomes=self.api.apply(msg.payload, source="edgekube/v1/apply"))
        except Exception as exc:
            if not isinstance(exc, EdgekubeError):
                log.exception("apply failed")
            else:
                log.warning("apply rejected: %s", exc)
            result = ApplyResult(ok=False, error=error_info(exc))
        self.bus.publish(topics.APPLY_RESULT, result.encode())
        if msg.response_topic:
            self.bus.publish(msg.response_topic, result.encode(), correlation=msg.correlation)
        self._wake.set()

    def _forward_logs(self, msg: Message, req: ApiRequest) -> None:
        """Logs live on the node: forward the request with the caller's response topic; the agent answers."""
        with self._lock:
            try:
                pod = self.store.get("Pod", req.namespace or "default", req.name or "")
            except NotFoundError as exc:
                self._reply(msg, ApiResponse(ok=False, error=error_info(exc)))
                return
        node = pod["spec"].get("nodeName")
        if not node:
            self._reply(
                msg,
                ApiResponse(
                    ok=False,
                    error=error_info(
                        EdgekubeError(
                            f"pod {req.namespace or 'default'}/{req.name} is not scheduled to a node yet",
                            hint="see `ekctl describe pod " + (req.name or "") + "`",
                        )
                    ),
                ),
            )
            return
        if not self.liveness.ready(node):
            self._reply(
                msg,
                ApiResponse(
                    ok=False,
                    error=error_info(
                        EdgekubeError(
                            f"node {node} is not ready: {self.liveness.reason(node)}",
                            hint="logs come from the node itself",
                        )
                    ),
                ),
            )
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

    def _on_status(self, msg: Message) -> None:
        node = topics.node_of(msg.topic)
        report = NodeReport.decode(msg.payload, what=f"status of {node}")
        if report.node != node:
            raise ValidationError(f"status: node: {report.node!r} does not match the topic's node {node!r}")
        registered = Node.from_dict(report.node_object)
        if registered.metadata.name != node:
            raise ValidationError(f"status: nodeObject.metadata.name: must be {node!r}")
        with self._lock:
            self._register(registered)
            for item in report.pods:
                self._record_pod_status(node, item.uid, item.namespace, item.name, item.status)
        self.liveness.heartbeat(node, report.boot_id, {}, report.observed_generation)
        self._wake.set()

    def _register(self, node: Node) -> None:
        """First report creates the Node; later ones refresh status but keep labels (the master owns them)."""
        data = node.to_dict()
        try:
            current = self.store.get("Node", "", node.metadata.name)
        except NotFoundError:
            data["metadata"]["namespace"] = ""
            self.store.create(data)
            log.info("node %s registered", node.metadata.name)
            return
        status = data.get("status", {})
        if current.get("status") != status:
            self.store.update({**current, "status": status})

    def _record_pod_status(self, node: str, uid: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        try:
            pod = self.store.get("Pod", namespace, name)
        except NotFoundError:
            return  # deleted meanwhile; the agent removes it on the next desired state
        if pod["metadata"].get("uid") != uid or pod["spec"].get("nodeName") != node:
            return  # a report about an older incarnation, or from a node the pod was moved away from
        if pod.get("status") != status:
            self.store.update({**pod, "status": status})

    # -- the loop --------------------------------------------------------------------------------------------
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
        """Schedule pending pods onto ready nodes, then publish every node's desired set that changed."""
        with self._lock:
            nodes = self.store.list("Node", None)
            pods = self.store.list("Pod", None)
            self._schedule(nodes, pods)
            sets = desired_sets([n["metadata"]["name"] for n in nodes], pods)
            changes = self.dispatcher.changes(sets)
        for desired in changes:
            self.bus.publish(topics.node_desired(desired.node), desired.encode(), retain=True)

    def _schedule(self, nodes: list[dict[str, Any]], pods: list[dict[str, Any]]) -> None:
        bound: dict[str, list[PodSpec]] = {}
        pending: list[dict[str, Any]] = []
        for pod in pods:
            node = pod["spec"].get("nodeName")
            if node:
                bound.setdefault(node, []).append(PodSpec.model_validate(pod["spec"]))
            else:
                pending.append(pod)
        if not pending:
            return
        views = {
            n["metadata"]["name"]: node_view(
                NodeName(n["metadata"]["name"]),
                ready=self.liveness.ready(n["metadata"]["name"]),
                labels=n["metadata"].get("labels", {}),
                allocatable=(n.get("status") or {}).get("allocatable", {}),
                unschedulable=bool(n.get("spec", {}).get("unschedulable")),
                bound=bound.get(n["metadata"]["name"], []),
            )
            for n in nodes
        }
        pending.sort(key=lambda p: p["metadata"].get("creationTimestamp", ""))
        for pod in pending:
            spec = PodSpec.model_validate(pod["spec"])
            decision = schedule(spec, list(views.values()))
            if decision.node is None:
                self._mark_unschedulable(pod, decision.message)
                continue
            views[decision.node] = bind(views[decision.node], spec)
            pod["spec"]["nodeName"] = decision.node
            status = dict(pod.get("status") or {})
            status.update(phase="Pending", reason=None, message=None)
            status["conditions"] = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now_rfc3339()}]
            pod["status"] = {k: v for k, v in status.items() if v is not None}
            pod.update(self.store.update(pod))
            log.info("scheduled %s/%s to %s", pod["metadata"]["namespace"], pod["metadata"]["name"], decision.node)

    def _mark_unschedulable(self, pod: dict[str, Any], message: str) -> None:
        status = pod.get("status") or {}
        if status.get("reason") == "Unschedulable" and status.get("message") == message:
            return
        pod["status"] = {
            "phase": "Pending",
            "reason": "Unschedulable",
            "message": message,
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}],
        }
        pod.update(self.store.update(pod))

    # -- views ---------------------------------------------------------------------------------------------
    def _decorate_node(self, obj: dict[str, Any]) -> dict[str, Any]:
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


def run_master(config: MasterConfig) -> None:
    """Run until SIGTERM/SIGINT (systemd stop, Ctrl-C)."""
    master = Master(config).start()
    log.info("master up: mqtt %s:%s, data %s", config.mqtt_host, config.mqtt_port, config.data_dir)
    try:
        while True:
            time.sleep(3600)
    finally:
        master.stop()
