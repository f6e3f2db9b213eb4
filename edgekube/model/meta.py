"""ObjectMeta and owner references shared by every kind; validates names, labels and annotations."""

from __future__ import annotations

from pydantic import Field, field_validator

from edgekube.model.base import K8sModel
from edgekube.model.labels import validate_annotations, validate_labels
from edgekube.model.names import check_dns1123_label, check_dns1123_subdomain


class OwnerReference(K8sModel):
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None


class ObjectMeta(K8sModel):
    """metadata: name and namespace follow Kubernetes' DNS rules; labels/annotations its label rules."""

    name: str
    namespace: str = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    owner_references: list[OwnerReference] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_dns1123_subdomain(value, "")

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        # "" is how cluster-scoped kinds (Node) are stored; namespaced kinds default it to "default".
        return value if value == "" else check_dns1123_label(value, "")

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        validate_labels(value, path="")
        return value

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, value: dict[str, str]) -> dict[str, str]:
        validate_annotations(value, path="")
        return value
