"""The parts of a Pod that read ConfigMaps, Secrets and the pod itself: env valueFrom/envFrom and config volumes.

Shapes, defaults and messages follow pkg/apis/core (types.go, v1/defaults.go SetDefaults_*VolumeSource: defaultMode
0644) and validation.go (validateEnvVarValueFrom, validateKeyToPath, validateDownwardAPIVolumeFile,
validateProjectionSources, fileModeErrorMsg). model.pod holds them; the master's dispatch resolves them
(master.configdata) and the agent materialises the files (agent.configfiles).
"""

from __future__ import annotations

import re

from pydantic import Field, StrictBool, StrictInt, field_validator, model_validator

from edgekube.model.base import K8sModel
from edgekube.model.config import key_problems
from edgekube.model.errors import ValidationError
from edgekube.model.fielderrors import quote
from edgekube.model.names import check_dns1123_subdomain, env_name_errors
from edgekube.model.quantity import Quantity

#: v1 defaults: a config volume's files are 0644 unless its defaultMode or an item's mode says otherwise.
DEFAULT_MODE = 0o644
_FILE_MODE = "must be a number between 0 and 0777 (octal), both inclusive"
#: validEnvDownwardAPIFieldPathExpressions that edgekube can fill (status.podIP/hostIP are not known at dispatch).
ENV_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName")
#: validVolumeDownwardAPIFieldPathExpressions.
VOLUME_FIELD_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels", "metadata.annotations")
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['([^']+)'\]$")
RESOURCE_FIELDS = (
    "limits.cpu", "limits.memory", "limits.ephemeral-storage", "requests.cpu", "requests.memory",
    "requests.ephemeral-storage",
)  # fmt: skip


def _supported(value: str, allowed: tuple[str, ...]) -> str:
    quoted = ", ".join(f'"{a}"' for a in allowed)
    return f'Unsupported value: "{value}": supported values: {quoted}'


def check_mode(value: int | None, field: str) -> int | None:
    if value is not None and not 0 <= value <= 0o777:
        raise ValidationError(f"{field}: Invalid value: {value}: {_FILE_MODE}")
    return value


def check_key(value: str, field: str) -> str:
    if not value:
        raise ValidationError(f"{field}: Required value")
    problems = key_problems(value)
    if problems:
        raise ValidationError(f'{field}: Invalid value: "{value}": {problems[0]}')
    return value


def check_volume_path(value: str, field: str) -> str:
    """validateLocalNonReservedPath: relative, no '..' element, and not starting with '..' (the writer's names)."""
    if not value:
        raise ValidationError(f"{field}: Required value")
    if value.startswith("/"):
        raise ValidationError(f'{field}: Invalid value: "{value}": must be a relative path')
    if ".." in value.split("/"):
        raise ValidationError(f"{field}: Invalid value: \"{value}\": must not contain '..'")
    if value.startswith(".."):
        raise ValidationError(f"{field}: Invalid value: \"{value}\": must not start with '..'")
    return value


def field_path_kind(path: str, allowed: tuple[str, ...]) -> tuple[str, str]:
    """(`labels`|`annotations`|path, key): a fieldRef path checked against `allowed` (subscripts for both maps)."""
    match = _SUBSCRIPT.match(path)
    if match is not None:
        return match.group(1), match.group(2)
    if path in allowed:
        return path, ""
    supported = (*allowed, "metadata.labels['<KEY>']", "metadata.annotations['<KEY>']")
    raise ValidationError(f"fieldPath: {_supported(path, supported)}")


class ObjectFieldSelector(K8sModel):
    api_version: str = "v1"
    field_path: str

    @field_validator("api_version")
    @classmethod
    def _version(cls, value: str) -> str:
        if value != "v1":
            raise ValidationError(f'Unsupported value: "{value}": supported values: "v1"')
        return value


class ResourceFieldSelector(K8sModel):
    container_name: str = ""
    resource: str
    divisor: Quantity | None = None

    @field_validator("resource")
    @classmethod
    def _resource(cls, value: str) -> str:
        if value not in RESOURCE_FIELDS:
            raise ValidationError(_supported(value, RESOURCE_FIELDS))
        return value


class _KeyRef(K8sModel):
    name: str
    key: str
    optional: StrictBool | None = None

    @model_validator(mode="after")
    def _rules(self) -> _KeyRef:
        if not self.name:
            raise ValidationError("name: Required value")
        check_key(self.key, "key")
        return self


class ConfigMapKeySelector(_KeyRef):
    """env valueFrom.configMapKeyRef."""


class SecretKeySelector(_KeyRef):
    """env valueFrom.secretKeyRef."""


class EnvVarSource(K8sModel):
    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None
    config_map_key_ref: ConfigMapKeySelector | None = None
    secret_key_ref: SecretKeySelector | None = None

    @model_validator(mode="after")
    def _one(self) -> EnvVarSource:
        given = [
            s for s in (self.field_ref, self.resource_field_ref, self.config_map_key_ref, self.secret_key_ref) if s
        ]
        if not given:
            raise ValidationError("Invalid value: must specify one of: `fieldRef`, `resourceFieldRef`, "
                                  "`configMapKeyRef` or `secretKeyRef`")  # fmt: skip
        if len(given) > 1:
            raise ValidationError("Invalid value: may not have more than one field specified at a time")
        if self.field_ref is not None:
            try:
                field_path_kind(self.field_ref.field_path, ENV_FIELD_PATHS)
            except ValidationError as exc:
                raise ValidationError(f"fieldRef.{exc}") from None
        return self


