"""Node telemetry on a temporary /proc tree and the fake runtime: readers, rates, ring history, report, /metrics."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from edgekube.agent.runtime.fake import FakeRuntime
from edgekube.agent.telemetry import readers
from edgekube.agent.telemetry.history import History, Point
from edgekube.agent.telemetry.prometheus import TelemetryCollector
from edgekube.agent.telemetry.sampler import Sampler, TelemetrySettings
from edgekube.agent.telemetry.samples import cpu_cores, rate
from edgekube.agent.telemetry.wiring import check_telemetry
from edgekube.metrics_http import MetricsServer
from edgekube.model.errors import ValidationError
from edgekube.model.names import NodeName, PodUID
from edgekube.model.pod import Pod
from edgekube.model.wire import NodeMetrics

NET_DEV = """\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier comp
    lo: 9000 10 0 0 0 0 0 0 9000 10 0 0 0 0 0 0
  eth0: {rx} 20 0 0 0 0 0 0 {tx} 30 0 0 0 0 0 0
veth12: 777 1 0 0 0 0 0 0 777 1 0 0 0 0 0 0
"""


class ProcTree:
    """A directory laid out like /proc with the files the readers use; `advance` moves the counters on."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "net").mkdir(parents=True)
        self.busy, self.idle, self.rx, self.tx, self.sectors = 1000, 9000, 5000, 7000, 100
        self.write()

    def write(self) -> None:
        # USER_HZ 100: user nice system idle iowait irq softirq steal (two CPUs: cpu0 and cpu1 lines).
        self.root.joinpath("stat").write_text(
            f"cpu  {self.busy} 0 0 {self.idle} 0 0 0 0 0 0\ncpu0 1 0 0 1 0 0 0 0 0 0\ncpu1 1 0 0 1 0 0 0 0 0 0\n"
            "intr 12345\n"
        )
        self.root.joinpath("loadavg").write_text("0.50 0.25 0.10 1/123 4567\n")
        self.root.joinpath("meminfo").write_text(
            "MemTotal:        4000000 kB\nMemFree:          500000 kB\nMemAvailable:    3000000 kB\n"
        )
        self.root.joinpath("net", "dev").write_text(NET_DEV.format(rx=self.rx, tx=self.tx))
        self.root.joinpath("diskstats").write_text(
            f" 179       0 mmcblk0 10 0 80 5 20 0 {self.sectors * 2} 9 0 0 0\n"
            f" 179       2 mmcblk0p2 10 0 80 5 20 0 {self.sectors} 9 0 0 0\n"
        )

    def advance(self, busy: int, idle: int, rx: int = 0, tx: int = 0, sectors: int = 0) -> None:
        self.busy += busy
        self.idle += idle
        self.rx += rx
        self.tx += tx
        self.sectors += sectors
        self.write()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def proc(tmp_path: Path) -> ProcTree:
    return ProcTree(tmp_path / "proc")


def sampler_on(proc: ProcTree, tmp_path: Path, runtime: FakeRuntime | None = None) -> tuple[Sampler, Clock]:
    clock = Clock()
    settings = TelemetrySettings(
        interval=10, history=60, proc=proc.root, sys=tmp_path / "sys", root=tmp_path,
        container_store=tmp_path, disk_device="mmcblk0p2", ticks=100,
    )  # fmt: skip
    return Sampler(runtime, settings, clock=clock, wall=lambda: 1_700_000_000.0 + clock.now), clock


# -- readers --------------------------------------------------------------------------------------------


def test_readers_parse_a_proc_tree(proc: ProcTree) -> None:
    times = readers.cpu_times(proc.root, ticks=100)
    assert times is not None
    assert (times.modes["user"], times.modes["idle"], times.total) == (10.0, 90.0, 100.0)
    assert readers.cpu_count(proc.root) == 2
    assert readers.load_average(proc.root) == (0.5, 0.25, 0.1)
    assert readers.meminfo(proc.root)["MemAvailable"] == 3_000_000 * 1024
    assert readers.network(proc.root) == {"eth0": (5000, 7000)}  # loopback and veth ends left out
    assert readers.disk_written(proc.root, "mmcblk0p2") == 100 * 512
    assert readers.disk_written(proc.root, "sda") is None


