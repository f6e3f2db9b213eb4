"""`ekctl top` end to end in memory: agents' heartbeats and metrics reports → the master's verb top → kubectl's tables.

The master runs on the in-memory broker with the test's clock (tests/unit/test_master_loop.py's Cluster); nodes'
messages are sent by hand. Also: describe node's recent usage, the master's /metrics, and the CLI's formatting.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgekube.bus import topics
from edgekube.cli.cmd_top import cpu, memory, node_rows, percent, pod_header, pod_rows
from edgekube.cli.describe_node import describe_node
from edgekube.cli.tabwriter import table
from edgekube.master.app import Master
from edgekube.master.cache import CachedStore
from edgekube.master.config import MasterConfig
from edgekube.master.wiring import master_will
from edgekube.model.wire import ApiRequest, ApiResponse, ContainerMetrics, Heartbeat, NodeMetrics, Verb
from edgekube.store.state import TinyStateStore
from tests.support.apiserver import ApiServer, Clock
from tests.support.membus import MemoryBroker
from tests.unit.test_master_loop import RC, Cluster

REPLY = "edgekube/v1/clients/top/reply"
HISTORY = [
    {"windowSeconds": 60, "samples": 6, "cpuCoresMin": 0.1, "cpuCoresAvg": 0.15, "cpuCoresMax": 0.2,
     "memoryBytesMin": 100 << 20, "memoryBytesAvg": 110 << 20, "memoryBytesMax": 120 << 20},
    {"windowSeconds": 300, "samples": 30},
]  # fmt: skip


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    store = TinyStateStore(None)
    c = Cluster(tmp_path, store, MemoryBroker(inline=True), Clock())
    for node in ("n1", "n2", "n3"):
        c.node_up(node)
    c.api(verb=Verb.APPLY, manifest=RC)
    c.pass_after(2.5, beating=("n1", "n2", "n3"))
    return c


def top(cluster: Cluster, kind: str, namespace: str | None = "default", selector: str | None = None) -> ApiResponse:
    """A top request on the read-only topic, as ekctl sends it; the master's answer."""
    request = ApiRequest(verb=Verb.TOP, kind=kind, namespace=namespace, selector=selector)
    cluster.send(topics.API_READ, request.encode(), response_topic=REPLY)
    return ApiResponse.decode(cluster.broker.published(REPLY)[-1].payload)


def beat(cluster: Cluster, node: str, cores: float, used: int) -> None:
    usage = {"cpuCores": cores, "memoryWorkingSetBytes": float(used), "load1": 0.5}
    cluster.send(topics.node_heartbeat(node), Heartbeat(node=node, boot_id="b", seq=2, usage=usage).encode())


def report(cluster: Cluster, node: str, **extra: Any) -> None:
    """The node's metrics report with each of its pods' one container using 10m times its index and 1 MiB."""
    pods = sorted(name for name, where in cluster.pods().items() if where == node)
    containers = [
        ContainerMetrics(namespace="default", pod=p, container="web", cpu_cores=0.01 * (i + 1), memory_bytes=1 << 20)
        for i, p in enumerate(pods)
    ]
    message = NodeMetrics(node=node, boot_id="b", timestamp="2026-12-03T07:00:00Z", window=10, containers=containers,
                          **extra)  # fmt: skip
    cluster.send(topics.node_metrics(node), message.encode())


def test_top_before_any_usage_says_metrics_are_not_available_yet(cluster: Cluster) -> None:
    for kind in ("Node", "Pod"):
        answer = top(cluster, kind)
        assert not answer.ok and answer.error is not None
        assert answer.error.message == "metrics not available yet"
        assert "telemetry_interval" in answer.error.hint


def test_top_nodes_answers_heartbeat_usage_with_allocatable_and_leaves_silent_nodes_without(cluster: Cluster) -> None:
    beat(cluster, "n1", 0.25, 512 << 20)
    beat(cluster, "n2", 1.5, 1 << 30)
    answer = top(cluster, "Node")
    assert answer.ok
    by_name = {i["name"]: i for i in answer.items or []}
    assert by_name["n1"] == {"name": "n1", "cpuCores": 0.25, "memoryBytes": 512 << 20, "cpuAllocatableCores": 4.0,
                             "memoryAllocatableBytes": 4 << 30}  # fmt: skip
    assert "cpuCores" not in by_name["n3"]
    assert node_rows(answer.items or []) == [
        ["n1", "250m", "6%", "512Mi", "12%"],
        ["n2", "1500m", "37%", "1024Mi", "25%"],
        ["n3", "<unknown>", "<unknown>", "<unknown>", "<unknown>"],
    ]


