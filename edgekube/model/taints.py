"""Taints on nodes and tolerations on pods (Kubernetes semantics); pure matching used by scheduler and eviction."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from pydantic import Field, field_validator, model_validator

from edgekube.model.base import K8sModel
from edgekube.model.errors import ValidationError
from edgekube.model.labels import validate_label_key, validate_label_value


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
    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: TaintEffect | None = None
    toleration_seconds: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _rules(self) -> Toleration:
        if self.operator not in ("Equal", "Exists"):
            raise ValidationError(f"operator: Unsupported value: {self.operator!r}: supported values: Equal, Exists")
        if self.operator == "Exists" and self.value:
            raise ValidationError("value: Invalid value: must be empty when `operator` is 'Exists'")
        if not self.key and self.operator != "Exists":
            raise ValidationError("operator: Invalid value: operator must be Exists when `key` is empty")
        if self.toleration_seconds is not None and self.effect not in (None, TaintEffect.NO_EXECUTE):
            raise ValidationError("tolerationSeconds: only valid with effect NoExecute")
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
    return float(min(limit for limit in limits if limit is not None))


#: Taints the node lifecycle controller puts on nodes it cannot hear from (same keys as Kubernetes).
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
