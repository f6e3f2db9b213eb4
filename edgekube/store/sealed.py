"""Secrets encrypted at rest: a StateStore wrapper and Kubernetes' EncryptionConfiguration key file; master wiring.

As the API server's `aesgcm` provider (staging/src/k8s.io/apiserver/pkg/storage/value/encrypt/aes): AES-256-GCM,
a random 12-byte nonce per write, the object's storage key (`secrets/<namespace>/<name>`) as authenticated data,
the value prefixed `k8s:enc:aesgcm:v1:<key name>:`. Only a Secret's `data` is sealed (its name, labels and type
stay readable, as the store needs them); everything else passes through unchanged. The first provider of the
file writes; every aesgcm key reads (so keys can be rotated), and `identity` allows reading plain old Secrets.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from edgekube.model.errors import StoreError, ValidationError
from edgekube.store.protocol import Object, ObjectList, StateStore

SEALED_KIND = "Secret"
#: Where a sealed Secret keeps its sealed data (in place of `data`).
SEALED_FIELD = "sealedData"
_PREFIX = "k8s:enc:aesgcm:v1:"


@dataclass(frozen=True)
class Keyring:
    """The keys of an EncryptionConfiguration: `write` seals new data (None: identity, plain), all may open."""

    keys: Mapping[str, bytes]
    write: str | None
    identity_reads: bool = False

    @classmethod
    def load(cls, path: Path) -> Keyring:
        """Read an EncryptionConfiguration (apiserver.config.k8s.io/v1) for `secrets`; one-line errors name the rule."""
        try:
            doc = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise ValidationError(f"{path}: cannot read the encryption configuration: {exc}") from None
        if not isinstance(doc, dict) or doc.get("kind") != "EncryptionConfiguration":
            raise ValidationError(f"{path}: kind: must be EncryptionConfiguration")
        providers: list[Any] = []
        for entry in doc.get("resources") or ():
            if isinstance(entry, dict) and "secrets" in (entry.get("resources") or ()):
                providers = list(entry.get("providers") or ())
        if not providers:
            raise ValidationError(f"{path}: resources: Required value: an entry for secrets with providers")
        keys: dict[str, bytes] = {}
        write: str | None = None
        identity = False
        for i, provider in enumerate(providers):
            if isinstance(provider, dict) and "identity" in provider:
                identity = True
                continue
            aesgcm = provider.get("aesgcm") if isinstance(provider, dict) else None
            if not isinstance(aesgcm, dict):
                raise ValidationError(f"{path}: providers[{i}]: Unsupported value: supported values: aesgcm, identity")
            for j, key in enumerate(aesgcm.get("keys") or ()):
                name, secret = str(key.get("name") or ""), str(key.get("secret") or "")
                try:
                    raw = base64.b64decode(secret, validate=True)
                except (binascii.Error, ValueError):
                    raw = b""
                if not name or len(raw) not in (16, 24, 32):
                    raise ValidationError(
                        f"{path}: providers[{i}].aesgcm.keys[{j}]: Invalid value: needs a name and a secret of "
                        "16, 24 or 32 bytes in base64"
                    )
                keys[name] = raw
                if write is None and i == 0 and j == 0:
                    write = name
        return cls(keys, write, identity)

    def seal(self, plain: bytes, context: str) -> str | None:
        if self.write is None:
            return None
        nonce = os.urandom(12)
        sealed: bytes = _aesgcm(self.keys[self.write]).encrypt(nonce, plain, context.encode())
        return f"{_PREFIX}{self.write}:" + base64.b64encode(nonce + sealed).decode()

    def open(self, value: str, context: str) -> bytes:
        if not value.startswith(_PREFIX):
            raise StoreError(f"{context}: sealed data is not in the {_PREFIX} format")
        name, _, body = value[len(_PREFIX) :].partition(":")
        key = self.keys.get(name)
        if key is None:
            raise StoreError(f"{context}: sealed with key {name!r}, which the encryption configuration does not have")
        raw = base64.b64decode(body)
        from cryptography.exceptions import InvalidTag  # noqa: PLC0415 - deferred with AES-GCM (_aesgcm)

        try:
            plain: bytes = _aesgcm(key).decrypt(raw[:12], raw[12:], context.encode())
        except InvalidTag:
            raise StoreError(f"{context}: cannot decrypt with key {name!r} (wrong key or damaged data)") from None
        return plain


def new_key_file(path: Path) -> None:
    """Write an EncryptionConfiguration with one fresh 32-byte aesgcm key, readable by its owner only."""
    secret = base64.b64encode(os.urandom(32)).decode()
    text = (
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n"
        "  - resources: [secrets]\n    providers:\n      - aesgcm:\n          keys:\n"
        f"            - name: key1\n              secret: {secret}\n      - identity: {{}}\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


class SealedStore:
    """A StateStore that seals each Secret's data on the way in and opens it on the way out."""

    def __init__(self, inner: StateStore, keyring: Keyring) -> None:
        self.inner = inner
        self.keyring = keyring

    @property
    def storage(self) -> Any:
        """The inner store's TinyDB storage (the master's cache batches writes through it)."""
        return getattr(self.inner, "storage", None)

    @staticmethod
    def _context(obj: Mapping[str, Any]) -> str:
        meta = obj.get("metadata") or {}
        return f"secrets/{meta.get('namespace') or ''}/{meta.get('name') or ''}"

    def _seal(self, obj: Mapping[str, Any]) -> Mapping[str, Any]:
        if obj.get("kind") != SEALED_KIND or "data" not in obj:
            return obj
        plain = json.dumps(obj["data"], sort_keys=True, separators=(",", ":")).encode()
        sealed = self.keyring.seal(plain, self._context(obj))
        if sealed is None:
            return obj
        out = {k: v for k, v in obj.items() if k != "data"}
        out[SEALED_FIELD] = sealed
        return out

    def _open(self, obj: Object) -> Object:
        obj = dict(obj)  # never change the inner store's own copy
        if obj.get("kind") != SEALED_KIND or SEALED_FIELD not in obj:
            if obj.get("kind") == SEALED_KIND and obj.get("data") and not self.keyring.identity_reads:
                raise StoreError(f"{self._context(obj)}: stored in plain text, and identity is not a provider")
            return obj
        sealed = obj.pop(SEALED_FIELD)
        obj["data"] = json.loads(self.keyring.open(str(sealed), self._context(obj)))
        return obj

    def create(self, obj: Mapping[str, Any]) -> Object:
        return self._open(self.inner.create(self._seal(obj)))

    def update(self, obj: Mapping[str, Any]) -> Object:
        return self._open(self.inner.update(self._seal(obj)))

    def get(self, kind: str, namespace: str, name: str) -> Object:
        return self._open(self.inner.get(kind, namespace, name))

    def list(self, kind: str, namespace: str | None = None) -> ObjectList:
        return [self._open(o) for o in self.inner.list(kind, namespace)]

    def delete(self, kind: str, namespace: str, name: str, resource_version: str | None = None) -> Object:
        return self._open(self.inner.delete(kind, namespace, name, resource_version))

    def close(self) -> None:
        self.inner.close()


def _aesgcm(key: bytes) -> Any:
    """AES-GCM from `cryptography`, imported on the first Secret sealed or opened.

    Its Rust bindings add about 7 MB to the master's RSS; a master that holds no Secret never loads them.
    """
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415 - deferred on purpose

    return AESGCM(key)
