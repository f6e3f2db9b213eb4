"""Reports the node to the master: pod status (changes plus a periodic resend), the Node object, events; for Agent."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from edgekube import __version__
from edgekube.agent import hostinfo
from edgekube.agent.devices import DeviceTable
from edgekube.agent.events import EventRecorder
from edgekube.agent.health.monitor import HealthMonitor
from edgekube.agent.nfsprobe import NfsProber
from edgekube.agent.reconcile import DesiredPod, Failure, PodMemory, pod_status
from edgekube.agent.runtime.protocol import ObservedPod, PodRuntime
from edgekube.bus import topics
from edgekube.bus.protocol import MessageBus
from edgekube.model.names import NodeName, PodUID
from edgekube.model.wire import EventReport, NodeReport, PodReport

log = logging.getLogger(__name__)


class StatusReporter:
    """Publishes what the agent sees; a report equal to the last one is skipped until the periodic resend."""

    def __init__(
        self,
        node: NodeName,
        boot_id: str,
        runtime: PodRuntime,
        events: EventRecorder,
        *,
        labels: Mapping[str, str],
        max_pods: int,
        report_interval: float,
        nfs: NfsProber | None = None,
        devices: DeviceTable | None = None,
        health: HealthMonitor | None = None,
        ephemeral_storage: tuple[int, int] | None = None,
    ) -> None:
        self.node = node
        self.boot_id = boot_id
        self.runtime = runtime
        self.events = events
        self.labels = labels
        self.max_pods = max_pods
        self.report_interval = report_interval
        #: NFS reachability for the Node's status (nfsServers, the NFSReachable condition); a change is sent at once.
        self.nfs = nfs
        #: Pi hardware advertised as extended resources in capacity and allocatable (edgekube.io/serial, ...).
        self.devices = devices
        #: Node conditions from the health monitor (MemoryPressure, ..., ThermalThrottling); a change is sent at once.
        self.health = health
        #: (capacity, allocatable) bytes of ephemeral-storage (hostinfo.ephemeral_storage); None: not reported.
        self.ephemeral_storage = ephemeral_storage
        #: The node proxy the pod network runs (nodeInfo.proxyMode: nftables or userspace); "": not reported.
        self.proxy_mode = ""
        #: What the LEDs show (node status `leds`, docs/leds.md), and who is told every pod's status before each
        #: report is built (the Agent's LEDs): both set by the Agent; a change of pattern is sent at once.
        self.leds: Callable[[], dict[str, Any]] | None = None
        self.on_pods: Callable[[list[dict[str, Any]]], None] | None = None
        self.led_events: Callable[[Callable[[list[dict[str, Any]]], None]], int] | None = None
        #: Flushes node events about the masters (StaleMaster, agent/witness.py); None: none.
        self.master_events: Callable[[Callable[[list[dict[str, Any]]], None]], int] | None = None
        self._last_report: bytes = b""
        self._last_report_at = 0.0
        self._host_ip = hostinfo.primary_address()
        self._node_object: dict[str, Any] | None = None

    def resend(self) -> None:
        """Send the next report even if nothing changed (the master may have missed reports while we were away)."""
        self._last_report = b""

    def report(
        self,
        bus: MessageBus,
        desired: list[DesiredPod],
        observed: dict[PodUID, ObservedPod],
        memory: dict[PodUID, PodMemory],
        *,
        failures: dict[PodUID, Failure],
        generation: int,
    ) -> None:
        pods = []
        for d in desired:
            status = pod_status(d, observed.get(d.uid), failures.get(d.uid), memory[d.uid])
            status["hostIP"] = self._host_ip
            if d.pod.spec.host_network and status.get("phase") in ("Running", "Succeeded", "Failed"):
                status["podIP"] = self._host_ip  # the kubelet's: a hostNetwork pod's address is its node's
            pods.append(
                PodReport(uid=d.uid, namespace=d.pod.metadata.namespace, name=d.pod.metadata.name, status=status)
            )
        if self.on_pods is not None:
            self.on_pods([p.status for p in pods])  # the LEDs follow, and this report carries what they show
        if not bus.connected:
            return  # paho would queue every report unbounded; on reconnect the whole state is sent anyway
        # Only changes are sent, plus a periodic resend so a restarted master converges (level-triggered).
        now = time.monotonic()
        nfs = self._node_status()
        fingerprint = json.dumps([[p.model_dump() for p in pods], nfs], sort_keys=True).encode()
        periodic = now - self._last_report_at > self.report_interval
        if fingerprint == self._last_report and not periodic:
            return
        if self._node_object is None or periodic:
            # Podman's /info costs ~1 s on a busy host: refresh it only on the periodic resend.
            self._node_object = self.node_object()
        report = NodeReport(
            node=self.node,
            boot_id=self.boot_id,
            observed_generation=generation,
            node_object=_with_status(self._node_object, nfs),
            pods=pods,
        )
        bus.publish(topics.node_status(self.node), report.encode())
        self._last_report, self._last_report_at = fingerprint, now

    def flush_events(self, bus: MessageBus | None) -> None:
        """Publish recorded events in batches (QoS 1) while connected; they wait in memory otherwise."""
        if bus is None or not bus.connected:
            return
        topic = topics.node_events(self.node)

        def publish(batch: list[dict[str, Any]]) -> None:
            bus.publish(topic, EventReport(node=self.node, events=batch).encode())

        try:
            if self.events.pending:
                self.events.flush(publish)
            if self.nfs is not None:
                self.nfs.flush_events(publish)  # node events: NFSServerUnreachable, NFSServerReachable
            if self.led_events is not None:
                self.led_events(publish)  # node events: LEDs (what they show, also while cut off)
            if self.health is not None:
                self.health.flush_events(publish)  # node events: NodeHasDiskPressure, EvictionThresholdMet, ...
            if self.master_events is not None:
                self.master_events(publish)  # node events: StaleMaster
        except Exception:
            log.exception("publishing events failed; they stay queued")

    def node_object(self) -> dict[str, Any]:
        """The Node object of this host, with its NFS reachability and volumes in use (`report` refreshes both)."""
        return _with_status(self._host_object(), self._node_status())

    def _node_status(self) -> dict[str, Any]:
        """What each report sends fresh: NFS reachability, and volumesInUse as the runtime last listed them.

        The runtime answers volumes_in_use from memory (it lists them off the loop), so asking every pass is free;
        a change is in the fingerprint, so it is sent at once and the master can let a claim's directory go.
        """
        status = self.nfs.node_status() if self.nfs is not None else {}
        if self.health is not None:
            conditions = self.health.node_status().get("conditions", [])
            if conditions:
                status = {**status, "conditions": [*status.get("conditions", []), *conditions]}
        if self.leds is not None:
            status = {**status, "leds": self.leds()}
        in_use = self.runtime.volumes_in_use()
        return status if in_use is None else {**status, "volumesInUse": in_use}

    def _host_object(self) -> dict[str, Any]:
        info = self.runtime.info()
        cap = hostinfo.capacity(self.max_pods)
        if self.devices is not None:
            cap = {**cap, **self.devices.capacity()}
        allocatable = cap
        if self.ephemeral_storage is not None:  # the kubelet's forms: capacity in Ki, allocatable in bytes
            total, free = self.ephemeral_storage
            cap = {**cap, "ephemeral-storage": f"{total // 1024}Ki"}
            allocatable = {**cap, "ephemeral-storage": str(free)}
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
                    **hostinfo.model_labels(),
                    **self.labels,
                },
            },
            "status": {
                "capacity": cap,
                "allocatable": allocatable,
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
                    **({"proxyMode": self.proxy_mode} if self.proxy_mode else {}),
                },
            },
        }


def _with_status(node: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`node` with `extra`'s keys set in its status (a copy; the cached object is left as it was)."""
    return {**node, "status": {**node.get("status", {}), **extra}} if extra else node
