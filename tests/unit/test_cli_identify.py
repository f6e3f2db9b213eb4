"""`ekctl node identify` parsing (durations, --cancel) and the LEDs section of `ekctl describe node`."""

from __future__ import annotations

import pytest

from edgekube.cli.describe_node import describe_node
from edgekube.cli.parser import build_parser


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
