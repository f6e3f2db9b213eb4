"""Pod `affinity` and `topologySpreadConstraints` (v1), validated with Kubernetes' rules; matched by the scheduler.

Each validator ports one function of Kubernetes' pkg/apis/core/validation/validation.go (named in its docstring)
and reports every broken rule, one line per problem, as `field: Rule: detail` so the manifest loader prefixes
the path. The `matches` methods are the kube-scheduler's (component-helpers' nodeaffinity, InterPodAffinity).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import Field, PrivateAttr, StrictInt, model_validator

from edgekube.model.base import K8sModel
from edgekube.model.errors import ValidationError
from edgekube.model.labels import Selector
from edgekube.model.labels.selector import _expression_errors
from edgekube.model.labels.validation import check_labels, key_errors, value_errors

#: The label every Kubernetes namespace carries with its own name; namespaceSelector is matched against it.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_INT64 = re.compile(r"[+-]?[0-9]+")


def _q(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _raise(problems: list[str]) -> None:
    if problems:
        raise ValidationError("\n".join(problems))


def label_name_errors(key: str, path: str) -> list[str]:
    """unversionedvalidation.ValidateLabelName: one `Invalid value` per broken qualified-name rule."""
    return [f"{path}: Invalid value: {_q(key)}: {msg}" for msg in key_errors(key)]


def _dns_label_errors(value: str) -> list[str]:
    """IsDNS1123Label's messages."""
    errs = ["must be no more than 63 characters"] if len(value) > 63 else []
    if not _DNS_LABEL.fullmatch(value):
        errs.append(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
            "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        )
    return errs


def _dns_subdomain_errors(value: str) -> list[str]:
    """IsDNS1123Subdomain's messages (ValidateNodeName)."""
    errs = ["must be no more than 253 characters"] if len(value) > 253 else []
    if not _DNS_SUBDOMAIN.fullmatch(value):
        errs.append(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
            "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
            "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        )
    return errs


def _int64(text: str) -> int | None:
    """strconv.ParseInt(text, 10, 64), or None when it does not parse."""
    if not _INT64.fullmatch(text):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


# -- node affinity -----------------------------------------------------------------------------------------------
class NodeSelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"
    GT = "Gt"
    LT = "Lt"


class NodeSelectorRequirement(K8sModel):
    """One `matchExpressions`/`matchFields` entry; checked by the term that holds it (the rules differ)."""

    key: str
    operator: str
    values: list[str] = Field(default_factory=list)

    def expression_errors(self, path: str, *, check_values: bool) -> list[str]:
        """ValidateNodeSelectorRequirement (values checked as label values only in required terms)."""
        errs: list[str] = []
        op = self.operator
        if op in ("In", "NotIn"):
            if not self.values:
                errs.append(f"{path}.values: Required value: must be specified when `operator` is 'In' or 'NotIn'")
        elif op in ("Exists", "DoesNotExist"):
            if self.values:
                errs.append(
                    f"{path}.values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                )
        elif op in ("Gt", "Lt"):
            if len(self.values) != 1:
                errs.append(
                    f"{path}.values: Required value: must be specified single value when `operator` is 'Lt' or 'Gt'"
                )
        else:
            errs.append(f"{path}.operator: Invalid value: {_q(op)}: not a valid selector operator")
        errs += label_name_errors(self.key, f"{path}.key")
        if check_values:
            for i, value in enumerate(self.values):
                errs += [f"{path}.values[{i}]: Invalid value: {_q(value)}: {m}" for m in value_errors(value)]
        return errs

    def field_errors(self, path: str) -> list[str]:
        """ValidateNodeFieldSelectorRequirement: `metadata.name` with In/NotIn and exactly one value."""
        errs: list[str] = []
        if self.operator in ("In", "NotIn"):
            if len(self.values) != 1:
                errs.append(
                    f"{path}.values: Required value: must be only one value when `operator` is 'In' or 'NotIn' "
                    "for node field selector"
                )
        else:
            errs.append(f"{path}.operator: Invalid value: {_q(self.operator)}: not a valid selector operator")
        if self.key != "metadata.name":
            errs.append(f"{path}.key: Invalid value: {_q(self.key)}: not a valid field selector key")
        else:
            for i, value in enumerate(self.values):
                errs += [f"{path}.values[{i}]: Invalid value: {_q(value)}: {m}" for m in _dns_subdomain_errors(value)]
        return errs

    def matches(self, labels: Mapping[str, str]) -> bool:
        """labels.Requirement.Matches: NotIn/DoesNotExist match a missing key; Gt/Lt compare int64s."""
        present = self.key in labels
        op = self.operator
        if op == "In":
            return present and labels[self.key] in self.values
        if op == "NotIn":
            return not present or labels[self.key] not in self.values
        if op == "Exists":
            return present
        if op == "DoesNotExist":
            return not present
        if not present or len(self.values) != 1:
            return False
        # A label or a value that is not an integer matches nothing (NewRequirement fails in the scheduler).
        have, want = _int64(labels[self.key]), _int64(self.values[0])
        if have is None or want is None:
            return False
        return have > want if op == "Gt" else have < want


class NodeSelectorTerm(K8sModel):
    """matchExpressions on node labels AND matchFields on node fields; an empty term matches no node."""

    match_expressions: list[NodeSelectorRequirement] = Field(default_factory=list)
    match_fields: list[NodeSelectorRequirement] = Field(default_factory=list)

    def errors(self, path: str, *, check_values: bool) -> list[str]:
        """ValidateNodeSelectorTerm."""
        errs: list[str] = []
        for j, req in enumerate(self.match_expressions):
            errs += req.expression_errors(f"{path}.matchExpressions[{j}]", check_values=check_values)
        for j, req in enumerate(self.match_fields):
            errs += req.field_errors(f"{path}.matchFields[{j}]")
        return errs

    def matches(self, labels: Mapping[str, str], name: str) -> bool:
        if not self.match_expressions and not self.match_fields:
            return False
        fields = {"metadata.name": name}
        return all(r.matches(labels) for r in self.match_expressions) and all(
            r.matches(fields) for r in self.match_fields
        )


class NodeSelector(K8sModel):
    """Required node affinity: the terms are ORed."""

    node_selector_terms: list[NodeSelectorTerm] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rules(self) -> NodeSelector:
        """ValidateNodeSelector: at least one term; in required terms label values must be valid."""
        if not self.node_selector_terms:
            _raise(["nodeSelectorTerms: Required value: must have at least one node selector term"])
        errs: list[str] = []
        for i, term in enumerate(self.node_selector_terms):
            errs += term.errors(f"nodeSelectorTerms[{i}]", check_values=True)
        _raise(errs)
        return self

    def matches(self, labels: Mapping[str, str], name: str) -> bool:
        return any(term.matches(labels, name) for term in self.node_selector_terms)


class PreferredSchedulingTerm(K8sModel):
    weight: StrictInt
    preference: NodeSelectorTerm

    @model_validator(mode="after")
    def _rules(self) -> PreferredSchedulingTerm:
        """ValidatePreferredSchedulingTerms: weight 1-100; label values are not checked in preferences."""
        errs = [] if 1 <= self.weight <= 100 else [f"weight: Invalid value: {self.weight}: must be in the range 1-100"]
        _raise(errs + self.preference.errors("preference", check_values=False))
        return self


class NodeAffinity(K8sModel):
    required_during_scheduling_ignored_during_execution: NodeSelector | None = None
    preferred_during_scheduling_ignored_during_execution: list[PreferredSchedulingTerm] = Field(default_factory=list)


# -- pod affinity ------------------------------------------------------------------------------------------------
class LabelSelectorRequirement(K8sModel):
    key: str
    operator: str
    values: list[str] = Field(default_factory=list)


class LabelSelector(K8sModel):
    """metav1.LabelSelector as used by affinity terms and spread constraints.

    Checked by the object holding it (`errors`), so that its problems are reported beside the holder's own.
    """

    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = Field(default_factory=list)
    _selector: Selector | None = PrivateAttr(default=None)

    def errors(self, path: str) -> list[str]:
        """ValidateLabelSelector's rules (LabelSelectorAsSelector's checks), every problem at `path`."""
        errs = check_labels(self.match_labels, f"{path}.matchLabels")
        for i, expr in enumerate(self.match_expressions):
            errs += _expression_errors(expr.model_dump(), f"{path}.matchExpressions[{i}]")
        return errs

    @property
    def selector(self) -> Selector:
        if self._selector is None:
            exprs = [e.model_dump() for e in self.match_expressions]
            self._selector = Selector.from_match_labels(self.match_labels, exprs, path="")
        return self._selector

    def matches(self, labels: Mapping[str, str]) -> bool:
        return self.selector.matches(labels)


class PodAffinityTerm(K8sModel):
    """Pods matching `labelSelector` in `namespaces`/`namespaceSelector` (default: the pod's own namespace)."""

    label_selector: LabelSelector | None = None
    namespaces: list[str] = Field(default_factory=list)
    namespace_selector: LabelSelector | None = None
    topology_key: str = ""

    @model_validator(mode="after")
    def _rules(self) -> PodAffinityTerm:
        """validatePodAffinityTerm: selectors, namespace names, topologyKey required and a valid label name."""
        errs: list[str] = []
        if self.label_selector is not None:
            errs += self.label_selector.errors("labelSelector")
        if self.namespace_selector is not None:
            errs += self.namespace_selector.errors("namespaceSelector")
        for name in self.namespaces:
            errs += [f"namespace: Invalid value: {_q(name)}: {m}" for m in _dns_label_errors(name)]
        if not self.topology_key:
            errs.append("topologyKey: Required value: can not be empty")
        errs += label_name_errors(self.topology_key, "topologyKey")
        _raise(errs)
        return self

    def namespace_matches(self, namespace: str, own_namespace: str) -> bool:
        """GetNamespacesFromPodAffinityTerm + namespaceSelector (namespaces carry kubernetes.io/metadata.name)."""
        if not self.namespaces and self.namespace_selector is None:
            return namespace == own_namespace
        if namespace in self.namespaces:
            return True
        selector = self.namespace_selector
        return selector is not None and selector.matches({NAMESPACE_NAME_LABEL: namespace})

    def matches(self, namespace: str, labels: Mapping[str, str], own_namespace: str) -> bool:
        """Does a pod (namespace, labels) fall under this term of a pod in `own_namespace`? A nil selector: no."""
        if self.label_selector is None or not self.namespace_matches(namespace, own_namespace):
            return False
        return self.label_selector.matches(labels)


class WeightedPodAffinityTerm(K8sModel):
    weight: StrictInt
    pod_affinity_term: PodAffinityTerm

    @model_validator(mode="after")
    def _rules(self) -> WeightedPodAffinityTerm:
        """validateWeightedPodAffinityTerms: weight 1-100."""
        if not 1 <= self.weight <= 100:
            _raise([f"weight: Invalid value: {self.weight}: must be in the range 1-100"])
        return self


class PodAffinity(K8sModel):
    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] = Field(default_factory=list)
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTerm] = Field(default_factory=list)


class Affinity(K8sModel):
    node_affinity: NodeAffinity | None = None
    pod_affinity: PodAffinity | None = None
    pod_anti_affinity: PodAffinity | None = None


# -- topology spread ---------------------------------------------------------------------------------------------
class WhenUnsatisfiable(StrEnum):
    DO_NOT_SCHEDULE = "DoNotSchedule"
    SCHEDULE_ANYWAY = "ScheduleAnyway"


class TopologySpreadConstraint(K8sModel):
    max_skew: StrictInt
    topology_key: str
    when_unsatisfiable: str
    label_selector: LabelSelector | None = None
    min_domains: StrictInt | None = None
    match_label_keys: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rules(self) -> TopologySpreadConstraint:
        """Kubernetes' checks of one constraint (validateTopologySpreadConstraints).

        ValidateMaxSkew, ValidateTopologyKey, ValidateWhenUnsatisfiable, validateMinDomains and
        validateMatchLabelKeysInTopologySpread.
        """
        errs = self.label_selector.errors("labelSelector") if self.label_selector is not None else []
        if self.max_skew <= 0:
            errs.append(f"maxSkew: Invalid value: {self.max_skew}: must be greater than zero")
        if not self.topology_key:
            errs.append("topologyKey: Required value: can not be empty")
        if self.when_unsatisfiable not in ("DoNotSchedule", "ScheduleAnyway"):
            errs.append(
                f"whenUnsatisfiable: Unsupported value: {_q(self.when_unsatisfiable)}: "
                'supported values: "DoNotSchedule", "ScheduleAnyway"'
            )
        if self.min_domains is not None:
            if self.min_domains <= 0:
                errs.append(f"minDomains: Invalid value: {self.min_domains}: must be greater than zero")
            if self.when_unsatisfiable != "DoNotSchedule":
                errs.append(
                    f"minDomains: Invalid value: {self.min_domains}: can only use minDomains if "
                    f"whenUnsatisfiable=DoNotSchedule, not {self.when_unsatisfiable}"
                )
        if self.match_label_keys:
            selector_keys: set[str] = set()
            if self.label_selector is None:
                errs.append("matchLabelKeys: Forbidden: must not be specified when labelSelector is not set")
            else:
                selector_keys = {
                    *self.label_selector.match_labels,
                    *(e.key for e in self.label_selector.match_expressions),
                }
            for i, key in enumerate(self.match_label_keys):
                errs += label_name_errors(key, f"matchLabelKeys[{i}]")
                if key in selector_keys:
                    errs.append(
                        f"matchLabelKeys[{i}]: Invalid value: {_q(key)}: "
                        "exists in both matchLabelKeys and labelSelector"
                    )
        _raise(errs)
        return self

    def selector_for(self, pod_labels: Mapping[str, str]) -> Selector | None:
        """The pods this constraint counts: labelSelector plus `key in (pod's value)` per matchLabelKeys entry.

        None (a nil labelSelector) counts no pod, as in Kubernetes.
        """
        if self.label_selector is None:
            return None
        selector = self.label_selector.selector
        extra = [
            Selector.from_match_labels({key: pod_labels[key]}, path="").requirements[0]
            for key in self.match_label_keys
            if key in pod_labels
        ]
        return selector.add(*extra) if extra else selector


def duplicate_spread_errors(constraints: list[TopologySpreadConstraint]) -> list[str]:
    """ValidateSpreadConstraintNotRepeat: {topologyKey, whenUnsatisfiable} is unique."""
    errs: list[str] = []
    for i, constraint in enumerate(constraints):
        pair = (constraint.topology_key, constraint.when_unsatisfiable)
        if any((c.topology_key, c.when_unsatisfiable) == pair for c in constraints[i + 1 :]):
            errs.append(
                f"topologySpreadConstraints[{i}].{{topologyKey, whenUnsatisfiable}}: Duplicate value: "
                f'"{{{pair[0]}, {pair[1]}}}"'
            )
    return errs
