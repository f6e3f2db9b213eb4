"""How ekctl finds a two-master cluster: its brokers (`--broker`, EDGEKUBE_BROKERS, cluster.json) and its masters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekube.bus import topics
from edgekube.bus.brokers import Broker
from edgekube.bus.protocol import Message
from edgekube.cli.config import Connection, resolve
from edgekube.cli.masters import MasterSightings
from edgekube.cli.parser import build_parser
from edgekube.model.errors import ValidationError
from edgekube.model.ha import MasterPresence, Role


def write_cluster(root: Path, **data: object) -> Path:
    path = root / ".edgekube" / "cluster.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_broker_flags_are_the_list_in_the_order_given(tmp_path: Path) -> None:
    connection = resolve(None, None, {}, tmp_path, brokers=["pi-2:1884", "pi-1:1883"])
    assert connection.brokers == (Broker("pi-2", 1884), Broker("pi-1", 1883))
    assert (connection.host, connection.port, connection.origin) == ("pi-2", 1884, "--broker")


def test_the_environment_gives_a_comma_separated_list(tmp_path: Path) -> None:
    connection = resolve(None, None, {"EDGEKUBE_BROKERS": "a:1, b:2"}, tmp_path)
    assert (connection.brokers, connection.origin) == ((Broker("a", 1), Broker("b", 2)), "EDGEKUBE_BROKERS")


def test_flags_beat_the_environment(tmp_path: Path) -> None:
    connection = resolve(None, None, {"EDGEKUBE_BROKERS": "a:1"}, tmp_path, brokers=["b:2"])
    assert connection.brokers == (Broker("b", 2),)


def test_the_cluster_file_s_broker_list_is_used_with_its_tls_files(tmp_path: Path) -> None:
    path = write_cluster(
        tmp_path, mqtt_host="127.0.0.1", mqtt_port=1883, brokers=["127.0.0.1:1883", "127.0.0.1:1884"], tls_ca="ca.crt"
    )
    connection = resolve(None, None, {}, tmp_path)
    assert connection == Connection(
        "127.0.0.1", 1883, str(path), tls_ca=str(path.parent / "ca.crt"), fallbacks=(Broker("127.0.0.1", 1884),)
    )


def test_a_host_or_port_given_leaves_the_file_s_list_alone(tmp_path: Path) -> None:
    write_cluster(tmp_path, mqtt_host="127.0.0.1", mqtt_port=1883, brokers=["127.0.0.1:1883", "127.0.0.1:1884"])
    connection = resolve("10.0.0.9", None, {}, tmp_path)
    assert (connection.brokers, connection.fallbacks) == ((Broker("10.0.0.9", 1883),), ())


@pytest.mark.parametrize("value", [[], "a:1", [1883], ["a:1", None]])
def test_a_bad_list_in_the_file_names_the_file_and_the_rule(tmp_path: Path, value: object) -> None:
    path = write_cluster(tmp_path, brokers=value)
    with pytest.raises(ValidationError, match=rf"^{path}: brokers .*must be a non-empty list"):
        resolve(None, None, {}, tmp_path)


def test_a_bad_broker_flag_names_the_flag() -> None:
    with pytest.raises(ValidationError, match=r"^--broker 'pi-1:x': Invalid value"):
        resolve(None, None, {}, Path("/nonexistent"), brokers=["pi-1:x"])


def test_broker_is_repeatable_before_or_after_the_subcommand() -> None:
    assert build_parser().parse_args(["--broker", "a:1", "--broker", "b:2", "get", "pods"]).broker == ["a:1", "b:2"]
    assert build_parser().parse_args(["get", "pods", "--broker", "a:1"]).broker == ["a:1"]
    assert build_parser().parse_args(["get", "pods"]).broker is None


def sighting(master: str, *, online: bool, role: Role | None, term: int) -> Message:
    payload = MasterPresence(online=online, master_id=master, role=role, term=term).encode()
    return Message(topic=topics.master_online(master), payload=payload, retain=True)


def test_the_active_master_is_the_online_one_saying_active_with_the_highest_term() -> None:
    masters = MasterSightings()
    masters.on_presence(sighting("m1", online=True, role=Role.ACTIVE, term=1))
    masters.on_presence(sighting("m2", online=True, role=Role.STANDBY, term=1))
    assert masters.active() == "m1"
    masters.on_presence(sighting("m2", online=True, role=Role.ACTIVE, term=2))
    assert masters.active() == "m2"


def test_the_hint_says_a_takeover_may_be_under_way_when_no_active_is_online() -> None:
    masters = MasterSightings()
    assert masters.hint() == ""  # a cluster with one master announces nothing here
    masters.on_presence(sighting("m1", online=False, role=None, term=3))
    masters.on_presence(sighting("m2", online=True, role=Role.STANDBY, term=3))
    assert masters.active() is None
    assert masters.hint() == (
        "masters: m1 role unknown term 3 offline; m2 standby term 3 online — no active master online: "
        "a takeover may be under way, retry"
    )


def test_a_garbled_presence_is_ignored() -> None:
    masters = MasterSightings()
    masters.on_presence(Message(topic=topics.master_online("m1"), payload=b"{not json"))
    assert masters.hint() == ""
