"""Kubernetes label, annotation and label-selector rules; used by manifests, the store and the controllers.

A port of k8s.io/apimachinery ``util/validation`` (IsQualifiedName, IsValidLabelValue), the annotation
checks of ``api/validation`` and ``pkg/labels/selector.go`` (lexer, parser, Requirement, String()).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple, cast, overload

from edgekube.model.errors import ValidationError

__all__ = [
    "TOTAL_ANNOTATION_SIZE_LIMIT_B",
    "Operator",
    "Requirement",
    "Selector",
    "parse_selector",
    "validate_annotations",
    "validate_label_key",
    "validate_label_value",
    "validate_labels",
]

TOTAL_ANNOTATION_SIZE_LIMIT_B = 256 * 1024
_NAME_MAX = 63
_VALUE_MAX = 63
_SUBDOMAIN_MAX = 253

# The formats are kept as k8s spells them because the error messages quote them verbatim.
_QNAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QNAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
)
_VALUE_FMT = f"({_QNAME_FMT})?"
_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_DNS_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN_FMT = _DNS_LABEL_FMT + r"(\." + _DNS_LABEL_FMT + ")*"
_SUBDOMAIN_MSG = (
    "a DNS-1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)
_QNAME_RE = re.compile(_QNAME_FMT)
_VALUE_RE = re.compile(_VALUE_FMT)
_SUBDOMAIN_RE = re.compile(_SUBDOMAIN_FMT)
_SELECTOR_HINT = "selector syntax: k=v, k==v, k!=v, k in (a,b), k notin (a,b), k, !k; ',' means AND"


def _q(value: object) -> str:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)


def _nbytes(text: str) -> int:
    # Go's len() counts UTF-8 bytes, and the limits are defined in those units.
    return len(text.encode())


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def _subdomain_errors(value: str) -> list[str]:
    errs = [f"must be no more than {_SUBDOMAIN_MAX} characters"] if _nbytes(value) > _SUBDOMAIN_MAX else []
    if not _SUBDOMAIN_RE.fullmatch(value):
        errs.append(_regex_error(_SUBDOMAIN_MSG, _SUBDOMAIN_FMT, "example.com"))
    return errs


def _key_errors(key: object) -> list[str]:
    """Mirror IsQualifiedName: every broken rule is reported, not only the first."""
    if not isinstance(key, str):
        return [f"must be a string, got {type(key).__name__}"]
    parts = key.split("/")
    if len(parts) > 2:
        return [
            "a qualified name "
            + _regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    errs: list[str] = []
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + msg for msg in _subdomain_errors(prefix))
    name = parts[-1]
    if not name:
        errs.append("name part must be non-empty")
    elif _nbytes(name) > _NAME_MAX:
        errs.append(f"name part must be no more than {_NAME_MAX} characters")
    if not _QNAME_RE.fullmatch(name):
        errs.append("name part " + _regex_error(_QNAME_MSG, _QNAME_FMT, "MyName", "my.name", "123-abc"))
    return errs


def _value_errors(value: object) -> list[str]:
    if not isinstance(value, str):
        return [f"must be a string, got {type(value).__name__}"]
    errs = [f"must be no more than {_VALUE_MAX} characters"] if _nbytes(value) > _VALUE_MAX else []
    if not _VALUE_RE.fullmatch(value):
        errs.append(_regex_error(_VALUE_MSG, _VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def _raise(errors: list[str], hint: str = "") -> None:
    # Shaped like k8s' aggregate error: a single error prints bare, several print as a bracketed list.
    if errors:
        raise ValidationError(errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]", hint=hint)


def _at(path: str, message: str) -> str:
    # Callers whose own context already names the field (pydantic validators) pass path="".
    return f"{path}: {message}" if path else message


def _entry(path: str, key: object) -> str:
    return f"{path}[{_q(key)}]" if path else _q(key)


def _check_key(key: object, path: str, *, ignore_case: bool = False) -> list[str]:
    errs = _key_errors(key.lower() if ignore_case and isinstance(key, str) else key)
    return [f"{_entry(path, key)}: invalid key: {'; '.join(errs)}"] if errs else []


def _check_value(value: object, path: str) -> list[str]:
    errs = _value_errors(value)
    return [_at(path, f"invalid value {_q(value)}: {'; '.join(errs)}")] if errs else []


def _check_labels(labels: object, path: str) -> list[str]:
    if labels is None:
        return []
    if not isinstance(labels, Mapping):
        return [_at(path, f"must be a mapping of label keys to values, got {type(labels).__name__}")]
    errs: list[str] = []
    for key in sorted(labels, key=str):
        errs += _check_key(key, path) + _check_value(labels[key], _entry(path, key))
    return errs


def validate_label_key(key: str, path: str = "metadata.labels") -> str:
    """Return ``key`` if it is a qualified name (``[prefix/]name``), else raise ValidationError."""
    _raise(_check_key(key, path))
    return key


def validate_label_value(value: str, path: str = "metadata.labels") -> str:
    """Return ``value`` if it is a valid (possibly empty) label value, else raise ValidationError."""
    _raise(_check_value(value, path))
    return value


def validate_labels(labels: Mapping[str, str] | None, path: str = "metadata.labels") -> dict[str, str]:
    """Return a copy of ``labels`` after checking every key and value; all problems are reported at once."""
    _raise(_check_labels(labels, path))
    return dict(labels or {})


def validate_annotations(annotations: Mapping[str, str] | None, path: str = "metadata.annotations") -> dict[str, str]:
    """Return a copy of ``annotations``: label-key rules for keys, free-text values, 256 KiB in total."""
    if annotations is None:
        return {}
    if not isinstance(annotations, Mapping):
        kind = type(annotations).__name__
        raise ValidationError(_at(path, f"must be a mapping of annotation keys to values, got {kind}"))
    errs: list[str] = []
    total = 0
    for key in sorted(annotations, key=str):
        value = annotations[key]
        # k8s lowercases annotation keys before the qualified-name check: case does not matter there.
        errs += _check_key(key, path, ignore_case=True)
        if not isinstance(value, str):
            errs += _check_value(value, _entry(path, key))
        elif isinstance(key, str):
            total += _nbytes(key) + _nbytes(value)
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_B:
        limit = TOTAL_ANNOTATION_SIZE_LIMIT_B
        errs.append(_at(path, f"Too long: must have at most {limit} bytes (keys plus values total {total} bytes)"))
    _raise(errs)
    return dict(annotations)


class Operator(StrEnum):
    """k8s ``selection.Operator``; the values are how k8s spells them, Gt/Lt are deliberately absent."""

    IN = "in"
    NOT_IN = "notin"
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"


_OPERATOR_RANK = {op: rank for rank, op in enumerate(Operator)}
_EXACT = (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.IN)
# matchExpressions spell operators the metav1.LabelSelectorOperator way.
_EXPRESSION_OPERATORS = {
    "In": Operator.IN,
    "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS,
    "DoesNotExist": Operator.DOES_NOT_EXIST,
}


def _requirement_errors(key: object, operator: object, values: Sequence[object], path: str) -> list[str]:
    """NewRequirement's checks, with field paths as ``<path>.key`` / ``<path>.values[i]``."""
    prefix = f"{path}." if path else ""
    errs = [f"{prefix}key: invalid key {_q(key)}: {'; '.join(e)}" for e in [_key_errors(key)] if e]
    if operator in (Operator.IN, Operator.NOT_IN) and not values:
        errs.append(f"{prefix}values: for 'in', 'notin' operators, values set can't be empty")
    elif operator in (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.NOT_EQUALS) and len(values) != 1:
        errs.append(f"{prefix}values: exact-match compatibility requires one single value, got {len(values)}")
    elif operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and values:
        errs.append(f"{prefix}values: values set must be empty for exists and does not exist")
    for i, value in enumerate(values):
        errs += _check_value(value, f"{prefix}values[{i}]")
    return errs


