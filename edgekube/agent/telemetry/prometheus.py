"""The agent's Prometheus Collector: the telemetry sampler's latest sample as metric families, built per scrape.

Registered by the agent when `metrics_port` is set and served by edgekube.metrics_http. A scrape reads only
what the sampler holds in memory: it never reads /proc or asks Podman itself. Names follow Prometheus'
conventions (base units, `_total` for counters, `_bytes`, `_seconds`) and cAdvisor's for containers.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edgekube.agent.telemetry.sampler import Sampler

_CONTAINER = ["namespace", "pod", "container"]


class TelemetryCollector(Collector):
    """Metric families of the sampler's latest sample; nothing before the first sample but the sample time."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler

    def collect(self) -> Iterator[Metric]:
        sample = self.sampler.latest
        if sample is None:
            return
        yield GaugeMetricFamily(
            "edgekube_telemetry_last_sample_timestamp_seconds", "When the node was last sampled (Unix time).",
            value=sample.wall,
        )  # fmt: skip
        yield GaugeMetricFamily("edgekube_node_cpu_count", "CPUs of the node.", value=sample.cpus)
        if sample.cpu is not None:
            seconds = CounterMetricFamily(
                "edgekube_node_cpu_seconds_total", "CPU time spent in each mode, all CPUs together.", labels=["mode"]
            )
            for mode, value in sample.cpu.modes.items():
                seconds.add_metric([mode], value)
            yield seconds
        if sample.cpu_cores is not None:
            yield GaugeMetricFamily(
                "edgekube_node_cpu_usage_cores", "Cores busy on average over the last sampling interval.",
                value=sample.cpu_cores,
            )  # fmt: skip
        if sample.load is not None:
            for minutes, value in zip((1, 5, 15), sample.load, strict=True):
                yield GaugeMetricFamily(f"edgekube_node_load{minutes}", f"{minutes}-minute load average.", value=value)
        for key, name, text in (
            ("MemTotal", "edgekube_node_memory_total_bytes", "Memory of the node."),
            ("MemAvailable", "edgekube_node_memory_available_bytes", "Memory available without swapping."),
        ):
            if key in sample.memory:
                yield GaugeMetricFamily(name, text, value=sample.memory[key])
        if sample.memory_working_set is not None:
            yield GaugeMetricFamily(
                "edgekube_node_memory_working_set_bytes", "Memory in use (total minus available).",
                value=sample.memory_working_set,
            )  # fmt: skip
        yield from self._filesystems()
        yield from self._network()
        if sample.disk_device and sample.disk_written is not None:
            written = CounterMetricFamily(
                "edgekube_node_disk_written_bytes_total", "Bytes written to the node's root block device (SD card).",
                labels=["device"],
            )  # fmt: skip
            written.add_metric([sample.disk_device], sample.disk_written)
            yield written
        if sample.soc_temperature is not None:
            yield GaugeMetricFamily(
                "edgekube_node_soc_temperature_celsius", "SoC temperature.", value=sample.soc_temperature
            )
        if sample.throttled is not None:
            yield GaugeMetricFamily(
                "edgekube_node_throttled_flags", "The Pi firmware's get_throttled bits.", value=sample.throttled
            )
        yield from self._containers()

    def _filesystems(self) -> Iterator[Metric]:
        sample = self.sampler.latest
        assert sample is not None
        size = GaugeMetricFamily(
            "edgekube_node_filesystem_size_bytes", "Size of the filesystem.", labels=["role", "mountpoint"]
        )
        avail = GaugeMetricFamily(
            "edgekube_node_filesystem_avail_bytes", "Free space for unprivileged users.", labels=["role", "mountpoint"]
        )
        for role, (path, fs) in sorted(sample.filesystems.items()):
            size.add_metric([role, path], fs.size)
            avail.add_metric([role, path], fs.available)
        yield size
        yield avail

    def _network(self) -> Iterator[Metric]:
        sample = self.sampler.latest
        assert sample is not None
        rx = CounterMetricFamily(
            "edgekube_node_network_receive_bytes_total", "Bytes received per interface.", labels=["device"]
        )
        tx = CounterMetricFamily(
            "edgekube_node_network_transmit_bytes_total", "Bytes sent per interface.", labels=["device"]
        )
        for device, (received, sent) in sorted(sample.network.items()):
            rx.add_metric([device], received)
            tx.add_metric([device], sent)
        yield rx
        yield tx

    def _containers(self) -> Iterator[Metric]:
        sample = self.sampler.latest
        assert sample is not None
        families: dict[str, CounterMetricFamily | GaugeMetricFamily] = {
            "cpu": CounterMetricFamily(
                "edgekube_container_cpu_usage_seconds_total", "CPU time used by the container.", labels=_CONTAINER
            ),
            "memory": GaugeMetricFamily(
                "edgekube_container_memory_working_set_bytes", "Memory in use by the container.", labels=_CONTAINER
            ),
            "limit": GaugeMetricFamily(
                "edgekube_container_spec_memory_limit_bytes", "The container's memory limit.", labels=_CONTAINER
            ),
            "rx": CounterMetricFamily(
                "edgekube_container_network_receive_bytes_total",
                "Bytes received by the container (its pod's network namespace).", labels=_CONTAINER,
            ),
            "tx": CounterMetricFamily(
                "edgekube_container_network_transmit_bytes_total",
                "Bytes sent by the container (its pod's network namespace).", labels=_CONTAINER,
            ),
            "read": CounterMetricFamily(
                "edgekube_container_fs_reads_bytes_total", "Bytes the container read from block devices.",
                labels=_CONTAINER,
            ),
            "write": CounterMetricFamily(
                "edgekube_container_fs_writes_bytes_total", "Bytes the container wrote to block devices.",
                labels=_CONTAINER,
            ),
            "pids": GaugeMetricFamily(
                "edgekube_container_processes", "Processes in the container.", labels=_CONTAINER
            ),
        }  # fmt: skip
        for c in sample.containers:
            s = c.stats
            labels = [s.namespace, s.pod, s.container]
            families["cpu"].add_metric(labels, s.cpu_seconds)
            families["memory"].add_metric(labels, s.memory_bytes)
            if s.memory_limit_bytes is not None:
                families["limit"].add_metric(labels, s.memory_limit_bytes)
            families["rx"].add_metric(labels, s.rx_bytes)
            families["tx"].add_metric(labels, s.tx_bytes)
            families["read"].add_metric(labels, s.read_bytes)
            families["write"].add_metric(labels, s.write_bytes)
            families["pids"].add_metric(labels, s.pids)
        yield from families.values()
