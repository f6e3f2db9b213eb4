"""Typed identifiers and Kubernetes name rules (DNS-1123), used by manifests, wire schemas and every layer."""

from __future__ import annotations

import json
import re
from typing import NewType

from edgekube.model.errors import ValidationError

NodeName = NewType("NodeName", str)
PodUID = NewType("PodUID", str)
Namespace = NewType("Namespace", str)

DEFAULT_NAMESPACE = Namespace("default")

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ENV_NAME_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"
_ENV_NAME = re.compile(f"^{_ENV_NAME_FMT}$")
_PORT_NAME_CHARSET = re.compile(r"^[-a-z0-9]+$")
_HTTP_HEADER_NAME_FMT = "[-A-Za-z0-9]+"
_HTTP_HEADER_NAME = re.compile(f"^{_HTTP_HEADER_NAME_FMT}$")
_DNS1123_SUBDOMAIN_FMT = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """Apimachinery's RegexError: the rule, its examples and the regular expression, worded as Kubernetes does."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def _at(field: str) -> str:
    return f"{field}: " if field else ""


def check_dns1123_subdomain(value: str, field: str) -> str:
    """Kubernetes object names (pods, nodes): ValidateDNS1123Subdomain, each broken rule a field.Invalid line."""
    if not value:
        raise ValidationError(f"{_at(field)}Required value")
    errs = dns1123_subdomain_errors(value)
    if errs:
        raise ValidationError("\n".join(f"{_at(field)}Invalid value: {_q(value)}: {e}" for e in errs))
    return value


def dns1123_label_errors(value: str) -> list[str]:
    """Apimachinery's IsDNS1123Label, with Kubernetes' full wording."""
    errs = ["must be no more than 63 characters"] if len(value) > 63 else []
    if not _DNS1123_LABEL.match(value):
        if _DNS1123_SUBDOMAIN.match(value):
            errs.append("must not contain dots")
        else:
            errs.append(
                regex_error(
                    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                    "and must start and end with an alphanumeric character",
                    "[a-z0-9]([-a-z0-9]*[a-z0-9])?",
                    "my-name",
                    "123-abc",
                )
            )
    return errs


def check_dns1123_label(value: str, field: str) -> str:
    """Namespaces, container and volume names: ValidateDNS1123Label, each broken rule a field.Invalid line."""
    if not value:
        raise ValidationError(f"{_at(field)}Required value")
    errs = dns1123_label_errors(value)
    if errs:
        raise ValidationError("\n".join(f"{_at(field)}Invalid value: {_q(value)}: {e}" for e in errs))
    return value


def env_name_errors(value: str) -> list[str]:
    """Apimachinery IsEnvVarName: `[-._a-zA-Z][-._a-zA-Z0-9]*`, and not `.`, `..` or starting with `..`."""
    errs: list[str] = []
    if not _ENV_NAME.match(value):
        errs.append(
            regex_error(
                "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', "
                "and must not start with a digit",
                _ENV_NAME_FMT,
                "my.env-name",
                "MY_ENV.NAME",
                "MyEnvName1",
            )
        )
    if value == ".":
        errs.append("must not be '.'")
    elif value == "..":
        errs.append("must not be '..'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def check_env_name(value: str, field: str) -> str:
    """validation.go ValidateEnv: an environment variable name (or envFrom prefix) by IsEnvVarName."""
    if not value:
        raise ValidationError(f"{_at(field)}Required value")
    errs = env_name_errors(value)
    if errs:
        raise ValidationError("\n".join(f"{_at(field)}Invalid value: {_q(value)}: {e}" for e in errs))
    return value


def port_name_errors(value: str) -> list[str]:
    """Apimachinery IsValidPortName (IANA_SVC_NAME): at most 15 of [-a-z0-9], a letter, no `--`, no edge hyphen."""
    errs: list[str] = []
    if len(value) > 15:
        errs.append("must be no more than 15 characters")
    if not _PORT_NAME_CHARSET.match(value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search("[a-z]", value):
        errs.append("must contain at least one letter (a-z)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if value and (value[0] == "-" or value[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def port_num_errors(value: int) -> list[str]:
    """Apimachinery IsValidPortNum."""
    return [] if 1 <= value <= 65535 else ["must be between 1 and 65535, inclusive"]


def http_header_name_errors(value: str) -> list[str]:
    """Apimachinery IsHTTPHeaderName: Go's net/http header field names, `[-A-Za-z0-9]+`."""
    if _HTTP_HEADER_NAME.match(value):
        return []
    return [
        regex_error(
            "a valid HTTP header must consist of alphanumeric characters or '-'", _HTTP_HEADER_NAME_FMT, "X-Header-Name"
        )
    ]


def dns1123_subdomain_errors(value: str) -> list[str]:
    """Apimachinery IsDNS1123Subdomain, with Kubernetes' full wording (examples and regular expression)."""
    errs = ["must be no more than 253 characters"] if len(value) > 253 else []
    if not _DNS1123_SUBDOMAIN.match(value):
        errs.append(
            regex_error(
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                "and must start and end with an alphanumeric character",
                _DNS1123_SUBDOMAIN_FMT,
                "example.com",
            )
        )
    return errs


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)
