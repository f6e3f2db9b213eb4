"""`edgekube up --network pod` (make up NETWORK=pod): what it refuses, in one line with a hint, before any namespace."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekube.local import netns
from edgekube.local.cluster import Layout, LocalCluster
from edgekube.model.errors import EdgekubeError


def test_an_unknown_network_is_refused_naming_the_choices() -> None:
    with pytest.raises(EdgekubeError, match=r"--network bridge: must be one of host, pod"):
        LocalCluster._check_network("bridge", Layout(nodes=3))


def test_the_host_network_needs_no_namespaces() -> None:
    assert LocalCluster._check_network("host", Layout(nodes=3)) is False


def test_the_pod_network_without_root_is_refused_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns, "available", lambda: "network namespaces need root")
    with pytest.raises(EdgekubeError, match=r"^--network pod: network namespaces need root$") as caught:
        LocalCluster._check_network("pod", Layout(nodes=3))
    assert "sudo make up NODES=3 NETWORK=pod" in (caught.value.hint or "")


def test_the_pod_network_with_two_masters_is_refused() -> None:
    with pytest.raises(EdgekubeError, match=r"--network pod: one master only"):
        LocalCluster._check_network("pod", Layout(masters=2, nodes=3))


def test_a_running_host_network_cluster_is_not_switched_to_the_pod_network(tmp_path: Path) -> None:
    local = LocalCluster(tmp_path)
    (tmp_path / "cluster.json").write_text(json.dumps({"mqtt_port": 1883, "network": "host"}))
    with pytest.raises(EdgekubeError, match=r"already runs with --network host") as caught:
        local._check_running_network("pod", ["node-1"])
    assert "make down" in (caught.value.hint or "")


def test_a_running_pod_network_cluster_takes_no_node_it_has_no_namespace_for(tmp_path: Path) -> None:
    local = LocalCluster(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "cluster.json").write_text(json.dumps({"network": "pod"}))
    (tmp_path / "run" / "netns.json").write_text(json.dumps({"lan": "eklan1", "nodes": {"node-1": {"slot": 7}}}))
    local._check_running_network("pod", ["node-1"])  # the same nodes: `up` again completes it
    with pytest.raises(EdgekubeError, match=r"already runs with --network pod in .* without node-2$"):
        local._check_running_network("pod", ["node-1", "node-2"])
