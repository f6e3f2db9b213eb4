"""kubectl's JSONPath for `ekctl get -o jsonpath=`, `-o custom-columns=` and `--sort-by` (called by output, columns).

A port of client-go's util/jsonpath subset: fields, `..`, `*`, indexes, slices, `['key']`, `[?()]` filters, unions,
`{range}...{end}`, `{"literal"}`. Missing keys print nothing, as `kubectl get` evaluates with AllowMissingKeys(true).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from edgekube.model.errors import ValidationError

#: Anything a step may yield: decoded JSON.
Value = Any


@dataclass(frozen=True)
class Field:
    name: str  # "*" for every value of a map (or every element of a list)


@dataclass(frozen=True)
class Recursive:
    """`..name`: `name` at any depth below (`..*`: every value below)."""

    name: str


@dataclass(frozen=True)
class Index:
    """`[n]`, `[a:b]`, `[a:b:c]`; `stop`/`start` None when left out; `slice` False for a plain index."""

    start: int | None
    stop: int | None = None
    step: int | None = None
    slice: bool = False


@dataclass(frozen=True)
class Union:
    """`[0,2]` or `['a','b']`: several indexes or keys."""

    keys: tuple[int | str, ...]


@dataclass(frozen=True)
class Filter:
    """`[?(@.path OP literal)]`, or `[?(@.path)]` (op empty): the elements for which it holds."""

    left: Path
    op: str
    right: Path | Value


@dataclass(frozen=True)
class Path:
    """A path from the current value (`@`, and the template's data at top level) or the root (`$`)."""

    steps: tuple[Field | Recursive | Index | Union | Filter, ...]
    root: bool = False


@dataclass(frozen=True)
class Text:
    text: str


@dataclass
class Range:
    path: Path
    body: list[Text | Path | Range] = field(default_factory=list)


Node = Text | Path | Range
_NAME = re.compile(r"(?:\\.|[A-Za-z0-9_\-/$])+")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}


class JSONPathError(ValidationError):
    """A template that does not parse or cannot run, in kubectl's words."""


class _Parser:
    """Recursive descent over the text of one `{...}` action."""

    def __init__(self, text: str, template: str) -> None:
        self.text, self.at, self.template = text, 0, template

    def fail(self, what: str) -> JSONPathError:
        return JSONPathError(f"error parsing jsonpath {self.template}, {what}")

    def peek(self, n: int = 1) -> str:
        return self.text[self.at : self.at + n]

    def skip_spaces(self) -> None:
        while self.peek() == " ":
            self.at += 1

    def done(self) -> bool:
        return self.at >= len(self.text)

    def path(self, *, stop: str = "") -> Path:
        root = False
        if self.peek() in ("$", "@"):
            root = self.peek() == "$"
            self.at += 1
        steps: list[Field | Recursive | Index | Union | Filter] = []
        while not self.done() and self.peek() not in stop:
            if self.peek(2) == "..":
                self.at += 2
                steps.append(Recursive(self.name(star=True)))
            elif self.peek() == ".":
                self.at += 1
                if self.done() or self.peek() in stop or self.peek() == "[":
                    continue  # `{.}` is the current value; `.[0]` is `[0]`
                steps.append(Field(self.name(star=True)))
            elif self.peek() == "[":
                steps.append(self.bracket())
            else:
                raise self.fail(f"unrecognized character in action: {self.peek()!r}")
        return Path(tuple(steps), root)

    def name(self, *, star: bool) -> str:
        if star and self.peek() == "*":
            self.at += 1
            return "*"
        match = _NAME.match(self.text, self.at)
        if match is None:
            raise self.fail(f"unrecognized character in action: {self.peek()!r}")
        self.at = match.end()
        return re.sub(r"\\(.)", r"\1", match.group())

    def bracket(self) -> Index | Union | Filter | Field:
        end = self._closing(self.at)
        inner = self.text[self.at + 1 : end].strip()
        self.at = end + 1
        if inner == "*":
            return Field("*")
        if inner.startswith("?(") and inner.endswith(")"):
            return self.filter(inner[2:-1])
        parts = _split_top(inner, ",")
        if len(parts) > 1:
            return Union(tuple(self.key(p.strip()) for p in parts))
        if inner[:1] in "'\"":
            return Field(str(self.key(inner)))
        if ":" in inner:
            bounds = [self.integer(p) if p.strip() else None for p in inner.split(":")]
            if len(bounds) > 3:
                raise self.fail(f"invalid array index {inner}")
            start, stop, step = (*bounds, None, None)[:3]
            return Index(start, stop, step, slice=True)
        return Index(self.integer(inner))

    def _closing(self, at: int) -> int:
        depth, quote = 0, ""
        for i in range(at, len(self.text)):
            char = self.text[i]
            if quote:
                quote = "" if char == quote else quote
            elif char in "'\"":
                quote = char
            elif char == "[":
                depth += 1
            elif char == "]":
                depth -= 1
                if depth == 0:
                    return i
        raise self.fail("unterminated array")

    def integer(self, text: str) -> int:
        try:
            return int(text.strip())
        except ValueError:
            raise self.fail(f"invalid array index {text.strip()}") from None

    def key(self, text: str) -> int | str:
        if text[:1] in "'\"" and text[-1:] == text[:1] and len(text) >= 2:
            return text[1:-1]
        return self.integer(text)

    def filter(self, text: str) -> Filter:
        match = re.fullmatch(r"\s*(.+?)\s*(==|!=|<=|>=|<|>|=~)\s*(.+?)\s*", text)
        if match is None:
            return Filter(_Parser(text.strip(), self.template).path(), "", None)
        left, op, right = match.groups()
        if op == "=~":
            raise self.fail("regular expressions are not supported")
        right_value: Path | Value
        if right[:1] in "@$":
            right_value = _Parser(right, self.template).path()
        else:
            try:
                right_value = json.loads(right.replace("'", '"') if right[:1] == "'" else right)
            except ValueError:
                raise self.fail(f"unrecognized filter value {right}") from None
        return Filter(_Parser(left, self.template).path(), op, right_value)


