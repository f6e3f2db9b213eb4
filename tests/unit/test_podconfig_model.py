"""Pod fields reading ConfigMaps, Secrets and the pod: env valueFrom/envFrom and config volumes (Kubernetes' rules)."""

from __future__ import annotations

from typing import Any

import pytest

from edgekube.model.manifest import ManifestError, parse_object
from edgekube.model.pod import Pod


def pod(container: dict[str, Any] | None = None, volumes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    c = {"name": "app", "image": "busybox", **(container or {})}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [c], "volumes": volumes or []},
    }


def problems(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_object(doc)
    return info.value.problems


def test_config_volumes_default_their_mode_to_0644() -> None:
    """pkg/apis/core/v1/defaults.go SetDefaults_ConfigMapVolumeSource / _SecretVolumeSource / _ProjectedVolumeSource."""
    doc = pod(volumes=[
        {"name": "a", "configMap": {"name": "x"}},
        {"name": "b", "secret": {"secretName": "s"}},
        {"name": "c", "projected": {"sources": [{"configMap": {"name": "x"}}]}},
    ])  # fmt: skip
    parsed = parse_object(doc)
    assert isinstance(parsed, Pod)
    vols = parsed.to_dict()["spec"]["volumes"]
    assert [v[k]["defaultMode"] for v, k in zip(vols, ("configMap", "secret", "projected"), strict=True)] == [0o644] * 3
    assert [v.source_kind() for v in parsed.spec.volumes] == ["configMap", "secret", "projected"]


@pytest.mark.parametrize(
    ("volume", "message"),
    [
        (
            {"configMap": {"name": "x", "defaultMode": 0o1000}},
            "must be a number between 0 and 0777 (octal), both inclusive",
        ),
        ({"configMap": {"name": "x", "items": [{"key": "k", "path": "/abs"}]}}, "must be a relative path"),
        ({"configMap": {"name": "x", "items": [{"key": "k", "path": "a/../b"}]}}, "must not contain '..'"),
        ({"configMap": {"name": "x", "items": [{"key": "k", "path": "..data"}]}}, "must not start with '..'"),
        ({"secret": {"secretName": "s", "items": [{"key": "k", "path": "p", "mode": -1}]}}, "mode: Invalid value: -1"),
        (
            {"downwardAPI": {"items": [{"path": "f", "fieldRef": {"fieldPath": "spec.nodeName"}}]}},
            'fieldRef.fieldPath: Unsupported value: "spec.nodeName"',
        ),
        (
            {
                "projected": {
                    "sources": [
                        {"secret": {"name": "a", "items": [{"key": "k", "path": "p"}]}},
                        {"configMap": {"name": "b", "items": [{"key": "k", "path": "p"}]}},
                    ]
                }
            },
            'Invalid value: "p": conflicting duplicate paths',
        ),
        ({"configMap": {"name": "x"}, "emptyDir": {}}, "may not specify more than 1 volume type"),
    ],
)
def test_config_volume_rules(volume: dict[str, Any], message: str) -> None:
    """validation.go validateKeyToPath, validateLocalNonReservedPath, fileModeErrorMsg, validateDownwardAPIVolumeFile
    (validVolumeDownwardAPIFieldPathExpressions), validateProjectionSources and validateVolumeSource."""
    found = problems(pod(volumes=[{"name": "v", **volume}]))
    assert any(message in p for p in found), found


CM_REF = {"name": "x", "key": "k"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            'valueFrom: Invalid value: "": may not be specified when `value` is not empty',
        ),
        ({"name": "A", "valueFrom": {}}, "must specify one of: `fieldRef`, `resourceFieldRef`"),
        (
            {"name": "A", "valueFrom": {"configMapKeyRef": CM_REF, "secretKeyRef": {"name": "s", "key": "k"}}},
            "may not have more than one field specified at a time",
        ),
        ({"name": "A", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "a b"}}}, "a valid config key"),
        ({"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}, '"limits.gpu"'),
        ({"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels"}}}, '"metadata.labels"'),
    ],
)
def test_env_value_from_rules(env: dict[str, Any], message: str) -> None:
    """validation.go validateEnvVarValueFrom (one source; not with value), validateConfigMapKeySelector
    (IsConfigMapKey), validateContainerResourceFieldSelector, validEnvDownwardAPIFieldPathExpressions."""
    found = problems(pod({"env": [env]}))
    assert any(message in p for p in found), found


def test_env_from_needs_exactly_one_source_and_keeps_its_prefix() -> None:
    """validation.go validateEnvFrom: one of configMapRef or secretRef per entry."""
    assert any("must specify one of: `configMapRef` or `secretRef`" in p for p in problems(pod({"envFrom": [{}]})))
    parsed = parse_object(pod({"envFrom": [{"prefix": "DB_", "secretRef": {"name": "db", "optional": True}}]}))
    assert parsed.to_dict()["spec"]["containers"][0]["envFrom"] == [
        {"prefix": "DB_", "secretRef": {"name": "db", "optional": True}}
    ]


def test_a_container_without_env_from_stores_as_before() -> None:
    """No new empty field in a stored spec: the agents' spec hashes of running pods stay the same."""
    parsed = parse_object(pod())
    assert "envFrom" not in parsed.to_dict()["spec"]["containers"][0]
