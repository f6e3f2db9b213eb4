"""Deployment (apps/v1): SetDefaults_Deployment and ValidateDeploymentSpec; loaded by model.manifest, read by master.

Sources (kubernetes/kubernetes): pkg/apis/apps/v1/defaults.go SetDefaults_Deployment (strategy RollingUpdate with
25%/25%, revisionHistoryLimit 10, progressDeadlineSeconds 600) and pkg/apis/apps/validation/validation.go
(ValidateDeploymentSpec, ValidateDeploymentStrategy, ValidateRollingUpdateDeployment, ValidatePositiveIntOrPercent,
IsNotMoreThan100Percent). The rollout arithmetic on these values (`scaled`, `fenceposts`) is
pkg/controller/deployment/util's ResolveFenceposts over apimachinery's GetScaledValueFromIntOrPercent.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import Field, StrictBool, StrictInt, model_validator

from edgekube.model.base import Int32, K8sModel
from edgekube.model.controllers import LabelSelector, PodTemplateSpec, _template_errors
from edgekube.model.fielderrors import Problems, forbidden, invalid, not_supported, quote, required
from edgekube.model.meta import ObjectMeta
from edgekube.model.names import regex_error
from edgekube.model.probe import IntOrString

RECREATE = "Recreate"
ROLLING_UPDATE = "RollingUpdate"
DEFAULT_MAX = "25%"
DEFAULT_REVISION_HISTORY_LIMIT = 10
DEFAULT_PROGRESS_DEADLINE_SECONDS = 600
#: The annotation on a Deployment and its ReplicaSets naming the revision (deployment/util RevisionAnnotation).
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
#: The label a Deployment adds to each ReplicaSet's selector and template (apps/v1 DefaultDeploymentUniqueLabelKey).
TEMPLATE_HASH_LABEL = "pod-template-hash"
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"

_PERCENT_FMT = "[0-9]+%"
_PERCENT = re.compile(f"^{_PERCENT_FMT}$")
_PERCENT_MSG = regex_error(
    "a valid percent string must be a numeric string followed by an ending '%'", _PERCENT_FMT, "1%", "93%"
)


def _percent(value: int | str) -> int | None:
    """getPercentValue: the number of a valid percent string, None for anything else."""
    return int(value[:-1]) if isinstance(value, str) and _PERCENT.match(value) else None


def _int_or_percent_value(value: int | str) -> int:
    """As getIntOrPercentValue (a string that is no percent counts as 0, as intstr's IntValue of a non-number)."""
    pct = _percent(value)
    if pct is not None:
        return pct
    return value if isinstance(value, int) else 0


def _positive_int_or_percent(value: int | str, path: str) -> list[str]:
    """ValidatePositiveIntOrPercent: a percent string ('25%') or a non-negative integer."""
    if isinstance(value, str):
        return [] if _PERCENT.match(value) else [invalid(path, value, _PERCENT_MSG)]
    return [invalid(path, value, "must be greater than or equal to 0")] if value < 0 else []


def scaled(value: int | str, total: int, *, round_up: bool) -> int:
    """GetScaledValueFromIntOrPercent: an integer as is, a percent of `total` rounded up (surge) or down."""
    pct = _percent(value)
    if pct is None:
        return value if isinstance(value, int) else 0
    exact = pct * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


class RollingUpdateDeployment(K8sModel):
    max_unavailable: IntOrString | None = None
    max_surge: IntOrString | None = None


class DeploymentStrategy(K8sModel):
    #: "" (unset) becomes RollingUpdate (SetDefaults_Deployment).
    type: str = ""
    rolling_update: RollingUpdateDeployment | None = None


class DeploymentSpec(K8sModel):
    replicas: Int32 = 1
    selector: LabelSelector | None = None
    template: PodTemplateSpec
    strategy: DeploymentStrategy = Field(default_factory=DeploymentStrategy)
    min_ready_seconds: Int32 = 0
    revision_history_limit: Int32 | None = None
    paused: StrictBool = False
    progress_deadline_seconds: Int32 | None = None

    @model_validator(mode="after")
    def _defaults_then_rules(self) -> DeploymentSpec:
        """SetDefaults_Deployment, then ValidateDeploymentSpec, every broken rule reported."""
        strategy = self.strategy
        if not strategy.type:
            strategy.type = ROLLING_UPDATE
        if strategy.type == ROLLING_UPDATE:
            rolling = strategy.rolling_update = strategy.rolling_update or RollingUpdateDeployment()
            if rolling.max_unavailable is None:
                rolling.max_unavailable = DEFAULT_MAX
            if rolling.max_surge is None:
                rolling.max_surge = DEFAULT_MAX
        if self.revision_history_limit is None:
            self.revision_history_limit = DEFAULT_REVISION_HISTORY_LIMIT
        if self.progress_deadline_seconds is None:
            self.progress_deadline_seconds = DEFAULT_PROGRESS_DEADLINE_SECONDS
        problems = Problems()
        if self.replicas < 0:
            problems.add(invalid("replicas", self.replicas, "must be greater than or equal to 0"))
        selector_ok = False
        if self.selector is None:
            problems.add(required("selector"))
        else:
            selector_errors = self.selector.errors("selector")
            problems.add(*selector_errors)
            if self.selector.is_empty():
                given = {k: v for k, v in self.selector.to_dict().items() if v}
                problems.add(f"selector: Invalid value: {quote(given)}: empty selector is invalid for deployment")
            selector_ok = not selector_errors and not self.selector.is_empty()
        if selector_ok and self.selector is not None:
            problems.add(*_template_errors(self.selector.to_selector(path="selector"), self.template))
        problems.add(*self._strategy_errors())
        if self.min_ready_seconds < 0:
            problems.add(invalid("minReadySeconds", self.min_ready_seconds, "must be greater than or equal to 0"))
        if self.revision_history_limit < 0:
            detail = "must be greater than or equal to 0"
            problems.add(invalid("revisionHistoryLimit", self.revision_history_limit, detail))
        deadline = self.progress_deadline_seconds
        if deadline < 0:
            problems.add(invalid("progressDeadlineSeconds", deadline, "must be greater than or equal to 0"))
        if deadline <= self.min_ready_seconds:
            problems.add(invalid("progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"))
        problems.raise_any()
        return self

    def _strategy_errors(self) -> list[str]:
        """ValidateDeploymentStrategy and ValidateRollingUpdateDeployment."""
        strategy, path = self.strategy, "strategy"
        if strategy.type == RECREATE:
            if strategy.rolling_update is not None:
                detail = "may not be specified when strategy `type` is 'Recreate'"
                return [forbidden(f"{path}.rollingUpdate", detail)]
            return []
        if strategy.type != ROLLING_UPDATE:
            return [not_supported(f"{path}.type", strategy.type, [RECREATE, ROLLING_UPDATE])]
        rolling = strategy.rolling_update
        assert rolling is not None and rolling.max_unavailable is not None and rolling.max_surge is not None
        at = f"{path}.rollingUpdate"
        errs = _positive_int_or_percent(rolling.max_unavailable, f"{at}.maxUnavailable")
        errs += _positive_int_or_percent(rolling.max_surge, f"{at}.maxSurge")
        if _int_or_percent_value(rolling.max_unavailable) == 0 and _int_or_percent_value(rolling.max_surge) == 0:
            errs.append(invalid(f"{at}.maxUnavailable", rolling.max_unavailable, "may not be 0 when `maxSurge` is 0"))
        pct = _percent(rolling.max_unavailable)
        if pct is not None and pct > 100:
            errs.append(invalid(f"{at}.maxUnavailable", rolling.max_unavailable, "must not be greater than 100%"))
        return errs


class DeploymentStatus(K8sModel):
    """What the deployment controller writes (a manifest's status is dropped unread, manifest.STATUS_IGNORED)."""

    observed_generation: StrictInt = 0
    replicas: StrictInt = 0
    updated_replicas: StrictInt = 0
    ready_replicas: StrictInt = 0
    available_replicas: StrictInt = 0
    unavailable_replicas: StrictInt = 0
    collision_count: StrictInt | None = None
    conditions: list[dict[str, Any]] = Field(default_factory=list)


class Deployment(K8sModel):
    api_version: Literal["apps/v1"] = "apps/v1"
    kind: Literal["Deployment"] = "Deployment"
    metadata: ObjectMeta
    spec: DeploymentSpec
    status: DeploymentStatus | None = None


def fenceposts(spec: dict[str, Any]) -> tuple[int, int]:
    """ResolveFenceposts of a stored (defaulted) Deployment spec: (maxSurge, maxUnavailable) in pods.

    Surge rounds up and unavailable down; both 0 after rounding makes unavailable 1 (a rollout must be able to
    move). Recreate: (0, 0), as MaxSurge/MaxUnavailable of a non-rolling deployment. Unavailable never exceeds
    spec.replicas (MaxUnavailable).
    """
    strategy = spec.get("strategy") or {}
    if strategy.get("type", ROLLING_UPDATE) != ROLLING_UPDATE:
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    replicas = int(spec.get("replicas", 1))
    surge = scaled(rolling.get("maxSurge", DEFAULT_MAX), replicas, round_up=True)
    unavailable = scaled(rolling.get("maxUnavailable", DEFAULT_MAX), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)
