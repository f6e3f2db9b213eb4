"""The node proxy's ruleset: a pure function of the ServiceTable, checked against golden text."""

from __future__ import annotations

from edgekube.agent.network.nftables import ruleset, table_names
from edgekube.model.netstate import EndpointEntry, ServiceEntry, ServicePortEntry, ServiceTable

GOLDEN = """\
table ip edgekube {
}
delete table ip edgekube
table ip edgekube {
	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = {
			10.43.0.10 . tcp . 80 : goto service-default/web/tcp/http,
		}
	}
	map service-nodeports {
		type inet_proto . inet_service : verdict
		elements = {
			tcp . 30080 : goto external-default/web/tcp/http,
		}
	}
	map no-endpoint-services {
		type ipv4_addr . inet_proto . inet_service : verdict
		elements = {
			10.43.0.11 . udp . 53 : goto reject-chain,
		}
	}
	map no-endpoint-nodeports {
		type inet_proto . inet_service : verdict
	}
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		jump services
	}
	chain output {
		type nat hook output priority -100; policy accept;
		jump services
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		meta mark & 0x4000 == 0x4000 masquerade fully-random
		ct status dnat ip saddr 10.42.1.0/24 ip daddr 10.42.1.0/24 masquerade
	}
	chain mark-for-masquerade {
		meta mark set meta mark | 0x4000
	}
	chain services {
		ip daddr . meta l4proto . th dport vmap @service-ips
		fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
	}
	chain filter-forward {
		type filter hook forward priority -10; policy accept;
		ip daddr . meta l4proto . th dport vmap @no-endpoint-services
	}
	chain filter-output {
		type filter hook output priority -10; policy accept;
		ip daddr . meta l4proto . th dport vmap @no-endpoint-services
	}
	chain filter-input {
		type filter hook input priority -10; policy accept;
		fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports
	}
	chain reject-chain {
		reject
	}
	chain external-default/web/tcp/http {
		jump mark-for-masquerade
		goto service-default/web/tcp/http
	}
	chain service-default/web/tcp/http {
		numgen random mod 2 vmap { 0 : goto endpoint-default/web/tcp/http/10.42.2.5/8080, 1 : goto endpoint-default/web/tcp/http/10.42.10.5/8080 }
	}
	chain endpoint-default/web/tcp/http/10.42.2.5/8080 {
		meta l4proto tcp dnat to 10.42.2.5:8080
	}
	chain endpoint-default/web/tcp/http/10.42.10.5/8080 {
		meta l4proto tcp dnat to 10.42.10.5:8080
	}
}
"""  # noqa: E501 - kube-proxy's one-line numgen vmap


def _web(**fields: object) -> ServiceEntry:
    base: dict[str, object] = {
        "namespace": "default", "name": "web", "cluster_ip": "10.43.0.10", "type": "NodePort",
        "ports": [ServicePortEntry(name="http", port=80, node_port=30080)],
        "endpoints": [
            EndpointEntry(ip="10.42.10.5", node="c", ports={"http": 8080}),
            EndpointEntry(ip="10.42.2.5", node="b", ports={"http": 8080}),
            EndpointEntry(ip="10.42.3.9", node="c", ready=False, ports={"http": 8080}),
        ],
    }  # fmt: skip
    return ServiceEntry.model_validate({**base, **fields})


def test_a_node_port_service_with_two_ready_endpoints_and_one_without_endpoints() -> None:
    dns = ServiceEntry(
        namespace="default", name="empty", cluster_ip="10.43.0.11", ports=[ServicePortEntry(port=53, protocol="UDP")]
    )
    assert ruleset(ServiceTable(services=[_web(), dns]), "10.42.1.0/24") == GOLDEN


def test_the_ruleset_is_the_same_whatever_the_order_of_services_and_endpoints() -> None:
    web = _web()
    reordered = _web(endpoints=list(reversed(web.endpoints)))
    other = ServiceEntry(namespace="a", name="z", cluster_ip="10.43.0.12", ports=[ServicePortEntry(port=1)])
    assert ruleset(ServiceTable(services=[web, other])) == ruleset(ServiceTable(services=[other, reordered]))


def test_one_endpoint_is_a_plain_goto_and_client_ip_affinity_adds_a_set_per_endpoint() -> None:
    one = _web(endpoints=[EndpointEntry(ip="10.42.2.5", ports={"http": 8080})], type="ClusterIP")
    text = ruleset(ServiceTable(services=[one]))
    assert "numgen" not in text
    assert "\t\tgoto endpoint-default/web/tcp/http/10.42.2.5/8080\n" in text
    assert "external-" not in text
    sticky = ruleset(ServiceTable(services=[_web(session_affinity="ClientIP", affinity_timeout_seconds=60)]))
    name = "affinity-default/web/tcp/http/10.42.2.5/8080"
    assert f"\tset {name} {{\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout 60s\n\t}}\n" in sticky
    assert f"ip saddr @{name} goto endpoint-default/web/tcp/http/10.42.2.5/8080" in sticky
    assert f"update @{name} {{ ip saddr }}" in sticky


def test_headless_services_and_ports_no_endpoint_names_get_no_rules() -> None:
    headless = _web(cluster_ip="", type="ClusterIP")
    unnamed = _web(name="api", cluster_ip="10.43.0.13", type="ClusterIP",
                   ports=[ServicePortEntry(name="grpc", port=9000)])  # fmt: skip
    text = ruleset(ServiceTable(services=[headless, unnamed]))
    assert [n for n in table_names(text) if n.startswith(("service-", "endpoint-"))] == []
    assert "10.43.0.13 . tcp . 9000 : goto reject-chain" in text


def test_no_hairpin_rule_before_the_node_knows_its_pod_cidr() -> None:
    assert "ct status dnat" not in ruleset(ServiceTable(services=[_web()]))


def test_ipv6_addresses_are_left_out_of_the_ipv4_table() -> None:
    v6 = _web(cluster_ip="fd00::10", type="ClusterIP")
    mixed = _web(name="mixed", cluster_ip="10.43.0.14", type="ClusterIP",
                 endpoints=[EndpointEntry(ip="fd00::5", ports={"http": 8080})])  # fmt: skip
    text = ruleset(ServiceTable(services=[v6, mixed]))
    assert "fd00" not in text
    assert "10.43.0.14 . tcp . 80 : goto reject-chain" in text
