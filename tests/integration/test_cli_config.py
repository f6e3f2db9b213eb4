"""ekctl create/get/describe/delete of ConfigMaps and Secrets against a real Mosquitto and master (no agent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekube.cli.main import main
from tests.integration.test_cli import Capture, ekctl, master

pytestmark = pytest.mark.integration
__all__ = ["ekctl", "master"]  # the fixtures this module borrows


def test_create_get_describe_delete_config_map_and_secret(ekctl: list[str], tmp_path: Path, capsys: Capture) -> None:
    (tmp_path / "app.env").write_text("# settings\nMODE=fast\nLEVEL=3\n")
    (tmp_path / "motd").write_text("hello\n")
    assert main([*ekctl, "create", "configmap", "app", "--from-literal=colour=green",
                 f"--from-file={tmp_path / 'motd'}", f"--from-env-file={tmp_path / 'app.env'}"]) == 0  # fmt: skip
    assert capsys.readouterr().out == "configmap/app created\n"
    assert main([*ekctl, "create", "secret", "generic", "db", "--from-literal=password=hunter2"]) == 0
    assert capsys.readouterr().out == "secret/db created\n"
    assert main([*ekctl, "create", "configmap", "app", "--from-literal=a=b"]) == 1
    assert capsys.readouterr().err.startswith('error: configmaps "app" already exists')

    assert main([*ekctl, "get", "configmap,secret"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line]
    assert [r[:-1] for r in rows] == [
        ["NAME", "DATA"], ["configmap/app", "4"], ["NAME", "TYPE", "DATA"], ["secret/db", "Opaque", "1"],
    ]  # fmt: skip

    assert main([*ekctl, "describe", "secret", "db"]) == 0
    described = capsys.readouterr().out
    assert "password:  7 bytes" in described and "hunter2" not in described
    assert main([*ekctl, "describe", "cm", "app"]) == 0
    assert "motd:\n----\nhello\n" in capsys.readouterr().out

    assert main([*ekctl, "delete", "secret", "db"]) == 0
    assert capsys.readouterr().out == 'secret "db" deleted\n'
    assert main([*ekctl, "get", "secrets"]) == 0
    assert "No resources found" in capsys.readouterr().err
