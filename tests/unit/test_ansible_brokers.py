"""The ansible roles' TOML templates with `edgekube_brokers` (two masters): the daemons read the list they write.

Rendered with jinja2 and Ansible's filters used there (to_json, bool, combine) stood in for, then read back as the
daemons read them (TOML, then the wiring's edgekube.bus.brokers.resolve), so key, type and order are checked.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import jinja2
import pytest

from edgekube.bus.brokers import Broker, resolve

ROLES = Path(__file__).resolve().parents[2] / "ansible" / "roles"
BROKERS = ["pi-1.lan:8883", "pi-2.lan:8883"]


def render(role: str, name: str, **variables: Any) -> dict[str, Any]:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(ROLES / role / "templates"), keep_trailing_newline=True)
    env.filters["to_json"] = json.dumps
    env.filters["bool"] = bool
    env.filters["combine"] = lambda a, b: {**a, **b}
    common = {
        "ansible_managed": "managed", "edgekube_mqtt_port": 8883, "edgekube_tls": False, "edgekube_tls_dir": "/tls",
    }  # fmt: skip
    return tomllib.loads(env.get_template(name).render(**common, **variables))


def agent(**variables: Any) -> dict[str, Any]:
    return render(
        "agent", "agent.toml.j2", edgekube_node_name="node-1", edgekube_mqtt_host="pi-1.lan",
        edgekube_agent_podman_url="unix:///run/podman/podman.sock", edgekube_agent_settings={},
        edgekube_node_labels={}, **variables,
    )  # fmt: skip


def master(**variables: Any) -> dict[str, Any]:
    return render(
        "master", "master.toml.j2", edgekube_master_mqtt_host="localhost", edgekube_master_identity="m",
        edgekube_master_pod_eviction_timeout=60, edgekube_master_settings={}, **variables,
    )  # fmt: skip


@pytest.mark.parametrize("toml", [agent, master], ids=["agent", "master"])
def test_the_broker_list_reaches_the_config_in_its_order(toml: Any) -> None:
    data = toml(edgekube_brokers=BROKERS)
    assert data["brokers"] == BROKERS
    assert resolve(data["brokers"], data["mqtt_host"], data["mqtt_port"]) == (
        Broker("pi-1.lan", 8883), Broker("pi-2.lan", 8883),
    )  # fmt: skip


@pytest.mark.parametrize("toml", [agent, master], ids=["agent", "master"])
def test_without_a_list_there_is_no_brokers_key(toml: Any) -> None:
    assert "brokers" not in toml(edgekube_brokers=[])
