"""docs/leds.md's table says what edgekube/agent/indicators/table.py does: the same rows, order and lights."""

from __future__ import annotations

from pathlib import Path

from edgekube.agent.indicators.table import TABLE, Light

DOC = Path(__file__).resolve().parents[2] / "docs" / "leds.md"
COLOURS = {(1, 1, 1): "white", (1, 0, 0): "red", (0, 0, 1): "blue", (0, 1, 0): "green", (1, 1, 0): "yellow",
           (1, 0, 1): "magenta"}  # fmt: skip


def name(light: Light) -> str:
    if light.dark:
        return "off"
    if light.solid:
        return "solid"
    return {(0.1, 0.1): "fast", (0.5, 0.5): "slow", (0.1, 1.9): "blip"}[(light.on_time, light.off_time)]


def test_the_documented_table_is_the_code_table() -> None:
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| ") and line[2].isdigit()]
    expected = [
        f"| {i} | `{r.show.pattern.value}` | {r.when} | {name(r.show.green)} | {name(r.show.red)} | "
        f"{COLOURS[r.show.colour]}, {name(r.show.rgb)} |"
        for i, r in enumerate(TABLE, 1)
    ]
    assert rows == expected
