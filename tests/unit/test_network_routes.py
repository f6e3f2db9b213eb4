"""Host-gw routes: which the node wants from the RouteTable, the pure plan against what it has, the master's table."""

from __future__ import annotations

from typing import Any

from edgekube.agent.network.routes import Delete, Replace, apply, desired, plan
from edgekube.master.routes import RoutePublisher, route_entries
from edgekube.model.netstate import RouteEntry, RouteTable
from tests.support.netfakes import FakeRoutes


def _table(*entries: tuple[str, str, str]) -> RouteTable:
    return RouteTable(nodes=[RouteEntry(name=n, pod_cidr=c, node_ip=ip, ready=True) for n, c, ip in entries])


def test_a_node_wants_a_route_to_every_other_node_with_an_address() -> None:
    table = _table(("a", "10.42.0.0/24", "192.0.2.1"), ("b", "10.42.1.0/24", "192.0.2.2"), ("c", "10.42.2.0/24", ""))
    assert desired(table, "a") == {"10.42.1.0/24": "192.0.2.2"}


def test_the_plan_deletes_stale_routes_first_then_adds_and_moves() -> None:
    have = {"10.42.9.0/24": "192.0.2.9", "10.42.1.0/24": "192.0.2.7", "10.42.2.0/24": "192.0.2.3"}
    want = {"10.42.1.0/24": "192.0.2.2", "10.42.2.0/24": "192.0.2.3", "10.42.3.0/24": "192.0.2.4"}
    assert plan(want, have) == [
        Delete("10.42.9.0/24"),
        Replace("10.42.1.0/24", "192.0.2.2"),
        Replace("10.42.3.0/24", "192.0.2.4"),
    ]
    assert plan(want, want) == []


def test_apply_carries_on_past_a_failure_and_reports_it() -> None:
    routes = FakeRoutes(on_link="192.0.2.0/24")
    failures = apply([Replace("10.42.1.0/24", "198.51.100.1"), Replace("10.42.2.0/24", "192.0.2.3")], routes)
    assert routes.list() == {"10.42.2.0/24": "192.0.2.3"}
    assert failures == ["ip route replace 10.42.1.0/24 via 198.51.100.1: Nexthop has invalid gateway"]


def _node(name: str, cidr: str | None, ip: str | None) -> dict[str, Any]:
    spec = {"podCIDR": cidr} if cidr else {}
    status = {
        "addresses": [{"type": "Hostname", "address": name}, *([{"type": "InternalIP", "address": ip}] if ip else [])]
    }
    return {"metadata": {"name": name}, "spec": spec, "status": status}


def test_the_master_lists_nodes_with_a_cidr_by_name_with_their_internal_ip_and_readiness() -> None:
    nodes = [_node("b", "10.42.1.0/24", "192.0.2.2"), _node("a", "10.42.0.0/24", None), _node("c", None, "192.0.2.3")]
    assert route_entries(nodes, ready=lambda n: n == "b") == [
        RouteEntry(name="a", pod_cidr="10.42.0.0/24", node_ip="", ready=False),
        RouteEntry(name="b", pod_cidr="10.42.1.0/24", node_ip="192.0.2.2", ready=True),
    ]


def test_a_node_reporting_a_bad_address_is_listed_without_one() -> None:
    assert route_entries([_node("a", "10.42.0.0/24", "not-an-ip")], ready=lambda n: True) == [
        RouteEntry(name="a", pod_cidr="10.42.0.0/24", node_ip="", ready=False)
    ]


def test_the_publisher_sends_a_table_only_when_it_changed_with_a_growing_generation() -> None:
    publisher = RoutePublisher(wall=lambda: 1.0)
    nodes = [_node("a", "10.42.0.0/24", "192.0.2.1")]
    first = publisher.flush(nodes, ready=lambda n: True)
    assert first is not None
    assert first.generation == 1000
    assert publisher.flush(nodes, ready=lambda n: True) is None
    changed = publisher.flush(nodes, ready=lambda n: False)
    assert changed is not None
    assert changed.generation == 1001
    publisher.forget()
    again = publisher.flush(nodes, ready=lambda n: False)
    assert again is not None
    assert again.generation == 1002