def test_readers_answer_unknown_for_a_missing_or_malformed_tree(tmp_path: Path) -> None:
    empty = tmp_path / "nothing"
    assert readers.cpu_times(empty) is None
    assert readers.cpu_count(empty) == 1
    assert readers.load_average(empty) is None
    assert readers.meminfo(empty) == {}
    assert readers.network(empty) == {}
    assert readers.filesystem(empty) is None
    (tmp_path / "stat").write_text("cpu  a b c\n")
    assert readers.cpu_times(tmp_path) is None


def test_filesystem_of_an_existing_path_has_a_size(tmp_path: Path) -> None:
    fs = readers.filesystem(tmp_path)
    assert fs is not None
    assert fs.size >= fs.free >= fs.available >= 0
    assert fs.size > 0


def test_cpu_cores_is_the_busy_share_times_cpus_and_rates_survive_resets() -> None:
    before = readers.CpuTimes({"user": 10.0, "idle": 90.0})
    after = readers.CpuTimes({"user": 15.0, "idle": 95.0})
    assert cpu_cores(before, after, 4) == pytest.approx(2.0)  # half the time busy, 4 CPUs
    assert cpu_cores(None, after, 4) is None
    assert rate(100, 300, 10) == 20
    assert rate(300, 100, 10) == 0  # a counter that went back (reboot, new container) is no negative rate
    assert rate(None, 100, 10) is None


# -- history --------------------------------------------------------------------------------------------


def test_history_keeps_the_last_capacity_points_and_summarises_windows() -> None:
    history = History(capacity=3)
    for t, cpu, mem in ((0, 9.0, 900), (10, 1.0, 100), (20, 2.0, 200), (30, 3.0, 300)):
        history.append(Point(float(t), cpu, mem))
    assert [p.time for p in history.points()] == [10.0, 20.0, 30.0]  # the oldest made room
    last = history.summary(now=30, window=15)
    assert (last.points, last.cpu, last.memory) == (2, (2.0, 2.5, 3.0), (200.0, 250.0, 300.0))
    everything = history.summary(now=30, window=900)
    assert everything.points == 3
    assert everything.to_dict() == {
        "windowSeconds": 900, "samples": 3, "cpuCoresMin": 1.0, "cpuCoresAvg": 2.0, "cpuCoresMax": 3.0,
        "memoryBytesMin": 100.0, "memoryBytesAvg": 200.0, "memoryBytesMax": 300.0,
    }  # fmt: skip


def test_history_leaves_out_figures_it_has_none_of() -> None:
    history = History(capacity=2)
    history.append(Point(1.0, None, None))
    assert history.summary(1.0, 60).to_dict() == {"windowSeconds": 60, "samples": 1}
    with pytest.raises(ValueError, match="capacity"):
        History(capacity=0)


# -- sampler ----------------------------------------------------------------------------------------------


def busy_pod(runtime: FakeRuntime) -> PodUID:
    uid = PodUID("uid-1")
    pod = Pod.model_validate(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"containers": [{"name": "app", "image": "img:1"}, {"name": "side", "image": "img:1"}]}}
    )  # fmt: skip
    runtime.create_pod(pod, uid, "h")
    return uid