def _expression_errors(expr: object, path: str) -> list[str]:
    """Check one matchExpressions entry, a ``{key, operator, values}`` mapping as written in a manifest."""
    if not isinstance(expr, Mapping):
        return [f"{path}: must be a mapping (key, operator, values), got {type(expr).__name__}"]
    unknown = sorted(set(expr) - {"key", "operator", "values"}, key=str)
    errs = [f"{path}: unknown field {_q(name)}" for name in unknown]
    if "key" not in expr:
        errs.append(f"{path}.key: Required value")
    raw, operator = expr.get("operator"), str(expr.get("operator"))
    if not isinstance(raw, str) or operator not in _EXPRESSION_OPERATORS:
        names = ", ".join(_q(name) for name in _EXPRESSION_OPERATORS)
        errs.append(f"{path}.operator: Unsupported value: {_q(raw)}: supported values: {names}")
    values = expr.get("values") or []
    if not isinstance(values, list | tuple):
        return [*errs, f"{path}.values: must be a list of strings, got {type(values).__name__}"]
    if errs:
        return errs
    return _requirement_errors(expr["key"], _EXPRESSION_OPERATORS[operator], values, path)


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ANDed term of a selector. ``values`` is normalised to a sorted set: matching is set-based."""

    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        try:
            operator = Operator(self.operator)
        except ValueError:
            supported = ", ".join(_q(op.value) for op in Operator)
            raise ValidationError(
                f"operator: Unsupported value: {_q(self.operator)}: supported values: {supported}"
            ) from None
        values = tuple(self.values) if not isinstance(self.values, str) else (self.values,)
        _raise(_requirement_errors(self.key, operator, values, ""))
        object.__setattr__(self, "operator", operator)
        object.__setattr__(self, "values", tuple(sorted(set(values))))

    def matches(self, labels: Mapping[str, str]) -> bool:
        # Negative operators match objects that lack the key, exactly as in k8s.
        present = self.key in labels
        match self.operator:
            case Operator.IN | Operator.EQUALS | Operator.DOUBLE_EQUALS:
                return present and labels[self.key] in self.values
            case Operator.NOT_IN | Operator.NOT_EQUALS:
                return not present or labels[self.key] not in self.values
            case Operator.EXISTS:
                return present
            case _:
                return not present

    def __str__(self) -> str:
        values = ",".join(self.values)
        match self.operator:
            case Operator.EXISTS:
                return self.key
            case Operator.DOES_NOT_EXIST:
                return "!" + self.key
            case Operator.IN | Operator.NOT_IN:
                return f"{self.key} {self.operator.value} ({values})"
            case _:
                return f"{self.key}{self.operator.value}{values}"


def _requirement_order(req: Requirement) -> tuple[str, int, tuple[str, ...]]:
    # k8s sorts by key only with an unstable sort; ties are broken here so equal selectors compare equal.
    return (req.key, _OPERATOR_RANK[req.operator], req.values)


@dataclass(frozen=True, slots=True)
class Selector(Sequence[Requirement]):
    """Immutable, hashable AND of requirements kept sorted by key; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "requirements", tuple(sorted(self.requirements, key=_requirement_order)))

    @classmethod
    def empty(cls) -> Selector:
        return cls()

    @classmethod
    def everything(cls) -> Selector:
        return cls()

    @classmethod
    def from_set(cls, labels: Mapping[str, str] | None, path: str = "spec.selector") -> Selector:
        """Equality selector matching exactly ``labels`` (a ReplicationController's selector)."""
        _raise(_check_labels(labels, path))
        return cls(tuple(Requirement(k, Operator.EQUALS, (v,)) for k, v in (labels or {}).items()))

    @classmethod
    def from_match_labels(
        cls,
        match_labels: Mapping[str, str] | None = None,
        match_expressions: Sequence[Mapping[str, object]] | None = None,
        path: str = "spec.selector",
    ) -> Selector:
        """k8s LabelSelectorAsSelector: ``matchLabels`` plus ``matchExpressions``, all errors reported."""
        errs = _check_labels(match_labels, f"{path}.matchLabels")
        exprs = match_expressions
        if isinstance(exprs, str | bytes | Mapping) or not isinstance(exprs, Sequence | None):
            errs.append(f"{path}.matchExpressions: must be a list, got {type(exprs).__name__}")
            exprs = None
        for i, expr in enumerate(exprs or ()):
            errs += _expression_errors(expr, f"{path}.matchExpressions[{i}]")
        _raise(errs)
        reqs = [Requirement(k, Operator.EQUALS, (v,)) for k, v in (match_labels or {}).items()]
        for expr in exprs or ():
            values = tuple(cast("Sequence[str] | None", expr.get("values")) or ())
            operator = _EXPRESSION_OPERATORS[str(expr["operator"])]
            reqs.append(Requirement(str(expr["key"]), operator, values))
        return cls(tuple(reqs))

    def add(self, *requirements: Requirement) -> Selector:
        return Selector(self.requirements + requirements)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(req.matches(labels) for req in self.requirements)

    def is_empty(self) -> bool:
        return not self.requirements

    def requires_exact_match(self, key: str) -> str | None:
        """Return the one value ``key`` must have, judged like k8s by the first requirement on that key."""
        for req in self.requirements:
            if req.key == key:
                return req.values[0] if req.operator in _EXACT and len(req.values) == 1 else None
        return None

    def as_match_labels(self) -> dict[str, str] | None:
        """Return the equivalent ``matchLabels`` dict, or None when the selector is not purely equality."""
        out: dict[str, str] = {}
        for req in self.requirements:
            if req.operator not in _EXACT or len(req.values) != 1:
                return None
            # Two different required values for one key (never matches) cannot be written as a dict.
            if out.setdefault(req.key, req.values[0]) != req.values[0]:
                return None
        return out

    def __len__(self) -> int:
        return len(self.requirements)

    def __iter__(self) -> Iterator[Requirement]:
        return iter(self.requirements)

    @overload
    def __getitem__(self, index: int) -> Requirement: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[Requirement, ...]: ...
    def __getitem__(self, index: int | slice) -> Requirement | tuple[Requirement, ...]:
        return self.requirements[index]

    def __str__(self) -> str:
        return ",".join(str(req) for req in self.requirements)

    def __repr__(self) -> str:
        return f"Selector({str(self)!r})"


