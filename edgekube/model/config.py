"""ConfigMap and Secret (v1): data, binaryData, stringData, type, immutable; validated with Kubernetes' rules.

Rules and messages are pkg/apis/core/validation/validation.go (ValidateConfigMap, ValidateSecret and their
Update variants) and apimachinery's IsConfigMapKey. A Secret's `stringData` is folded into `data` (base64) as
the API server's conversion does, so only `data` is ever stored. Used by the manifest loader, the master's API
and its dispatch (which resolves the values a pod uses), and ekctl.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, StrictBool, StrictInt, model_validator

from edgekube.model.base import K8sModel
from edgekube.model.errors import ValidationError
from edgekube.model.meta import ObjectMeta
from edgekube.model.registryauth import RegistryCredential

#: core.MaxSecretSize: the total of a ConfigMap's or Secret's values.
MAX_SIZE = 1024 * 1024
_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_KEY_MESSAGE = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
    "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
IMMUTABLE = "field is immutable when `immutable` is set"
OPAQUE = "Opaque"
#: Secret types whose data Kubernetes requires keys of (ValidateSecret's switch).
_REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def key_problems(key: str) -> list[str]:
    """validation.IsConfigMapKey: the rules a data key breaks (none: a valid key)."""
    problems = []
    if len(key) > 253:
        problems.append("must be no more than 253 characters")
    if not _KEY.match(key):
        problems.append(_KEY_MESSAGE)
    if key == ".":
        problems.append("must not be '.'")
    elif key == "..":
        problems.append("must not be '..'")
    elif key.startswith(".."):
        problems.append("must not start with '..'")
    return problems


def _invalid_keys(field: str, keys: Mapping[str, Any]) -> list[str]:
    out = []
    for key in keys:
        quoted = json.dumps(key)
        out += [f"{field}[{quoted}]: Invalid value: {quoted}: {why}" for why in key_problems(key)]
    return out


def decode_value(value: str, field: str) -> bytes:
    """A base64 value of a Secret's data or a ConfigMap's binaryData, as Go's encoding/base64 decodes it."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(f"{field}: Invalid value: illegal base64 data") from None


