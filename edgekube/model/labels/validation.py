"""Kubernetes' rules for label keys, label values and annotations; used by manifests, the CLI and the selector.

A port of k8s.io/apimachinery ``util/validation`` (IsQualifiedName, IsValidLabelValue) and the annotation
checks of ``api/validation``.  The ``*_errors``/``check_*`` helpers return every broken rule as a message and
are shared with selector.py and parser.py; the ``validate_*`` functions raise ValidationError.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from edgekube.model.errors import ValidationError

__all__ = [
    "TOTAL_ANNOTATION_SIZE_LIMIT_B",
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


def quote(value: object) -> str:
    """Show a value in a message the way k8s does: strings double-quoted, anything else as its repr."""
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


def key_errors(key: object) -> list[str]:
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


def value_errors(value: object) -> list[str]:
    """Mirror IsValidLabelValue: every broken rule is reported, not only the first."""
    if not isinstance(value, str):
        return [f"must be a string, got {type(value).__name__}"]
    errs = [f"must be no more than {_VALUE_MAX} characters"] if _nbytes(value) > _VALUE_MAX else []
    if not _VALUE_RE.fullmatch(value):
        errs.append(_regex_error(_VALUE_MSG, _VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def raise_errors(errors: list[str], hint: str = "") -> None:
    """Raise ValidationError if there are errors, shaped like k8s' aggregate error.

    A single error prints bare, several print as a bracketed list.
    """
    if errors:
        raise ValidationError(errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]", hint=hint)


def _at(path: str, message: str) -> str:
    # Callers whose own context already names the field (pydantic validators) pass path="".
    return f"{path}: {message}" if path else message


def _entry(path: str, key: object) -> str:
    return f"{path}[{quote(key)}]" if path else quote(key)


def _check_key(key: object, path: str, *, ignore_case: bool = False) -> list[str]:
    errs = key_errors(key.lower() if ignore_case and isinstance(key, str) else key)
    return [f"{_entry(path, key)}: invalid key: {'; '.join(errs)}"] if errs else []


def check_value(value: object, path: str) -> list[str]:
    """Messages for an invalid label value at ``path``; empty if it is valid."""
    errs = value_errors(value)
    return [_at(path, f"invalid value {quote(value)}: {'; '.join(errs)}")] if errs else []


def check_labels(labels: object, path: str) -> list[str]:
    """Messages for every invalid key and value of a label map at ``path``; None counts as no labels."""
    if labels is None:
        return []
    if not isinstance(labels, Mapping):
        return [_at(path, f"must be a mapping of label keys to values, got {type(labels).__name__}")]
    errs: list[str] = []
    for key in sorted(labels, key=str):
        errs += _check_key(key, path) + check_value(labels[key], _entry(path, key))
    return errs


def validate_label_key(key: str, path: str = "metadata.labels") -> str:
    """Return ``key`` if it is a qualified name (``[prefix/]name``), else raise ValidationError."""
    raise_errors(_check_key(key, path))
    return key


def validate_label_value(value: str, path: str = "metadata.labels") -> str:
    """Return ``value`` if it is a valid (possibly empty) label value, else raise ValidationError."""
    raise_errors(check_value(value, path))
    return value


def validate_labels(labels: Mapping[str, str] | None, path: str = "metadata.labels") -> dict[str, str]:
    """Return a copy of ``labels`` after checking every key and value; all problems are reported at once."""
    raise_errors(check_labels(labels, path))
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
            errs += check_value(value, _entry(path, key))
        elif isinstance(key, str):
            total += _nbytes(key) + _nbytes(value)
    if total > TOTAL_ANNOTATION_SIZE_LIMIT_B:
        limit = TOTAL_ANNOTATION_SIZE_LIMIT_B
        errs.append(_at(path, f"Too long: must have at most {limit} bytes (keys plus values total {total} bytes)"))
    raise_errors(errs)
    return dict(annotations)
