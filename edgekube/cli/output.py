"""`-o` formats of `ekctl get`: the table (plain or wide), `name`, `json`, `yaml`, `jsonpath=`, `custom-columns=`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from edgekube.cli.kinds import Resource
from edgekube.cli.status import section
from edgekube.model.types import Obj

FORMATS = ("wide", "yaml", "json", "name")
#: Formats that carry their template after `=`: `-o jsonpath='{.items[*].metadata.name}'`.
TEMPLATED = ("jsonpath", "custom-columns")
Group = tuple[Resource, list[Obj]]


def output_format(text: str) -> str:
    """The argparse type of `-o`: a plain format, or `jsonpath=TEMPLATE` / `custom-columns=SPEC` (checked when run)."""
    kind, equals, template = text.partition("=")
    if text in FORMATS or (kind in TEMPLATED and equals and template):
        return text
    if kind in TEMPLATED:
        what = "template" if kind == "jsonpath" else "custom columns"
        raise argparse.ArgumentTypeError(f"{kind} format specified but no {what} given")
    allowed = ", ".join([*FORMATS, "jsonpath=...", "custom-columns=..."])
    raise argparse.ArgumentTypeError(f"unable to match a printer suitable for the output format {text!r}: {allowed}")


def as_list(objects: list[Obj]) -> dict[str, Any]:
    """Several objects as kubectl wraps them for -o json/yaml."""
    return {"apiVersion": "v1", "kind": "List", "items": objects}


def to_json(data: Any) -> str:
    return json.dumps(data, indent=4, ensure_ascii=False) + "\n"


def to_yaml(data: Any) -> str:
    import yaml  # noqa: PLC0415 - only -o yaml needs it (saves ~13 ms of every ekctl start)

    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def names(res: Resource, objects: list[Obj]) -> str:
    return "".join(f"{res.qualified}/{section(o, 'metadata').get('name', '')}\n" for o in objects)


def render(
    res: Resource,
    objects: list[Obj],
    fmt: str | None,
    *,
    single: bool = False,
    all_namespaces: bool = False,
    headers: bool = True,
    now: datetime | None = None,
    label_columns: Sequence[str] = (),
    show_labels: bool = False,
) -> str:
    """Text for stdout; `single` (one object asked for by name) prints the bare object, not a List."""
    return render_groups(
        [(res, objects)],
        fmt,
        single=single,
        all_namespaces=all_namespaces,
        headers=headers,
        now=now,
        label_columns=label_columns,
        show_labels=show_labels,
    )


def render_groups(
    groups: list[Group],
    fmt: str | None,
    *,
    single: bool = False,
    all_namespaces: bool = False,
    headers: bool = True,
    now: datetime | None = None,
    label_columns: Sequence[str] = (),
    show_labels: bool = False,
) -> str:
    """Several kinds as kubectl prints `get rc,rs`: one List, or one table per kind with `kind/` name prefixes."""
    everything = [o for _res, objects in groups for o in objects]
    if fmt in ("json", "yaml"):
        data: Any = everything[0] if single and len(everything) == 1 else as_list(everything)
        return to_json(data) if fmt == "json" else to_yaml(data)
    if fmt == "name":
        return "".join(names(res, objects) for res, objects in groups)
    kind, _, template = (fmt or "").partition("=")
    if kind == "jsonpath":
        from edgekube.cli import jsonpath  # noqa: PLC0415 - only -o jsonpath needs it

        return jsonpath.render(template, everything[0] if single and len(everything) == 1 else as_list(everything))
    if kind == "custom-columns":
        from edgekube.cli import columns  # noqa: PLC0415 - only -o custom-columns needs it

        return columns.custom_columns(columns.parse_custom_columns(template), everything, headers=headers)
    from edgekube.cli import tables  # noqa: PLC0415 - the parser imports FORMATS from here at every start

    shown = [(res, objects) for res, objects in groups if objects]
    texts = [
        tables.render(
            res,
            objects,
            wide=fmt == "wide",
            all_namespaces=all_namespaces,
            headers=headers,
            with_kind=len(shown) > 1,
            now=now,
            label_columns=label_columns,
            show_labels=show_labels,
        )
        for res, objects in shown
    ]
    # kubectl separates the tables with a blank line, unless they have no headers to tell them apart.
    return ("\n" if headers else "").join(texts)
