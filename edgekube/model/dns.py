"""A pod's DNS settings (`dnsPolicy`, `dnsConfig`) with Kubernetes' rules; part of model.pod's PodSpec.

The agent turns them into the pod's /etc/resolv.conf (agent/runtime/podman/dns.py). With the pod network on,
ClusterFirst pods use the node's cluster DNS (agent/runtime/podman/network.py, docs/networking.md); without it
ClusterFirst and ClusterFirstWithHostNet resolve as Default does (the node's resolv.conf), as the kubelet does when
it has no cluster DNS configured.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum

from pydantic import StrictStr

from edgekube.model.base import K8sModel
from edgekube.model.fielderrors import invalid, required
from edgekube.model.names import regex_error

#: validation.go: limits derived from libc's resolver (MaxDNSSearchPaths/Chars as raised by ExpandedDNSConfig).
MAX_NAMESERVERS = 3
MAX_SEARCH_PATHS = 32
MAX_SEARCH_LIST_CHARS = 2048

_LABEL_UNDERSCORE = r"_?[a-z0-9]([-_a-z0-9]*[a-z0-9])?"
_SUBDOMAIN_UNDERSCORE_FMT = _LABEL_UNDERSCORE + r"(\." + _LABEL_UNDERSCORE + r")*"
_SUBDOMAIN_UNDERSCORE = re.compile(f"^{_SUBDOMAIN_UNDERSCORE_FMT}$")


class DNSPolicy(StrEnum):
    """validateDNSPolicy's values, in its order (the order its "supported values" error lists them)."""

    CLUSTER_FIRST_WITH_HOST_NET = "ClusterFirstWithHostNet"
    CLUSTER_FIRST = "ClusterFirst"
    DEFAULT = "Default"
    NONE = "None"


class PodDNSConfigOption(K8sModel):
    """One resolver option (`ndots` with value "2", `edns0` without)."""

    name: StrictStr = ""
    value: StrictStr | None = None


class PodDNSConfig(K8sModel):
    """Nameservers, search domains and options added to (policy None: making up) the pod's resolv.conf."""

    nameservers: list[StrictStr] | None = None
    searches: list[StrictStr] | None = None
    options: list[PodDNSConfigOption] | None = None


def dns_errors(policy: DNSPolicy | None, config: PodDNSConfig | None) -> list[str]:
    """validation.go validatePodDNSConfig (with RelaxedDNSSearchValidation), after SetDefaults_PodSpec (ClusterFirst).

    The policy's own values are pydantic's enum (validateDNSPolicy's NotSupported); "" is defaulted to ClusterFirst.
    """
    if policy is DNSPolicy.NONE:
        if config is None:
            return [required("dnsConfig", "must provide `dnsConfig` when `dnsPolicy` is None")]
        if not config.nameservers:
            return [
                required("dnsConfig.nameservers", "must provide at least one DNS nameserver when `dnsPolicy` is None")
            ]
    if config is None:
        return []
    errors = []
    nameservers = config.nameservers or []
    if len(nameservers) > MAX_NAMESERVERS:
        errors.append(
            invalid("dnsConfig.nameservers", nameservers, f"must not have more than {MAX_NAMESERVERS} nameservers")
        )
    for i, server in enumerate(nameservers):
        try:
            ipaddress.ip_address(server)
        except ValueError:
            errors.append(
                invalid(
                    f"dnsConfig.nameservers[{i}]",
                    server,
                    "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                )
            )
    searches = config.searches or []
    if len(searches) > MAX_SEARCH_PATHS:
        errors.append(
            invalid("dnsConfig.searches", searches, f"must not have more than {MAX_SEARCH_PATHS} search paths")
        )
    if len(" ".join(searches)) > MAX_SEARCH_LIST_CHARS:
        errors.append(
            invalid(
                "dnsConfig.searches", searches,
                f"must not have more than {MAX_SEARCH_LIST_CHARS} characters (including spaces) in the search list",
            )
        )  # fmt: skip
    for i, search in enumerate(searches):
        if search == ".":
            continue  # RelaxedDNSSearchValidation: a lone dot is allowed
        errors.extend(invalid(f"dnsConfig.searches[{i}]", search.removesuffix("."), m) for m in _search_errors(search))
    for i, option in enumerate(config.options or []):
        if not option.name:
            errors.append(required(f"dnsConfig.options[{i}]", "must not be empty"))
    return errors


def _search_errors(search: str) -> list[str]:
    """Apimachinery IsDNS1123SubdomainWithUnderscore on the search domain without its trailing dot."""
    value = search.removesuffix(".")
    errors = ["must be no more than 253 characters"] if len(value) > 253 else []
    if not _SUBDOMAIN_UNDERSCORE.match(value):
        errors.append(
            regex_error(
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '_', '-' or '.', "
                "and must start and end with an alphanumeric character",
                _SUBDOMAIN_UNDERSCORE_FMT,
                "example.com",
            )
        )
    return errors
