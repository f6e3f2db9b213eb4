"""Unit tests of ekctl's failure reporting: one `error:` line, an optional `hint:`, exit codes, no traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from edgekube.cli.config import Connection
from edgekube.cli.main import main, run
from edgekube.model.errors import BusError, EdgekubeError, ValidationError
from edgekube.model.wire import ApiRequest, ApiResponse, ErrorInfo


class Raising:
    """A session whose every call raises the given exception."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
        self.closed = False

    def connect(self, connection: Connection, timeout: float) -> Raising:
        return self

    def call(self, request: ApiRequest, timeout: float | None = None) -> ApiResponse:
        raise self.exc

    def close(self) -> None:
        self.closed = True


class Answering(Raising):
    def __init__(self, response: ApiResponse) -> None:
        super().__init__(RuntimeError())
        self.response = response

    def call(self, request: ApiRequest, timeout: float | None = None) -> ApiResponse:
        return self.response


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        pytest.param(
            BusError("cannot reach the MQTT broker at 127.0.0.1:1 within 1s", hint="is the cluster up?"),
            "error: cannot reach the MQTT broker at 127.0.0.1:1 within 1s\nhint: is the cluster up?\n",
            id="with-hint",
        ),
        pytest.param(EdgekubeError("plain"), "error: plain\n", id="without-hint"),
        pytest.param(
            ValidationError("two\nlines", hint="also\n  wrapped"),
            "error: two lines\nhint: also wrapped\n",
            id="newlines-folded",
        ),
        pytest.param(
            RuntimeError("boom"),
            "error: unexpected RuntimeError: boom\nhint: rerun with --debug for a traceback\n",
            id="unexpected",
        ),
    ],
)
def test_errors_are_one_line_plus_hint(exc: BaseException, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    session = Raising(exc)
    assert run(["get", "pods"], connector=session.connect) == 1
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", expected)
    assert "Traceback" not in captured.err
    assert session.closed


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    session = Raising(RuntimeError("boom"))
    assert run(["--debug", "get", "pods"], connector=session.connect) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.rstrip().endswith("error: unexpected RuntimeError: boom")
    assert "rerun with --debug" not in err


def test_keyboard_interrupt_exits_130(capsys: pytest.CaptureFixture[str]) -> None:
    session = Raising(KeyboardInterrupt())
    assert run(["get", "pods"], connector=session.connect) == 130
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("reason", "message", "hint"),
    [
        ("Invalid", "Pod default/x: spec: Forbidden: pod updates may not change fields", "delete the pod"),
        ("Unavailable", "node pi-1 is not ready: no heartbeat", ""),
        ("Internal", "internal error: KeyError: 'x'", "see the master's log"),
    ],
)
def test_error_answers_from_the_master(
    reason: str, message: str, hint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    session = Answering(ApiResponse(ok=False, error=ErrorInfo(reason=reason, message=message, hint=hint)))
    assert run(["get", "nodes"], connector=session.connect) == 1
    expected = f"error: {message}\n" + (f"hint: {hint}\n" if hint else "")
    assert capsys.readouterr().err == expected


def test_apply_error_answer_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pod.yaml"
    path.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{name: a, image: b}]}\n")
    session = Answering(ApiResponse(ok=False, error=ErrorInfo(reason="Invalid", message="spec: Forbidden", hint="h")))
    assert run(["apply", "-f", str(path)], connector=session.connect) == 1
    assert capsys.readouterr().err == f"error: {path}: spec: Forbidden\nhint: h\n"


@pytest.mark.parametrize(
    "argv",
    [["frobnicate"], ["get"], ["get", "pods", "-o", "table"], ["--timeout", "0", "get", "pods"], []],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "usage: ekctl" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["apply"],
        ["get"],
        ["describe"],
        ["delete"],
        ["logs"],
        ["lint"],
        ["scale"],
        ["label"],
        ["annotate"],
        ["cordon"],
        ["uncordon"],
        ["drain"],
    ],
)
def test_help_exits_0(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--help"]) == 0
    assert capsys.readouterr().out.startswith(f"usage: ekctl {command[0] if command else ''}".rstrip())


def test_global_flags_before_and_after_the_subcommand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Away from the repository, whose .edgekube/cluster.json (left by `make up`) would supply the port.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EDGEKUBE_MQTT_HOST", raising=False)
    monkeypatch.delenv("EDGEKUBE_MQTT_PORT", raising=False)
    seen: list[tuple[Connection, float]] = []

    def connect(connection: Connection, timeout: float) -> Answering:
        seen.append((connection, timeout))
        return Answering(ApiResponse(ok=True, items=[]))

    assert run(["--mqtt-host", "h", "-n", "lab", "get", "pods", "--timeout", "3"], connector=connect) == 0
    assert seen == [(Connection("h", 1883, "--mqtt-host"), 3.0)]
    assert capsys.readouterr().err == "No resources found in lab namespace.\n"
    assert run(["--mqtt-port", "1", "get", "nodes", "--mqtt-port", "2"], connector=connect) == 0
    assert seen[-1][0].port == 2
    assert capsys.readouterr().err == "No resources found.\n"


def test_broker_down_names_where_the_address_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:  # a port nobody listens on: bound, never accepting
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("EDGEKUBE_MQTT_PORT", str(port))
        monkeypatch.delenv("EDGEKUBE_MQTT_HOST", raising=False)
        assert main(["get", "pods", "--timeout", "0.5"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        f"error: cannot reach the MQTT broker at 127.0.0.1:{port} within 0.5s (address from EDGEKUBE_MQTT_PORT)"
    )
    assert err[1].startswith("hint: is the cluster up?")
    assert len(err) == 2
