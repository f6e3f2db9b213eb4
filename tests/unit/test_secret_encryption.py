"""Secrets encrypted at rest in the master's store (the API server's aesgcm provider), on the real journal files.

Kubernetes: staging/src/k8s.io/apiserver/pkg/storage/value/encrypt/aes (AES-GCM, `k8s:enc:aesgcm:v1:<key>:`
prefix, the storage key as authenticated data) configured by an EncryptionConfiguration whose first provider
writes and every listed key reads.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from edgekube.master.api import Api
from edgekube.master.cache import CachedStore
from edgekube.master.config import MasterConfig
from edgekube.master.wiring import keyring
from edgekube.model.errors import StoreError, ValidationError
from edgekube.store.sealed import SEALED_FIELD, Keyring, SealedStore, new_key_file
from edgekube.store.state import TinyStateStore

PLAIN = "correct-horse-battery-staple"


def secret_manifest(value: str = PLAIN) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "labels": {"app": "db"}},
        "stringData": {"password": value},
    })  # fmt: skip


def every_byte(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


def test_the_store_files_never_hold_a_secret_value_and_the_api_reads_it_back(tmp_path: Path) -> None:
    new_key_file(tmp_path / "enc.yaml")
    ring = Keyring.load(tmp_path / "enc.yaml")
    store = CachedStore(SealedStore(TinyStateStore(tmp_path / "state"), ring))
    api = Api(store, lambda node: node)
    api.apply(secret_manifest())
    api.apply(json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "open"}}))
    store.close()

    written = every_byte(tmp_path / "state")
    assert b"open" in written  # ConfigMaps are not sealed: the file is searchable
    assert PLAIN.encode() not in written
    assert base64.b64encode(PLAIN.encode()) not in written
    assert b"k8s:enc:aesgcm:v1:key1:" in written
    assert b'"app":"db"' in written or b'"app": "db"' in written  # metadata stays readable

    with TinyStateStore(tmp_path / "state") as raw:
        stored = raw.get("Secret", "default", "db")
        assert "data" not in stored and stored[SEALED_FIELD].startswith("k8s:enc:aesgcm:v1:key1:")
    reopened = CachedStore(SealedStore(TinyStateStore(tmp_path / "state"), ring))
    assert Api(reopened, lambda n: n).get("Secret", "default", "db")["data"] == {
        "password": base64.b64encode(PLAIN.encode()).decode()
    }
    reopened.close()


def test_a_wrong_key_cannot_read_and_sealed_data_is_bound_to_its_name(tmp_path: Path) -> None:
    """AES-GCM authenticates: another key, or the sealed value moved to another Secret's name, fails to open."""
    new_key_file(tmp_path / "a.yaml")
    new_key_file(tmp_path / "b.yaml")
    with TinyStateStore(None) as inner:
        sealed = SealedStore(inner, Keyring.load(tmp_path / "a.yaml"))
        sealed.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "default"},
                       "data": {"k": "dg=="}})  # fmt: skip
        with pytest.raises(StoreError, match="cannot decrypt with key 'key1'"):
            SealedStore(inner, Keyring.load(tmp_path / "b.yaml")).get("Secret", "default", "db")
        moved = {**inner.get("Secret", "default", "db"), "metadata": {"name": "other", "namespace": "default"}}
        inner.create(moved)
        with pytest.raises(StoreError, match="cannot decrypt"):
            sealed.get("Secret", "default", "other")


def test_the_default_key_file_is_made_once_owner_only(tmp_path: Path) -> None:
    config = MasterConfig(data_dir=tmp_path)
    first = keyring(config)
    path = tmp_path / "encryption-config.yaml"
    assert path.stat().st_mode & 0o777 == 0o600
    assert keyring(config).keys == first.keys and first.write == "key1" and first.identity_reads


def test_a_bad_key_file_is_one_line_naming_the_rule(tmp_path: Path) -> None:
    path = tmp_path / "enc.yaml"
    path.write_text(
        "kind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n"
        "  - aesgcm: {keys: [{name: k, secret: c2hvcnQ=}]}\n"
    )
    with pytest.raises(ValidationError, match=r"aesgcm.keys\[0\]: Invalid value: needs a name and a secret of 16, 24"):
        Keyring.load(path)
