"""dnsPolicy/dnsConfig: Kubernetes' rules (validation.go) and the resolv.conf the kubelet would build, for Podman."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.runtime.podman import specgen
from edgekube.agent.runtime.podman.dns import ResolvConf, parse, pod_options, read_host
from edgekube.model.dns import DNSPolicy
from edgekube.model.errors import ValidationError
from edgekube.model.pod import Pod

NODE = ResolvConf(["10.0.0.2", "10.0.0.3"], ["lan", "corp.example"], ["edns0", "ndots:1"])


def _pod(**spec: Any) -> Pod:
    body = {"containers": [{"name": "c", "image": "busybox"}], **spec}
    return Pod.from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": body})


def _error(**spec: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        _pod(**spec)
    return str(caught.value)


# -- validation --------------------------------------------------------------------------------------------


def test_an_empty_dns_policy_is_cluster_first_and_stays_out_of_the_stored_spec() -> None:
    """SetDefaults_PodSpec: `if obj.DNSPolicy == "" { obj.DNSPolicy = v1.DNSClusterFirst }` (unset: the same)."""
    pod = _pod(dnsPolicy="")
    assert pod.spec.dns_policy is None
    assert "dnsPolicy" not in pod.spec.to_dict()


@pytest.mark.parametrize("policy", ["ClusterFirst", "ClusterFirstWithHostNet", "Default"])
def test_each_policy_is_accepted(policy: str) -> None:
    """validateDNSPolicy: ClusterFirstWithHostNet, ClusterFirst, Default, None."""
    assert _pod(dnsPolicy=policy).spec.dns_policy == DNSPolicy(policy)


def test_an_unknown_policy_is_not_supported_listing_the_values_in_kubernetes_order() -> None:
    """validateDNSPolicy: field.NotSupported with ClusterFirstWithHostNet, ClusterFirst, Default, None."""
    assert _error(dnsPolicy="clusterfirst").endswith(
        'spec.dnsPolicy: Unsupported value: "clusterfirst": supported values: '
        '"ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"'
    )


def test_policy_none_requires_a_dns_config() -> None:
    """validatePodDNSConfig: field.Required(fldPath, "must provide `dnsConfig` when `dnsPolicy` is None")."""
    assert "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None" in _error(
        dnsPolicy="None"
    )


def test_policy_none_requires_a_nameserver() -> None:
    """validatePodDNSConfig: "must provide at least one DNS nameserver when `dnsPolicy` is None"."""
    error = _error(dnsPolicy="None", dnsConfig={"searches": ["a.example"]})
    assert "spec.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver" in error


def test_more_than_three_nameservers_are_invalid() -> None:
    """validatePodDNSConfig: MaxDNSNameservers = 3."""
    error = _error(dnsConfig={"nameservers": ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"]})
    assert "spec.dnsConfig.nameservers: Invalid value:" in error
    assert "must not have more than 3 nameservers" in error


def test_a_nameserver_must_be_an_ip_address() -> None:
    """validatePodDNSConfig: each nameserver is an IP (IsValidIPForLegacyField)."""
    error = _error(dnsConfig={"nameservers": ["192.0.2.1", "dns.example"]})
    assert 'spec.dnsConfig.nameservers[1]: Invalid value: "dns.example": must be a valid IP address' in error


def test_an_ipv6_nameserver_is_valid() -> None:
    _pod(dnsConfig={"nameservers": ["2001:db8::53"]})


def test_thirty_two_search_domains_are_valid_and_thirty_three_are_not() -> None:
    """validatePodDNSConfig: MaxDNSSearchPaths = 32 (ExpandedDNSConfig)."""
    _pod(dnsConfig={"searches": [f"d{i}.example" for i in range(32)]})
    error = _error(dnsConfig={"searches": [f"d{i}.example" for i in range(33)]})
    assert "must not have more than 32 search paths" in error


def test_a_search_list_over_2048_characters_is_invalid() -> None:
    """validatePodDNSConfig: MaxDNSSearchListChars = 2048, spaces included."""
    label = "a" * 63
    domains = [".".join([label] * 3) + f".d{i}" for i in range(11)]  # 11 x 195 characters + 10 spaces
    assert len(" ".join(domains)) > 2048
    assert "must not have more than 2048 characters (including spaces) in the search list" in _error(
        dnsConfig={"searches": domains}
    )


@pytest.mark.parametrize("search", ["example.com.", "_srv.example.com", "."])
def test_a_trailing_dot_an_underscore_and_a_lone_dot_are_valid_searches(search: str) -> None:
    """validatePodDNSConfig with RelaxedDNSSearchValidation: IsDNS1123SubdomainWithUnderscore, "." allowed."""
    _pod(dnsConfig={"searches": [search]})


def test_a_search_domain_that_is_not_a_subdomain_is_invalid() -> None:
    """validatePodDNSConfig: ValidateDNS1123SubdomainWithUnderScore on the domain without its trailing dot."""
    error = _error(dnsConfig={"searches": ["Upper.example"]})
    assert 'spec.dnsConfig.searches[0]: Invalid value: "Upper.example": a lowercase RFC 1123 subdomain' in error


def test_an_option_without_a_name_is_required() -> None:
    """validatePodDNSConfig: options[i]: field.Required(..., "must not be empty")."""
    error = _error(dnsConfig={"options": [{"value": "2"}]})
    assert "spec.dnsConfig.options[0]: Required value: must not be empty" in error


# -- the pod's resolv.conf ----------------------------------------------------------------------------------


def test_parse_reads_nameservers_the_last_search_line_and_options() -> None:
    """The kubelet's parseResolvConf: comments dropped, the last `search` line wins, `.` dropped."""
    text = "# comment\nnameserver 10.0.0.2\nsearch old.example\nsearch lan. . corp.example\noptions ndots:1 edns0\n"
    assert parse(text) == ResolvConf(["10.0.0.2"], ["lan", "corp.example"], ["ndots:1", "edns0"])