def encode_value(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


class ConfigMap(K8sModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["ConfigMap"] = "ConfigMap"
    metadata: ObjectMeta
    data: dict[str, str] = Field(default_factory=dict)
    binary_data: dict[str, str] = Field(default_factory=dict)
    immutable: StrictBool | None = None

    @model_validator(mode="after")
    def _rules(self) -> ConfigMap:
        problems = _invalid_keys("data", self.data) + _invalid_keys("binaryData", self.binary_data)
        for key in self.data:
            if key in self.binary_data:
                quoted = json.dumps(key)
                problems.append(f"data[{quoted}]: Invalid value: {quoted}: duplicate of key present in binaryData")
        total = sum(len(v.encode("utf-8", "surrogatepass")) for v in self.data.values())
        for key, value in self.binary_data.items():
            try:
                total += len(decode_value(value, f"binaryData[{json.dumps(key)}]"))
            except ValidationError as exc:
                problems.append(str(exc))
        if total > MAX_SIZE:
            problems.append(f"Too long: may not be more than {MAX_SIZE} bytes")
        if problems:
            raise ValidationError("\n".join(problems))
        return self

    def values(self) -> dict[str, bytes]:
        """Every key's value as bytes (data as UTF-8, binaryData decoded)."""
        out = {k: v.encode("utf-8") for k, v in self.data.items()}
        out.update({k: base64.b64decode(v) for k, v in self.binary_data.items()})
        return out


class Secret(K8sModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["Secret"] = "Secret"
    metadata: ObjectMeta
    #: Values in base64, as on the wire.
    data: dict[str, str] = Field(default_factory=dict)
    #: Write-only plain values: folded into `data` when validated (they win over the same key in data).
    string_data: dict[str, str] | None = None
    type: str = OPAQUE
    immutable: StrictBool | None = None

    @model_validator(mode="after")
    def _rules(self) -> Secret:
        if self.string_data:
            self.data = {**self.data, **{k: encode_value(v.encode("utf-8")) for k, v in self.string_data.items()}}
        self.string_data = None
        if not self.type:
            self.type = OPAQUE  # SetDefaults_Secret
        problems = _invalid_keys("data", self.data)
        total = 0
        for key, value in self.data.items():
            try:
                total += len(decode_value(value, f"data[{json.dumps(key)}]"))
            except ValidationError as exc:
                problems.append(str(exc))
        if total > MAX_SIZE:
            problems.append(f"data: Too long: may not be more than {MAX_SIZE} bytes")
        for key in _REQUIRED_KEYS.get(self.type, ()):
            if key not in self.data:
                problems.append(f"data[{json.dumps(key)}]: Required value")
        problems += _docker_config_problems(self.type, self.data)
        if self.type == "kubernetes.io/basic-auth" and "username" not in self.data and "password" not in self.data:
            problems.append('data["username"]: Required value')
            problems.append('data["password"]: Required value')
        account = self.metadata.annotations.get("kubernetes.io/service-account.name")
        if self.type == "kubernetes.io/service-account-token" and not account:
            problems.append('metadata.annotations["kubernetes.io/service-account.name"]: Required value')
        if problems:
            raise ValidationError("\n".join(problems))
        return self

    def values(self) -> dict[str, bytes]:
        return {k: base64.b64decode(v) for k, v in self.data.items()}


def _docker_config_problems(secret_type: str, data: Mapping[str, str]) -> list[str]:
    """ValidateSecret: a dockercfg/dockerconfigjson Secret's file must be a JSON object (contents never shown)."""
    key = {"kubernetes.io/dockercfg": ".dockercfg", "kubernetes.io/dockerconfigjson": ".dockerconfigjson"}.get(
        secret_type
    )
    if key is None or key not in data:
        return []
    try:
        document = json.loads(base64.b64decode(data[key]))
    except (ValueError, binascii.Error) as exc:
        why = str(exc).split(":", 1)[0]
    else:
        if isinstance(document, dict):
            return []
        why = "json: cannot unmarshal into Go value of type map[string]interface {}"
    return [f'data[{json.dumps(key)}]: Invalid value: "<secret contents redacted>": {why}']


def check_update(current: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    """ValidateConfigMapUpdate / ValidateSecretUpdate: an immutable object stays; a Secret's type never changes.

    Both are stored dicts (a Secret's stringData already folded into data). Raises one error listing every problem.
    """
    kind, name = current["kind"], current["metadata"]["name"]
    problems = []
    if kind == "Secret" and (new.get("type") or OPAQUE) != (current.get("type") or OPAQUE):
        problems.append(f"type: Invalid value: {json.dumps(new.get('type'))}: field is immutable")
    if current.get("immutable"):
        if not new.get("immutable"):
            problems.append(f"immutable: Forbidden: {IMMUTABLE}")
        fields = ("data", "binaryData") if kind == "ConfigMap" else ("data",)
        for field in fields:
            if (new.get(field) or {}) != (current.get(field) or {}):
                problems.append(f"{field}: Forbidden: {IMMUTABLE}")
    if problems:
        raise ValidationError(
            f'{kind} "{name}" is invalid: ' + "; ".join(problems),
            hint="an immutable object can only be deleted and created again" if current.get("immutable") else "",
        )


#: The key, beside `metadata` and `spec`, under which a desired pod (NodeDesired.pods) carries the ConfigMap, Secret
#: and downward API values it uses, resolved by the master (master.configdata) for the one node that runs it.
CONFIG_KEY = "configData"
#: Why a pod waits for its config: a volume's source is missing (kubelet's FailedMount) or an env source is.
WAIT_VOLUME = "FailedMount"
WAIT_ENV = "CreateContainerConfigError"


class ProjectedFile(K8sModel):
    """One file of a config volume: its path in the volume, its mode, its content (base64)."""

    path: str
    mode: StrictInt = Field(ge=0, le=0o777)
    data: str


class ResolvedConfig(K8sModel):
    """Master → node, per pod using ConfigMaps, Secrets or the downward API: every file and env value it needs.

    `waiting` (with `reason`, and the `volume` for FailedMount) is set instead when a non-optional ConfigMap,
    Secret or key is missing: the pod waits in ContainerCreating with that message and starts when it appears.
    """

    files: dict[str, list[ProjectedFile]] = Field(default_factory=dict)
    #: container name → the whole environment Kubernetes would give it (envFrom, then env, resolved).
    env: dict[str, dict[str, str]] = Field(default_factory=dict)
    waiting: str = ""
    reason: str = ""
    volume: str = ""
    #: Carries Secret values (the agent never writes it to its disk).
    secret: StrictBool = False
    #: The registry entries of the pod's imagePullSecrets (model.registryauth), in their order; the Secrets named
    #: there that do not exist (the kubelet pulls anyway, with a FailedToRetrieveImagePullSecret warning).
    pull_credentials: list[RegistryCredential] | None = None
    pull_secrets_missing: list[str] | None = None
