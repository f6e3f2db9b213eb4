"""`ekctl get` extras over any table: `-L KEY` label columns, `--show-labels`, `-o custom-columns=`, `--sort-by`.

Called by cli/output.py and cmd_get; the JSONPath evaluation is cli/jsonpath.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from edgekube.cli import jsonpath
from edgekube.cli.tabwriter import table
from edgekube.model.errors import ValidationError
from edgekube.model.types import Obj

NONE = "<none>"


def label_keys(values: Sequence[str] | None) -> list[str]:
    """`-L app -L tier,zone` → [app, tier, zone], as kubectl's repeatable, comma-separated --label-columns."""
    keys: list[str] = []
    for value in values or []:
        keys += [k.strip() for k in value.split(",") if k.strip()]
    return keys


def label_header(key: str) -> str:
    """The key's last `/` segment in capitals, as kubectl's formatLabelHeaders (`a.io/name` → NAME)."""
    return key.rsplit("/", 1)[-1].upper()


def labels_of(obj: Obj) -> dict[str, str]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}


def format_labels(labels: dict[str, str]) -> str:
    """labels.FormatLabels: `k=v` sorted by key, comma-joined; `<none>` when there are none."""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels)) or NONE


def label_cells(obj: Obj, keys: Sequence[str], *, show_labels: bool) -> list[str]:
    """The cells kubectl appends to a row: one per -L key (empty when unset), then LABELS."""
    labels = labels_of(obj)
    cells = [labels.get(key, "") for key in keys]
    return [*cells, format_labels(labels)] if show_labels else cells


def extra_header(keys: Sequence[str], *, show_labels: bool) -> list[str]:
    return [*(label_header(k) for k in keys), *(["LABELS"] if show_labels else [])]


@dataclass(frozen=True)
class CustomColumn:
    header: str
    path: jsonpath.Path


def parse_custom_columns(spec: str) -> list[CustomColumn]:
    """`NAME:.metadata.name,NODE:.spec.nodeName` (kubectl's NewCustomColumnsPrinterFromSpec)."""
    if not spec:
        raise ValidationError("custom-columns format specified but no custom columns given")
    columns = []
    for part in spec.split(","):
        pieces = part.split(":")
        if len(pieces) != 2:
            raise ValidationError(f"unexpected custom-columns spec: {part}, expected <header>:<json-path-expr>")
        columns.append(CustomColumn(pieces[0], jsonpath.compile_path(pieces[1])))
    return columns


def custom_cell(obj: Obj, column: CustomColumn) -> str:
    """Every value the path reaches, comma-joined as Go prints them (`%v`); `<none>` when it reaches nothing."""
    values = jsonpath.evaluate(column.path, obj)
    return ",".join(jsonpath.go_text(v) for v in values) if values else NONE


def custom_columns(columns: Sequence[CustomColumn], objects: Sequence[Obj], *, headers: bool = True) -> str:
    rows = [[custom_cell(obj, c) for c in columns] for obj in objects]
    return table([c.header for c in columns], rows, headers=headers)


def _natural_key(text: str) -> list[tuple[int, int | str]]:
    """sortorder.NaturalLess: digit runs compare as numbers, the rest as text."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.findall(r"\d+|\D+", text) if part]


def _quantity(value: str) -> Decimal | None:
    from edgekube.model.quantity import parse_quantity  # noqa: PLC0415 - only --sort-by needs it

    try:
        return parse_quantity(value)
    except (ValueError, ArithmeticError):
        return None


def _sort_key(value: object) -> tuple[int, object]:
    """As kubectl's isLess, by kind: missing first, then numbers, booleans, quantities, natural text; JSON else."""
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (2, int(value))
    if isinstance(value, int | float):
        return (1, value)
    if isinstance(value, str):
        quantity = _quantity(value) if value[:1].isdigit() or value[:1] in "+-." else None
        return (3, quantity) if quantity is not None else (4, _natural_key(value))
    return (5, jsonpath.text_of(value))


def sort_by(objects: list[Obj], expression: str) -> list[Obj]:
    """Objects ordered by the first value `expression` reaches in each; an error if it reaches none anywhere."""
    path = jsonpath.compile_path(expression)
    keyed = []
    for obj in objects:
        values = jsonpath.evaluate(path, obj)
        keyed.append((values[0] if values else None, obj))
    if objects and all(value is None for value, _obj in keyed):
        raise ValidationError(
            f'couldn\'t find any field with path "{jsonpath.relaxed(expression)}" in the list of objects'
        )
    kinds = {_sort_key(v)[0] for v, _obj in keyed if v is not None}
    if len(kinds) > 1 and kinds & {3} and kinds & {4}:  # some quantities, some words: compare all as text
        return [o for _v, o in sorted(keyed, key=lambda p: (0, []) if p[0] is None else (4, _natural_key(str(p[0]))))]
    try:
        return [obj for _value, obj in sorted(keyed, key=lambda pair: _sort_key(pair[0]))]
    except TypeError:  # values of kinds that do not compare: kubectl refuses too
        raise ValidationError(f"--sort-by {expression}: the values are of different types") from None
