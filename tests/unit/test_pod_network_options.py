"""Pods on the node's pod network: the Podman network they join and the ClusterFirst resolv.conf (kubelet's rules)."""

from __future__ import annotations

from typing import Any

from edgekube.agent.runtime.podman.dns import ResolvConf
from edgekube.agent.runtime.podman.network import PodNetwork
from edgekube.model.pod import Pod

NET = PodNetwork("10.42.3.0/24", dns_server="10.42.3.1")
HOST = ResolvConf(["192.0.2.53"], ["lan"], ["edns0"])


def _pod(namespace: str = "shop", **spec: Any) -> Pod:
    body = {"containers": [{"name": "c", "image": "busybox"}], **spec}
    return Pod.from_dict(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": namespace}, "spec": body}
    )


def test_the_gateway_is_the_first_address_of_the_cidr() -> None:
    assert NET.gateway == "10.42.3.1"


def test_a_cluster_first_pod_joins_the_network_and_resolves_through_the_cluster_dns() -> None:
    assert NET.pod_options(_pod(), HOST) == {
        "netns": {"nsmode": "bridge"},
        "networks": {"edgekube": {}},
        "dns_server": ["10.42.3.1"],
        "dns_search": ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local", "lan"],
        "dns_option": ["ndots:5"],
    }


def test_a_dns_config_is_appended_to_the_cluster_settings() -> None:
    pod = _pod(dnsConfig={"searches": ["x.example"], "options": [{"name": "ndots", "value": "2"}]})
    options = NET.pod_options(pod, HOST)
    assert options["dns_search"][-1] == "x.example"
    assert options["dns_option"] == ["ndots:2"]


def test_default_and_none_policies_join_the_network_and_keep_their_own_dns() -> None:
    assert NET.pod_options(_pod(dnsPolicy="Default"), HOST) == {
        "netns": {"nsmode": "bridge"},
        "networks": {"edgekube": {}},
    }
    none = _pod(dnsPolicy="None", dnsConfig={"nameservers": ["9.9.9.9"]})
    assert "dns_server" not in NET.pod_options(none, HOST)


def test_a_host_network_pod_is_left_alone_and_without_cluster_dns_only_the_network_is_set() -> None:
    assert NET.pod_options(_pod(hostNetwork=True), HOST) == {}
    plain = PodNetwork("10.42.3.0/24")
    assert plain.pod_options(_pod(), HOST) == {"netns": {"nsmode": "bridge"}, "networks": {"edgekube": {}}}


def test_a_host_network_pod_gets_the_cluster_dns_only_with_cluster_first_with_host_net() -> None:
    with_host_net = _pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet")
    assert NET.host_network_dns(with_host_net, HOST)["dns_server"] == ["10.42.3.1"]
    assert NET.host_network_dns(_pod(hostNetwork=True), HOST) == {}  # ClusterFirst on the host network: the node's
    assert NET.host_network_dns(_pod(dnsPolicy="ClusterFirstWithHostNet"), HOST) == {}  # not on the host network


def test_enable_service_links_is_accepted_and_false_kept() -> None:
    assert _pod(enableServiceLinks=False).spec.enable_service_links is False
    assert _pod().spec.enable_service_links is None  # unset: true, as Kubernetes defaults it
