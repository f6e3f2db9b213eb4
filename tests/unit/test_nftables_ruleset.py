"""The node proxy's ruleset: a pure function of the ServiceTable, checked against golden text."""

from __future__ import annotations

from edgekube.agent.network.nftables import object_names, ruleset, transaction
from edgekube.model.netstate import EndpointEntry, ServiceEntry, ServicePortEntry, ServiceTable

GOLDEN = """\
add table ip edgekube
add map ip edgekube service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }
add map ip edgekube service-nodeports { type inet_proto . inet_service : verdict; }
add map ip edgekube no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict; }
add map ip edgekube no-endpoint-nodeports { type inet_proto . inet_service : verdict; }
add chain ip edgekube prerouting { type nat hook prerouting priority dstnat; policy accept; }
add chain ip edgekube output { type nat hook output priority -100; policy accept; }
add chain ip edgekube postrouting { type nat hook postrouting priority srcnat; policy accept; }
add chain ip edgekube mark-for-masquerade
add chain ip edgekube services
add chain ip edgekube filter-forward { type filter hook forward priority -10; policy accept; }
add chain ip edgekube filter-output { type filter hook output priority -10; policy accept; }
add chain ip edgekube filter-input { type filter hook input priority -10; policy accept; }
add chain ip edgekube reject-chain
add chain ip edgekube external-default/web/tcp/http
add chain ip edgekube service-default/web/tcp/http
add chain ip edgekube endpoint-default/web/tcp/http/10.42.2.5/8080
add chain ip edgekube endpoint-default/web/tcp/http/10.42.10.5/8080
flush chain ip edgekube prerouting
flush chain ip edgekube output
flush chain ip edgekube postrouting
flush chain ip edgekube mark-for-masquerade
flush chain ip edgekube services
flush chain ip edgekube filter-forward
flush chain ip edgekube filter-output
flush chain ip edgekube filter-input
flush chain ip edgekube reject-chain
flush chain ip edgekube external-default/web/tcp/http
flush chain ip edgekube service-default/web/tcp/http
flush chain ip edgekube endpoint-default/web/tcp/http/10.42.2.5/8080
flush chain ip edgekube endpoint-default/web/tcp/http/10.42.10.5/8080
flush map ip edgekube service-ips
flush map ip edgekube service-nodeports
flush map ip edgekube no-endpoint-services
flush map ip edgekube no-endpoint-nodeports
add rule ip edgekube prerouting jump services
add rule ip edgekube output jump services
add rule ip edgekube postrouting meta mark & 0x4000 == 0x4000 masquerade fully-random
add rule ip edgekube postrouting ct status dnat ip saddr 10.42.1.0/24 ip daddr 10.42.1.0/24 masquerade
add rule ip edgekube mark-for-masquerade meta mark set meta mark | 0x4000
add rule ip edgekube services ip daddr . meta l4proto . th dport vmap @service-ips
add rule ip edgekube services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports
add rule ip edgekube filter-forward ip daddr . meta l4proto . th dport vmap @no-endpoint-services
add rule ip edgekube filter-output ip daddr . meta l4proto . th dport vmap @no-endpoint-services
add rule ip edgekube filter-input fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports
add rule ip edgekube reject-chain reject
add rule ip edgekube external-default/web/tcp/http jump mark-for-masquerade
add rule ip edgekube external-default/web/tcp/http goto service-default/web/tcp/http
add rule ip edgekube service-default/web/tcp/http numgen random mod 2 vmap { 0 : goto endpoint-default/web/tcp/http/10.42.2.5/8080, 1 : goto endpoint-default/web/tcp/http/10.42.10.5/8080 }
add rule ip edgekube endpoint-default/web/tcp/http/10.42.2.5/8080 meta l4proto tcp dnat to 10.42.2.5:8080
add rule ip edgekube endpoint-default/web/tcp/http/10.42.10.5/8080 meta l4proto tcp dnat to 10.42.10.5:8080
add element ip edgekube service-ips { 10.43.0.10 . tcp . 80 : goto service-default/web/tcp/http }
add element ip edgekube service-nodeports { tcp . 30080 : goto external-default/web/tcp/http }
add element ip edgekube no-endpoint-services { 10.43.0.11 . udp . 53 : goto reject-chain }
"""  # noqa: E501 - nft commands are one line each


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
    assert (
        "add rule ip edgekube service-default/web/tcp/http goto endpoint-default/web/tcp/http/10.42.2.5/8080\n" in text
    )
    assert "external-" not in text
    sticky = ruleset(ServiceTable(services=[_web(session_affinity="ClientIP", affinity_timeout_seconds=60)]))
    name = "affinity-default/web/tcp/http/10.42.2.5/8080"
    assert f"add set ip edgekube {name} {{ type ipv4_addr; flags dynamic,timeout; timeout 60s; }}\n" in sticky
    assert f"ip saddr @{name} goto endpoint-default/web/tcp/http/10.42.2.5/8080" in sticky
    assert f"update @{name} {{ ip saddr }}" in sticky
    assert f"flush set ip edgekube {name}" not in sticky  # its clients stay across syncs


