"""The field documentation `ekctl explain` prints, read from edgekube's pydantic models (model/manifest.py KINDS).

Types are spelled as kubectl explain spells them (`<[]Container>`, `<map[string]string>`, `-required-`);
descriptions are the models' class docstrings and the `#:` comments above each field, the only documentation the
models carry (a field without one has none, rather than Kubernetes' text for a field edgekube may treat otherwise).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import types
import typing
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from edgekube.model.errors import ValidationError


@dataclass(frozen=True)
class FieldType:
    """How kubectl shows a field's type, the model below it (if any) and its allowed values (enums, literals)."""

    text: str
    model: type[BaseModel] | None = None
    enum: tuple[str, ...] = ()


def _strip(annotation: Any) -> Any:
    """Annotated[X, ...] → X; X | None → X."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return _strip(rest[0])
    return annotation


_SCALARS = {bool: "boolean", str: "string", int: "integer", float: "number"}  # bool first: it is an int


def field_type(annotation: Any) -> FieldType:
    annotation = _strip(annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (list, tuple, typing.Sequence) and args:
        inner = field_type(args[0])
        return FieldType(f"[]{inner.text}", inner.model, inner.enum)
    if origin is dict and len(args) == 2:
        inner = field_type(args[1])
        return FieldType(f"map[string]{inner.text}", inner.model, inner.enum)
    if origin is typing.Literal:
        return FieldType(_SCALARS.get(type(args[0]), "string"), enum=tuple(str(a) for a in args))
    if isinstance(annotation, types.UnionType) or origin is typing.Union:
        members = {_strip(a) for a in args}
        if members == {int, str}:
            return FieldType("IntOrString")
        if str in members:
            return FieldType("string")
        return FieldType("Object")
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return FieldType("string", enum=tuple(str(m.value) for m in annotation))
        if issubclass(annotation, BaseModel):
            return FieldType(annotation.__name__, annotation)
        for scalar, text in _SCALARS.items():
            if issubclass(annotation, scalar):
                return FieldType(text)
    return FieldType("Object")


@cache
def _comments(cls: type) -> dict[str, str]:
    """Field name → the `#:` comment lines just above its annotation in the class body (Sphinx's convention)."""
    try:
        lines, _start = inspect.getsourcelines(cls)
    except (OSError, TypeError):
        return {}
    source = textwrap.dedent("".join(lines))
    body = source.splitlines()
    found: dict[str, str] = {}
    tree = ast.parse(source)
    for node in tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            above: list[str] = []
            at = node.lineno - 2
            while at >= 0 and body[at].strip().startswith("#:"):
                above.insert(0, body[at].strip()[2:].strip())
                at -= 1
            if above:
                found[node.target.id] = " ".join(above)
    return found


def description(model: type[BaseModel], name: str, info: FieldInfo) -> str:
    if info.description:
        return info.description
    for cls in model.__mro__:
        if isinstance(cls, type) and issubclass(cls, BaseModel) and name in _comments(cls):
            return _comments(cls)[name]
    return ""


def model_description(model: type[BaseModel]) -> str:
    doc = model.__dict__.get("__doc__") or ""
    return " ".join(doc.split()) if doc else ""


@dataclass(frozen=True)
class Entry:
    """One field as explain shows it."""

    name: str  # the wire name: camelCase
    type: FieldType
    required: bool
    description: str


def fields(model: type[BaseModel]) -> list[Entry]:
    """The model's fields by wire name, sorted as kubectl sorts them."""
    entries = []
    for name, info in model.model_fields.items():
        kind = field_type(info.annotation)
        # A field with no comment of its own is described by its type's docstring, when the type has one.
        text = description(model, name, info) or (model_description(kind.model) if kind.model else "")
        entries.append(Entry(info.alias or name, kind, info.is_required(), text))
    return sorted(entries, key=lambda e: e.name)


def resolve(model: type[BaseModel], path: list[str], kind: str) -> tuple[type[BaseModel] | None, Entry | None]:
    """Walk `spec.containers` down the models; the model reached (None for a scalar) and the last field."""
    entry: Entry | None = None
    current: type[BaseModel] | None = model
    walked: list[str] = []
    for part in path:
        if current is None:
            raise ValidationError(f'field "{part}" does not exist', hint=f"{'.'.join(walked)} has no fields below it")
        by_name = {e.name: e for e in fields(current)}
        entry = by_name.get(part)
        if entry is None:
            where = ".".join([kind.lower(), *walked]) if walked else kind.lower()
            raise ValidationError(f'field "{part}" does not exist', hint=f"the fields of {where}: {', '.join(by_name)}")
        walked.append(part)
        current = entry.type.model
    return current, entry


def _paragraph(text: str, indent: int, width: int = 80) -> str:
    if not text:
        return " " * indent + "<empty>\n"
    return textwrap.fill(text, width=width, initial_indent=" " * indent, subsequent_indent=" " * indent) + "\n"


def _type_text(entry: Entry) -> str:
    return f"<{entry.type.text}>" + (" -required-" if entry.required else "")


def _recursive(model: type[BaseModel], depth: int, seen: tuple[type[BaseModel], ...]) -> str:
    out = ""
    for entry in fields(model):
        out += f"{'  ' * depth}{entry.name}\t{_type_text(entry)}\n"
        below = entry.type.model
        if below is not None and below not in seen:
            out += _recursive(below, depth + 1, (*seen, below))
    return out


def explain(kind: str, version: str, model: type[BaseModel], path: list[str], *, recursive: bool = False) -> str:
    """The text of `kubectl explain KIND[.path]` (the plaintext template of kubectl 1.27+)."""
    below, entry = resolve(model, path, kind)
    out = f"{'KIND:':<12}{kind}\n{'VERSION:':<12}{version}\n\n"
    if entry is not None:
        out += f"FIELD: {entry.name} {_type_text(entry)}\n\n"
        if entry.type.enum:
            out += f"ENUM:\n{''.join(f'    {v}' + chr(10) for v in entry.type.enum)}\n"
    text = entry.description if entry is not None else model_description(model)
    out += "DESCRIPTION:\n" + _paragraph(text, 4)
    if below is None:
        return out
    out += "\nFIELDS:\n"
    if recursive:
        return out + _recursive(below, 1, (below,))
    for field in fields(below):
        out += f"  {field.name}\t{_type_text(field)}\n"
        if field.type.enum:
            out += f"  enum: {', '.join(field.type.enum)}\n"
        out += _paragraph(field.description, 4) + "\n"
    return out
