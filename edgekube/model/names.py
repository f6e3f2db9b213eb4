"""Typed identifiers and Kubernetes name rules (DNS-1123), used by manifests, wire schemas and every layer."""

from __future__ import annotations

import re
from typing import NewType

from edgekube.model.errors import ValidationError

NodeName = NewType("NodeName", str)
PodUID = NewType("PodUID", str)
Namespace = NewType("Namespace", str)

DEFAULT_NAMESPACE = Namespace("default")

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_C_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _at(field: str) -> str:
    return f"{field}: " if field else ""


def check_dns1123_subdomain(value: str, field: str) -> str:
    """Kubernetes object names (pods, nodes): lowercase RFC 1123 subdomain, at most 253 characters."""
    if not value:
        raise ValidationError(f"{_at(field)}Required value")
    if len(value) > 253:
        raise ValidationError(f"{_at(field)}{value!r}: must be no more than 253 characters")
    if not _DNS1123_SUBDOMAIN.match(value):
        raise ValidationError(
            f"{_at(field)}{value!r}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
            "characters, '-' or '.', and must start and end with an alphanumeric character"
        )
    return value


def check_dns1123_label(value: str, field: str) -> str:
    """Namespaces, container, port and volume names: lowercase RFC 1123 label, at most 63 characters."""
    if not value:
        raise ValidationError(f"{_at(field)}Required value")
    if len(value) > 63:
        raise ValidationError(f"{_at(field)}{value!r}: must be no more than 63 characters")
    if not _DNS1123_LABEL.match(value):
        raise ValidationError(
            f"{_at(field)}{value!r}: a lowercase RFC 1123 label must consist of lower case alphanumeric "
            "characters or '-', and must start and end with an alphanumeric character"
        )
    return value


def check_env_name(value: str, field: str) -> str:
    """Environment variable names: a C identifier, as Kubernetes' default (strict) rule asks."""
    if not _C_IDENTIFIER.match(value):
        raise ValidationError(
            f"{_at(field)}{value!r}: a valid environment variable name must consist of alphabetic characters, "
            "digits or '_', and must not start with a digit"
        )
    return value
