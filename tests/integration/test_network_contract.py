"""HostRoutes and the nftables ruleset on the real kernel in a throwaway netns; FakeRoutes held to IpRoutes there.

The namespace has a veth pair with 192.0.2.1/24 on one end: gateways in that subnet are on-link (as node IPs on
a LAN), others are refused by the kernel as by the fake.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from edgekube.agent.network.conntrack import ConntrackTool, StaleFlow
from edgekube.agent.network.nftables import NftProxy, ruleset, transaction
from edgekube.agent.network.routes import HostRoutes, IpRoutes
from edgekube.model.errors import RuntimeFailure
from edgekube.model.netstate import EndpointEntry, ServiceEntry, ServicePortEntry, ServiceTable
from tests.support.netfakes import FakeRoutes
from tests.support.prerequisites import missing, require_netns


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    require_netns()
    name = f"ekc{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for argv in (
            ["link", "add", "a0", "type", "veth", "peer", "name", "a1"],
            ["addr", "add", "192.0.2.1/24", "dev", "a0"],
            ["link", "set", "a0", "up"],
            ["link", "set", "a1", "up"],
        ):
            subprocess.run(["ip", "-n", name, *argv], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


@pytest.fixture(params=["fake", "ip"])
def routes(request: pytest.FixtureRequest) -> Iterator[HostRoutes]:
    if request.param == "fake":
        yield FakeRoutes(on_link="192.0.2.0/24")
        return
    name = request.getfixturevalue("netns")
    real = IpRoutes(prefix=["nsenter", f"--net=/run/netns/{name}"])
    yield real
    for cidr in real.list():
        real.delete(cidr)


def test_replace_adds_then_moves_a_route_and_list_shows_only_ours(routes: HostRoutes) -> None:
    assert routes.list() == {}
    routes.replace("10.42.1.0/24", "192.0.2.2")
    routes.replace("10.42.2.0/24", "192.0.2.3")
    routes.replace("10.42.1.0/24", "192.0.2.4")  # the node moved: one route, the new gateway
    routes.replace("10.42.2.0/24", "192.0.2.3")  # idempotent
    assert routes.list() == {"10.42.1.0/24": "192.0.2.4", "10.42.2.0/24": "192.0.2.3"}


def test_delete_removes_one_route_and_a_missing_one_is_an_error(routes: HostRoutes) -> None:
    routes.replace("10.42.1.0/24", "192.0.2.2")
    routes.delete("10.42.1.0/24")
    assert routes.list() == {}
    with pytest.raises(RuntimeFailure):
        routes.delete("10.42.1.0/24")


def test_a_gateway_off_the_link_is_refused(routes: HostRoutes) -> None:
    with pytest.raises(RuntimeFailure, match="invalid gateway"):
        routes.replace("10.42.1.0/24", "198.51.100.7")
    assert routes.list() == {}


def test_ip_routes_ignores_routes_it_did_not_make(netns: str) -> None:
    subprocess.run(["ip", "-n", netns, "route", "add", "10.99.0.0/16", "via", "192.0.2.9"], check=True)
    try:
        assert IpRoutes(prefix=["nsenter", f"--net=/run/netns/{netns}"]).list() == {}
    finally:
        subprocess.run(["ip", "-n", netns, "route", "delete", "10.99.0.0/16"], check=False)


def _table(endpoints: int) -> ServiceTable:
    return ServiceTable(
        services=[
            ServiceEntry(
                namespace="default", name="web", cluster_ip="10.43.0.10", type="NodePort", session_affinity="ClientIP",
                ports=[ServicePortEntry(name="http", port=80, node_port=30080),
                       ServicePortEntry(name="dns", protocol="UDP", port=53)],
                endpoints=[EndpointEntry(ip=f"10.42.1.{i + 2}", ports={"http": 8080, "dns": 53})
                           for i in range(endpoints)],
            )
        ]
    )  # fmt: skip


def _listed(enter: list[str]) -> subprocess.CompletedProcess[str]:
    argv = [*enter, "nft", "list", "table", "ip", "edgekube"]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def test_the_ruleset_loads_replaces_itself_keeps_affinity_and_is_removed(netns: str) -> None:
    enter = ["nsenter", f"--net=/run/netns/{netns}"]
    proxy = NftProxy(prefix=enter)
    assert proxy.existing() == set()
    proxy.load(ruleset(_table(3), "10.42.1.0/24", proxy.existing()))
    assert "numgen random mod 3" in _listed(enter).stdout
    assert ("set", "affinity-default/web/tcp/http/10.42.1.2/8080") in proxy.existing()
    # A client sticks to the first endpoint; the table then loses two endpoints.
    sticky = "affinity-default/web/tcp/http/10.42.1.2/8080"
    subprocess.run([*enter, "nft", "add", "element", "ip", "edgekube", sticky, "{ 192.0.2.77 }"], check=True)
    proxy.load(ruleset(_table(1), "10.42.1.0/24", proxy.existing()))
    listed = _listed(enter).stdout
    assert "10.42.1.3" not in listed  # no chain, set or rule of the endpoints that left
    assert "numgen" not in listed
    assert "192.0.2.77" in listed  # the remaining endpoint's client is still remembered
    proxy.remove()
    assert _listed(enter).returncode != 0
    assert proxy.existing() == set()


def test_a_ruleset_the_kernel_refuses_changes_nothing(netns: str) -> None:
    enter = ["nsenter", f"--net=/run/netns/{netns}"]
    proxy = NftProxy(prefix=enter)
    proxy.load(ruleset(_table(2)))
    with pytest.raises(RuntimeFailure):
        proxy.load(ruleset(_table(1)) + "\nthis is not nft\n")
    listed = _listed(enter)
    assert "numgen random mod 2" in listed.stdout
    proxy.remove()


def test_a_partial_transaction_leaves_the_table_a_full_one_would(netns: str) -> None:
    """Services left out as unchanged keep their chains; the changed one and the maps end as a full load makes them."""
    enter = ["nsenter", f"--net=/run/netns/{netns}"]
    proxy = NftProxy(prefix=enter)
    other = ServiceEntry(namespace="default", name="api", cluster_ip="10.43.0.11", ports=[ServicePortEntry(port=9000)],
                         endpoints=[EndpointEntry(ip="10.42.2.7", ports={"": 9000})])  # fmt: skip
    before, after = _table(3), _table(1)
    before.services.append(other)
    after.services.append(other)
    first = transaction(before, "10.42.1.0/24", proxy.existing())
    proxy.load(first.text)
    partial = transaction(after, "10.42.1.0/24", first.objects, unchanged={("default", "api")})
    assert "service-default/api/tcp/9000\n" not in partial.text  # not written: only the map element names it
    assert "endpoint-default/api" not in partial.text
    proxy.load(partial.text)
    by_partial = _listed(enter).stdout
    proxy.remove()
    proxy.load(ruleset(after, "10.42.1.0/24"))
    assert sorted(by_partial.splitlines()) == sorted(_listed(enter).stdout.splitlines())
    assert "dnat to 10.42.2.7:9000" in by_partial
    proxy.remove()


def test_conntrack_tool_deletes_the_udp_flows_answered_by_a_gone_endpoint_only(netns: str) -> None:
    if shutil.which("conntrack") is None:
        missing("conntrack is not installed")
    enter = ["nsenter", f"--net=/run/netns/{netns}"]

    def insert(sport: int, endpoint: str) -> None:
        subprocess.run([*enter, "conntrack", "-I", "-p", "udp", "-s", "192.0.2.50", "-d", "10.43.0.10",
                        "--sport", str(sport), "--dport", "53", "--reply-src", endpoint, "--reply-dst", "192.0.2.50",
                        "--reply-port-src", "53", "--reply-port-dst", str(sport), "-t", "60"],
                       check=True, capture_output=True)  # fmt: skip

    def flows() -> list[str]:
        listed = subprocess.run([*enter, "conntrack", "-L", "-p", "udp"], capture_output=True, text=True, check=True)
        return sorted(re.findall(r"src=(10\.42\.\d+\.\d+)", listed.stdout))

    insert(1000, "10.42.1.5")
    insert(1001, "10.42.2.5")
    tool = ConntrackTool(prefix=enter)
    tool.delete(StaleFlow("10.43.0.10", 53, "10.42.1.5"))
    assert flows() == ["10.42.2.5"]
    tool.delete(StaleFlow("10.43.0.10", 53, "10.42.1.5"))  # nothing left to delete: fine
    tool.delete(StaleFlow("", 53, "10.42.2.5"))  # a NodePort's flows: any destination
    assert flows() == []
