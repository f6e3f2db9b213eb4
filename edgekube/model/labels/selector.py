"""The Selector and Requirement types: matching, canonical str() and the matchLabels/matchExpressions constructor.

A port of k8s.io/apimachinery ``pkg/labels/selector.go`` (Requirement, NewRequirement's checks, String())
and ``LabelSelectorAsSelector``; parser.py builds these from selector strings.  Used by the controllers,
the master's cache and event lists, and the CLI.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import cast, overload

from edgekube.model.errors import ValidationError
from edgekube.model.labels.validation import check_labels, check_value, key_errors, quote, raise_errors

__all__ = ["Operator", "Requirement", "Selector"]


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
    errs = [f"{prefix}key: invalid key {quote(key)}: {'; '.join(e)}" for e in [key_errors(key)] if e]
    if operator in (Operator.IN, Operator.NOT_IN) and not values:
        errs.append(f"{prefix}values: for 'in', 'notin' operators, values set can't be empty")
    elif operator in (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.NOT_EQUALS) and len(values) != 1:
        errs.append(f"{prefix}values: exact-match compatibility requires one single value, got {len(values)}")
    elif operator in (Operator.EXISTS, Operator.DOES_NOT_EXIST) and values:
        errs.append(f"{prefix}values: values set must be empty for exists and does not exist")
    for i, value in enumerate(values):
        errs += check_value(value, f"{prefix}values[{i}]")
    return errs


def _expression_errors(expr: object, path: str) -> list[str]:
    """Check one matchExpressions entry, a ``{key, operator, values}`` mapping as written in a manifest."""
    if not isinstance(expr, Mapping):
        return [f"{path}: must be a mapping (key, operator, values), got {type(expr).__name__}"]
    unknown = sorted(set(expr) - {"key", "operator", "values"}, key=str)
    errs = [f"{path}: unknown field {quote(name)}" for name in unknown]
    if "key" not in expr:
        errs.append(f"{path}.key: Required value")
    raw, operator = expr.get("operator"), str(expr.get("operator"))
    if not isinstance(raw, str) or operator not in _EXPRESSION_OPERATORS:
        names = ", ".join(quote(name) for name in _EXPRESSION_OPERATORS)
        errs.append(f"{path}.operator: Unsupported value: {quote(raw)}: supported values: {names}")
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
            supported = ", ".join(quote(op.value) for op in Operator)
            raise ValidationError(
                f"operator: Unsupported value: {quote(self.operator)}: supported values: {supported}"
            ) from None
        values = tuple(self.values) if not isinstance(self.values, str) else (self.values,)
        raise_errors(_requirement_errors(self.key, operator, values, ""))
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
        raise_errors(check_labels(labels, path))
        return cls(tuple(Requirement(k, Operator.EQUALS, (v,)) for k, v in (labels or {}).items()))

    @classmethod
    def from_match_labels(
        cls,
        match_labels: Mapping[str, str] | None = None,
        match_expressions: Sequence[Mapping[str, object]] | None = None,
        path: str = "spec.selector",
    ) -> Selector:
        """k8s LabelSelectorAsSelector: ``matchLabels`` plus ``matchExpressions``, all errors reported."""
        errs = check_labels(match_labels, f"{path}.matchLabels")
        exprs = match_expressions
        if isinstance(exprs, str | bytes | Mapping) or not isinstance(exprs, Sequence | None):
            errs.append(f"{path}.matchExpressions: must be a list, got {type(exprs).__name__}")
            exprs = None
        for i, expr in enumerate(exprs or ()):
            errs += _expression_errors(expr, f"{path}.matchExpressions[{i}]")
        raise_errors(errs)
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
