"""`edgekube master|agent` settings: flag beats --config TOML beats EDGEKUBE_<KEY> beats the dataclass default."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekube.agent.app import AgentConfig
from edgekube.main import _build, _config_file, parser
from edgekube.master.config import MasterConfig
from edgekube.model.errors import ValidationError


def master_config(argv: list[str], monkeypatch: pytest.MonkeyPatch, env: dict[str, str] | None = None) -> MasterConfig:
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    args = parser().parse_args(["master", *argv])
    config = _build(MasterConfig, args, _config_file(args.config))
    assert isinstance(config, MasterConfig)
    return config


def test_defaults_come_from_the_dataclass(monkeypatch: pytest.MonkeyPatch) -> None:
    assert master_config([], monkeypatch) == MasterConfig()


def test_flag_beats_file_beats_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    conf = tmp_path / "m.toml"
    conf.write_text('mqtt_port = 2000\nmqtt_host = "10.0.0.1"\nnode_timeout = 7.5\n')
    env = {"EDGEKUBE_MQTT_PORT": "3000", "EDGEKUBE_NODE_TIMEOUT": "9", "EDGEKUBE_CLIENT_ID": "standby"}
    config = master_config(["--config", str(conf), "--mqtt-port", "1884"], monkeypatch, env)
    assert (config.mqtt_port, config.mqtt_host, config.node_timeout, config.client_id) == (
        1884,
        "10.0.0.1",
        7.5,
        "standby",
    )


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("bogus = 1\n", "unknown setting(s) bogus"),
        ('mqtt_port = "many"\n', "mqtt_port: 'many': expected int"),
        ("mqtt_port = \n", "invalid TOML"),
    ],
)
def test_bad_config_files_name_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: str, message: str
) -> None:
    conf = tmp_path / "m.toml"
    conf.write_text(toml)
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        master_config(["--config", str(conf)], monkeypatch)


def test_agent_labels_merge_file_table_and_flags(tmp_path: Path) -> None:
    conf = tmp_path / "a.toml"
    conf.write_text('node_name = "pi-1"\n[labels]\nzone = "greenhouse"\nrack = "a"\n')
    args = parser().parse_args(["agent", "--config", str(conf), "--label", "rack=b"])
    file = _config_file(args.config)
    labels = dict(file.pop("labels"))
    labels.update({"rack": "b"})
    config = _build(AgentConfig, args, file, labels=labels, node_name="pi-1")
    assert config.labels == {"zone": "greenhouse", "rack": "b"}
    assert config.node_name == "pi-1"