class _EnvRef(K8sModel):
    name: str
    optional: StrictBool | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value:
            raise ValidationError("Required value")
        return value


class ConfigMapEnvSource(_EnvRef):
    """envFrom[].configMapRef."""


class SecretEnvSource(_EnvRef):
    """envFrom[].secretRef."""


class EnvFromSource(K8sModel):
    prefix: str = ""
    config_map_ref: ConfigMapEnvSource | None = None
    secret_ref: SecretEnvSource | None = None

    @model_validator(mode="after")
    def _one(self) -> EnvFromSource:
        """validation.go ValidateEnvFrom: the prefix is an env var name (IsEnvVarName); exactly one source."""
        errs = (
            [f"prefix: Invalid value: {quote(self.prefix)}: {m}" for m in env_name_errors(self.prefix)]
            if self.prefix
            else []
        )
        given = [s for s in (self.config_map_ref, self.secret_ref) if s is not None]
        if not given:
            errs.append("Invalid value: must specify one of: `configMapRef` or `secretRef`")
        if len(given) > 1:
            errs.append("Invalid value: may not have more than one field specified at a time")
        if errs:
            raise ValidationError("\n".join(errs))
        return self


class KeyToPath(K8sModel):
    key: str
    path: str
    mode: StrictInt | None = None

    @model_validator(mode="after")
    def _rules(self) -> KeyToPath:
        if not self.key:
            raise ValidationError("key: Required value")
        check_volume_path(self.path, "path")
        check_mode(self.mode, "mode")
        return self


class _ConfigSource(K8sModel):
    items: list[KeyToPath] = Field(default_factory=list)
    default_mode: StrictInt | None = DEFAULT_MODE
    optional: StrictBool | None = None

    @field_validator("default_mode")
    @classmethod
    def _mode(cls, value: int | None) -> int | None:
        return check_mode(value, "")


class ConfigMapVolumeSource(_ConfigSource):
    name: str

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_dns1123_subdomain(value, "")


class SecretVolumeSource(_ConfigSource):
    secret_name: str

    @field_validator("secret_name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_dns1123_subdomain(value, "")


class DownwardAPIVolumeFile(K8sModel):
    path: str
    field_ref: ObjectFieldSelector | None = None
    resource_field_ref: ResourceFieldSelector | None = None
    mode: StrictInt | None = None

    @model_validator(mode="after")
    def _rules(self) -> DownwardAPIVolumeFile:
        check_volume_path(self.path, "path")
        check_mode(self.mode, "mode")
        if (self.field_ref is None) == (self.resource_field_ref is None):
            raise ValidationError("Invalid value: fieldRef and resourceFieldRef can not be specified simultaneously"
                                  if self.field_ref is not None else "fieldRef: Required value")  # fmt: skip
        if self.field_ref is not None:
            try:
                field_path_kind(self.field_ref.field_path, VOLUME_FIELD_PATHS)
            except ValidationError as exc:
                raise ValidationError(f"fieldRef.{exc}") from None
        return self


class DownwardAPIVolumeSource(K8sModel):
    items: list[DownwardAPIVolumeFile] = Field(default_factory=list)
    default_mode: StrictInt | None = DEFAULT_MODE

    @field_validator("default_mode")
    @classmethod
    def _mode(cls, value: int | None) -> int | None:
        return check_mode(value, "")


class ConfigMapProjection(K8sModel):
    name: str
    items: list[KeyToPath] = Field(default_factory=list)
    optional: StrictBool | None = None


class SecretProjection(K8sModel):
    name: str
    items: list[KeyToPath] = Field(default_factory=list)
    optional: StrictBool | None = None


class DownwardAPIProjection(K8sModel):
    items: list[DownwardAPIVolumeFile] = Field(default_factory=list)


class VolumeProjection(K8sModel):
    config_map: ConfigMapProjection | None = None
    secret: SecretProjection | None = None
    downward_api: DownwardAPIProjection | None = Field(default=None, alias="downwardAPI")

    @model_validator(mode="after")
    def _one(self) -> VolumeProjection:
        given = [s for s in (self.config_map, self.secret, self.downward_api) if s is not None]
        if len(given) != 1:
            raise ValidationError("may not specify more than 1 volume type" if given else "must specify a source")
        return self


class ProjectedVolumeSource(K8sModel):
    sources: list[VolumeProjection] = Field(default_factory=list)
    default_mode: StrictInt | None = DEFAULT_MODE

    @field_validator("default_mode")
    @classmethod
    def _mode(cls, value: int | None) -> int | None:
        return check_mode(value, "")

    @model_validator(mode="after")
    def _paths(self) -> ProjectedVolumeSource:
        """validateProjectionSources: a path is written by one source only ('conflicting duplicate paths')."""
        seen: set[str] = set()
        for i, source in enumerate(self.sources):
            items: list[KeyToPath] | list[DownwardAPIVolumeFile] = []
            if source.config_map is not None:
                items = source.config_map.items
            elif source.secret is not None:
                items = source.secret.items
            elif source.downward_api is not None:
                items = source.downward_api.items
            for item in items:
                if item.path in seen:
                    raise ValidationError(f'sources[{i}]: Invalid value: "{item.path}": conflicting duplicate paths')
                seen.add(item.path)
        return self
