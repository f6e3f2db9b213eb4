"""A pod's resolv.conf as the kubelet builds it (pkg/kubelet/network/dns), as Podman pod options; for specgen.

- Default, ClusterFirst and ClusterFirstWithHostNet without `dnsConfig`: nothing is passed, Podman writes the node's
  resolv.conf (without the pod network there is no cluster DNS, so the cluster policies fall back to Default, as a
  kubelet without `clusterDNS` does; with it, podman/network.py gives ClusterFirst pods the cluster DNS).
- With `dnsConfig`: the node's nameservers, searches and options (its resolv.conf, read at create), then the pod's
  appended without duplicates, a pod option replacing the node's option of the same name (appendDNSConfig).
- None: the pod's `dnsConfig` alone.
Then the kubelet's limits (formDNSConfigFitsLimits): at most 3 nameservers, 32 search domains, 2048 characters.
Podman takes `dns_server`, `dns_search` (`.` for none: its way to drop the node's) and `dns_option`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekube.model.dns import MAX_NAMESERVERS, MAX_SEARCH_LIST_CHARS, MAX_SEARCH_PATHS, DNSPolicy
from edgekube.model.pod import PodSpec

#: The node's resolver configuration (the kubelet's default --resolv-conf).
HOST_RESOLV_CONF = Path("/etc/resolv.conf")
#: systemd-resolved's upstream servers, used when /etc/resolv.conf names only its local stub (as Podman does).
RESOLVED_RESOLV_CONF = Path("/run/systemd/resolve/resolv.conf")
_RESOLVED_STUB = "127.0.0.53"
#: A longer search domain makes some resolvers abort (glibc 2.28); the kubelet leaves them out.
_MAX_DOMAIN = 253


@dataclass(frozen=True)
class ResolvConf:
    nameservers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)


def parse(text: str) -> ResolvConf:
    """The kubelet's parseResolvConf: `nameserver` lines, the last `search` line (`.` dropped), `options` lines."""
    conf = ResolvConf()
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if not fields:
            continue
        key, values = fields[0], fields[1:]
        if key == "nameserver" and values:
            conf.nameservers.append(values[0])
        elif key == "search":
            conf.searches[:] = [v.removesuffix(".") for v in values if v != "."]
        elif key == "options":
            conf.options.extend(values)
    return conf


def read_host(path: Path = HOST_RESOLV_CONF, resolved: Path = RESOLVED_RESOLV_CONF) -> ResolvConf:
    """The node's resolver configuration; nothing (no file) is an empty one."""
    try:
        conf = parse(path.read_text())
    except OSError:
        return ResolvConf()
    if conf.nameservers == [_RESOLVED_STUB]:
        try:
            upstream = parse(resolved.read_text())
        except OSError:
            return conf
        return ResolvConf(upstream.nameservers, conf.searches or upstream.searches, conf.options)
    return conf


def custom(spec: PodSpec) -> bool:
    """True when the pod's resolv.conf is not simply the node's (policy None, or a dnsConfig)."""
    return spec.dns_policy is DNSPolicy.NONE or spec.dns_config is not None


def pod_options(spec: PodSpec, host: ResolvConf) -> dict[str, Any]:
    """The `POST /pods/create` DNS fields for the pod ({} when Podman's default, the node's file, is right)."""
    if not custom(spec):
        return {}
    base = ResolvConf() if spec.dns_policy is DNSPolicy.NONE else host
    config = spec.dns_config
    servers = _unique([*base.nameservers, *((config.nameservers or []) if config else [])])
    searches = _unique([*base.searches, *((config.searches or []) if config else [])])
    options = _merge_options(base.options, [(o.name, o.value) for o in (config.options or [])] if config else [])
    searches = _fit_searches(searches)
    body: dict[str, Any] = {"dns_search": searches or ["."]}
    if servers:
        body["dns_server"] = servers[:MAX_NAMESERVERS]
    if options:
        body["dns_option"] = options
    return body


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _merge_options(host: list[str], pod: list[tuple[str, str | None]]) -> list[str]:
    """mergeDNSOptions: by name, the pod's option replacing the node's; `name:value` or `name`."""
    merged: dict[str, str | None] = {}
    for option in host:
        name, sep, text = option.partition(":")
        merged[name] = text if sep else None
    for name, given in pod:
        merged[name] = given
    return [name if value is None else f"{name}:{value}" for name, value in merged.items()]


def _fit_searches(searches: list[str]) -> list[str]:
    """formDNSSearchFitsLimits: at most MAX_SEARCH_PATHS domains, none over 253 characters, MAX_SEARCH_LIST_CHARS."""
    searches = [s for s in searches[:MAX_SEARCH_PATHS] if len(s) <= _MAX_DOMAIN]
    while searches and len(" ".join(searches)) > MAX_SEARCH_LIST_CHARS:
        searches.pop()
    return searches
