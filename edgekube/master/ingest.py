"""Status ingest: what nodes say (presence, heartbeats, status reports, events) into the store and liveness.

The master's handlers for the node topics; each only records facts (store writes under the master's lock) and
wakes the loop, which does the deciding. A node may only speak for itself: a payload naming another node than
its topic is refused.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from edgekube.bus import topics
from edgekube.bus.protocol import Message
from edgekube.master.cache import CachedStore
from edgekube.master.dispatch import Dispatcher
from edgekube.master.eventlog import EventLog
from edgekube.master.liveness import Liveness
from edgekube.master.nodemetrics import NodeMetricsCache
from edgekube.model.errors import NotFoundError, ValidationError
from edgekube.model.node import Node
from edgekube.model.types import Obj
from edgekube.model.wire import EventReport, Heartbeat, NodeMetrics, NodeReport, Presence

log = logging.getLogger(__name__)


class StatusIngest:
    """Handlers of the node topics; `lock` is the master's, `wake` runs the master's loop soon."""

    def __init__(
        self,
        store: CachedStore,
        liveness: Liveness,
        events: EventLog,
        dispatcher: Dispatcher,
        *,
        lock: threading.RLock,
        wake: Callable[[], None],
        metrics: NodeMetricsCache | None = None,
    ) -> None:
        self.store = store
        self.liveness = liveness
        self.metrics = metrics
        self.events = events
        self.dispatcher = dispatcher
        self._lock = lock
        self._wake = wake
        #: The Node object each agent last reported (validated and registered).
        self._node_objects: dict[str, Obj] = {}

    def presence(self, msg: Message) -> None:
        node = topics.node_of(msg.topic)
        if not msg.payload:
            return  # a cleared retained message
        presence = Presence.decode(msg.payload, what=f"presence of {node}")
        self.liveness.presence(node, presence.online, presence.boot_id)
        if presence.online:
            with self._lock:
                self.dispatcher.forget(node)
        self._wake()

    def heartbeat(self, msg: Message) -> None:
        node = topics.node_of(msg.topic)
        beat = Heartbeat.decode(msg.payload, what=f"heartbeat of {node}")
        if beat.node != node:
            raise ValidationError(f"heartbeat: node: {beat.node!r} does not match the topic's node {node!r}")
        was_ready = self.liveness.ready(node)
        self.liveness.heartbeat(node, beat.boot_id, beat.usage, beat.observed_generation)
        if not was_ready:
            self._wake()

    def node_metrics(self, msg: Message) -> None:
        """A node's telemetry report: kept in memory (NodeMetricsCache) for top, describe and /metrics."""
        if self.metrics is None:
            return
        node = topics.node_of(msg.topic)
        report = NodeMetrics.decode(msg.payload, what=f"metrics of {node}")
        if report.node != node:
            raise ValidationError(f"metrics: node: {report.node!r} does not match the topic's node {node!r}")
        self.metrics.record(report)

    def node_events(self, msg: Message) -> None:
        node = topics.node_of(msg.topic)
        report = EventReport.decode(msg.payload, what=f"events of {node}")
        with self._lock:
            self.events.ingest(node, report)

    def status(self, msg: Message) -> None:
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
        self._wake()

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
