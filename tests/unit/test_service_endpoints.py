"""Services on the master: clusterIP/nodePort allocation in the API, the endpoints plan, the ServiceTable."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.bus import topics
from edgekube.master.api import Api
from edgekube.master.cache import CachedStore
from edgekube.master.controllers import base
from edgekube.master.controllers.base import Effects, Snapshot
from edgekube.master.controllers.endpoints import (
    DeleteEndpoints,
    EndpointsController,
    WriteEndpoints,
    _matching,
    plan,
    subsets,
)
from edgekube.master.eventlog import EventLog
from edgekube.master.liveness import Health
from edgekube.master.servicetable import ServiceTablePublisher
from edgekube.model.errors import ValidationError
from edgekube.model.netstate import ServiceTable
from edgekube.model.servicetable import build
from edgekube.model.wire import NodeReport, PodReport, Verb
from edgekube.store.state import TinyStateStore
from tests.support.apiserver import Clock
from tests.support.membus import MemoryBroker
from tests.unit.test_master_loop import Cluster


@pytest.fixture
def store() -> Iterator[CachedStore]:
    with TinyStateStore(None) as s:
        yield CachedStore(s)


def svc(name: str, *, ports: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": name}, "ports": ports or [{"port": 80}], **spec},
    }


def apply(api: Api, *objects: dict[str, Any]) -> None:
    api.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}))


def test_cluster_ips_are_allocated_lowest_free_stable_across_updates_and_released_on_delete(store: CachedStore) -> None:
    api = Api(store, lambda n: n, service_cidr="10.96.0.0/29")
    apply(api, svc("a"), svc("b"))
    assert store.get("Service", "default", "a")["spec"]["clusterIP"] == "10.96.0.1"
    assert store.get("Service", "default", "b")["spec"]["clusterIPs"] == ["10.96.0.2"]
    apply(api, svc("a", ports=[{"port": 81}]))  # an update keeps the address
    assert store.get("Service", "default", "a")["spec"]["clusterIP"] == "10.96.0.1"
    api.delete("Service", "default", "a")
    apply(api, svc("c"))
    assert store.get("Service", "default", "c")["spec"]["clusterIP"] == "10.96.0.1"


def test_a_requested_cluster_ip_outside_the_cidr_or_taken_is_refused(store: CachedStore) -> None:
    api = Api(store, lambda n: n, service_cidr="10.96.0.0/24")
    with pytest.raises(
        ValidationError, match=re.escape("provided IP is not in the valid range. The range of valid IPs is")
    ):
        apply(api, svc("a", clusterIP="10.0.0.5"))
    apply(api, svc("a", clusterIP="10.96.0.9"))
    with pytest.raises(ValidationError, match=re.escape('"10.96.0.9": provided IP is already allocated')):
        apply(api, svc("b", clusterIP="10.96.0.9"))
    with pytest.raises(
        ValidationError, match=re.escape('spec.clusterIP: Invalid value: "10.96.0.8": field is immutable')
    ):
        apply(api, svc("a", clusterIP="10.96.0.8"))


def test_a_requested_node_port_already_allocated_is_refused(store: CachedStore) -> None:
    api = Api(store, lambda n: n)
    apply(api, svc("a", type="NodePort"))
    with pytest.raises(
        ValidationError, match=r"spec.ports\[0\].nodePort: Invalid value: 30000: provided port is already"
    ):
        apply(api, svc("b", type="NodePort", ports=[{"port": 80, "nodePort": 30000}]))
    apply(api, svc("b", type="NodePort", ports=[{"port": 80, "nodePort": 30001}]))
    apply(api, svc("c", type="NodePort"))
    assert store.get("Service", "default", "c")["spec"]["ports"][0]["nodePort"] == 30002


def test_node_port_out_of_range_is_refused_and_an_allocated_one_kept_on_update(store: CachedStore) -> None:
    api = Api(store, lambda n: n)
    with pytest.raises(ValidationError, match="The range of valid ports is 30000-32767"):
        apply(api, svc("a", type="NodePort", ports=[{"port": 80, "nodePort": 8080}]))
    apply(api, svc("a", type="NodePort"))
    assert store.get("Service", "default", "a")["spec"]["ports"][0]["nodePort"] == 30000
    apply(api, svc("a", type="NodePort", ports=[{"port": 80, "targetPort": 8080}]))
    assert store.get("Service", "default", "a")["spec"]["ports"][0]["nodePort"] == 30000


def pod(
    name: str, ip: str = "", *, ready: bool = True, labels: dict[str, str] | None = None, **extra: Any
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": extra.pop("phase", "Running")}
    if ip:
        status["podIP"] = ip
    status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    ports = extra.pop("ports", [{"name": "http", "containerPort": 8080}])
    return {
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": labels or {"app": "web"},
                     **extra.pop("meta", {})},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": ports}]},
        "status": status,
    }  # fmt: skip


WEB = svc("web", ports=[{"name": "web", "port": 80, "targetPort": "http", "protocol": "TCP"}])


def test_ready_pods_are_addresses_not_ready_ones_not_ready_addresses_and_others_left_out() -> None:
    pods = [
        pod("a", "10.42.0.3"),
        pod("b", "10.42.0.2", ready=False),
        pod("c"),  # no address yet
        pod("d", "10.42.0.4", phase="Succeeded"),
        pod("e", "10.42.0.5", meta={"deletionTimestamp": "2026-01-01T00:00:00Z"}),
    ]
    assert subsets(WEB, pods) == [
        {
            "addresses": [{"ip": "10.42.0.3", "nodeName": "n1", "targetRef": {"kind": "Pod", "namespace": "default",
                                                                                 "name": "a", "uid": "uid-a"}}],
            "notReadyAddresses": [{"ip": "10.42.0.2", "nodeName": "n1", "targetRef": {
                "kind": "Pod", "namespace": "default", "name": "b", "uid": "uid-b"}}],
            "ports": [{"name": "web", "port": 8080, "protocol": "TCP"}],
        }
    ]  # fmt: skip


def test_target_port_by_name_is_resolved_per_pod_and_a_pod_without_it_is_no_endpoint() -> None:
    pods = [
        pod("a", "10.42.0.2"),
        pod("b", "10.42.0.3", ports=[{"name": "http", "containerPort": 9090}]),
        pod("c", "10.42.0.4", ports=[]),
    ]
    found = subsets(WEB, pods)
    assert [(s["ports"][0]["port"], [a["ip"] for a in s["addresses"]]) for s in found] == [
        (8080, ["10.42.0.2"]),
        (9090, ["10.42.0.3"]),
    ]


def test_publish_not_ready_addresses_lists_every_pod_as_ready() -> None:
    found = subsets(
        {**WEB, "spec": {**WEB["spec"], "publishNotReadyAddresses": True}}, [pod("b", "10.0.0.1", ready=False)]
    )
    assert [a["ip"] for a in found[0]["addresses"]] == ["10.0.0.1"]


def test_plan_creates_updates_only_on_change_and_deletes_orphaned_endpoints() -> None:
    services = {("default", "web"): WEB}
    pods = {("default", "a"): pod("a", "10.42.0.2")}
    [create] = plan(services, _matching(pods), {})
    assert isinstance(create, WriteEndpoints) and create.create
    stored = {("default", "web"): {**create.endpoints, "metadata": {**create.endpoints["metadata"], "uid": "u"}}}
    assert plan(services, _matching(pods), stored) == []
    pods[("default", "a")] = pod("a", "10.42.0.2", ready=False)
    [update] = plan(services, _matching(pods), stored)
    assert isinstance(update, WriteEndpoints) and not update.create
    assert update.endpoints["metadata"]["uid"] == "u"
    assert "notReadyAddresses" in update.endpoints["subsets"][0]
    assert plan({}, _matching(pods), stored) == [DeleteEndpoints("default", "web")]


def test_a_service_without_selector_gets_no_endpoints() -> None:
    bare = {**WEB, "spec": {"ports": [{"port": 80}]}}
    assert plan({("default", "web"): bare}, _matching({("default", "a"): pod("a", "10.0.0.1")}), {}) == []


def test_service_table_has_one_entry_per_address_ports_by_name_ready_first() -> None:
    stored = {**WEB, "spec": {**WEB["spec"], "clusterIP": "10.43.0.1"}}
    endpoints = {
        "subsets": subsets(WEB, [pod("a", "10.42.0.3"), pod("b", "10.42.0.2", ready=False)]),
    }
    table = build([stored], {("default", "web"): endpoints}, generation=7)
    wire = json.loads(table.encode())
    assert wire["generation"] == 7
    assert wire["services"][0]["clusterIP"] == "10.43.0.1"
    assert wire["services"][0]["ports"] == [{"name": "web", "protocol": "TCP", "port": 80}]
    assert [(e["ip"], e["ready"], e["ports"]) for e in wire["services"][0]["endpoints"]] == [
        ("10.42.0.3", True, {"web": 8080}),
        ("10.42.0.2", False, {"web": 8080}),
    ]


def test_table_publisher_publishes_only_on_change_with_a_growing_generation(store: CachedStore) -> None:
    now = [1000.0]
    publisher = ServiceTablePublisher(store, lambda: now[0])
    Api(store, lambda n: n).apply(json.dumps(WEB))
    first = publisher.flush()
    assert first is not None and first.generation == 1_000_000
    assert publisher.flush() is None
    svc_obj = store.get("Service", "default", "web")
    store.update({**svc_obj, "metadata": {**svc_obj["metadata"], "annotations": {"x": "y"}}})
    assert publisher.flush() is None  # written, but the table is the same
    publisher.forget()
    again = publisher.flush()
    assert again is not None and again.generation == 1_000_001


def test_a_deleted_pod_leaves_the_service_table_before_its_node_is_told_to_stop_it(tmp_path: Path) -> None:
    """The master publishes the ServiceTable before the desired states of the same pass (MQTT keeps one client's
    QoS 1 messages in order), so no node is told to stop a pod that the proxies still send to."""
    broker, clock = MemoryBroker(inline=True), Clock()
    with TinyStateStore(None) as backing:
        cluster = Cluster(tmp_path, backing, broker, clock)
        cluster.node_up("n1")
        web = pod("web-1", "10.42.0.2")
        manifest = [
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "labels": {"app": "web"}},
             "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox",
                                                         "ports": [{"name": "http", "containerPort": 8080}]}]}},
            WEB,
        ]  # fmt: skip
        assert cluster.api(
            verb=Verb.APPLY, manifest=json.dumps({"kind": "List", "apiVersion": "v1", "items": manifest})
        ).ok
        uid = cluster.master.store.peek("Pod", "default", "web-1")["metadata"]["uid"]
        status = PodReport(uid=uid, namespace="default", name="web-1", status=web["status"])
        report = NodeReport(node="n1", boot_id="b", node_object={"apiVersion": "v1", "kind": "Node",
                            "metadata": {"name": "n1"}}, pods=[status])  # fmt: skip
        cluster.send(topics.node_status("n1"), report.encode())
        cluster.master.reconcile()
        table = ServiceTable.decode(broker.published(topics.SERVICES)[-1].payload)
        assert [e.ip for e in table.services[0].endpoints] == ["10.42.0.2"]

        start = len(broker.log)
        assert cluster.api(verb=Verb.DELETE, kind="Pod", name="web-1").ok
        after = [p.message for p in broker.log[start:]]
        order = [m.topic for m in after if m.topic in (topics.SERVICES, topics.node_desired("n1"))]
        assert order == [topics.SERVICES, topics.node_desired("n1")]
        assert (
            ServiceTable.decode(after[[m.topic for m in after].index(topics.SERVICES)].payload).services[0].endpoints
            == []
        )


def test_a_relabelled_pod_leaves_the_old_services_endpoints_and_joins_the_new_in_one_pass(store: CachedStore) -> None:
    """The controller plans only Services touched since the last pass; a pod's old labels count too."""
    api = Api(store, lambda n: n)
    apply(api, svc("a"), svc("b"))
    controller = EndpointsController(store, resync=3600.0)
    effects = Effects(store, EventLog())
    store.create(pod("p", "10.42.0.2", labels={"app": "a"}))
    base.apply(controller.plan(Snapshot(store, 0.0)), effects)
    ready = {name: [a["ip"] for s in store.get("Endpoints", "default", name)["subsets"] for a in s.get("addresses", [])]
             for name in ("a", "b")}  # fmt: skip
    assert ready == {"a": ["10.42.0.2"], "b": []}
    moved = store.get("Pod", "default", "p")
    store.update({**moved, "metadata": {**moved["metadata"], "labels": {"app": "b"}}})
    actions = controller.plan(Snapshot(store, 1.0))  # long before a resync
    assert sorted(a.endpoints["metadata"]["name"] for a in actions if isinstance(a, WriteEndpoints)) == ["a", "b"]
    base.apply(actions, effects)
    assert store.get("Endpoints", "default", "a")["subsets"] == []
    assert store.get("Endpoints", "default", "b")["subsets"][0]["addresses"][0]["ip"] == "10.42.0.2"
    assert controller.plan(Snapshot(store, 2.0)) == []


