"""The master's Prometheus Collector: every node's latest usage and its containers' as the master holds them.

Registered when `metrics_port` is set (master.app) and served by edgekube.metrics_http. A scrape reads the
heartbeat usage (liveness) and the NodeMetrics cache in memory: no store read, no message to any node.
Gauges carry a `node` label; counters stay on each agent's own /metrics (the master sees only snapshots).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edgekube.master.nodemetrics import NodeMetricsCache

_NODE_GAUGES = (
    ("cpuCores", "edgekube_node_cpu_usage_cores", "Cores busy on the node over its last sampling interval."),
    ("memoryWorkingSetBytes", "edgekube_node_memory_working_set_bytes", "Memory in use on the node."),
    ("rootfsAvailableBytes", "edgekube_node_rootfs_avail_bytes", "Free space on the node's root filesystem."),
    ("imagefsAvailableBytes", "edgekube_node_imagefs_avail_bytes", "Free space on the node's container store."),
    ("diskWriteBytesPerSecond", "edgekube_node_disk_write_bytes_per_second", "Writes to the node's root device."),
    ("socTemperatureC", "edgekube_node_soc_temperature_celsius", "The node's SoC temperature."),
)
_CONTAINER = ["node", "namespace", "pod", "container"]


class MasterCollector(Collector):
    """`nodes()` lists the known node names; `usage(node)` / `ready(node)` come from liveness."""

    def __init__(
        self,
        nodes: Callable[[], list[str]],
        usage: Callable[[str], dict[str, float]],
        ready: Callable[[str], bool],
        metrics: NodeMetricsCache,
    ) -> None:
        self.nodes = nodes
        self.usage = usage
        self.ready = ready
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        names = sorted(self.nodes())  # the registered nodes: a deleted node's last report is not shown
        ready = GaugeMetricFamily("edgekube_node_ready", "1 while the node is Ready.", labels=["node"])
        gauges = {key: GaugeMetricFamily(name, text, labels=["node"]) for key, name, text in _NODE_GAUGES}
        cpu = GaugeMetricFamily(
            "edgekube_container_cpu_usage_cores", "Cores the container used over its node's last interval.",
            labels=_CONTAINER,
        )  # fmt: skip
        memory = GaugeMetricFamily(
            "edgekube_container_memory_working_set_bytes", "Memory in use by the container.", labels=_CONTAINER
        )
        for node in names:
            is_ready = self.ready(node)
            ready.add_metric([node], 1.0 if is_ready else 0.0)
            usage = self.usage(node) if is_ready else {}
            for key, family in gauges.items():
                if key in usage:
                    family.add_metric([node], usage[key])
            report = self.metrics.current(node) if is_ready else None
            for c in report.containers if report is not None else []:
                labels = [node, c.namespace, c.pod, c.container]
                if c.cpu_cores is not None:
                    cpu.add_metric(labels, c.cpu_cores)
                memory.add_metric(labels, c.memory_bytes)
        yield ready
        yield from gauges.values()
        yield cpu
        yield memory