class Token(StrEnum):
    """Lexer token kinds of k8s' selector grammar (Gt/Lt are lexed only to be refused clearly)."""

    END = "end of string"
    CLOSE_PAREN = ")"
    COMMA = ","
    NOT = "!"
    DOUBLE_EQUALS = "=="
    EQUALS = "="
    GREATER = ">"
    IDENTIFIER = "identifier"
    IN = "in"
    LESS = "<"
    NOT_EQUALS = "!="
    NOT_IN = "notin"
    OPEN_PAREN = "("


class _Item(NamedTuple):
    token: Token
    literal: str
    position: int


_KEYWORDS = {t.value: t for t in Token if t not in (Token.END, Token.IDENTIFIER)}
_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")
_BINARY = {
    Token.IN: Operator.IN,
    Token.NOT_IN: Operator.NOT_IN,
    Token.EQUALS: Operator.EQUALS,
    Token.DOUBLE_EQUALS: Operator.DOUBLE_EQUALS,
    Token.NOT_EQUALS: Operator.NOT_EQUALS,
}


def _lex(text: str) -> list[_Item]:
    """Tokenise like k8s' Lexer: identifiers run to the next special symbol or whitespace."""
    items: list[_Item] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in _WHITESPACE:
            pos += 1
        if pos == end:
            items.append(_Item(Token.END, "", end))
            return items
        start = pos
        if text[pos] in _SPECIAL:
            # Longest run of special symbols that still spells a token, so "!=" wins over "!" then "=".
            pos += 1
            while pos < end and text[pos] in _SPECIAL and text[start : pos + 1] in _KEYWORDS:
                pos += 1
        else:
            while pos < end and text[pos] not in _SPECIAL and text[pos] not in _WHITESPACE:
                pos += 1
        literal = text[start:pos]
        items.append(_Item(_KEYWORDS.get(literal, Token.IDENTIFIER), literal, start))


