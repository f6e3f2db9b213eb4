"""Pure edits behind the API's label/annotate and cordon/uncordon verbs (kubectl's rules); called by master.api."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from edgekube.model.errors import ValidationError
from edgekube.model.labels import validate_annotations, validate_label_key, validate_label_value
from edgekube.model.taints import TAINT_UNSCHEDULABLE
from edgekube.model.types import Obj

_UNSCHEDULABLE = {"key": TAINT_UNSCHEDULABLE, "effect": "NoSchedule"}


def edit_map(
    current: Mapping[str, str],
    changes: Mapping[str, str | None],
    *,
    overwrite: bool,
    annotations: bool = False,
) -> dict[str, str]:
    """Apply `changes` (a None value removes the key, like kubectl's `key-`) to a label or annotation map.

    Every key (and, for labels, every value) is checked first; changing an existing key's value needs
    `overwrite`, exactly as kubectl refuses `'app' already has a value (web), and --overwrite is false`.
    """
    if not changes:
        raise ValidationError(f"{'annotations' if annotations else 'labels'}: Required value: at least one change")
    field = "annotations" if annotations else "labels"
    problems: list[str] = []
    for key, value in sorted(changes.items()):
        path = f"{field}[{json.dumps(key)}]"
        try:
            # As in Kubernetes, case does not matter in annotation keys.
            validate_label_key(key.lower() if annotations else key, path=field)
            if value is not None and not annotations:
                validate_label_value(value, path=path)
        except ValidationError as exc:
            problems.append(str(exc))
            continue
        if value is not None and key in current and current[key] != value and not overwrite:
            problems.append(f"'{key}' already has a value ({current[key]}), and --overwrite is false")
    if problems:
        raise ValidationError("; ".join(problems))
    result = dict(current)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    if annotations:
        validate_annotations(result, path=field)
    return result


def cordoned(spec: Mapping[str, Any], unschedulable: bool) -> Obj:
    """A Node spec with `unschedulable` set and the `node.kubernetes.io/unschedulable:NoSchedule` taint to match."""
    taints = list(spec.get("taints") or ())
    if not unschedulable:
        taints = [t for t in taints if t.get("key") != TAINT_UNSCHEDULABLE]
    elif not any(t.get("key") == TAINT_UNSCHEDULABLE and t.get("effect") == "NoSchedule" for t in taints):
        taints.append(dict(_UNSCHEDULABLE))
    return {**spec, "unschedulable": unschedulable, "taints": taints}