def test_the_first_sample_has_counters_and_the_second_rates(proc: ProcTree, tmp_path: Path) -> None:
    runtime = FakeRuntime(NodeName("n1"))
    uid = busy_pod(runtime)
    sampler, clock = sampler_on(proc, tmp_path, runtime)
    first = sampler.sample()
    assert first.cpu_cores is None and first.disk_write_rate is None
    assert [c.cpu_cores for c in first.containers] == [None, None]
    assert first.memory_working_set == 1_000_000 * 1024
    runtime.set_stats(uid, "app", cpu_seconds=5.0, memory_bytes=50 << 20)
    proc.advance(busy=500, idle=1500, sectors=20)  # 25 % of 2 CPUs busy; 20 sectors in 10 s
    clock.now += 10
    second = sampler.sample()
    assert second.cpu_cores == pytest.approx(0.5)
    assert second.disk_write_rate == pytest.approx(20 * 512 / 10)
    by_name = {c.stats.container: c for c in second.containers}
    assert by_name["app"].cpu_cores == pytest.approx(0.5)  # 5 CPU seconds in 10 s
    assert by_name["side"].cpu_cores == 0
    assert by_name["app"].stats.memory_bytes == 50 << 20


def test_usage_and_report_carry_the_latest_sample_and_history(proc: ProcTree, tmp_path: Path) -> None:
    runtime = FakeRuntime(NodeName("n1"))
    busy_pod(runtime)
    sampler, clock = sampler_on(proc, tmp_path, runtime)
    assert sampler.usage() == {}
    assert sampler.report("n1", "boot") is None
    sampler.sample()
    proc.advance(busy=200, idle=1800)
    clock.now += 10
    sampler.sample()
    usage = sampler.usage()
    assert usage["cpuCores"] == pytest.approx(0.2)
    assert usage["memoryWorkingSetBytes"] == 1_000_000 * 1024
    assert usage["cpuCapacityCores"] == 2
    assert {"rootfsAvailableBytes", "rootfsCapacityBytes", "imagefsAvailableBytes"} <= set(usage)
    report = sampler.report("n1", "boot")
    assert report is not None
    decoded = NodeMetrics.decode(report.encode())
    assert [(c.namespace, c.pod, c.container) for c in decoded.containers] == [("shop", "web", "app"),
                                                                             ("shop", "web", "side")]  # fmt: skip
    assert [h["windowSeconds"] for h in decoded.history] == [60, 300, 900]
    assert decoded.history[0]["samples"] == 2
    assert decoded.history[0]["cpuCoresMax"] == pytest.approx(0.2)


def test_an_unreachable_runtime_leaves_containers_out_and_sampling_goes_on(proc: ProcTree, tmp_path: Path) -> None:
    class Down(FakeRuntime):
        def stats(self) -> list:  # type: ignore[type-arg]
            from edgekube.model.errors import RuntimeFailure  # noqa: PLC0415

            raise RuntimeFailure("cannot reach podman", reason="RuntimeUnavailable")

    sampler, _ = sampler_on(proc, tmp_path, Down())
    sample = sampler.sample()
    assert sample.containers == ()
    assert sample.memory_working_set is not None


def test_the_sampler_thread_samples_until_stopped(proc: ProcTree, tmp_path: Path) -> None:
    import threading  # noqa: PLC0415

    got = threading.Event()
    settings = TelemetrySettings(interval=0.01, history=1, proc=proc.root, root=tmp_path, container_store=tmp_path)
    sampler = Sampler(None, settings, on_sample=lambda s: got.set())
    sampler.start()
    try:
        assert got.wait(10)
    finally:
        sampler.stop()
    assert sampler.latest is not None


def test_telemetry_settings_are_checked() -> None:
    check_telemetry(10, 900, 0)
    check_telemetry(0, 0, 9100)  # off: history does not matter
    with pytest.raises(ValidationError, match="telemetry_interval"):
        check_telemetry(-1, 900, 0)
    with pytest.raises(ValidationError, match="telemetry_history"):
        check_telemetry(10, 5, 0)
    with pytest.raises(ValidationError, match="metrics_port"):
        check_telemetry(10, 900, 70000)


# -- /metrics ---------------------------------------------------------------------------------------------


