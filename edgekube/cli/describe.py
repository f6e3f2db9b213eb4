"""Shared pieces of `ekctl describe`: kubectl's indented, tab-aligned writer, label blocks and Events table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from edgekube.cli import events as ev
from edgekube.cli.tabwriter import align
from edgekube.model.types import Obj

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

    def header(self, level: int, *names: str) -> None:
        """A table's column names and, under each, dashes as long as the name (kubectl's describe tables)."""
        self.cells(level, *names)
        self.cells(level, *("-" * len(name) for name in names))

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

    def multiline(self, level: int, key: str, values: Sequence[str]) -> None:
        """A list with its first entry beside the key and the rest under it; <none> when empty."""
        if not values:
            self.field(level, key, "<none>")
            return
        self.field(level, key, values[0])
        for value in values[1:]:
            self.rows.append(["", value])

    def events(self, found: list[Obj] | None, now: datetime | None = None) -> None:
        """Write kubectl's DescribeEvents; `found` None (events could not be listed) leaves the section out."""
        if found is None:
            return
        if not found:
            self.field(0, "Events", "<none>")
            return
        self.line(0, "Events:")
        self.cells(1, "Type", "Reason", "Age", "From", "Message")
        self.cells(1, "----", "------", "----", "----", "-------")
        for event in ev.by_time(found):
            source = event.get("source")
            component = source.get("component", "") if isinstance(source, dict) else ""
            self.cells(
                1,
                str(event.get("type") or ""),
                str(event.get("reason") or ""),
                ev.interval(event, now),
                str(component or ""),
                " ".join(str(event.get("message") or "").split()),
            )

    def text(self) -> str:
        return align(self.rows, minwidth=0, padding=2)
