"""Column alignment with the semantics of Go's text/tabwriter, which kubectl uses for tables and describe."""

from __future__ import annotations

from collections.abc import Sequence

Row = Sequence[str]


def align(rows: Sequence[Row], *, minwidth: int = 0, padding: int = 2) -> str:
    """Join rows of cells into text; each cell but a row's last is a column cell padded to its block's width.

    As in Go, a column's width is shared only by *consecutive* rows that have a cell in it, so a row with
    a single cell (a section heading) starts new blocks below it.
    """
    widths: list[list[int]] = [[0] * max(len(r) - 1, 0) for r in rows]

    def block(start: int, end: int, col: int) -> None:
        i = start
        while i < end:
            if len(rows[i]) - 1 <= col:
                i += 1
                continue
            j = i
            while j < end and len(rows[j]) - 1 > col:
                j += 1
            width = max(minwidth, *(len(rows[k][col]) + padding for k in range(i, j)))
            for k in range(i, j):
                widths[k][col] = width
            block(i, j, col + 1)
            i = j

    block(0, len(rows), 0)
    lines = []
    for row, row_widths in zip(rows, widths, strict=True):
        cells = [cell.ljust(width) for cell, width in zip(row, row_widths, strict=False)]
        cells.extend(row[len(row_widths) :])
        lines.append("".join(cells).rstrip())
    return "".join(line + "\n" for line in lines)


def table(header: Row, rows: Sequence[Row], *, headers: bool = True) -> str:
    """Format a `kubectl get` table: minimum width 6 and padding 3, as kubectl's printers use."""
    return align([header, *rows] if headers else list(rows), minwidth=6, padding=3)
