"""Simulated node agents for integration tests and benchmarks: many nodes on ONE MQTT connection, no Podman.

Each simulated node speaks the agent's protocol (docs/protocol.md) as edgekube/agent/app.py does: retained
presence on `nodes/<n>/online`, a heartbeat every `heartbeat_interval`, a NodeReport (Node object + every pod's
status) on `nodes/<n>/status` whenever something changed and every `report_interval`, and it accepts desired
states on `nodes/<n>/desired` with the agent's epoch/generation rule. Every desired pod is reported Pending
(ContainerCreating) at first and Running + Ready `start_delay` seconds after the node first saw it.

One connection serves every node (200 nodes cost one socket and two threads). It therefore has no per-node
Last Will: `kill(node)` publishes the retained `{"online": false}` itself, which is what the broker does with a
dead agent's Will; `kill(node, will=False)` only goes silent, like a cut network cable.

    with SimNodes(broker.port, ["node-1", "node-2", "node-3"]) as sims:
        sims.kill("node-2")                     # Will fired: presence offline, heartbeats and reports stop
        sims.revive("node-2")                   # new boot id, online again, takes the newest desired state
        sims.running("node-1")                  # {"default/web-x2b4z", ...}: pods it reports Running
        sims.first_seen("default", "web-x2b4z") # time.monotonic() when any node first received that pod
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from edgekube.bus import topics
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.bus.protocol import Message
from edgekube.model.wire import SCHEMA, EventReport, NodeDesired, Presence

DEFAULT_CAPACITY: dict[str, Any] = {"cpu": "4", "memory": "4Gi", "pods": 110}


def _rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Pod:
    uid: str
    namespace: str
    name: str
    containers: list[tuple[str, str]]  # (name, image)
    seen: float  # monotonic
    started_wall: float
    #: The pod's address on its node's pod network ("" : none reported).
    ip: str = ""
    #: set_ready(): the Ready condition once Running (a failing readiness probe reports False).
    ready: bool = True
    #: The two statuses it is ever reported with, built once (200 nodes x 50 pods report often).
    _pending: dict[str, Any] | None = None
    _running: dict[str, Any] | None = None

    def status(self, now: float, delay: float, host_ip: str) -> dict[str, Any]:
        if now - self.seen < delay:
            if self._pending is None:
                self._pending = {
                    "phase": "Pending",
                    "hostIP": host_ip,
                    # As the agent reports it (edgekube/agent/reconcile.py): a reason only when the pod failed.
                    "conditions": [{"type": "Ready", "status": "False"}],
                    "containerStatuses": [
                        {
                            "name": n,
                            "image": i,
                            "ready": False,
                            "restartCount": 0,
                            "state": {"waiting": {"reason": "ContainerCreating"}},
                        }
                        for n, i in self.containers
                    ],
                }
            return self._pending
        if self._running is None:
            started = _rfc3339(self.started_wall + delay)
            self._running = {
                "phase": "Running",
                "hostIP": host_ip,
                **({"podIP": self.ip} if self.ip else {}),
                "startTime": started,
                "conditions": [{"type": "Ready", "status": "True" if self.ready else "False"}],
                "containerStatuses": [
                    {
                        "name": n,
                        "image": i,
                        "ready": self.ready,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": started}},
                    }
                    for n, i in self.containers
                ],
            }
        return self._running

    def report(self, now: float, delay: float, host_ip: str) -> dict[str, Any]:
        """This pod's entry of a NodeReport, in wire form (PodReport)."""
        status = self.status(now, delay, host_ip)
        return {"schema": SCHEMA, "uid": self.uid, "namespace": self.namespace, "name": self.name, "status": status}


@dataclass
class _Node:
    name: str
    index: int
    labels: dict[str, str]
    capacity: dict[str, Any]
    alive: bool = True
    boot_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    epoch: str = ""
    generation: int = -1
    pods: dict[str, _Pod] = field(default_factory=dict)
    #: The newest desired state published while the node was dead (what the retained message would give it).
    missed: NodeDesired | None = None
    seq: int = 0
    last_beat: float = 0.0
    #: Something to report: a new desired state, a revival; `next_change` is when a Pending pod turns Running.
    dirty: bool = True
    next_change: float | None = None
    last_report_at: float = 0.0
    #: Report a podIP for each pod (SimNodes(pod_ips=True)); addresses count up from .2 of 10.42.<index>.0/24.
    pod_ips: bool = False
    ip_seq: int = 0
    #: The InternalIP it reports (SimNodes(host_ips=...)); "" : 10.0.<index / 250>.<index % 250 + 1>.
    address: str = ""

    @property
    def host_ip(self) -> str:
        return self.address or f"10.0.{self.index // 250}.{self.index % 250 + 1}"

    def node_object(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "namespace": "",
                "labels": {
                    "kubernetes.io/hostname": self.name,
                    "kubernetes.io/arch": "arm64",
                    "kubernetes.io/os": "linux",
                    **self.labels,
                },
            },
            "status": {
                "capacity": dict(self.capacity),
                "allocatable": dict(self.capacity),
                "addresses": [
                    {"type": "InternalIP", "address": self.host_ip},
                    {"type": "Hostname", "address": self.name},
                ],
                "nodeInfo": {"architecture": "arm64", "containerRuntimeVersion": "sim://1", "agentVersion": "sim"},
            },
        }


