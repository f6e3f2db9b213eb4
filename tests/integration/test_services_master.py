"""Services on the master, on a real Mosquitto with simulated nodes: Endpoints and the retained ServiceTable.

A real Master (TinyDB on a temporary dir) and three simulated agents (tests/support/simnodes.py, reporting each
pod's podIP from the node's 10.42.<i>.0/24 and Ready once running) on one broker. A subscriber that is not the
master reads `edgekube/v1/services` as an agent would: the retained table, whole, with a growing generation.
The tests assert what the Endpoints object and the table hold after each change, and in which order.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.bus import topics
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.bus.protocol import Message
from edgekube.cli.main import main
from edgekube.master.app import Master
from edgekube.master.config import MasterConfig
from edgekube.master.wiring import build_master
from edgekube.model.netstate import ServiceTable
from edgekube.model.wire import ApiRequest, Verb
from tests.support.broker import AnyBroker
from tests.support.cluster import ApiClient, wait_for
from tests.support.simnodes import SimNodes

pytestmark = pytest.mark.integration

NODES = ("node-1", "node-2", "node-3")
MANIFEST = """
apiVersion: v1
kind: ReplicationController
metadata: {name: web}
spec:
  replicas: 3
  selector: {app: web}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: busybox:1.36
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"""


class TableWatch:
    """Every ServiceTable received on edgekube/v1/services, in order (what an agent would see)."""

    def __init__(self, port: int) -> None:
        self.tables: list[ServiceTable] = []
        self._lock = threading.Lock()
        self._bus = PahoBus(BusConfig(port=port, client_id="svc-watch"))
        self._bus.subscribe(topics.SERVICES, self._on_table)
        self._bus.start(wait=10)

    def _on_table(self, message: Message) -> None:
        table = ServiceTable.decode(message.payload)
        with self._lock:
            self.tables.append(table)

    def latest(self) -> ServiceTable | None:
        with self._lock:
            return self.tables[-1] if self.tables else None

    def close(self) -> None:
        self._bus.close()


@pytest.fixture
def cluster(broker: AnyBroker, tmp_path: Path) -> Iterator[tuple[Master, SimNodes, ApiClient]]:
    config = MasterConfig(mqtt_port=broker.port, data_dir=tmp_path / "master", node_timeout=2.0, resync_interval=0.5)
    master = build_master(config).start(wait=10)
    sims = SimNodes(broker.port, list(NODES), start_delay=0.05, pod_ips=True).start()
    client = ApiClient(broker.port)
    try:
        yield master, sims, client
    finally:
        client.close()
        master.stop()
        sims.close()


def endpoints(client: ApiClient) -> dict[str, Any]:
    response = client.call(ApiRequest(verb=Verb.GET, kind="Endpoints", name="web"))
    return response.object or {} if response.ok else {}


def ready_addresses(client: ApiClient) -> list[str]:
    return [a["ip"] for s in endpoints(client).get("subsets") or [] for a in s.get("addresses", [])]


def ready_ips(table: ServiceTable | None) -> tuple[set[str], set[str]]:
    if table is None or not table.services:
        return set(), set()
    entry = table.services[0]
    return {e.ip for e in entry.endpoints if e.ready}, {e.ip for e in entry.endpoints if not e.ready}


def test_a_pod_going_not_ready_leaves_the_endpoints_and_the_table_on_the_bus(
    broker: AnyBroker, cluster: tuple[Master, SimNodes, ApiClient]
) -> None:
    _master, sims, client = cluster
    response = client.apply(MANIFEST)
    assert response.ok, response.error
    service = client.get("Service", "web")
    assert service["spec"]["clusterIP"] == "10.43.0.1"
    assert service["spec"]["ports"][0]["nodePort"] == 30000

    watch = TableWatch(broker.port)
    try:
        three = wait_for("three ready endpoints in the table", lambda: len(ready_ips(watch.latest())[0]) == 3, 15)
        assert three
        table = watch.latest()
        assert table is not None
        entry = table.services[0]
        assert (entry.namespace, entry.name, entry.cluster_ip, entry.type) == (
            "default",
            "web",
            "10.43.0.1",
            "NodePort",
        )
        assert [(p.name, p.port, p.node_port) for p in entry.ports] == [("http", 80, 30000)]
        assert all(e.ports == {"http": 8080} and e.node in NODES for e in entry.endpoints)
        stored = endpoints(client)
        assert sorted(a["ip"] for a in stored["subsets"][0]["addresses"]) == sorted(ready_ips(table)[0])

        victim = client.pods("app=web")[0]
        ip = victim["status"]["podIP"]
        before = table.generation
        sims.set_ready("default", victim["metadata"]["name"], ready=False)

        def moved() -> bool:
            ready, not_ready = ready_ips(watch.latest())
            return ip in not_ready and ip not in ready

        wait_for("the not-ready pod to leave the table's ready endpoints", moved, 10)
        latest = watch.latest()
        assert latest is not None and latest.generation > before
        assert len(ready_ips(latest)[0]) == 2
        subset = endpoints(client)["subsets"][0]
        assert ip not in {a["ip"] for a in subset["addresses"]}
        assert [a["ip"] for a in subset["notReadyAddresses"]] == [ip]

        sims.set_ready("default", victim["metadata"]["name"], ready=True)
        wait_for("the pod back among the ready endpoints", lambda: len(ready_ips(watch.latest())[0]) == 3, 10)
        generations = [t.generation for t in watch.tables]
        assert generations == sorted(set(generations))  # each table newer than the one before, none twice

        assert client.delete("Service", "web").ok
        wait_for("an empty table", lambda: (t := watch.latest()) is not None and t.services == [], 10)
        assert endpoints(client) == {}
    finally:
        watch.close()


def ekctl(capsys: pytest.CaptureFixture[str], port: int, *argv: str) -> tuple[int, str, str]:
    code = main(["--mqtt-host", "127.0.0.1", "--mqtt-port", str(port), "--timeout", "5", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_ekctl_get_svc_ep_describe_svc_and_annotation_selector(
    broker: AnyBroker, cluster: tuple[Master, SimNodes, ApiClient], capsys: pytest.CaptureFixture[str]
) -> None:
    _master, _sims, client = cluster
    annotated = MANIFEST.replace(
        "metadata: {labels: {app: web}}", "metadata: {labels: {app: web}, annotations: {team: edge}}"
    )
    assert client.apply(annotated).ok

    def ready_count() -> int:
        return sum(len(s.get("addresses", [])) for s in endpoints(client).get("subsets") or [])

    wait_for("three endpoints", lambda: ready_count() == 3, 15)

    code, out, _ = ekctl(capsys, broker.port, "get", "svc,ep")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert lines[1].split()[:5] == ["service/web", "NodePort", "10.43.0.1", "<none>", "80:30000/TCP"]
    assert lines[2] == ""
    assert lines[3].split() == ["NAME", "ENDPOINTS", "AGE"]
    name, shown, _age = lines[4].split()
    ips = sorted(a["ip"] for a in endpoints(client)["subsets"][0]["addresses"])
    assert name == "endpoints/web" and sorted(shown.split(",")) == [f"{ip}:8080" for ip in ips]

    code, out, _ = ekctl(capsys, broker.port, "describe", "svc", "web")
    assert code == 0
    described = {line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in out.splitlines() if ":" in line}
    assert described["Selector"] == "app=web"
    assert described["IP"] == "10.43.0.1"
    assert described["Port"] == "http  80/TCP"
    assert described["TargetPort"] == "http/TCP"
    assert described["NodePort"] == "http  30000/TCP"
    assert sorted(described["Endpoints"].split(",")) == [f"{ip}:8080" for ip in ips]

    code, _, _ = ekctl(capsys, broker.port, "annotate", "svc", "web", "team=edge")
    assert code == 0
    code, out, _ = ekctl(capsys, broker.port, "get", "svc", "--annotation-selector", "team", "-o", "name")
    assert (code, out) == (0, "service/web\n")
    code, out, _ = ekctl(capsys, broker.port, "get", "pods", "--annotation-selector", "team=edge", "-o", "name")
    assert code == 0 and len(out.split()) == 3
    code, out, err = ekctl(capsys, broker.port, "get", "pods", "--annotation-selector", "team notin (edge)")
    assert code == 0 and out == "" and err == "No resources found in default namespace.\n"
    response = client.call(ApiRequest(verb=Verb.LIST, kind="Pod", annotation_selector="!team"))
    assert response.ok and response.items == []


def test_ekctl_lint_cluster_checks_files_against_live_objects_and_nodes(
    broker: AnyBroker, cluster: tuple[Master, SimNodes, ApiClient], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _master, _sims, client = cluster
    assert client.apply(MANIFEST).ok
    wait_for("three nodes", lambda: len(client.nodes()) == 3, 10)
    code, out, _ = ekctl(capsys, broker.port, "lint", "--cluster")
    assert (code, out) == (0, "the cluster OK\n")

    planned = tmp_path / "api.yaml"
    planned.write_text(
        "apiVersion: v1\nkind: Service\nmetadata: {name: api}\nspec:\n  selector: {app: api}\n  ports: [{port: 80}]\n"
        "---\napiVersion: v1\nkind: Pod\nmetadata: {name: probe}\nspec:\n  nodeSelector: {disk: ssd}\n"
        "  containers: [{name: c, image: busybox}]\n"
    )
    code, out, _ = ekctl(capsys, broker.port, "lint", "--cluster", str(planned))
    assert code == 1
    assert out.splitlines() == [
        f"{planned}:5 (Service default/api): missed-route: selector app=api matches no pod and no pod template in "
        "namespace default; fix: change spec.selector to labels its pods carry (labels in namespace default: "
        "app=web), or label the pods",
        f"{planned}:12 (Pod default/probe): unsatisfiable-placement: nodeSelector disk=ssd matches none of the 3 "
        "node(s); fix: label a node to match (ekctl label node NAME KEY=VALUE) or change the pod's node constraints",
    ]


def test_the_web_service_example_gets_its_node_port_and_three_endpoints(
    cluster: tuple[Master, SimNodes, ApiClient],
) -> None:
    _master, _sims, client = cluster
    example = Path(__file__).resolve().parents[2] / "examples" / "web-service.yaml"
    assert client.apply(example.read_text()).ok
    assert client.get("Service", "web")["spec"]["ports"] == [
        {"name": "http", "protocol": "TCP", "port": 80, "targetPort": "http", "nodePort": 30080}
    ]

    def ready() -> list[str]:
        return sorted(a["ip"] for s in endpoints(client).get("subsets") or [] for a in s.get("addresses", []))

    assert len(wait_for("three ready endpoints", lambda: len(ready()) == 3 and ready(), 15)) == 3
    assert {p["port"] for s in endpoints(client)["subsets"] for p in s["ports"]} == {8080}


def test_endpointslices_are_a_read_only_view_of_the_endpoints(
    broker: AnyBroker, cluster: tuple[Master, SimNodes, ApiClient], capsys: pytest.CaptureFixture[str]
) -> None:
    _master, sims, client = cluster
    assert client.apply(MANIFEST).ok
    wait_for("three ready endpoints", lambda: len(ready_addresses(client)) == 3, 15)
    victim = client.pods("app=web")[0]
    sims.set_ready("default", victim["metadata"]["name"], ready=False)
    wait_for("one not ready", lambda: len(ready_addresses(client)) == 2, 10)

    listed = client.call(ApiRequest(verb=Verb.LIST, kind="EndpointSlice", selector="kubernetes.io/service-name=web"))
    assert listed.ok and [s["metadata"]["name"] for s in listed.items or []] == ["web-0"]
    [view] = listed.items or []
    assert view["addressType"] == "IPv4" and view["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    conditions = {e["addresses"][0]: e["conditions"]["ready"] for e in view["endpoints"]}
    assert conditions[victim["status"]["podIP"]] is False and sum(conditions.values()) == 2

    code, out, _ = ekctl(capsys, broker.port, "get", "endpointslices")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
    assert row.split()[:3] == ["web-0", "IPv4", "8080"]
    assert row.split()[3].count(",") == 2  # three addresses, ready or not, as kubectl shows a slice
