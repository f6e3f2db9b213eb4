"""`-o` formats of `ekctl get`: the table (plain or wide), `name`, `json` and `yaml`."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import yaml

from edgekube.cli import tables
from edgekube.cli.kinds import Resource
from edgekube.cli.status import Obj, section

FORMATS = ("wide", "yaml", "json", "name")


def as_list(objects: list[Obj]) -> dict[str, Any]:
    """Several objects as kubectl wraps them for -o json/yaml."""
    return {"apiVersion": "v1", "kind": "List", "items": objects}


def to_json(data: Any) -> str:
    return json.dumps(data, indent=4, ensure_ascii=False) + "\n"


def to_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def names(res: Resource, objects: list[Obj]) -> str:
    return "".join(f"{res.singular}/{section(o, 'metadata').get('name', '')}\n" for o in objects)


def render(
    res: Resource,
    objects: list[Obj],
    fmt: str | None,
    *,
    single: bool = False,
    all_namespaces: bool = False,
    headers: bool = True,
    now: datetime | None = None,
) -> str:
    """Text for stdout; `single` (one object asked for by name) prints the bare object, not a List."""
    if fmt in ("json", "yaml"):
        data: Any = objects[0] if single and len(objects) == 1 else as_list(objects)
        return to_json(data) if fmt == "json" else to_yaml(data)
    if fmt == "name":
        return names(res, objects)
    if not objects:
        return ""
    return tables.render(
        res, objects, wide=fmt == "wide", all_namespaces=all_namespaces, headers=headers, now=now
    )
