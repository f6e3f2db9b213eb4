"""`key=value` and `key-` arguments of `ekctl label|annotate`, checked locally with Kubernetes' key and value rules."""

from __future__ import annotations

from edgekube.model.errors import ValidationError
from edgekube.model.labels import validate_annotations, validate_label_key, validate_label_value

Changes = dict[str, str | None]  # None removes the key, as on the wire


def is_change(arg: str) -> bool:
    """Tell a change (`k=v`, `k-`) from a resource argument (`pod`, `web`, `pod/web`), as kubectl does."""
    return "=" in arg or arg.endswith("-")


def _hint(noun: str) -> str:
    return f"write {noun}s as KEY=VALUE to set and KEY- to remove; KEY is [prefix/]name"


def parse_changes(args: list[str], *, annotations: bool) -> Changes:
    """Parse and validate every change; the error names the argument, the key and the broken rule."""
    noun = "annotation" if annotations else "label"
    field = f"{noun}s"
    changes: Changes = {}
    for arg in args:
        if "=" in arg:
            key, _, value = arg.partition("=")
            if not annotations and "=" in value:
                raise ValidationError(f"invalid {noun} spec: {arg}", hint=_hint(noun))
        else:
            key, value = arg[:-1], None
        try:
            if annotations:
                validate_annotations({key: value or ""}, path=field)
            else:
                validate_label_key(key, path=field)
                if value is not None:
                    validate_label_value(value, path=f'{field}["{key}"]')
        except ValidationError as exc:
            raise ValidationError(f"invalid {noun} {arg!r}: {exc}", hint=_hint(noun)) from None
        if key in changes and (changes[key] is None) != (value is None):
            raise ValidationError(f"can not both modify and remove {noun} {key!r} in the same command")
        changes[key] = value  # as in kubectl, the last of several values for one key wins
    return changes