def test_a_status_report_keeps_the_last_heartbeat_usage(cluster: Cluster) -> None:
    beat(cluster, "n1", 0.25, 512 << 20)
    cluster.node_up("n1")  # a NodeReport counts as a heartbeat but carries no usage
    assert {i["name"]: i.get("cpuCores") for i in top(cluster, "Node").items or []}["n1"] == 0.25


def test_top_pods_lists_the_pods_each_node_reports_and_only_bound_ones(cluster: Cluster) -> None:
    report(cluster, "n1")
    on_n1 = sorted(name for name, node in cluster.pods().items() if node == "n1")
    answer = top(cluster, "Pod")
    assert answer.ok
    assert [i["name"] for i in answer.items or []] == on_n1  # pods on silent nodes are left out
    # A container the report names but the store has not bound there (a deleted pod) is not shown.
    gone = ContainerMetrics(namespace="default", pod="gone", container="x", cpu_cores=1)
    ghost = NodeMetrics(node="n1", boot_id="b", timestamp="2026-12-03T07:00:00Z", window=10, containers=[gone])
    cluster.send(topics.node_metrics("n1"), ghost.encode())
    assert not top(cluster, "Pod").ok  # n1's report now names no bound pod: nothing to show


def test_top_pods_filters_by_namespace_and_selector(cluster: Cluster) -> None:
    for node in ("n1", "n2", "n3"):
        report(cluster, node)
    assert len(top(cluster, "Pod", namespace=None).items or []) == 4
    assert top(cluster, "Pod", namespace="other").items == []
    assert len(top(cluster, "Pod", selector="app=web").items or []) == 4
    assert top(cluster, "Pod", selector="app=db").items == []


def test_a_stale_report_drops_out_of_top(cluster: Cluster) -> None:
    report(cluster, "n1")
    assert top(cluster, "Pod").ok
    cluster.pass_after(60, beating=("n1", "n2", "n3"))  # 3 windows of 10 s and the grace have passed
    assert not top(cluster, "Pod").ok


def test_a_metrics_report_for_another_node_is_refused(cluster: Cluster) -> None:
    message = NodeMetrics(node="n2", boot_id="b", timestamp="2026-12-03T07:00:00Z", window=10)
    cluster.send(topics.node_metrics("n1"), message.encode())
    assert cluster.master.node_metrics.nodes() == []


def test_describe_node_shows_the_recent_usage_the_agent_reported(cluster: Cluster) -> None:
    report(cluster, "n1", history=HISTORY)
    node = cluster.master.api.handle(ApiRequest(verb=Verb.GET, kind="Node", name="n1")).object
    assert node is not None
    assert node["usageHistory"][0]["cpuCoresMax"] == 0.2
    text = describe_node(node, [])
    lines = text.splitlines()
    start = lines.index("Recent Usage:")
    assert lines[start + 1].split() == ["Window", "Samples", "CPU", "min/avg/max", "Memory", "min/avg/max"]
    assert lines[start + 3].split() == ["1m", "6", "100m/150m/200m", "100Mi/110Mi/120Mi"]
    assert lines[start + 4].split() == ["5m", "30", "<none>", "<none>"]


def test_master_metrics_endpoint_serves_node_and_container_usage(tmp_path: Path) -> None:
    broker, clock = MemoryBroker(inline=True), Clock()
    config = MasterConfig(data_dir=tmp_path, node_timeout=2.0, metrics_port=1, metrics_address="127.0.0.1")
    master = Master(config, bus=broker.client(config.client_id, will=master_will(), persistent=True),
                    store=CachedStore(TinyStateStore(None)), clock=clock, wall=clock.wall)  # fmt: skip
    assert master.metrics_server is not None
    master.metrics_server.requested_port = 0  # a free port (the setting only has to be non-zero to turn it on)
    master.start()
    try:
        c = Cluster.__new__(Cluster)
        c.broker, c.clock, c.master, c.nodes = broker, clock, master, broker.client("nodes").start()
        c.node_up("n1")
        beat(c, "n1", 0.5, 64 << 20)
        container = ContainerMetrics(namespace="default", pod="p", container="c", cpu_cores=0.125, memory_bytes=4096)
        message = NodeMetrics(node="n1", boot_id="b", timestamp="2026-12-03T07:00:00Z", window=10,
                              containers=[container])  # fmt: skip
        c.send(topics.node_metrics("n1"), message.encode())
        url = f"http://127.0.0.1:{master.metrics_server.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
    finally:
        master.stop()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}  # fmt: skip
    assert samples[("edgekube_node_ready", (("node", "n1"),))] == 1
    assert samples[("edgekube_node_cpu_usage_cores", (("node", "n1"),))] == 0.5
    assert samples[("edgekube_node_memory_working_set_bytes", (("node", "n1"),))] == 64 << 20
    labels = (("container", "c"), ("namespace", "default"), ("node", "n1"), ("pod", "p"))
    assert samples[("edgekube_container_cpu_usage_cores", labels)] == 0.125
    assert samples[("edgekube_container_memory_working_set_bytes", labels)] == 4096