class _Reject(Exception):
    """A syntax error inside one requirement; the parser prefixes it the way k8s does."""


def _found(item: _Item) -> str:
    shown = "end of string" if item.token is Token.END else f"'{item.literal}'"
    return f"found {shown} at position {item.position}"


class _Parser:
    """k8s' recursive-descent parser; ``in``/``notin`` count as identifiers wherever a value may appear."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.items = _lex(text)
        self.index = 0

    def _peek(self, as_value: bool = True) -> _Item:
        item = self.items[self.index]
        if as_value and item.token in (Token.IN, Token.NOT_IN):
            return item._replace(token=Token.IDENTIFIER)
        return item

    def _next(self, as_value: bool = True) -> _Item:
        item = self._peek(as_value)
        self.index = min(self.index + 1, len(self.items) - 1)
        return item

    def _error(self, message: str) -> ValidationError:
        return ValidationError(f"selector {_q(self.text)}: {message}", hint=_SELECTOR_HINT)

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            item = self._peek()
            if item.token is Token.END:
                return requirements
            if item.token not in (Token.IDENTIFIER, Token.NOT):
                raise self._error(f"{_found(item)}, expected: !, identifier, or 'end of string'")
            try:
                requirements.append(self._requirement())
            except _Reject as exc:
                raise self._error(f"unable to parse requirement: {exc}") from None
            item = self._next()
            if item.token is Token.END:
                return requirements
            if item.token is not Token.COMMA:
                raise self._error(f"{_found(item)}, expected: ',' or 'end of string'")
            item = self._peek()
            if item.token not in (Token.IDENTIFIER, Token.NOT):
                raise self._error(f"{_found(item)}, expected: identifier after ','")

    def _requirement(self) -> Requirement:
        item = self._next()
        operator: Operator | None = None
        if item.token is Token.NOT:
            operator = Operator.DOES_NOT_EXIST
            item = self._next()
        if item.token is not Token.IDENTIFIER:
            raise _Reject(f"{_found(item)}, expected: identifier")
        key = item.literal
        if errs := _key_errors(key):
            raise _Reject(f"invalid key {_q(key)} at position {item.position}: {'; '.join(errs)}")
        if operator is None and self._peek().token in (Token.END, Token.COMMA):
            operator = Operator.EXISTS
        if operator is not None:
            # "!x=a" stops here too: the "=" then fails as "expected ',' or 'end of string'", as in k8s.
            return Requirement(key, operator)
        item = self._next(as_value=False)
        if item.token not in _BINARY:
            unsupported = item.token in (Token.GREATER, Token.LESS)
            why = " (the Gt/Lt operators are not supported)" if unsupported else ""
            raise _Reject(f"{_found(item)}, expected: in, notin, =, ==, !={why}")
        operator = _BINARY[item.token]
        values = self._set_values() if operator in (Operator.IN, Operator.NOT_IN) else self._exact_value()
        for value, position in values:
            if errs := _value_errors(value):
                raise _Reject(f"invalid value {_q(value)} for key {_q(key)} at position {position}: {'; '.join(errs)}")
        return Requirement(key, operator, tuple(value for value, _ in values))

    def _exact_value(self) -> list[tuple[str, int]]:
        item = self._peek()
        if item.token in (Token.END, Token.COMMA):
            return [("", item.position)]
        item = self._next()
        if item.token is not Token.IDENTIFIER:
            raise _Reject(f"{_found(item)}, expected: identifier")
        return [(item.literal, item.position)]

    def _set_values(self) -> list[tuple[str, int]]:
        item = self._next()
        if item.token is not Token.OPEN_PAREN:
            raise _Reject(f"{_found(item)}, expected: '('")
        item = self._peek()
        if item.token is Token.CLOSE_PAREN:
            # k8s reads "()" as the one-element set {""}, not as an empty (invalid) set.
            self._next()
            return [("", item.position)]
        if item.token not in (Token.IDENTIFIER, Token.COMMA):
            raise _Reject(f"{_found(item)}, expected: ',', ')' or identifier")
        values = self._identifier_list()
        self._next()
        return values

    def _identifier_list(self) -> list[tuple[str, int]]:
        """Port parseIdentifiersList with its quirks: "(a,)" and "(,a)" add "", "(a,,)" is refused."""
        values: list[tuple[str, int]] = []
        while True:
            item = self._next()
            if item.token is Token.IDENTIFIER:
                values.append((item.literal, item.position))
                after = self._peek()
                if after.token is Token.CLOSE_PAREN:
                    return values
                if after.token is not Token.COMMA:
                    raise _Reject(f"{_found(after)}, expected: ',' or ')'")
            elif item.token is Token.COMMA:
                if not values:
                    values.append(("", item.position))
                after = self._peek()
                if after.token is Token.CLOSE_PAREN:
                    values.append(("", after.position))
                    return values
                if after.token is Token.COMMA:
                    self._next()
                    values.append(("", after.position))
            else:
                raise _Reject(f"{_found(item)}, expected: ',', or identifier")


def parse_selector(text: str) -> Selector:
    """Parse k8s label-selector syntax (``labels.Parse``); "" gives the selector that matches everything."""
    if not isinstance(text, str):
        raise ValidationError(f"selector must be a string, got {type(text).__name__}", hint=_SELECTOR_HINT)
    return Selector(tuple(_Parser(text).parse()))
