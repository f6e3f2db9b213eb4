"""dnsPolicy and dnsConfig on real Podman: the /etc/resolv.conf a process in the pod reads.

Each test creates a pod through PodmanRuntime and `cat`s /etc/resolv.conf inside it, as a user of the pod would;
the node's own resolv.conf (what Default gives) is read from the host the same way the agent reads it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from edgekube.agent.runtime.podman import PodmanRuntime
from edgekube.agent.runtime.podman.dns import parse, read_host
from edgekube.local.podman_service import PodmanService
from edgekube.model.names import NodeName
from tests.unit.test_runtime_contract import IDLE, make_pod, new_uid

pytestmark = pytest.mark.integration


@pytest.fixture
def runtime(podman_service: PodmanService, demo_image: str) -> Iterator[PodmanRuntime]:
    rt = PodmanRuntime(podman_service.url, NodeName(f"node-{uuid.uuid4().hex[:8]}"))
    yield rt
    for pod in rt.list_pods():
        rt.remove_pod(pod.uid, grace_seconds=0)
    rt.close()


def _resolv_conf(runtime: PodmanRuntime, image: str, **spec: Any) -> list[str]:
    uid = new_uid()
    runtime.create_pod(make_pod("dns", image, {"name": "main", "image": image, "command": IDLE}, **spec), uid, "h")
    code, out = runtime.exec(uid, "main", ["cat", "/etc/resolv.conf"], timeout=10)
    assert code == 0, out
    return [line for line in out.splitlines() if line.strip() and not line.startswith("#")]


def test_policy_none_gives_exactly_the_pods_dns_config(runtime: PodmanRuntime, demo_image: str) -> None:
    config = {
        "nameservers": ["192.0.2.53", "2001:db8::53"],
        "searches": ["ns1.svc.cluster-domain.example", "my.dns.search.suffix"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
    }
    lines = _resolv_conf(runtime, demo_image, dnsPolicy="None", dnsConfig=config)
    conf = parse("\n".join(lines))
    assert conf.nameservers == ["192.0.2.53", "2001:db8::53"]
    assert conf.searches == ["ns1.svc.cluster-domain.example", "my.dns.search.suffix"]
    assert sorted(conf.options) == ["edns0", "ndots:2"]


def test_policy_none_without_searches_or_options_has_none_of_the_nodes(runtime: PodmanRuntime, demo_image: str) -> None:
    lines = _resolv_conf(runtime, demo_image, dnsPolicy="None", dnsConfig={"nameservers": ["192.0.2.53"]})
    conf = parse("\n".join(lines))
    assert conf == parse("nameserver 192.0.2.53")


def test_default_and_cluster_first_without_dns_config_give_the_nodes_nameservers(
    runtime: PodmanRuntime, demo_image: str
) -> None:
    """No cluster DNS yet: ClusterFirst (the default) resolves as Default, the node's resolv.conf."""
    node = read_host()
    for policy in ("Default", "ClusterFirst", None):
        spec = {"dnsPolicy": policy} if policy else {}
        assert parse("\n".join(_resolv_conf(runtime, demo_image, **spec))).nameservers == node.nameservers


def test_dns_config_is_appended_to_the_nodes_settings(runtime: PodmanRuntime, demo_image: str) -> None:
    """appendDNSConfig: the node's nameservers and searches first, then the pod's; its option wins by name."""
    node = read_host()
    config = {
        "nameservers": ["192.0.2.53"],
        "searches": ["extra.example"],
        "options": [{"name": "ndots", "value": "3"}],
    }
    conf = parse("\n".join(_resolv_conf(runtime, demo_image, dnsPolicy="ClusterFirst", dnsConfig=config)))
    assert conf.nameservers == [*node.nameservers, "192.0.2.53"][:3]
    assert conf.searches == [*node.searches, "extra.example"]
    assert "ndots:3" in conf.options


def test_a_host_network_pod_gets_its_dns_config_too(runtime: PodmanRuntime, demo_image: str) -> None:
    config = {"nameservers": ["192.0.2.53"], "searches": ["host.example"]}
    lines = _resolv_conf(runtime, demo_image, hostNetwork=True, dnsPolicy="None", dnsConfig=config)
    conf = parse("\n".join(lines))
    assert (conf.nameservers, conf.searches) == (["192.0.2.53"], ["host.example"])