# -- kubectl's formats ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cores", "shown"), [(0, "0m"), (0.0001, "1m"), (0.012, "12m"), (0.25, "250m"), (1.5, "1500m"), (2, "2000m")]
)
def test_cpu_is_shown_in_millicores_rounded_up(cores: float, shown: str) -> None:
    assert cpu(cores) == shown


@pytest.mark.parametrize(("value", "shown"), [(0, "0Mi"), ((45 << 20) + 999, "45Mi"), (3 << 30, "3072Mi")])
def test_memory_is_shown_in_whole_mebibytes(value: int, shown: str) -> None:
    assert memory(value) == shown


def test_percent_of_allocatable_is_truncated_and_unknown_without_allocatable() -> None:
    assert percent(0.999, 4.0) == "24%"
    assert percent(1, None) == "<unknown>"


def test_top_pods_tables_have_kubectls_columns() -> None:
    items = [
        {"namespace": "shop", "name": "web", "containers": [
            {"name": "app", "cpuCores": 0.01, "memoryBytes": 10 << 20},
            {"name": "side", "cpuCores": 0.002, "memoryBytes": 5 << 20}]},
        {"namespace": "shop", "name": "db", "containers": [{"name": "pg", "cpuCores": 0.5, "memoryBytes": 200 << 20}]},
    ]  # fmt: skip
    pods = table(pod_header(all_namespaces=False, containers=False), pod_rows(items, all_namespaces=False,
                                                                               containers=False))  # fmt: skip
    assert pods.splitlines() == [
        "NAME   CPU(cores)   MEMORY(bytes)",
        "web    12m          15Mi",
        "db     500m         200Mi",
    ]
    every = pod_rows(items, all_namespaces=True, containers=True, sort_by="cpu")
    assert pod_header(all_namespaces=True, containers=True) == ["NAMESPACE", "POD", "NAME", "CPU(cores)",
                                                                "MEMORY(bytes)"]  # fmt: skip
    assert every == [
        ["shop", "db", "pg", "500m", "200Mi"],
        ["shop", "web", "app", "10m", "10Mi"],
        ["shop", "web", "side", "2m", "5Mi"],
    ]


# -- ekctl top against the master and a real Agent on the fake runtime --------------------------------------


TWO_CONTAINERS = """\
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers: [{name: app, image: busybox:1.36}, {name: side, image: busybox:1.36}]
"""


def test_ekctl_top_shows_what_an_agents_sampler_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with ApiServer(tmp_path / "cluster") as server:
        agent = server.add_node("n1")
        assert server.apply(TWO_CONTAINERS).ok
        assert server.ekctl("top", "pods") == 1
        assert capsys.readouterr().err.splitlines()[0] == "error: metrics not available yet"
        assert agent.telemetry is not None
        sampler, clock = agent.telemetry.sampler, Clock()
        sampler.clock = clock
        sampler.sample()  # the first sample: counters only, no rates yet
        [pod] = server.runtimes["n1"].list_pods()
        server.runtimes["n1"].set_stats(pod.uid, "app", cpu_seconds=2.5, memory_bytes=30 << 20)
        clock.now += 10
        sampler.sample()  # published at once on the node's metrics topic
        assert server.ekctl("top", "pods", "--containers") == 0
        assert [line.split() for line in capsys.readouterr().out.splitlines()] == [
            ["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"],
            ["web", "app", "250m", "30Mi"],
            ["web", "side", "0m", "1Mi"],
        ]
        assert server.ekctl("top", "pods", "-A") == 0
        assert capsys.readouterr().out.splitlines()[1].split() == ["default", "web", "250m", "31Mi"]
        assert server.ekctl("top", "pods", "-n", "other") == 0
        assert capsys.readouterr().err == "No resources found in other namespace.\n"
        assert server.ekctl("top", "deployments") == 1
        assert "expected nodes or pods" in capsys.readouterr().err