def scrape(sampler: Sampler) -> dict[str, list[tuple[dict[str, str], float]]]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TelemetryCollector(sampler))
    server = MetricsServer(registry, "127.0.0.1", 0).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as response:
            text = response.read().decode()
    finally:
        server.stop()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def test_metrics_endpoint_serves_the_latest_sample_under_prometheus_names(proc: ProcTree, tmp_path: Path) -> None:
    runtime = FakeRuntime(NodeName("n1"))
    uid = busy_pod(runtime)
    runtime.set_stats(uid, "app", cpu_seconds=12.5, memory_bytes=7 << 20, rx_bytes=10, write_bytes=4096)
    sampler, clock = sampler_on(proc, tmp_path, runtime)
    assert "edgekube_node_cpu_seconds_total" not in scrape(sampler)  # nothing sampled yet
    sampler.sample()
    proc.advance(busy=100, idle=100, rx=1000)
    clock.now += 10
    sampler.sample()
    metrics = scrape(sampler)
    modes = {labels["mode"]: value for labels, value in metrics["edgekube_node_cpu_seconds_total"]}
    assert modes["user"] == 11.0 and modes["idle"] == 91.0
    [(labels, cores)] = metrics["edgekube_node_cpu_usage_cores"]
    assert labels == {} and cores == pytest.approx(1.0)
    assert metrics["edgekube_node_memory_total_bytes"] == [({}, 4_000_000 * 1024)]
    assert metrics["edgekube_node_network_receive_bytes_total"] == [({"device": "eth0"}, 6000)]
    assert metrics["edgekube_node_disk_written_bytes_total"] == [({"device": "mmcblk0p2"}, 100 * 512)]
    root = readers.filesystem(tmp_path)
    assert root is not None
    sizes = {(ls["role"], ls["mountpoint"]): value for ls, value in metrics["edgekube_node_filesystem_size_bytes"]}
    assert sizes[("root", str(tmp_path))] == pytest.approx(root.size)
    app = {"namespace": "shop", "pod": "web", "container": "app"}
    assert (app, 12.5) in metrics["edgekube_container_cpu_usage_seconds_total"]
    assert (app, 7 << 20) in metrics["edgekube_container_memory_working_set_bytes"]
    assert (app, 10) in metrics["edgekube_container_network_receive_bytes_total"]
    assert (app, 4096) in metrics["edgekube_container_fs_writes_bytes_total"]


def test_a_taken_metrics_port_is_a_clear_error() -> None:
    registry = CollectorRegistry(auto_describe=False)
    first = MetricsServer(registry, "127.0.0.1", 0).start()
    try:
        with pytest.raises(ValidationError, match=r"metrics_port: cannot serve /metrics on 127\.0\.0\.1:\d+"):
            MetricsServer(registry, "127.0.0.1", first.port).start()
    finally:
        first.stop()


def test_soc_temperature_and_throttle_flags_come_from_the_sys_tree(proc: ProcTree, tmp_path: Path) -> None:
    sys_root = tmp_path / "sys"
    zone = sys_root / "class" / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "type").write_text("cpu-thermal\n")
    (zone / "temp").write_text("61234\n")
    firmware = sys_root / "devices" / "platform" / "soc" / "soc:firmware"
    firmware.mkdir(parents=True)
    (firmware / "get_throttled").write_text("50005\n")
    sampler, _ = sampler_on(proc, tmp_path)
    sample = sampler.sample()
    assert sample.soc_temperature == pytest.approx(61.234)
    assert sample.throttled == 0x50005
    metrics = scrape(sampler)
    [(labels, celsius)] = metrics["edgekube_node_soc_temperature_celsius"]
    assert labels == {} and celsius == pytest.approx(61.234)
    assert metrics["edgekube_node_throttled_flags"] == [({}, 0x50005)]


def test_without_a_thermal_zone_there_is_no_temperature(proc: ProcTree, tmp_path: Path) -> None:
    sampler, _ = sampler_on(proc, tmp_path)
    sample = sampler.sample()
    assert (sample.soc_temperature, sample.throttled) == (None, None)
    assert "edgekube_node_soc_temperature_celsius" not in scrape(sampler)
