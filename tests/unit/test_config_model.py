"""ConfigMap and Secret: Kubernetes' validation rules and messages, and the master API's apply/update/delete of them."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from edgekube.master.api import Api
from edgekube.master.cache import CachedStore
from edgekube.model.config import MAX_SIZE, ConfigMap, Secret, key_problems
from edgekube.model.errors import ValidationError
from edgekube.model.manifest import ManifestError, parse_object
from edgekube.store.state import TinyStateStore


def cm(name: str = "cfg", **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, **fields}


def secret(name: str = "creds", **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, **fields}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def problems(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_object(doc)
    return info.value.problems


@pytest.mark.parametrize("key", ["a", "key.name", "KEY_NAME", "key-name", ".hidden", "a..b", "x" * 253])
def test_valid_config_keys_pass_is_config_map_key(key: str) -> None:
    """apimachinery pkg/util/validation IsConfigMapKey: `[-._a-zA-Z0-9]+`, at most 253, not `.`/`..`/`..x`."""
    assert key_problems(key) == []


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("a b", "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"),
        ("x" * 254, "must be no more than 253 characters"),
        (".", "must not be '.'"),
        ("..", "must not be '..'"),
        ("..data", "must not start with '..'"),
        ("a/b", "regex used for validation is '[-._a-zA-Z0-9]+'"),
    ],
)
def test_invalid_config_keys_are_refused_with_kubernetes_words(key: str, why: str) -> None:
    """IsConfigMapKey (apimachinery validation.go) and hasChDirPrefix: the message names the rule broken."""
    assert any(why in p for p in key_problems(key))


def test_config_map_reports_every_bad_key_and_the_duplicate_across_data_and_binary_data() -> None:
    """validation.go ValidateConfigMap: field.Invalid(data[key]) per rule; 'duplicate of key present in binaryData'."""
    found = problems(cm(data={"a b": "1", "dup": "x"}, binaryData={"dup": b64("y"), "..x": b64("z")}))
    assert 'data["a b"]: Invalid value: "a b": a valid config key' in found[0]
    assert 'binaryData["..x"]: Invalid value: "..x": must not start with \'..\'' in found
    assert 'data["dup"]: Invalid value: "dup": duplicate of key present in binaryData' in found


def test_config_map_over_one_mebibyte_is_too_long() -> None:
    """ValidateConfigMap: the total of data and binaryData may not exceed core.MaxSecretSize (1 MiB)."""
    assert any(
        "Too long: may not be more than 1048576 bytes" in p for p in problems(cm(data={"a": "x" * MAX_SIZE, "b": "y"}))
    )
    assert ConfigMap.model_validate(cm(data={"a": "x" * MAX_SIZE})).values()["a"] == b"x" * MAX_SIZE


def test_secret_string_data_is_folded_into_base64_data_and_wins() -> None:
    """The v1 conversion of Secret (pkg/apis/core/v1/conversion.go): stringData overwrites data, then is dropped."""
    obj = parse_object(secret(data={"user": b64("old"), "keep": b64("k")}, stringData={"user": "admin"}))
    stored = obj.to_dict()
    assert stored["data"] == {"user": b64("admin"), "keep": b64("k")}
    assert "stringData" not in stored
    assert stored["type"] == "Opaque"  # SetDefaults_Secret


def test_secret_rules_bad_base64_bad_key_size_and_required_keys_per_type() -> None:
    """validation.go ValidateSecret: IsConfigMapKey per key, MaxSecretSize, and each type's required data keys."""
    found = problems(secret(data={"a b": b64("x"), "bad": "!!notbase64"}))
    assert any(p.startswith('data["a b"]: Invalid value') for p in found)
    assert 'data["bad"]: Invalid value: illegal base64 data' in found
    assert 'data["tls.crt"]: Required value' in problems(secret(type="kubernetes.io/tls", data={"tls.key": b64("k")}))
    assert problems(secret(type="kubernetes.io/basic-auth")) == [
        'data["username"]: Required value',
        'data["password"]: Required value',
    ]
    big = base64.b64encode(b"\0" * (MAX_SIZE + 1)).decode()
    assert "data: Too long: may not be more than 1048576 bytes" in problems(secret(data={"big": big}))
    assert Secret.model_validate(secret(type="example.com/custom", data={"x": b64("1")})).values() == {"x": b"1"}


def test_config_map_name_is_a_dns_subdomain() -> None:
    """ValidateConfigMapName / ValidateSecretName: NameIsDNSSubdomain."""
    assert any("RFC 1123 subdomain" in p for p in problems(cm(name="Bad_Name")))


@pytest.fixture
def api() -> Iterator[Api]:
    with TinyStateStore(None) as s:
        yield Api(CachedStore(s), lambda node: node)


def test_apply_get_list_delete_config_map_and_secret_through_the_api(api: Api) -> None:
    """The API stores both kinds like any other: created, updated on change, listed, deleted."""
    assert api.apply(_yaml(cm(data={"a": "1"})))[0].action == "created"
    assert api.apply(_yaml(cm(data={"a": "2"})))[0].action == "updated"
    assert api.get("ConfigMap", "default", "cfg")["data"] == {"a": "2"}
    api.apply(_yaml(secret(stringData={"password": "s3cret"})))
    assert api.get("Secret", "default", "creds")["data"] == {"password": b64("s3cret")}
    assert [o["metadata"]["name"] for o in api.list("Secret", "default", None)] == ["creds"]
    api.delete("ConfigMap", "default", "cfg")
    assert api.list("ConfigMap", None, None) == []


def test_an_immutable_config_map_refuses_data_changes_and_unsetting_immutable(api: Api) -> None:
    """validation.go ValidateConfigMapUpdate: 'field is immutable when `immutable` is set' for data and immutable."""
    api.apply(_yaml(cm(data={"a": "1"}, immutable=True)))
    with pytest.raises(ValidationError, match=r"data: Forbidden: field is immutable when `immutable` is set"):
        api.apply(_yaml(cm(data={"a": "2"}, immutable=True)))
    with pytest.raises(ValidationError, match=r"immutable: Forbidden: field is immutable when `immutable` is set"):
        api.apply(_yaml(cm(data={"a": "1"})))
    assert (
        api.apply(_yaml(cm(data={"a": "1"}, immutable=True, metadata={"name": "cfg", "labels": {"x": "y"}})))[0].action
        == "updated"
    )


def test_a_secret_type_never_changes(api: Api) -> None:
    """validation.go ValidateSecretUpdate: ValidateImmutableField(type) → 'field is immutable'."""
    api.apply(_yaml(secret(data={"a": b64("1")})))
    with pytest.raises(ValidationError, match=r'type: Invalid value: "example.com/x": field is immutable'):
        api.apply(_yaml(secret(type="example.com/x", data={"a": b64("1")})))


def _yaml(doc: dict[str, Any]) -> str:
    return json.dumps(doc)
