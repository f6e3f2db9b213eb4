"""ReplicationController (v1, equality selector) and ReplicaSet (apps/v1, set-based selector) with pod templates."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from edgekube.model.base import K8sModel
from edgekube.model.errors import ValidationError
from edgekube.model.labels import Selector
from edgekube.model.meta import Annotations, Labels, ObjectMeta, check_label_map
from edgekube.model.pod import PodSpec


class TemplateMeta(K8sModel):
    """A pod template's metadata: labels and annotations; the pods' names are generated."""

    name: str | None = None
    labels: Labels = Field(default_factory=dict)
    annotations: Annotations = Field(default_factory=dict)


class PodTemplateSpec(K8sModel):
    metadata: TemplateMeta = Field(default_factory=TemplateMeta)
    spec: PodSpec


class LabelSelectorRequirement(K8sModel):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] = Field(default_factory=list)


class LabelSelector(K8sModel):
    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list)

    def to_selector(self, path: str = "spec.selector") -> Selector:
        return Selector.from_match_labels(self.match_labels, [e.to_dict() for e in self.match_expressions], path=path)


class ReplicaStatus(K8sModel):
    replicas: int = 0
    fully_labeled_replicas: int = 0
    ready_replicas: int = 0
    available_replicas: int = 0
    observed_generation: int = 0


def _check_template(selector: Selector, template: PodTemplateSpec) -> None:
    if selector.is_empty():
        raise ValidationError("selector: Required value: a controller must select its pods (empty selector)")
    if not selector.matches(template.metadata.labels):
        raise ValidationError(
            f"template.metadata.labels: Invalid value: {template.metadata.labels!r}: "
            f"`selector` ({selector}) does not match template `labels`"
        )
    if template.spec.restart_policy != "Always":
        raise ValidationError(
            f"template.spec.restartPolicy: Unsupported value: {template.spec.restart_policy.value!r}: "
            "supported values: Always"
        )


class ReplicationControllerSpec(K8sModel):
    replicas: int = Field(default=1, ge=0)
    selector: dict[str, str] | None = None  # defaults to the template's labels, as in Kubernetes
    template: PodTemplateSpec
    min_ready_seconds: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _selector(self) -> ReplicationControllerSpec:
        if self.selector is None:
            self.selector = dict(self.template.metadata.labels)
        check_label_map(self.selector)
        _check_template(Selector.from_set(self.selector), self.template)
        return self


class ReplicaSetSpec(K8sModel):
    replicas: int = Field(default=1, ge=0)
    selector: LabelSelector
    template: PodTemplateSpec
    min_ready_seconds: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _selector(self) -> ReplicaSetSpec:
        _check_template(self.selector.to_selector(path="selector"), self.template)
        return self


class ReplicationController(K8sModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["ReplicationController"] = "ReplicationController"
    metadata: ObjectMeta
    spec: ReplicationControllerSpec
    status: ReplicaStatus | None = None


class ReplicaSet(K8sModel):
    api_version: Literal["apps/v1"] = "apps/v1"
    kind: Literal["ReplicaSet"] = "ReplicaSet"
    metadata: ObjectMeta
    spec: ReplicaSetSpec
    status: ReplicaStatus | None = None
