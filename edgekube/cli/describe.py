"""Shared pieces of `ekctl describe`: kubectl's indented, tab-aligned writer and label/annotation blocks."""

from __future__ import annotations

from collections.abc import Mapping

from edgekube.cli.tabwriter import align

INDENT = "  "


class Writer:
    """Collects rows like kubectl's PrefixWriter: `level` indents, and cells are aligned per block."""

    def __init__(self) -> None:
        self.rows: list[list[str]] = []

    def field(self, level: int, key: str, value: object = "") -> None:
        self.rows.append([f"{INDENT * level}{key}:", str(value)])

    def line(self, level: int, text: str) -> None:
        self.rows.append([f"{INDENT * level}{text}"])

    def cells(self, level: int, *cells: str) -> None:
        self.rows.append([INDENT * level + cells[0], *cells[1:]])

    def mapping(self, level: int, key: str, values: Mapping[str, object], sep: str = "=") -> None:
        """Write like kubectl's printLabelsMultiline: first entry beside the key, the rest under it."""
        if not values:
            self.field(level, key, "<none>")
            return
        for i, name in enumerate(sorted(values)):
            entry = f"{name}{sep}{values[name]}"
            if i == 0:
                self.field(level, key, entry)
            else:
                self.rows.append(["", entry])

    def text(self) -> str:
        return align(self.rows, minwidth=0, padding=2)