def test_pods_on_a_node_that_is_not_ready_are_not_ready_endpoints_while_nodes_are_judged(store: CachedStore) -> None:
    """As the node lifecycle controller's MarkPodsNotReady: traffic leaves a node the master cannot hear."""
    apply(Api(store, lambda n: n), WEB)
    store.create(pod("a", "10.42.0.2"))
    controller = EndpointsController(store, resync=3600.0)
    effects = Effects(store, EventLog())

    def unreachable(node: str) -> Health:
        return Health.UNREACHABLE

    base.apply(controller.plan(Snapshot(store, 0.0, judging=False, health=unreachable)), effects)
    assert "addresses" in store.get("Endpoints", "default", "web")["subsets"][0]  # not judged: as it was
    # A Node write (as the lifecycle controller's NotReady taint) has every Service planned again.
    store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "namespace": ""}})
    base.apply(controller.plan(Snapshot(store, 1.0, judging=True, health=unreachable)), effects)
    [subset] = store.get("Endpoints", "default", "web")["subsets"]
    assert "addresses" not in subset and [a["ip"] for a in subset["notReadyAddresses"]] == ["10.42.0.2"]


def test_a_bad_service_cidr_stops_the_master_at_start_naming_the_flag(store: CachedStore) -> None:
    with pytest.raises(ValidationError, match=re.escape("--service-cidr: '10.43.0.0/33' is not a network")):
        Api(store, lambda n: n, service_cidr="10.43.0.0/33")
    with pytest.raises(ValidationError, match="must be an IPv4 network of at least 4 addresses"):
        Api(store, lambda n: n, service_cidr="10.43.0.0/31")


def test_the_service_table_benchmark_runs_and_prints_its_line() -> None:
    """benchmarks/service_table.py end to end, small (the figures in docs/services.md come from its defaults)."""
    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, str(root / "benchmarks" / "service_table.py"), "--services", "3", "--pods", "2"]
    done = subprocess.run([*command, "--runs", "2"], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.startswith("3 services x 2 pods, one pod not ready: plan ")
