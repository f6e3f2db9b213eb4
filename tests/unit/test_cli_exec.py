"""Unit tests of `ekctl exec` against the real master and a real agent on FakeRuntime (in-memory bus): the master
forwards the request to the pod's node, the agent runs the command off its bus thread and answers output and exit
code, which becomes ekctl's exit status."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekube.bus import topics
from edgekube.model.wire import Verb
from tests.support.apiserver import ApiServer

Capture = pytest.CaptureFixture[str]
POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: app, image: busybox}]}\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ApiServer]:
    with ApiServer(tmp_path / "cluster") as api:
        yield api


def test_exec_prints_the_output_and_exits_with_the_command_s_status(
    server: ApiServer, tmp_path: Path, capsys: Capture
) -> None:
    server.add_node("pi-1")
    (tmp_path / "pod.yaml").write_text(POD)
    assert server.ekctl("apply", "-f", str(tmp_path / "pod.yaml")) == 0
    uid = server.master.store.get("Pod", "default", "web")["metadata"]["uid"]
    server.runtimes["pi-1"].set_exec_result(uid, "app", 3, "partial\n")
    capsys.readouterr()
    assert server.ekctl("exec", "web", "--", "sh", "-c", "echo partial; exit 3") == 3
    assert capsys.readouterr().out == "partial\n"
    request = server.requests[-1]
    assert (request.verb, request.container, request.command) == (
        Verb.EXEC,
        "app",
        ["sh", "-c", "echo partial; exit 3"],
    )
    assert len(server.broker.published(topics.node_rpc("pi-1"))) == 1  # forwarded to the pod's node
    server.runtimes["pi-1"].set_exec_result(uid, "app", 0, "ok\n")
    assert server.ekctl("exec", "pod/web", "-c", "app", "--", "true") == 0


def test_exec_refuses_stdin_without_a_terminal_and_a_missing_command(server: ApiServer, capsys: Capture) -> None:
    assert server.ekctl("exec", "-i", "web", "--", "sh") == 1
    assert "-i without -t" in capsys.readouterr().err
    assert server.ekctl("exec", "web") == 1
    assert "you must specify at least one command" in capsys.readouterr().err
    assert server.ekctl("get", "pods", "--", "x") == 2  # `--` means nothing to other commands


def test_exec_of_a_pod_on_no_node_says_so(server: ApiServer, tmp_path: Path, capsys: Capture) -> None:
    (tmp_path / "pod.yaml").write_text(POD)
    server.ekctl("apply", "-f", str(tmp_path / "pod.yaml"))
    capsys.readouterr()
    assert server.ekctl("exec", "web", "--", "true") == 1
    assert "is not scheduled to a node yet" in capsys.readouterr().err
