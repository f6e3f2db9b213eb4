"""Kubernetes' service environment variables for a new pod: the kubelet's FromServices for its namespace."""

from __future__ import annotations

from edgekube.agent.network.serviceenv import namespace_env
from edgekube.model.netstate import ServiceEntry, ServicePortEntry, ServiceTable

TABLE = ServiceTable(
    services=[
        ServiceEntry(namespace="shop", name="web-front", cluster_ip="10.43.0.10",
                     ports=[ServicePortEntry(name="http", port=80),
                            ServicePortEntry(name="dns", port=53, protocol="UDP")]),
        ServiceEntry(namespace="shop", name="db", cluster_ip="", ports=[ServicePortEntry(port=5432)]),
        ServiceEntry(namespace="other", name="cache", cluster_ip="10.43.0.11", ports=[ServicePortEntry(port=6379)]),
    ]
)  # fmt: skip


def test_a_service_of_the_pods_namespace_gives_host_port_and_docker_link_variables() -> None:
    assert namespace_env(TABLE, "shop") == {
        "WEB_FRONT_SERVICE_HOST": "10.43.0.10",
        "WEB_FRONT_SERVICE_PORT": "80",
        "WEB_FRONT_SERVICE_PORT_HTTP": "80",
        "WEB_FRONT_SERVICE_PORT_DNS": "53",
        "WEB_FRONT_PORT": "tcp://10.43.0.10:80",
        "WEB_FRONT_PORT_80_TCP": "tcp://10.43.0.10:80",
        "WEB_FRONT_PORT_80_TCP_PROTO": "tcp",
        "WEB_FRONT_PORT_80_TCP_PORT": "80",
        "WEB_FRONT_PORT_80_TCP_ADDR": "10.43.0.10",
        "WEB_FRONT_PORT_53_UDP": "udp://10.43.0.10:53",
        "WEB_FRONT_PORT_53_UDP_PROTO": "udp",
        "WEB_FRONT_PORT_53_UDP_PORT": "53",
        "WEB_FRONT_PORT_53_UDP_ADDR": "10.43.0.10",
    }


def test_headless_services_and_other_namespaces_give_nothing() -> None:
    assert namespace_env(TABLE, "other") == {
        "CACHE_SERVICE_HOST": "10.43.0.11",
        "CACHE_SERVICE_PORT": "6379",
        "CACHE_PORT": "tcp://10.43.0.11:6379",
        "CACHE_PORT_6379_TCP": "tcp://10.43.0.11:6379",
        "CACHE_PORT_6379_TCP_PROTO": "tcp",
        "CACHE_PORT_6379_TCP_PORT": "6379",
        "CACHE_PORT_6379_TCP_ADDR": "10.43.0.11",
    }
    assert namespace_env(TABLE, "empty") == {}
