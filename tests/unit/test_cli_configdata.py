"""ekctl's views of ConfigMaps and Secrets (kubectl's printers and describers) and `create configmap|secret` input."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edgekube.cli.cmd_create import build
from edgekube.cli.configdata import describe_configmap, describe_secret
from edgekube.cli.describe import Writer
from edgekube.cli.describe_container import containers, volume_source
from edgekube.cli.kinds import CM, SECRET, resource
from edgekube.cli.tables import render
from edgekube.model.errors import ValidationError

NOW = datetime(2026, 1, 1, 0, 10, tzinfo=UTC)
CREATED = "2026-01-01T00:00:00Z"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


CM_OBJ = {
    "kind": "ConfigMap", "metadata": {"name": "app", "namespace": "default", "creationTimestamp": CREATED},
    "data": {"greeting": "hello", "b": "2"}, "binaryData": {"blob": b64("\0\1\2")},
}  # fmt: skip
SECRET_OBJ = {
    "kind": "Secret", "metadata": {"name": "db", "namespace": "default", "creationTimestamp": CREATED},
    "type": "Opaque", "data": {"password": b64("hunter2"), "user": b64("admin")},
}  # fmt: skip


def test_resource_names_as_kubectl_spells_them() -> None:
    assert [resource(n) for n in ("configmaps", "configmap", "cm", "secrets", "secret")] == [CM, CM, CM, SECRET, SECRET]


def test_get_shows_kubectls_columns() -> None:
    """kubectl printConfigMap (NAME DATA AGE: data + binaryData keys) and printSecret (NAME TYPE DATA AGE)."""
    assert render(CM, [CM_OBJ], now=NOW).splitlines() == ["NAME   DATA   AGE", "app    3      10m"]
    assert render(SECRET, [SECRET_OBJ], now=NOW).splitlines() == [
        "NAME   TYPE     DATA   AGE",
        "db     Opaque   2      10m",
    ]


def test_describe_secret_shows_sizes_never_values() -> None:
    """kubectl SecretDescriber: `key:  N bytes`."""
    text = describe_secret(SECRET_OBJ, [])
    assert "hunter2" not in text and b64("hunter2") not in text
    assert "password:  7 bytes" in text and "user:      5 bytes" in text
    assert "Type:  Opaque" in text


def test_describe_config_map_shows_data_and_binary_sizes() -> None:
    """kubectl ConfigMapDescriber: each data key, `----`, its value; binaryData as `key: N bytes`."""
    text = describe_configmap(CM_OBJ, [])
    assert "\nData\n====\nb:\n----\n2\ngreeting:\n----\nhello\n" in text
    assert "\nBinaryData\n====\nblob: 3 bytes\n" in text


def test_describe_pod_shows_config_volumes_and_env_sources_without_values() -> None:
    """kubectl printConfigMapVolumeSource/printSecretVolumeSource and describeContainerEnvVars/EnvFrom."""
    w, w2 = Writer(), Writer()
    volume_source(w, {"secret": {"secretName": "db"}})
    volume_source(w2, {"configMap": {"name": "app", "optional": True}})
    text = w.text() + w2.text()
    assert "Type:        Secret (a volume populated by a Secret)" in text and "SecretName:  db" in text
    assert "Name:      app" in text and "Optional:  true" in text
    container = {
        "name": "c", "image": "i",
        "env": [{"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
        "envFrom": [{"prefix": "APP_", "configMapRef": {"name": "app"}}],
    }  # fmt: skip
    w = Writer()
    containers(w, {"containers": [container]}, None)
    described = w.text()
    assert "<set to the key 'password' in secret 'db'>  Optional: false" in described
    assert "app  ConfigMap with prefix 'APP_'  Optional: false" in described


def test_create_builds_utf8_files_as_data_and_the_rest_as_binary_data(tmp_path: Path) -> None:
    """kubectl create configmap: a file that is not UTF-8 goes to binaryData; a Secret base64-encodes all."""
    entries = {"text": b"hello", "bin": b"\xff\xfe"}
    cm = build("ConfigMap", "c", "default", entries)
    assert cm["data"] == {"text": "hello"} and cm["binaryData"] == {"bin": "//4="}
    secret = build("Secret", "s", "default", entries, "example.com/x")
    assert secret["type"] == "example.com/x" and secret["data"] == {"text": b64("hello"), "bin": "//4="}
    with pytest.raises(ValidationError, match="Too long"):
        build("ConfigMap", "c", "default", {"big": b"x" * (1024 * 1024 + 1)})
