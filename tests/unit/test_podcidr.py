"""The pod CIDR allocator: each node a /24 of the cluster CIDR, stable per node, freed with the node; its controller."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

import pytest

from edgekube.master.controllers.base import Snapshot
from edgekube.master.controllers.podcidr import PodCIDRAllocator, SetPodCIDR, allocate, cluster_range
from edgekube.model.errors import ValidationError

CLUSTER = ipaddress.IPv4Network("10.42.0.0/16")


def test_new_nodes_get_the_lowest_free_subnets_in_name_order() -> None:
    assert allocate({"b": None, "a": None}, CLUSTER, 24) == {"a": "10.42.0.0/24", "b": "10.42.1.0/24"}


def test_a_node_keeps_its_cidr_and_a_deleted_nodes_cidr_is_given_again() -> None:
    # "b" held 10.42.1.0/24 and was deleted: the gap is the lowest free subnet.
    assert allocate({"a": "10.42.0.0/24", "c": "10.42.2.0/24", "d": None}, CLUSTER, 24) == {"d": "10.42.1.0/24"}


def test_nothing_changes_when_every_node_has_a_valid_cidr() -> None:
    assert allocate({"a": "10.42.7.0/24", "b": "10.42.3.0/24"}, CLUSTER, 24) == {}


def test_the_second_holder_of_a_duplicate_by_name_gets_a_new_one() -> None:
    assert allocate({"a": "10.42.0.0/24", "b": "10.42.0.0/24"}, CLUSTER, 24) == {"b": "10.42.1.0/24"}


@pytest.mark.parametrize("held", ["10.99.0.0/24", "10.42.0.0/25", "garbage", "10.42.0.1/24"])
def test_a_cidr_outside_the_range_of_the_wrong_size_or_invalid_is_replaced(held: str) -> None:
    assert allocate({"a": held}, CLUSTER, 24) == {"a": "10.42.0.0/24"}


def test_when_the_range_is_full_a_new_node_waits_and_a_wrong_cidr_is_removed() -> None:
    small = ipaddress.IPv4Network("10.42.0.0/23")
    full = {"a": "10.42.0.0/24", "b": "10.42.1.0/24"}
    assert allocate({**full, "c": None}, small, 24) == {}
    assert allocate({**full, "c": "10.99.0.0/24"}, small, 24) == {"c": None}


@pytest.mark.parametrize(
    ("cidr", "mask", "message"),
    [
        ("10.42.0.0/33", 24, "cluster_cidr: '10.42.0.0/33' is not a valid IPv4 CIDR"),
        ("10.42.0.1/16", 24, "cluster_cidr: '10.42.0.1/16' is not a valid IPv4 CIDR"),
        ("fd00::/64", 80, "cluster_cidr: 'fd00::/64': only IPv4 is supported"),
        ("10.42.0.0/16", 8, "node_cidr_mask: 8 must be between the cluster CIDR's /16 and /30"),
    ],
)
def test_a_bad_cluster_cidr_is_refused_naming_the_setting(cidr: str, mask: int, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace("/", "/")):
        cluster_range(cidr, mask)


class _Nodes:
    def __init__(self, nodes: list[dict[str, Any]]) -> None:
        self.nodes = {("", n["metadata"]["name"]): n for n in nodes}

    def objects(self, kind: str) -> Mapping[tuple[str, str], dict[str, Any]]:
        return self.nodes if kind == "Node" else {}

    def peek(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return self.nodes[(namespace, name)]


def test_the_controller_plans_one_set_per_node_without_a_cidr() -> None:
    store = _Nodes([
        {"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.42.0.0/24"}},
        {"metadata": {"name": "n2"}, "spec": {"taints": []}},
    ])  # fmt: skip
    plan = PodCIDRAllocator("10.42.0.0/16", 24).plan(Snapshot(store, now=0.0))
    assert plan == [SetPodCIDR("n2", "10.42.1.0/24")]
