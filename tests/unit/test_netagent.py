"""The agent's network loop on fakes: nothing touched before the first tables, then network, routes, rules in line."""

from __future__ import annotations

from edgekube.agent.network.conntrack import StaleFlow
from edgekube.agent.network.dnsserver import DnsServer
from edgekube.agent.network.netagent import NetworkAgent
from edgekube.agent.runtime.podman.network import PodNetwork
from edgekube.bus import topics
from edgekube.bus.protocol import Message
from edgekube.model.netstate import EndpointEntry, RouteEntry, RouteTable, ServiceEntry, ServicePortEntry, ServiceTable
from tests.support.netfakes import FakeConntrack, FakeFirewall, FakeNetworkRuntime, FakeRoutes


def _agent() -> tuple[NetworkAgent, FakeNetworkRuntime, FakeRoutes, FakeFirewall]:
    runtime, routes, firewall = FakeNetworkRuntime(), FakeRoutes(on_link="192.0.2.0/24"), FakeFirewall()
    return NetworkAgent("a", runtime, routes, firewall, dns=False), runtime, routes, firewall


def _routes(agent: NetworkAgent, *entries: tuple[str, str, str]) -> None:
    table = RouteTable(nodes=[RouteEntry(name=n, pod_cidr=c, node_ip=ip) for n, c, ip in entries])
    agent._on_routes(Message(topics.ROUTES, table.encode(), retain=True))


def _services(agent: NetworkAgent, *ips: str) -> None:
    svc = ServiceEntry(namespace="default", name="web", cluster_ip="10.43.0.10", ports=[ServicePortEntry(port=80)],
                       endpoints=[EndpointEntry(ip=ip, ports={"": 8080}) for ip in ips])  # fmt: skip
    agent._on_services(Message(topics.SERVICES, ServiceTable(services=[svc]).encode(), retain=True))


def test_before_any_table_nothing_is_removed_and_pods_wait_for_the_network() -> None:
    agent, runtime, routes, firewall = _agent()
    routes.routes = {"10.42.9.0/24": "192.0.2.9"}  # left by the agent before a restart
    agent.sync()
    assert routes.list() == {"10.42.9.0/24": "192.0.2.9"}
    assert firewall.loaded == []
    assert runtime.networks == []


def test_the_route_table_gives_the_pod_network_and_routes_to_the_other_nodes_only() -> None:
    agent, runtime, routes, _ = _agent()
    routes.routes = {"10.42.9.0/24": "192.0.2.9"}
    _routes(agent, ("a", "10.42.0.0/24", "192.0.2.1"), ("b", "10.42.1.0/24", "192.0.2.2"), ("c", "10.42.2.0/24", ""))
    agent.sync()
    assert runtime.networks == [PodNetwork("10.42.0.0/24")]
    assert routes.list() == {"10.42.1.0/24": "192.0.2.2"}
    agent.sync()
    assert runtime.networks == [PodNetwork("10.42.0.0/24")]  # told once
    assert routes.calls[-1] == ("replace", "10.42.1.0/24", "192.0.2.2")  # nothing more to do


def test_a_route_the_kernel_refuses_is_reported_and_tried_again() -> None:
    agent, _, routes, _ = _agent()
    _routes(agent, ("a", "10.42.0.0/24", "192.0.2.1"), ("b", "10.42.1.0/24", "198.51.100.2"))
    agent.sync()
    assert agent.failures == ["ip route replace 10.42.1.0/24 via 198.51.100.2: Nexthop has invalid gateway"]
    agent.sync()
    assert routes.calls.count(("replace", "10.42.1.0/24", "198.51.100.2")) == 2


def test_rules_are_loaded_on_each_change_of_the_table_only() -> None:
    agent, _, _, firewall = _agent()
    _services(agent, "10.42.1.5")
    agent.sync()
    agent.sync()
    assert len(firewall.loaded) == 1
    assert "dnat to 10.42.1.5:8080" in firewall.loaded[0]
    _services(agent, "10.42.1.6")
    agent.sync()
    assert len(firewall.loaded) == 2
    _routes(agent, ("a", "10.42.0.0/24", "192.0.2.1"))
    agent.sync()  # the node's CIDR is now known: the hairpin rule names it
    assert "ip saddr 10.42.0.0/24 ip daddr 10.42.0.0/24 masquerade" in firewall.loaded[-1]


def test_a_malformed_table_is_ignored_and_the_last_good_one_kept() -> None:
    agent, _, _, firewall = _agent()
    _services(agent, "10.42.1.5")
    agent._on_services(Message(topics.SERVICES, b'{"schema": "edgekube/v1", "services": [{"name": 1}]}'))
    agent.sync()
    assert "10.42.1.5" in firewall.loaded[0]


def test_a_dns_server_that_cannot_start_is_reported_and_tried_again_while_routes_go_on() -> None:
    attempts: list[str] = []

    def refuse(address: str, *args: object, **kwargs: object) -> DnsServer:
        attempts.append(address)
        raise OSError(98, "Address already in use")

    runtime, routes, firewall = FakeNetworkRuntime(), FakeRoutes(on_link="192.0.2.0/24"), FakeFirewall()
    agent = NetworkAgent("a", runtime, routes, firewall, dns=True, dns_factory=refuse)
    _routes(agent, ("a", "10.42.0.0/24", "192.0.2.1"), ("b", "10.42.1.0/24", "192.0.2.2"))
    agent.sync()
    assert routes.list() == {"10.42.1.0/24": "192.0.2.2"}
    assert agent.failures == ["cluster DNS on 10.42.0.1:53: [Errno 98] Address already in use"]
    agent.sync()
    assert attempts == ["10.42.0.1", "10.42.0.1"]


def test_after_new_rules_the_udp_flows_of_endpoints_that_left_are_deleted() -> None:
    runtime, routes, firewall, conntrack = FakeNetworkRuntime(), FakeRoutes(), FakeFirewall(), FakeConntrack()
    agent = NetworkAgent("a", runtime, routes, firewall, conntrack, dns=False)

    def publish(*ips: str) -> None:
        svc = ServiceEntry(namespace="kube", name="dns", cluster_ip="10.43.0.53", type="NodePort",
                           ports=[ServicePortEntry(name="dns", protocol="UDP", port=53, node_port=30053)],
                           endpoints=[EndpointEntry(ip=ip, ports={"dns": 53}) for ip in ips])  # fmt: skip
        agent._on_services(Message(topics.SERVICES, ServiceTable(services=[svc]).encode(), retain=True))
        agent.sync()

    publish("10.42.1.5", "10.42.2.5")
    assert conntrack.deleted == []  # the first table: nothing to compare with
    publish("10.42.2.5")
    assert conntrack.deleted == [StaleFlow("", 30053, "10.42.1.5"), StaleFlow("10.43.0.53", 53, "10.42.1.5")]


def test_the_kernels_table_is_listed_once_then_stale_objects_come_from_what_was_loaded() -> None:
    agent, _, _, firewall = _agent()
    firewall.objects = {("chain", "leftover-of-an-earlier-agent")}
    _services(agent, "10.42.1.5")
    agent.sync()
    assert firewall.loaded[-1].endswith("delete chain ip edgekube leftover-of-an-earlier-agent\n")
    firewall.objects = {("chain", "not-listed-again")}
    _services(agent, "10.42.1.6")
    agent.sync()
    assert "not-listed-again" not in firewall.loaded[-1]
    assert "delete chain ip edgekube endpoint-default/web/tcp/80/10.42.1.5/8080" in firewall.loaded[-1]