def _split_top(text: str, sep: str) -> list[str]:
    """Split on `sep` outside quotes and brackets."""
    parts, depth, quote, start = [], 0, "", 0
    for i, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        elif char == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _literal(text: str, template: str) -> str:
    out, i = [], 1
    while i < len(text) - 1:
        if text[i] == "\\" and i + 1 < len(text) - 1:
            out.append(_ESCAPES.get(text[i + 1], text[i + 1]))
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _actions(template: str) -> list[tuple[bool, str]]:
    """The template cut into (is_action, text): literal text and the insides of `{...}` (quotes respected)."""
    pieces: list[tuple[bool, str]] = []
    i = 0
    while i < len(template):
        opening = template.find("{", i)
        if opening < 0:
            pieces.append((False, template[i:]))
            break
        if opening > i:
            pieces.append((False, template[i:opening]))
        quote, j = "", opening + 1
        while j < len(template):
            char = template[j]
            if quote:
                if char == "\\":
                    j += 1
                elif char == quote:
                    quote = ""
            elif char in "'\"":
                quote = char
            elif char == "}":
                break
            j += 1
        else:
            raise JSONPathError(f"error parsing jsonpath {template}, unclosed action")
        pieces.append((True, template[opening + 1 : j]))
        i = j + 1
    return pieces


def parse(template: str) -> list[Node]:
    """A template's nodes; `{range PATH}` opens a body that `{end}` closes."""
    top: list[Node] = []
    stack: list[list[Node]] = [top]
    for is_action, text in _actions(template):
        if not is_action:
            stack[-1].append(Text(text))
            continue
        inner = text.strip()
        if inner == "end":
            if len(stack) == 1:
                raise JSONPathError(f"error parsing jsonpath {template}, not in range, nothing to end")
            stack.pop()
        elif inner.startswith("range ") or inner == "range":
            node = Range(_Parser(inner[5:].strip(), template).path())
            stack[-1].append(node)
            stack.append(node.body)
        elif inner[:1] in "'\"" and inner[-1:] == inner[:1] and len(inner) >= 2:
            stack[-1].append(Text(_literal(inner, template)))
        elif inner == "":
            continue
        else:
            parser = _Parser(inner, template)
            stack[-1].append(parser.path())
    if len(stack) > 1:
        raise JSONPathError(f"error parsing jsonpath {template}, unclosed range")
    return top


def _children(value: Value) -> list[Value]:
    if isinstance(value, dict):
        return [value[k] for k in sorted(value)]  # Go's maps iterate in sorted order when printed
    if isinstance(value, list):
        return list(value)
    return []


def _descendants(value: Value) -> list[Value]:
    found = []
    for child in _children(value):
        found.append(child)
        found += _descendants(child)
    return found


