"""Which UDP flows go stale when a table changes: endpoints of UDP Service ports that left (kube-proxy's rule)."""

from __future__ import annotations

from edgekube.agent.network.conntrack import StaleFlow, stale_udp
from edgekube.model.netstate import EndpointEntry, ServiceEntry, ServicePortEntry, ServiceTable


def _table(*endpoints: tuple[str, bool], tcp: bool = False) -> ServiceTable:
    ports = [ServicePortEntry(name="p", protocol="TCP" if tcp else "UDP", port=53, node_port=30053)]
    eps = [EndpointEntry(ip=ip, ready=ready, ports={"p": 5353}) for ip, ready in endpoints]
    svc = ServiceEntry(namespace="n", name="s", cluster_ip="10.43.0.53", type="NodePort", ports=ports, endpoints=eps)
    return ServiceTable(services=[svc])


def test_an_endpoint_that_left_or_became_not_ready_makes_its_flows_stale_on_the_cluster_ip_and_node_port() -> None:
    before = _table(("10.42.1.5", True), ("10.42.2.5", True), ("10.42.3.5", True))
    after = _table(("10.42.2.5", True), ("10.42.3.5", False))
    assert stale_udp(before, after) == [
        StaleFlow("", 30053, "10.42.1.5"),
        StaleFlow("", 30053, "10.42.3.5"),
        StaleFlow("10.43.0.53", 53, "10.42.1.5"),
        StaleFlow("10.43.0.53", 53, "10.42.3.5"),
    ]


def test_nothing_is_stale_for_tcp_for_a_new_endpoint_or_an_unchanged_table() -> None:
    assert stale_udp(_table(("10.42.1.5", True), tcp=True), _table(tcp=True)) == []
    assert stale_udp(_table(("10.42.1.5", True)), _table(("10.42.1.5", True), ("10.42.2.5", True))) == []
    assert stale_udp(_table(("10.42.1.5", False)), _table()) == []


def test_a_removed_service_makes_all_its_flows_stale() -> None:
    assert len(stale_udp(_table(("10.42.1.5", True)), ServiceTable())) == 2
