"""Service (v1): SetDefaults_Service and validation.go ValidateService's rules, each with Kubernetes' message."""

from __future__ import annotations

from typing import Any

import pytest

from edgekube.model.manifest import ManifestError, parse_object
from edgekube.model.service import Service


def service(spec: dict[str, Any], name: str = "web") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def problems(spec: dict[str, Any], name: str = "web") -> list[str]:
    with pytest.raises(ManifestError) as caught:
        parse_object(service(spec, name))
    return caught.value.problems


def test_defaults_are_set_defaults_service() -> None:
    """SetDefaults_Service: type ClusterIP, sessionAffinity None, protocol TCP, targetPort = port."""
    svc = parse_object(service({"selector": {"app": "web"}, "ports": [{"port": 80}]}))
    assert isinstance(svc, Service)
    spec = svc.to_dict()["spec"]
    assert spec["type"] == "ClusterIP"
    assert spec["sessionAffinity"] == "None"
    assert spec["ports"] == [{"protocol": "TCP", "port": 80, "targetPort": 80}]


def test_client_ip_affinity_defaults_its_timeout_to_10800() -> None:
    spec = parse_object(service({"ports": [{"port": 80}], "sessionAffinity": "ClientIP"})).to_dict()["spec"]
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}


def test_several_ports_need_unique_names_validate_service_port() -> None:
    """validateServicePort: a name is required when there are several ports, and each is unique."""
    assert problems({"ports": [{"port": 80}, {"port": 443}]}) == [
        "spec.ports[0].name: Required value",
        "spec.ports[1].name: Required value",
    ]
    assert problems({"ports": [{"port": 80, "name": "web"}, {"port": 443, "name": "web"}]}) == [
        'spec.ports[1].name: Duplicate value: "web"'
    ]


def test_port_name_is_a_dns1123_label() -> None:
    found = problems({"ports": [{"port": 80, "name": "Web"}]})
    assert found[0].startswith('spec.ports[0].name: Invalid value: "Web": a lowercase RFC 1123 label must consist')


def test_target_port_is_a_number_or_an_iana_svc_name_validate_port_num_or_name() -> None:
    assert problems({"ports": [{"port": 80, "targetPort": 70000}]}) == [
        "spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive"
    ]
    assert problems({"ports": [{"port": 80, "targetPort": "http--x"}]}) == [
        'spec.ports[0].targetPort: Invalid value: "http--x": must not contain consecutive hyphens'
    ]


def test_ports_are_required_unless_headless() -> None:
    assert problems({"selector": {"app": "web"}}) == ["spec.ports: Required value"]
    headless = parse_object(service({"clusterIP": "None", "selector": {"app": "web"}})).to_dict()["spec"]
    assert headless["clusterIP"] == "None"


def test_headless_node_port_service_is_invalid() -> None:
    assert problems({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]}) == [
        "spec.clusterIP: Invalid value: \"None\": may not be set to 'None' for NodePort services"
    ]


def test_unsupported_types_are_refused() -> None:
    assert problems({"type": "LoadBalancer", "ports": [{"port": 80}]}) == [
        'spec.type: Unsupported value: "LoadBalancer": supported values: "ClusterIP", "NodePort"'
    ]


def test_node_port_is_forbidden_on_a_cluster_ip_service() -> None:
    assert problems({"ports": [{"port": 80, "nodePort": 30080}]}) == [
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
    ]


def test_duplicate_port_and_node_port_per_protocol() -> None:
    found = problems(
        {
            "type": "NodePort",
            "ports": [{"port": 80, "name": "a", "nodePort": 30080}, {"port": 80, "name": "b", "nodePort": 30080}],
        }
    )
    assert found == ["spec.ports[1].nodePort: Duplicate value: 30080", 'spec.ports[1]: Duplicate value: "80/TCP"']


def test_cluster_ip_must_be_an_address() -> None:
    assert problems({"clusterIP": "10.43.0.300", "ports": [{"port": 80}]}) == [
        "spec.clusterIP: Invalid value: \"10.43.0.300\": must be empty, 'None', or a valid IP address"
    ]


def test_selector_labels_are_checked() -> None:
    found = problems({"selector": {"app": "a b"}, "ports": [{"port": 80}]})
    assert found[0].startswith('spec.selector["app"]: Invalid value: "a b": a valid label must be')


def test_session_affinity_rules_validate_client_ip_affinity_config() -> None:
    assert problems({"ports": [{"port": 80}], "sessionAffinity": "Sticky"}) == [
        'spec.sessionAffinity: Unsupported value: "Sticky": supported values: "ClientIP", "None"'
    ]
    config = {"clientIP": {"timeoutSeconds": 0}}
    assert problems({"ports": [{"port": 80}], "sessionAffinity": "ClientIP", "sessionAffinityConfig": config}) == [
        "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: must be greater than 0 and less "
        "than 86400"
    ]
    assert problems({"ports": [{"port": 80}], "sessionAffinityConfig": config}) == [
        "spec.sessionAffinityConfig: Forbidden: must not be set when session affinity is None"
    ]


def test_service_name_is_a_dns1035_label_validate_service_name() -> None:
    found = problems({"ports": [{"port": 80}]}, name="1web")
    assert found[0].startswith('metadata.name: Invalid value: "1web": a DNS-1035 label must consist')