def _index(values: list[Value], step: Index) -> list[Value]:
    if not step.slice:
        assert step.start is not None
        at = step.start + len(values) if step.start < 0 else step.start
        if not 0 <= at < len(values):
            raise JSONPathError(f"array index out of bounds: index {step.start}, length {len(values)}")
        return [values[at]]
    if step.step == 0:
        raise JSONPathError("step must be > 0")
    return values[slice(step.start, step.stop, step.step)]


def _compare(left: Value, op: str, right: Value) -> bool:
    if op in ("==", "!="):
        equal = left == right and isinstance(left, bool) == isinstance(right, bool)
        return equal if op == "==" else not equal
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right))
    if not numbers and not (isinstance(left, str) and isinstance(right, str)):
        return False
    return bool({"<": left < right, ">": left > right, "<=": left <= right, ">=": left >= right}[op])


def _step(values: list[Value], step: Field | Recursive | Index | Union | Filter, root: Value) -> list[Value]:
    out: list[Value] = []
    for value in values:
        if isinstance(step, Field):
            if step.name == "*":
                out += _children(value)
            elif isinstance(value, dict) and step.name in value:
                out.append(value[step.name])
        elif isinstance(step, Recursive):
            below = [value, *_descendants(value)]
            if step.name == "*":
                out += below[1:]
            else:
                out += [v[step.name] for v in below if isinstance(v, dict) and step.name in v]
        elif isinstance(step, Index):
            if isinstance(value, list):
                out += _index(value, step)
        elif isinstance(step, Union):
            for key in step.keys:
                if isinstance(key, int) and isinstance(value, list):
                    out += _index(value, Index(key))
                elif isinstance(key, str) and isinstance(value, dict) and key in value:
                    out.append(value[key])
        else:
            for item in _children(value) if isinstance(value, list) else []:
                lefts = evaluate(step.left, item, root)
                if not step.op:
                    out += [item] if lefts else []
                    continue
                rights = evaluate(step.right, item, root) if isinstance(step.right, Path) else [step.right]
                if lefts and rights and _compare(lefts[0], step.op, rights[0]):
                    out.append(item)
    return out


def evaluate(path: Path, data: Value, root: Value | None = None) -> list[Value]:
    """Every value the path reaches from `data` (from `root` for a `$` path); a missing key reaches nothing."""
    values = [root if path.root and root is not None else data]
    for step in path.steps:
        values = _step(values, step, data if root is None else root)
    return values


def text_of(value: Value) -> str:
    """client-go's evalToText: strings bare, numbers and booleans as Go prints them, maps and lists as JSON."""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return go_text(value)


def go_text(value: Value) -> str:
    """Go's `%v` of a decoded JSON value (custom-columns cells): `map[k:v]`, `[a b]`, `<nil>`."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e21 else repr(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_text(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_text(v) for v in value) + "]"
    return str(value)


def _execute(nodes: list[Node], data: Value, root: Value, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, Text):
            out.append(node.text)
        elif isinstance(node, Path):
            out.append(" ".join(text_of(v) for v in evaluate(node, data, root)))
        else:
            # As client-go: the body runs once per value the path reaches (`.items[*]`: each item; `.items`: the list).
            for item in evaluate(node.path, data, root):
                _execute(node.body, item, root, out)


def render(template: str, data: Value) -> str:
    """Run a template (`{.items[*].metadata.name}`) over `data`; raises JSONPathError naming the problem."""
    out: list[str] = []
    _execute(parse(template), data, data, out)
    return "".join(out)


_RELAXED = re.compile(r"^\{\.?([^{}]+)\}$|^\.?([^{}]+)$")


def relaxed(expression: str) -> str:
    """As kubectl's RelaxedJSONPathExpression: `name1.name2`, `.name1.name2`, `{name1.name2}` → `{.name1.name2}`."""
    match = _RELAXED.match(expression)
    if match is None:
        raise JSONPathError(
            f"unexpected path string {expression!r}, expected a 'name1.name2' or '.name1.name2' or "
            "'{name1.name2}' or '{.name1.name2}'"
        )
    return "{." + (match.group(1) or match.group(2)) + "}"


def compile_path(expression: str) -> Path:
    """One relaxed path (`.spec.nodeName`) as a Path, for custom-columns and --sort-by."""
    nodes = parse(relaxed(expression))
    if len(nodes) != 1 or not isinstance(nodes[0], Path):
        raise JSONPathError(f"{expression!r} must be a single path, e.g. .metadata.name")
    return nodes[0]
