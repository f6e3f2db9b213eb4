"""ObjectMeta and owner references shared by every kind; validates names, labels and annotations."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated

from pydantic import AfterValidator, Field, StrictBool, StrictInt, field_validator, model_validator

from edgekube.model.base import K8sModel
from edgekube.model.errors import ValidationError
from edgekube.model.generatename import check_prefix
from edgekube.model.labels import validate_annotations
from edgekube.model.labels.validation import key_errors, value_errors
from edgekube.model.names import check_dns1123_label, check_dns1123_subdomain


def check_label_map(values: Mapping[str, str], *, annotations: bool = False) -> None:
    """validation.go ValidateLabels / ValidateAnnotations: a line per broken rule, each `["key"]: Invalid value: ...`.

    The manifest loader prefixes every line with the field path: `metadata.labels["app"]: Invalid value: "-web-":
    a valid label must be ...` (Kubernetes prints the map's path alone; the entry's key is kept to find it).
    """
    problems: list[str] = []
    for key in sorted(values):
        quoted = json.dumps(key, ensure_ascii=False)
        checked = key.lower() if annotations else key  # as in Kubernetes, case does not matter in annotation keys
        problems += [f"[{quoted}]: Invalid value: {quoted}: {msg}" for msg in key_errors(checked)]
        if not annotations:
            value = values[key]
            shown = json.dumps(value, ensure_ascii=False)
            problems += [f"[{quoted}]: Invalid value: {shown}: {msg}" for msg in value_errors(value)]
    if problems:
        raise ValidationError("\n".join(problems))
    if annotations:
        validate_annotations(values, path="")  # the total-size limit


def _labels(value: dict[str, str]) -> dict[str, str]:
    check_label_map(value)
    return value


def _annotations(value: dict[str, str]) -> dict[str, str]:
    check_label_map(value, annotations=True)
    return value


#: metadata.labels / metadata.annotations of any object or pod template, validated with Kubernetes' rules.
Labels = Annotated[dict[str, str], AfterValidator(_labels)]
Annotations = Annotated[dict[str, str], AfterValidator(_annotations)]


class OwnerReference(K8sModel):
    api_version: str
    kind: str
    name: str
    uid: str
    controller: StrictBool | None = None


class ObjectMeta(K8sModel):
    """metadata: name and namespace follow Kubernetes' DNS rules; labels/annotations its label rules."""

    #: "" only with generate_name: the master then names the object on create (model.generatename).
    name: str = ""
    generate_name: str | None = None
    namespace: str = "default"
    labels: Labels = Field(default_factory=dict)
    annotations: Annotations = Field(default_factory=dict)
    uid: str | None = None
    resource_version: str | None = None
    generation: StrictInt | None = None
    creation_timestamp: str | None = None
    owner_references: list[OwnerReference] | None = None
    #: Set by the server when a delete waits for finalizers (the object shows Terminating); never from a manifest.
    deletion_timestamp: str | None = None
    #: Keys of the controllers that must act before the object goes (e.g. kubernetes.io/pvc-protection).
    finalizers: list[str] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return value if value == "" else check_dns1123_subdomain(value, "")

    @field_validator("generate_name")
    @classmethod
    def _generate_name(cls, value: str | None) -> str | None:
        return value if not value else check_prefix(value)

    @model_validator(mode="after")
    def _named(self) -> ObjectMeta:
        """ValidateObjectMeta: a name, or a generateName the server makes one from."""
        if not self.name and not self.generate_name:
            raise ValidationError("name: Required value: name or generateName is required")
        return self

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        # "" is how cluster-scoped kinds (Node) are stored; namespaced kinds default it to "default".
        return value if value == "" else check_dns1123_label(value, "")
