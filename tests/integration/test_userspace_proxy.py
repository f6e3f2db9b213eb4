"""The userspace node proxy (`--proxy-mode userspace`) on three netns nodes: Services without nftables.

The same fleet as test_pod_network (tests/support/podnet.py: a LAN, each node's Podman inside its namespace, the
real master, Mosquitto, `ip`), its pods and Service, with the agents told to relay Services themselves: a client pod
on node-1 reaches the Service by name and gets answers from its pods on node-2 and node-3, the NodePort answers on
every node's address, and no node has an nftables table `edgekube`.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekube.agent.network.loopback import LABEL
from edgekube.cli.describe_node import describe_node
from tests.support.podnet import (
    CLUSTER_IP,
    NODE_PORT,
    LanFleet,
    get_page,
    wait_until,
    web_answers,
    web_fleet,
)
from tests.support.prerequisites import require_mosquitto, require_netns, require_podman


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LanFleet]:
    require_podman()
    require_mosquitto()
    require_netns()
    with web_fleet(Path(tmp_path_factory.mktemp("userspace")), agent_args=["--proxy-mode", "userspace"]) as started:
        yield started


def test_every_node_reports_the_userspace_proxy(fleet: LanFleet) -> None:
    def modes() -> dict[str, str]:
        nodes = fleet.try_list("Node") or []
        return {n["metadata"]["name"]: n["status"]["nodeInfo"].get("proxyMode", "") for n in nodes}

    assert wait_until("proxyMode on every node", lambda: len(modes()) == 3 and modes()) == {
        node: "userspace" for node in fleet.nodes
    }
    node = next(n for n in fleet.try_list("Node") or [] if n["metadata"]["name"] == "node-1")
    assert re.search(r"^  Proxy Mode:\s+userspace$", describe_node(node, []), re.MULTILINE)


def test_a_service_by_name_answers_from_pods_on_both_other_nodes(fleet: LanFleet) -> None:
    wait_until("the service answering", lambda: get_page(fleet, "web") in ("web-b", "web-c"), timeout=60)
    answers = [get_page(fleet, "web") for _ in range(12)]
    assert set(answers) == {"web-b", "web-c"}, answers
    assert get_page(fleet, CLUSTER_IP) in ("web-b", "web-c")


def test_node_port_answers_on_every_node(fleet: LanFleet) -> None:
    for node in fleet.nodes:
        url = f"http://{fleet.net[node].address}:{NODE_PORT}/"
        assert wait_until(f"NodePort on {node}", functools.partial(web_answers, url))


def test_the_cluster_ip_is_a_labelled_loopback_address_and_no_nftables_table_is_made(fleet: LanFleet) -> None:
    wait_until("the service answering", lambda: get_page(fleet, CLUSTER_IP) in ("web-b", "web-c"), timeout=60)
    for node in fleet.nodes:
        shown = json.loads(fleet.in_node(node, "ip", "-4", "-j", "addr", "show", "dev", "lo").stdout)
        labelled = {a["local"] for link in shown for a in link.get("addr_info", []) if a.get("label") == LABEL}
        assert labelled == {CLUSTER_IP}, node
        tables = fleet.in_node(node, "nft", "list", "tables").stdout
        assert "edgekube" not in tables, (node, tables)
