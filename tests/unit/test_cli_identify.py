"""`ekctl node identify`: parsing (durations, --cancel), the round trip through a real master to a real agent on the
in-memory bus (forwarded, cancelled, unknown node, node not ready), and the LEDs section of `ekctl describe node`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekube.bus import topics
from edgekube.cli.describe_node import describe_node
from edgekube.cli.parser import build_parser
from edgekube.model.wire import Verb
from tests.support.apiserver import ApiServer


@pytest.mark.parametrize(
    ("given", "seconds"), [("30s", 30.0), ("2m", 120.0), ("1m30s", 90.0), ("1h", 3600.0), ("45", 45.0), ("0.5s", 0.5)]
)
def test_identify_for_takes_kubectl_durations(given: str, seconds: float) -> None:
    args = build_parser().parse_args(["node", "identify", "pi-1", "--for", given])
    assert (args.node, args.duration, args.cancel) == ("pi-1", seconds, False)


def test_identify_defaults_to_30_seconds_and_takes_cancel() -> None:
    assert build_parser().parse_args(["node", "identify", "pi-1"]).duration == 30.0
    assert build_parser().parse_args(["node", "identify", "node/pi-1", "--cancel"]).cancel is True


@pytest.mark.parametrize("given", ["soon", "", "3d", "-5s"])
def test_a_bad_duration_is_refused_naming_it(given: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["node", "identify", "pi-1", f"--for={given}"])
    assert "is not a duration (e.g. 30s, 2m, 1m30s)" in capsys.readouterr().err


def test_describe_node_shows_what_the_leds_show() -> None:
    node = {
        "metadata": {"name": "pi-1"},
        "status": {
            "leds": {
                "pattern": "Identify",
                "description": "identify requested (ekctl node identify)",
                "driver": "gpio pins 17,27 (green, red)",
                "identifyUntil": "2024-05-01T12:00:30Z",
            }
        },
    }
    lines = describe_node(node, []).splitlines()
    at = lines.index("LEDs:")
    assert lines[at + 1 : at + 5] == [
        "  Pattern:         Identify",
        "  Meaning:         identify requested (ekctl node identify)",
        "  Driver:          gpio pins 17,27 (green, red)",
        "  Identify Until:  Wed, 01 May 2024 12:00:30 +0000",
    ]


def test_describe_node_without_leds_has_no_section() -> None:
    assert "LEDs:" not in describe_node({"metadata": {"name": "pi-1"}, "status": {}}, [])


# -- against a real master and agent on the in-memory bus ------------------------------------------------------
@pytest.fixture
def server(tmp_path: Path) -> Iterator[ApiServer]:
    with ApiServer(tmp_path / "cluster") as api:
        yield api


def test_identify_reaches_the_node_and_cancel_ends_it(server: ApiServer, capsys: pytest.CaptureFixture[str]) -> None:
    agent = server.add_node("pi-1")
    capsys.readouterr()
    assert server.ekctl("node", "identify", "pi-1", "--for", "45s") == 0
    out = capsys.readouterr().out
    assert out.startswith("node/pi-1 identifying: its LEDs blink the Identify pattern for 45s (until 20")
    assert agent.indicator.identifying()
    assert server.requests[-1].verb is Verb.IDENTIFY and server.requests[-1].seconds == 45
    assert len(server.broker.published(topics.node_rpc("pi-1"))) == 1  # forwarded by the master
    assert server.ekctl("node", "identify", "node/pi-1", "--cancel") == 0
    assert capsys.readouterr().out == "node/pi-1 identify cancelled; its LEDs show Healthy\n"
    assert not agent.indicator.identifying()


def test_identify_of_an_unknown_node_is_not_found(server: ApiServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert server.ekctl("node", "identify", "pi-9") != 0
    err = capsys.readouterr().err.splitlines()
    assert err == ['error: nodes "pi-9" not found', "hint: list them with `ekctl get nodes`"]
    assert not server.broker.published(topics.node_rpc("pi-9"))


def test_identify_of_a_node_that_is_not_ready_says_why(server: ApiServer, capsys: pytest.CaptureFixture[str]) -> None:
    # A Node the master stores but has not heard from since it started (its agent is down).
    server.master.store.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "pi-2", "namespace": ""}})
    assert server.ekctl("node", "identify", "pi-2") != 0
    err = capsys.readouterr().err.splitlines()
    why = "NodeStatusUnknown: the agent has not been heard from since the master started"
    assert err[0] == f"error: node pi-2 is not ready: {why}"
    assert err[1].startswith("hint: identify needs the node's agent connected")
    assert not server.broker.published(topics.node_rpc("pi-2"))


def test_identify_for_more_than_an_hour_is_refused_before_sending(
    server: ApiServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert server.ekctl("node", "identify", "pi-1", "--for", "2h") != 0
    assert "--for: 7200s: must be more than 0s and at most 3600s (1h)" in capsys.readouterr().err
    assert not server.requests