class SimNodes:
    """N simulated agents on one MQTT connection; thread-safe; use as a context manager or call start()/close()."""

    def __init__(
        self,
        port: int,
        nodes: Sequence[str] | int,
        *,
        host: str = "127.0.0.1",
        start_delay: float = 0.0,
        heartbeat_interval: float = 0.5,
        report_interval: float = 5.0,
        labels: Mapping[str, Mapping[str, str]] | None = None,
        capacity: Mapping[str, Any] | None = None,
        tick: float = 0.02,
        pod_ips: bool = False,
        never_ready_images: Sequence[str] = (),
        host_ips: Mapping[str, str] | None = None,
    ) -> None:
        names = [f"node-{i + 1}" for i in range(nodes)] if isinstance(nodes, int) else list(nodes)
        self.start_delay = start_delay
        #: A pod with one of these images runs but never turns Ready (a readiness probe that always fails).
        self.never_ready_images = frozenset(never_ready_images)
        self.heartbeat_interval = heartbeat_interval
        self.report_interval = report_interval
        self._tick = tick
        self._nodes = {
            n: _Node(
                n,
                i,
                dict((labels or {}).get(n, {})),
                dict(capacity or DEFAULT_CAPACITY),
                pod_ips=pod_ips,
                address=(host_ips or {}).get(n, ""),
            )
            for i, n in enumerate(names)
        }
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._bus = PahoBus(BusConfig(host=host, port=port, client_id=f"edgekube-sim-{uuid.uuid4().hex[:8]}"))
        self._thread = threading.Thread(target=self._run, name="simnodes", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self, wait: float = 10) -> SimNodes:
        self._bus.subscribe(f"{topics.NODES}/+/desired", self._on_desired)
        self._bus.start(wait=wait)
        for node in self._nodes.values():
            self._online(node)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for node in self._nodes.values():
            if node.alive:
                self._bus.publish(topics.node_online(node.name), Presence(online=False).encode(), retain=True)
        self._bus.close()

    def __enter__(self) -> SimNodes:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @property
    def names(self) -> list[str]:
        return list(self._nodes)

    # -- faults ----------------------------------------------------------------------------------------
    def kill(self, node: str, *, will: bool = True) -> None:
        """Stop the node: no more heartbeats, reports or desired states; `will` publishes its Last Will."""
        with self._lock:
            self._nodes[node].alive = False
        if will:
            self._bus.publish(topics.node_online(node), Presence(online=False).encode(), retain=True)

    def revive(self, node: str) -> None:
        """Start the node again (new boot id), with the pods it ran, and take the newest desired state."""
        with self._lock:
            sim = self._nodes[node]
            sim.alive = True
            sim.boot_id = uuid.uuid4().hex
            sim.dirty = True
            if sim.missed is not None:
                self._offer(sim, sim.missed)
                sim.missed = None
        self._online(sim)

    def set_ready(self, namespace: str, name: str, ready: bool) -> None:
        """Report a Running pod Ready or not (its readiness probe passing or failing), at once."""
        with self._lock:
            for sim in self._nodes.values():
                for pod in sim.pods.values():
                    if (pod.namespace, pod.name) == (namespace, name):
                        pod.ready, pod._running = ready, None
                        sim.dirty = True

    def publish_events(self, node: str, events: Iterable[Mapping[str, Any]]) -> None:
        """Publish an EventReport from `node` (as an agent with events to tell would)."""
        report = EventReport(node=node, events=[dict(e) for e in events])
        self._bus.publish(topics.node_events(node), report.encode())

    # -- what the nodes run --------------------------------------------------------------------------------
    def desired(self, node: str) -> set[str]:
        """ "namespace/name" of every pod the node was told to run."""
        with self._lock:
            return {f"{p.namespace}/{p.name}" for p in self._nodes[node].pods.values()}

    def running(self, node: str) -> set[str]:
        """ "namespace/name" of every pod the node reports Running."""
        now = time.monotonic()
        with self._lock:
            return {
                f"{p.namespace}/{p.name}" for p in self._nodes[node].pods.values() if now - p.seen >= self.start_delay
            }

    def uids(self, node: str) -> set[str]:
        with self._lock:
            return set(self._nodes[node].pods)

    def counts(self) -> dict[str, int]:
        """Pods per node (desired ones)."""
        with self._lock:
            return {n: len(s.pods) for n, s in self._nodes.items()}

    def first_seen(self, namespace: str, name: str) -> float | None:
        """time.monotonic() when a desired state first carried this pod (to any node), or None."""
        with self._lock:
            return self._seen.get((namespace, name))

    def seen(self) -> dict[tuple[str, str], float]:
        """first_seen of every pod any desired state ever carried: {(namespace, name): time.monotonic()}."""
        with self._lock:
            return dict(self._seen)

    # -- internals -------------------------------------------------------------------------------------
    def _online(self, node: _Node) -> None:
        self._bus.publish(
            topics.node_online(node.name), Presence(online=True, boot_id=node.boot_id).encode(), retain=True
        )

    def _on_desired(self, msg: Message) -> None:
        if not msg.payload:
            return
        node_name = topics.node_of(msg.topic)
        message = NodeDesired.decode(msg.payload, what=f"desired state of {node_name}")
        with self._lock:
            sim = self._nodes.get(node_name)
            if sim is None or message.node != node_name:
                return
            if not sim.alive:
                sim.missed = message
                return
            self._offer(sim, message)

    def _offer(self, sim: _Node, message: NodeDesired) -> None:
        """The agent's rule: a new epoch, or a newer generation within the epoch; the whole set replaces the old."""
        if message.epoch == sim.epoch and message.generation <= sim.generation:
            return
        sim.epoch, sim.generation = message.epoch, message.generation
        now, wall = time.monotonic(), time.time()
        pods: dict[str, _Pod] = {}
        for raw in message.pods:
            meta, spec = raw["metadata"], raw["spec"]
            uid = meta["uid"]
            kept = sim.pods.get(uid)
            if kept is None:
                containers = [(c["name"], c["image"]) for c in spec["containers"]]
                kept = _Pod(uid, meta["namespace"], meta["name"], containers, now, wall)
                kept.ready = not any(image in self.never_ready_images for _, image in containers)
                if sim.pod_ips:  # an address from the node's pod CIDR (10.42.<index>.0/24), as a real agent reports
                    sim.ip_seq += 1
                    kept.ip = f"10.42.{sim.index}.{sim.ip_seq % 250 + 2}"
                self._seen.setdefault((meta["namespace"], meta["name"]), now)
            pods[uid] = kept
        sim.pods = pods
        sim.dirty = True

    def _run(self) -> None:
        while not self._stop.wait(self._tick):
            now = time.monotonic()
            outbox: list[tuple[str, bytes, int]] = []
            with self._lock:
                for sim in self._nodes.values():
                    if sim.alive:
                        outbox.extend(self._due(sim, now))
            for topic, payload, qos in outbox:
                self._bus.publish(topic, payload, qos=qos)

    def _due(self, sim: _Node, now: float) -> list[tuple[str, bytes, int]]:
        # Payloads are built as plain JSON (the wire form of Heartbeat and NodeReport): hundreds of nodes
        # must not starve this process, or their heartbeats would be late for reasons of the test's own.
        out: list[tuple[str, bytes, int]] = []
        if now - sim.last_beat >= self.heartbeat_interval:
            sim.seq += 1
            sim.last_beat = now
            beat = {
                "schema": SCHEMA,
                "node": sim.name,
                "bootId": sim.boot_id,
                "seq": sim.seq,
                "observedGeneration": sim.generation,
                "usage": {},
            }
            out.append((topics.node_heartbeat(sim.name), _json(beat), 0))
        due = sim.dirty or (sim.next_change is not None and now >= sim.next_change)
        if due or now - sim.last_report_at >= self.report_interval:
            report = {
                "schema": SCHEMA,
                "node": sim.name,
                "bootId": sim.boot_id,
                "observedGeneration": sim.generation,
                "nodeObject": sim.node_object(),
                "pods": [p.report(now, self.start_delay, sim.host_ip) for p in sim.pods.values()],
            }
            out.append((topics.node_status(sim.name), _json(report), 1))
            pending = [p.seen + self.start_delay for p in sim.pods.values() if now - p.seen < self.start_delay]
            sim.dirty, sim.next_change, sim.last_report_at = False, min(pending, default=None), now
        return out


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
