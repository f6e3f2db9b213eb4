"""Selector reasoning for the linter: overlap of two selectors, what labels lack, label keys that look alike."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from edgekube.model.labels import Operator, Requirement, Selector

_POSITIVE = (Operator.IN, Operator.EQUALS, Operator.DOUBLE_EQUALS)
_NEGATIVE = (Operator.NOT_IN, Operator.NOT_EQUALS)


def satisfiable(requirements: Iterable[Requirement]) -> bool:
    """Can one label set meet every requirement? Keys are independent, so each key is judged alone.

    Per key: the allowed values (In, =) intersected, minus the excluded ones (NotIn, !=), and Exists/DoesNotExist
    consistent with them.
    """
    by_key: dict[str, list[Requirement]] = {}
    for req in requirements:
        by_key.setdefault(req.key, []).append(req)
    for reqs in by_key.values():
        allowed: set[str] | None = None
        excluded: set[str] = set()
        must_exist = must_not_exist = False
        for req in reqs:
            if req.operator in _POSITIVE:
                allowed = set(req.values) if allowed is None else allowed & set(req.values)
                must_exist = True
            elif req.operator in _NEGATIVE:
                excluded |= set(req.values)
            elif req.operator is Operator.EXISTS:
                must_exist = True
            else:
                must_not_exist = True
        if must_exist and must_not_exist:
            return False
        if allowed is not None and not allowed - excluded:
            return False
    return True


def overlap(a: Selector, b: Selector) -> bool:
    """True when some pod's labels would match both selectors (an empty selector matches everything)."""
    return satisfiable([*a.requirements, *b.requirements])


def unmet(selector: Selector, labels: Mapping[str, str]) -> list[Requirement]:
    """The requirements `labels` do not meet, in the selector's order."""
    return [req for req in selector.requirements if not req.matches(labels)]


def damerau_levenshtein(a: str, b: str) -> int:
    """Edit distance counting an adjacent transposition as one edit (optimal string alignment)."""
    rows = [list(range(len(b) + 1))]
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(rows[i - 1][j] + 1, row[j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], rows[i - 2][j - 2] + 1)
        rows.append(row)
    return rows[len(a)][len(b)]


def _name(key: str) -> str:
    return key.rpartition("/")[2]


def near(key: str, known: str) -> int | None:
    """How alike two different label keys are (smaller: closer), or None: not alike.

    0: only case differs; 1: only the prefix (`name` and `app.kubernetes.io/name`); 2 + d: a Damerau-Levenshtein
    distance d of at most 2 (at most 1 for keys of 3 characters or fewer).
    """
    if key == known:
        return None
    if key.lower() == known.lower():
        return 0
    if _name(key) == _name(known) and _name(key):
        return 1
    distance = damerau_levenshtein(key, known)
    limit = 1 if min(len(key), len(known)) <= 3 else 2
    return 2 + distance if distance <= limit else None


def suggestion(key: str, known: Iterable[str]) -> str | None:
    """The existing key `key` most likely meant (closest, then alphabetical), or None."""
    scored = sorted((score, k) for k in set(known) if (score := near(key, k)) is not None)
    return scored[0][1] if scored else None