def test_without_dns_config_podman_keeps_the_nodes_file() -> None:
    for policy in (None, "Default", "ClusterFirst", "ClusterFirstWithHostNet"):
        spec = {"dnsPolicy": policy} if policy else {}
        assert pod_options(_pod(**spec).spec, NODE) == {}


def test_policy_none_uses_only_the_pods_config_and_clears_the_nodes_searches() -> None:
    spec = _pod(dnsPolicy="None", dnsConfig={"nameservers": ["192.0.2.53"]}).spec
    assert pod_options(spec, NODE) == {"dns_server": ["192.0.2.53"], "dns_search": ["."]}


def test_dns_config_is_appended_to_the_nodes_without_duplicates_and_its_options_win_by_name() -> None:
    """appendDNSConfig: omitDuplicates(append(node, pod)) for servers and searches; mergeDNSOptions."""
    config = {
        "nameservers": ["10.0.0.3", "192.0.2.53"],
        "searches": ["corp.example", "extra.example"],
        "options": [{"name": "ndots", "value": "5"}, {"name": "rotate"}],
    }
    assert pod_options(_pod(dnsConfig=config).spec, NODE) == {
        "dns_server": ["10.0.0.2", "10.0.0.3", "192.0.2.53"],
        "dns_search": ["lan", "corp.example", "extra.example"],
        "dns_option": ["edns0", "ndots:5", "rotate"],
    }


def test_the_merged_lists_are_cut_to_the_resolvers_limits() -> None:
    """formDNSConfigFitsLimits: the first 3 nameservers, the first 32 search domains."""
    config = {"nameservers": ["192.0.2.1", "192.0.2.2"], "searches": [f"d{i}.example" for i in range(31)]}
    options = pod_options(_pod(dnsConfig=config).spec, NODE)
    assert options["dns_server"] == ["10.0.0.2", "10.0.0.3", "192.0.2.1"]
    assert len(options["dns_search"]) == 32
    assert options["dns_search"][:3] == ["lan", "corp.example", "d0.example"]


def test_the_pod_document_carries_the_dns_options_and_a_host_network_pods_containers_too() -> None:
    pod = _pod(dnsPolicy="None", dnsConfig={"nameservers": ["192.0.2.53"]})
    assert specgen.pod_spec(pod, "p", {})["dns_server"] == ["192.0.2.53"]
    assert "dns_server" not in specgen.container_spec(pod, pod.spec.containers[0], 0, "p", {})
    host = _pod(hostNetwork=True, dnsPolicy="None", dnsConfig={"nameservers": ["192.0.2.53"]})
    assert specgen.container_spec(host, host.spec.containers[0], 0, "p", {})["dns_server"] == ["192.0.2.53"]


def test_a_node_behind_systemd_resolved_gives_its_upstream_servers(tmp_path: Path) -> None:
    """Podman (and kubeadm's kubelet) read systemd-resolved's upstream file instead of its 127.0.0.53 stub."""
    stub, upstream = tmp_path / "resolv.conf", tmp_path / "upstream.conf"
    stub.write_text("nameserver 127.0.0.53\nsearch lan\noptions edns0 trust-ad\n")
    upstream.write_text("nameserver 192.0.2.1\nnameserver 192.0.2.2\nsearch lan\n")
    assert read_host(stub, upstream) == ResolvConf(["192.0.2.1", "192.0.2.2"], ["lan"], ["edns0", "trust-ad"])


def test_a_node_without_resolv_conf_has_no_settings(tmp_path: Path) -> None:
    assert read_host(tmp_path / "missing", tmp_path / "missing-too") == ResolvConf()
