"""Unit tests of how ekctl finds the broker: flags over environment over .edgekube/cluster.json over defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgekube.cli.config import Connection, find_cluster_file, resolve
from edgekube.model.errors import ValidationError


def write_cluster(root: Path, **data: object) -> Path:
    path = root / ".edgekube" / "cluster.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def test_defaults_without_anything(tmp_path: Path) -> None:
    assert resolve(None, None, {}, tmp_path) == Connection("127.0.0.1", 1883, "defaults")


def test_cluster_file_found_from_a_subdirectory(tmp_path: Path) -> None:
    path = write_cluster(tmp_path, mqtt_host="10.0.0.2", mqtt_port=18830)
    deep = tmp_path / "a" / "b" / "c"
    deep.mkdir(parents=True)
    assert find_cluster_file(deep) == path
    assert resolve(None, None, {}, deep) == Connection("10.0.0.2", 18830, str(path))


def test_nearest_cluster_file_wins(tmp_path: Path) -> None:
    write_cluster(tmp_path, mqtt_host="outer", mqtt_port=1)
    inner = write_cluster(tmp_path / "project", mqtt_host="inner", mqtt_port=2)
    assert find_cluster_file(tmp_path / "project") == inner


@pytest.mark.parametrize(
    ("flags", "env", "expected"),
    [
        pytest.param((None, None), {}, ("10.0.0.2", 18830), id="file"),
        pytest.param((None, None), {"EDGEKUBE_MQTT_PORT": "1999"}, ("10.0.0.2", 1999), id="env-port-over-file"),
        pytest.param(
            (None, None),
            {"EDGEKUBE_MQTT_HOST": "broker", "EDGEKUBE_MQTT_PORT": "1999"},
            ("broker", 1999),
            id="env-over-file",
        ),
        pytest.param(
            ("flag-host", 2000),
            {"EDGEKUBE_MQTT_HOST": "broker", "EDGEKUBE_MQTT_PORT": "1999"},
            ("flag-host", 2000),
            id="flags-over-env",
        ),
        pytest.param((None, 2000), {"EDGEKUBE_MQTT_HOST": "broker"}, ("broker", 2000), id="mixed"),
        pytest.param((None, None), {"EDGEKUBE_MQTT_HOST": ""}, ("10.0.0.2", 18830), id="empty-env-is-unset"),
    ],
)
def test_precedence(
    tmp_path: Path, flags: tuple[str | None, int | None], env: dict[str, str], expected: tuple[str, int]
) -> None:
    write_cluster(tmp_path, mqtt_host="10.0.0.2", mqtt_port=18830)
    got = resolve(flags[0], flags[1], env, tmp_path)
    assert (got.host, got.port) == expected


def test_origin_names_each_source(tmp_path: Path) -> None:
    path = write_cluster(tmp_path, mqtt_host="10.0.0.2", mqtt_port=18830)
    assert resolve(None, 2000, {}, tmp_path).origin == f"{path}, --mqtt-port"
    assert resolve(None, None, {"EDGEKUBE_MQTT_PORT": "1"}, tmp_path).origin == f"{path}, EDGEKUBE_MQTT_PORT"


def test_file_not_read_when_flags_and_env_decide(tmp_path: Path) -> None:
    broken = tmp_path / ".edgekube" / "cluster.json"
    broken.parent.mkdir()
    broken.write_text("{not json")
    expected = Connection("h", 5, "--mqtt-host, EDGEKUBE_MQTT_PORT")
    assert resolve("h", None, {"EDGEKUBE_MQTT_PORT": "5"}, tmp_path) == expected


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read the cluster file"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"mqtt_host": "h", "mqtt_port": "x"}', "MQTT port 'x'"),
        ('{"mqtt_host": "h", "mqtt_port": true}', "MQTT port True"),
        ('{"mqtt_host": "", "mqtt_port": 1883}', "MQTT host ''"),
    ],
)
def test_bad_cluster_file_names_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / ".edgekube" / "cluster.json"
    path.parent.mkdir()
    path.write_text(content)
    with pytest.raises(ValidationError, match=message) as info:
        resolve(None, None, {}, tmp_path)
    assert str(path) in str(info.value)


def test_bad_env_port_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="EDGEKUBE_MQTT_PORT: MQTT port '99999'"):
        resolve(None, None, {"EDGEKUBE_MQTT_PORT": "99999"}, tmp_path)


def test_tls_files_come_from_flags_then_env_then_the_cluster_file(tmp_path: Path) -> None:
    (tmp_path / ".edgekube").mkdir()
    (tmp_path / ".edgekube" / "cluster.json").write_text(
        json.dumps({"mqtt_port": 8883, "tls_ca": "pki/ca.crt", "tls_cert": "/abs/admin.crt", "tls_key": "pki/a.key"})
    )
    env = {"EDGEKUBE_TLS_CERT": "/env/me.crt"}
    got = resolve(None, None, env, tmp_path, tls={"tls_ca": None, "tls_cert": None, "tls_key": "/flag/me.key"})
    assert (got.port, got.tls_ca, got.tls_cert, got.tls_key) == (
        8883,
        str(tmp_path / ".edgekube" / "pki" / "ca.crt"),  # relative to the file's directory
        "/env/me.crt",
        "/flag/me.key",
    )


def test_tls_files_of_the_cluster_file_are_not_used_for_a_broker_named_elsewhere(tmp_path: Path) -> None:
    (tmp_path / ".edgekube").mkdir()
    (tmp_path / ".edgekube" / "cluster.json").write_text(json.dumps({"tls_ca": "/local/ca.crt"}))
    got = resolve("fleet.example", 8883, {}, tmp_path)
    assert (got.tls_ca, got.tls_cert, got.tls_key) == ("", "", "")
