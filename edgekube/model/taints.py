"""Taints on nodes and tolerations on pods (Kubernetes semantics); pure matching used by scheduler and eviction."""

from __future__ import annotations

import json
from collections.abc import Iterable
from enum import StrEnum

from pydantic import field_validator, model_validator

from edgekube.model.base import Int64, K8sModel
from edgekube.model.errors import ValidationError
from edgekube.model.labels import validate_label_key, validate_label_value
from edgekube.model.labels.validation import key_errors, value_errors


def _q(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


class TaintEffect(StrEnum):
    NO_SCHEDULE = "NoSchedule"
    PREFER_NO_SCHEDULE = "PreferNoSchedule"
    NO_EXECUTE = "NoExecute"


class Taint(K8sModel):
    key: str
    value: str = ""
    effect: TaintEffect
    time_added: str | None = None

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        return validate_label_key(value, path="")

    @field_validator("value")
    @classmethod
    def _value(cls, value: str) -> str:
        return validate_label_value(value, path="")


class Toleration(K8sModel):
    """A pod tolerates a taint: operator "" means Equal, an empty effect matches every effect (ValidateTolerations)."""

    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: TaintEffect | None = None
    #: Only with effect NoExecute; zero and negative values mean evict at once, as in Kubernetes.
    toleration_seconds: Int64 | None = None

    @field_validator("effect", mode="before")
    @classmethod
    def _empty_effect(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _rules(self) -> Toleration:
        """Kubernetes' ValidateTolerations, every broken rule reported; then operator "" becomes Equal."""
        errs: list[str] = []
        if self.key:
            errs += [f"key: Invalid value: {_q(self.key)}: {msg}" for msg in key_errors(self.key)]
        if not self.key and self.operator != "Exists":
            errs.append(
                f"operator: Invalid value: {_q(self.operator)}: operator must be Exists when `key` is empty, "
                'which means "match all values and all keys"'
            )
        if self.toleration_seconds is not None and self.effect != TaintEffect.NO_EXECUTE:
            errs.append(
                f"effect: Invalid value: {_q(self.effect or '')}: effect must be 'NoExecute' when "
                "`tolerationSeconds` is set"
            )
        if self.operator in ("Equal", ""):
            problems = value_errors(self.value)
            if problems:
                errs.append(f"operator: Invalid value: {_q(self.value)}: {';'.join(problems)}")
        elif self.operator == "Exists":
            if self.value:
                shown = json.dumps(self.to_dict(), ensure_ascii=False)
                errs.append(f"operator: Invalid value: {shown}: value must be empty when `operator` is 'Exists'")
        else:
            errs.append(f'operator: Unsupported value: {_q(self.operator)}: supported values: "Equal", "Exists"')
        if errs:
            raise ValidationError("\n".join(errs))
        if not self.operator:
            self.operator = "Equal"
        return self

    def tolerates(self, taint: Taint) -> bool:
        """Kubernetes' ToleratesTaint: effect matches (or is empty), key matches (or empty + Exists), value."""
        if self.effect is not None and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        return self.operator == "Exists" or self.value == taint.value


def untolerated(taints: Iterable[Taint], tolerations: Iterable[Toleration], effects: set[TaintEffect]) -> list[Taint]:
    """The taints with one of `effects` that no toleration tolerates."""
    tols = list(tolerations)
    return [t for t in taints if t.effect in effects and not any(tol.tolerates(t) for tol in tols)]


def toleration_seconds(taint: Taint, tolerations: Iterable[Toleration]) -> float | None:
    """How long a pod may stay on a node with this NoExecute taint: None = forever, 0 = evict now."""
    matching = [t for t in tolerations if t.tolerates(taint)]
    if not matching:
        return 0.0
    limits = [t.toleration_seconds for t in matching]
    if any(limit is None for limit in limits):
        return None
    return float(max(0, min(limit for limit in limits if limit is not None)))


#: Taints the node lifecycle controller puts on nodes it cannot hear from (same keys as Kubernetes).
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
