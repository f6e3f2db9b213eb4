"""The local cluster's layout (`make up MASTERS=2 NODES=3`): brokers, masters, agents' broker lists, cluster.json."""

from __future__ import annotations

import pytest

from edgekube.local.cluster import Layout
from edgekube.model.errors import EdgekubeError


def test_one_master_is_the_cluster_as_before() -> None:
    layout = Layout(1883, masters=1, nodes=3)
    assert (layout.brokers, layout.master_ids, layout.ha) == (["127.0.0.1:1883"], [], False)
    assert layout.cluster_entries() == {"mqtt_host": "127.0.0.1", "mqtt_port": 1883}


def test_two_masters_get_a_broker_each_on_consecutive_ports() -> None:
    layout = Layout(1883, masters=2, nodes=3)
    assert layout.brokers == ["127.0.0.1:1883", "127.0.0.1:1884"]
    assert layout.master_ids == ["m1", "m2"]
    assert [layout.broker_name(i) for i in range(2)] == ["mosquitto", "mosquitto-2"]


def test_agents_know_both_brokers_and_prefer_them_in_turn() -> None:
    layout = Layout(1883, masters=2, nodes=3)
    assert [layout.agent_brokers(i) for i in (1, 2, 3)] == [
        ["127.0.0.1:1883", "127.0.0.1:1884"],
        ["127.0.0.1:1884", "127.0.0.1:1883"],
        ["127.0.0.1:1883", "127.0.0.1:1884"],
    ]


def test_cluster_json_lists_brokers_and_masters() -> None:
    entries = Layout(2000, masters=2, nodes=1).cluster_entries()
    assert entries["brokers"] == ["127.0.0.1:2000", "127.0.0.1:2001"]
    assert entries["masters"] == [
        {"id": "m1", "broker": "127.0.0.1:2000", "pidfile": "run/master-m1.pid", "dataDir": "master-m1"},
        {"id": "m2", "broker": "127.0.0.1:2001", "pidfile": "run/master-m2.pid", "dataDir": "master-m2"},
    ]


@pytest.mark.parametrize(("masters", "nodes", "rule"), [(3, 1, "MASTERS=3: must be 1 or 2"), (2, 0, "NODES=0")])
def test_an_unsupported_layout_is_refused_in_one_line(masters: int, nodes: int, rule: str) -> None:
    with pytest.raises(EdgekubeError, match=rule):
        Layout(1883, masters=masters, nodes=nodes)