def test_headless_services_and_ports_no_endpoint_names_get_no_rules() -> None:
    headless = _web(cluster_ip="", type="ClusterIP")
    unnamed = _web(name="api", cluster_ip="10.43.0.13", type="ClusterIP",
                   ports=[ServicePortEntry(name="grpc", port=9000)])  # fmt: skip
    text = ruleset(ServiceTable(services=[headless, unnamed]))
    assert [n for k, n in object_names(text) if k == "chain" and n.startswith(("service-", "endpoint-"))] == []
    assert "10.43.0.13 . tcp . 9000 : goto reject-chain" in text


def test_no_hairpin_rule_before_the_node_knows_its_pod_cidr() -> None:
    assert "ct status dnat" not in ruleset(ServiceTable(services=[_web()]))


def test_objects_the_table_no_longer_wants_are_flushed_and_deleted_last_wanted_ones_never() -> None:
    existing = [("chain", "endpoint-default/web/tcp/http/10.42.9.9/8080"), ("chain", "services"),
                ("set", "affinity-default/old/tcp/http/10.42.9.9/8080"), ("map", "service-ips")]  # fmt: skip
    text = ruleset(ServiceTable(services=[_web()]), existing=existing)
    assert text.endswith(
        "flush chain ip edgekube endpoint-default/web/tcp/http/10.42.9.9/8080\n"
        "delete chain ip edgekube endpoint-default/web/tcp/http/10.42.9.9/8080\n"
        "delete set ip edgekube affinity-default/old/tcp/http/10.42.9.9/8080\n"
    )
    assert "delete chain ip edgekube services" not in text
    assert text.startswith(ruleset(ServiceTable(services=[_web()])))


def test_ipv6_addresses_are_left_out_of_the_ipv4_table() -> None:
    v6 = _web(cluster_ip="fd00::10", type="ClusterIP")
    mixed = _web(name="mixed", cluster_ip="10.43.0.14", type="ClusterIP",
                 endpoints=[EndpointEntry(ip="fd00::5", ports={"http": 8080})])  # fmt: skip
    text = ruleset(ServiceTable(services=[v6, mixed]))
    assert "fd00" not in text
    assert "10.43.0.14 . tcp . 80 : goto reject-chain" in text


def test_unchanged_services_are_not_written_but_stay_wanted_and_in_the_maps() -> None:
    api = ServiceEntry(namespace="default", name="api", cluster_ip="10.43.0.12", ports=[ServicePortEntry(port=9000)],
                       endpoints=[EndpointEntry(ip="10.42.2.7", ports={"": 9000})])  # fmt: skip
    table = ServiceTable(services=[_web(session_affinity="ClientIP", affinity_timeout_seconds=60), api])
    full = transaction(table, "10.42.1.0/24")
    partial = transaction(table, "10.42.1.0/24", existing=full.objects, unchanged={("default", "web")})
    assert partial.objects == full.objects
    assert "default/web" not in partial.text.replace("goto service-default/web", "").replace(
        "goto external-default/web", ""
    )  # no add, flush, rule or delete of web's chains and sets: only the map elements name them
    assert "10.43.0.10 . tcp . 80 : goto service-default/web/tcp/http" in partial.text  # the maps are whole
    assert "add chain ip edgekube endpoint-default/api/tcp/9000/10.42.2.7/9000\n" in partial.text
    assert [line for line in partial.text.splitlines() if "default/api" in line or "flush map" in line] == [
        line for line in full.text.splitlines() if "default/api" in line or "flush map" in line
    ]
