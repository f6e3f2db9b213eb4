"""ReplicationController (v1, equality selector) and ReplicaSet (apps/v1, set-based selector) with pod templates."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictInt, model_validator

from edgekube.model.base import Int32, K8sModel
from edgekube.model.errors import ValidationError
from edgekube.model.fielderrors import Problems, forbidden, invalid, not_supported, quote, required
from edgekube.model.labels import Selector
from edgekube.model.labels.validation import key_errors, value_errors
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
    #: In, NotIn, Exists or DoesNotExist; checked with the selector (ValidateLabelSelectorRequirement).
    operator: str
    values: list[str] = Field(default_factory=list)


class LabelSelector(K8sModel):
    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list)

    def errors(self, path: str) -> list[str]:
        """ValidateLabelSelector (apimachinery): every broken rule, each at its field under `path`."""
        errs: list[str] = []
        for key in sorted(self.match_labels):
            errs += [invalid(f"{path}.matchLabels", key, m) for m in key_errors(key)]
            value = self.match_labels[key]
            errs += [invalid(f"{path}.matchLabels", value, m) for m in value_errors(value)]
        for i, expr in enumerate(self.match_expressions):
            at = f"{path}.matchExpressions[{i}]"
            if expr.operator in ("In", "NotIn"):
                if not expr.values:
                    errs.append(required(f"{at}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
            elif expr.operator in ("Exists", "DoesNotExist"):
                if expr.values:
                    detail = "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                    errs.append(forbidden(f"{at}.values", detail))
            else:
                errs.append(invalid(f"{at}.operator", expr.operator, "not a valid selector operator"))
            errs += [invalid(f"{at}.key", expr.key, m) for m in key_errors(expr.key)]
            for j, value in enumerate(expr.values):
                errs += [invalid(f"{at}.values[{j}]", value, m) for m in value_errors(value)]
        return errs

    def is_empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def to_selector(self, path: str = "spec.selector") -> Selector:
        errs = self.errors(path)
        if errs:
            raise ValidationError("\n".join(errs))
        return Selector.from_match_labels(self.match_labels, [e.to_dict() for e in self.match_expressions], path=path)


class ReplicaStatus(K8sModel):
    replicas: StrictInt = 0
    fully_labeled_replicas: StrictInt = 0
    ready_replicas: StrictInt = 0
    available_replicas: StrictInt = 0
    observed_generation: StrictInt = 0


def _template_errors(selector: Selector, template: PodTemplateSpec) -> list[str]:
    """ValidatePodTemplateSpecForRC / ...ForReplicaSet: the selector selects the template; restartPolicy Always."""
    errs: list[str] = []
    if not selector.is_empty() and not selector.matches(template.metadata.labels):
        labels = template.metadata.labels
        errs.append(invalid("template.metadata.labels", labels, "`selector` does not match template `labels`"))
    if template.spec.restart_policy != "Always":
        errs.append(not_supported("template.spec.restartPolicy", template.spec.restart_policy.value, ["Always"]))
    return errs


def _counts_errors(replicas: int, min_ready_seconds: int) -> list[str]:
    """ValidateNonnegativeField on replicas and minReadySeconds."""
    errs = [invalid("replicas", replicas, "must be greater than or equal to 0")] if replicas < 0 else []
    if min_ready_seconds < 0:
        errs.append(invalid("minReadySeconds", min_ready_seconds, "must be greater than or equal to 0"))
    return errs


class ReplicationControllerSpec(K8sModel):
    replicas: Int32 = 1
    #: Empty or unset: the template's labels (SetDefaults_ReplicationController), before validation.
    selector: dict[str, str] | None = None
    template: PodTemplateSpec
    min_ready_seconds: Int32 = 0

    @model_validator(mode="after")
    def _selector(self) -> ReplicationControllerSpec:
        """SetDefaults_ReplicationController, then validation.go ValidateReplicationControllerSpec."""
        if not self.selector and self.template.metadata.labels:
            self.selector = dict(self.template.metadata.labels)
        problems = Problems()
        problems.add(*_counts_errors(self.replicas, self.min_ready_seconds))
        problems.run("selector", lambda: check_label_map(self.selector or {}))
        if not self.selector:
            problems.add(required("selector"))  # ValidateNonEmptySelector
        elif not problems.lines:
            problems.add(*_template_errors(Selector.from_set(self.selector), self.template))
        problems.raise_any()
        return self


class ReplicaSetSpec(K8sModel):
    replicas: Int32 = 1
    selector: LabelSelector
    template: PodTemplateSpec
    min_ready_seconds: Int32 = 0

    @model_validator(mode="after")
    def _selector(self) -> ReplicaSetSpec:
        """ValidateReplicaSetSpec (pkg/apis/apps): counts, a valid non-empty selector that selects the template."""
        problems = Problems()
        problems.add(*_counts_errors(self.replicas, self.min_ready_seconds))
        selector_errors = self.selector.errors("selector")
        problems.add(*selector_errors)
        if self.selector.is_empty():
            given = {k: v for k, v in self.selector.to_dict().items() if v}
            problems.add(f"selector: Invalid value: {quote(given)}: empty selector is invalid for deployment")
        elif not selector_errors:
            problems.add(*_template_errors(self.selector.to_selector(path="selector"), self.template))
        problems.raise_any()
        return self


class ReplicationController(K8sModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["ReplicationController"] = "ReplicationController"
    metadata: ObjectMeta
    spec: ReplicationControllerSpec
    status: ReplicaStatus | None = None

    @model_validator(mode="after")
    def _default_labels(self) -> ReplicationController:
        """SetDefaults_ReplicationController: an RC without labels takes its template's."""
        if not self.metadata.labels and self.spec.template.metadata.labels:
            self.metadata.labels = dict(self.spec.template.metadata.labels)
        return self


class ReplicaSet(K8sModel):
    api_version: Literal["apps/v1"] = "apps/v1"
    kind: Literal["ReplicaSet"] = "ReplicaSet"
    metadata: ObjectMeta
    spec: ReplicaSetSpec
    status: ReplicaStatus | None = None
