"""Validation of affinity, topologySpreadConstraints and tolerations: Kubernetes' verdicts and messages, rule by rule.

Every test names, in its docstring, the function of Kubernetes' pkg/apis/core/validation/validation.go whose rule
it checks; a valid case proves a rule is not stricter than Kubernetes', an invalid one that it exists.
"""

from __future__ import annotations

from typing import Any

import pytest

from edgekube.model.manifest import ManifestError, parse_object
from edgekube.model.pod import PodSpec

NA = "spec.affinity.nodeAffinity"
REQ = f"{NA}.requiredDuringSchedulingIgnoredDuringExecution"
TERM = f"{REQ}.nodeSelectorTerms[0]"
RANGE = "must be in the range 1-100"
IN_NEEDS_VALUES = "must be specified when `operator` is 'In' or 'NotIn'"
ANTI = "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0]"


def problems(**spec: Any) -> list[str]:
    """Every problem Kubernetes' rules find in a pod with these spec fields ([] when it is valid)."""
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec},
    }
    try:
        parse_object(doc)
    except ManifestError as exc:
        return exc.problems
    return []


def required(*expressions: dict[str, Any], fields: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    term: dict[str, Any] = {"matchExpressions": list(expressions)}
    if fields is not None:
        term["matchFields"] = fields
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


# -- node affinity -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ({"key": "zone", "operator": "In", "values": ["a", "b"]}, []),
        ({"key": "zone", "operator": "NotIn", "values": ["a"]}, []),
        ({"key": "gpu", "operator": "Exists"}, []),
        ({"key": "gpu", "operator": "DoesNotExist"}, []),
        ({"key": "edgekube.io/ram-gb", "operator": "Gt", "values": ["2"]}, []),
        ({"key": "edgekube.io/ram-gb", "operator": "Lt", "values": ["8"]}, []),
        (
            {"key": "zone", "operator": "In", "values": []},
            [f"{TERM}.matchExpressions[0].values: Required value: {IN_NEEDS_VALUES}"],
        ),
        (
            {"key": "zone", "operator": "NotIn"},
            [f"{TERM}.matchExpressions[0].values: Required value: {IN_NEEDS_VALUES}"],
        ),
        (
            {"key": "gpu", "operator": "Exists", "values": ["x"]},
            [
                f"{TERM}.matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' "
                "or 'DoesNotExist'"
            ],
        ),
        (
            {"key": "ram", "operator": "Gt", "values": ["1", "2"]},
            [
                f"{TERM}.matchExpressions[0].values: Required value: must be specified single value when "
                "`operator` is 'Lt' or 'Gt'"
            ],
        ),
        (
            {"key": "ram", "operator": "Lt"},
            [
                f"{TERM}.matchExpressions[0].values: Required value: must be specified single value when "
                "`operator` is 'Lt' or 'Gt'"
            ],
        ),
        (
            {"key": "ram", "operator": "Bigger", "values": ["1"]},
            [f'{TERM}.matchExpressions[0].operator: Invalid value: "Bigger": not a valid selector operator'],
        ),
        (
            {"key": "ram", "operator": "in", "values": ["1"]},  # operators are case-sensitive
            [f'{TERM}.matchExpressions[0].operator: Invalid value: "in": not a valid selector operator'],
        ),
    ],
)
def test_node_selector_requirement_operators(expression: dict[str, Any], expected: list[str]) -> None:
    """ValidateNodeSelectorRequirement: In/NotIn need values, Exists/DoesNotExist forbid them, Gt/Lt take one."""
    assert problems(affinity=required(expression)) == expected


def test_gt_with_a_value_that_is_not_an_integer_is_accepted_like_kubernetes() -> None:
    """ValidateNodeSelectorRequirement checks the count of Gt/Lt values, not that they parse as integers.

    The API server accepts `Gt ["two"]`; the scheduler's NewRequirement then fails and the term matches no node
    (see test_affinity_scheduling's Gt case with a value that does not parse).
    """
    assert problems(affinity=required({"key": "ram", "operator": "Gt", "values": ["two"]})) == []


def test_node_selector_requirement_key_must_be_a_qualified_name() -> None:
    """ValidateNodeSelectorRequirement -> unversionedvalidation.ValidateLabelName(rq.Key)."""
    found = problems(affinity=required({"key": "bad key", "operator": "Exists"}))
    assert len(found) == 1
    assert found[0].startswith(f'{TERM}.matchExpressions[0].key: Invalid value: "bad key": name part must consist of')


def test_required_terms_check_label_values_but_preferred_terms_do_not() -> None:
    """ValidateNodeSelector(allowInvalidLabelValueInRequiredNodeAffinity=false) vs ValidatePreferredSchedulingTerms.

    Kubernetes always allows invalid label values in preferred terms ("they can succeed when the cluster has only
    one node"), and checks them (IsValidLabelValue) in required terms of a new pod.
    """
    bad = {"key": "zone", "operator": "In", "values": ["not valid!"]}
    found = problems(affinity=required(bad))
    assert len(found) == 1 and found[0].startswith(f'{TERM}.matchExpressions[0].values[0]: Invalid value: "not valid!"')
    preferred = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": {"matchExpressions": [bad]}}
            ]
        }
    }
    assert problems(affinity=preferred) == []


def test_node_selector_needs_at_least_one_term() -> None:
    """ValidateNodeSelector: `must have at least one node selector term`."""
    affinity: dict[str, Any] = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}
    }
    assert problems(affinity=affinity) == [
        f"{REQ}.nodeSelectorTerms: Required value: must have at least one node selector term"
    ]


@pytest.mark.parametrize(
    ("requirement", "expected"),
    [
        ({"key": "metadata.name", "operator": "In", "values": ["pi-1"]}, []),
        ({"key": "metadata.name", "operator": "NotIn", "values": ["pi-1"]}, []),
        (
            {"key": "metadata.name", "operator": "In", "values": ["pi-1", "pi-2"]},
            [
                f"{TERM}.matchFields[0].values: Required value: must be only one value when `operator` is 'In' or "
                "'NotIn' for node field selector"
            ],
        ),
        (
            {"key": "metadata.name", "operator": "Exists"},
            [f'{TERM}.matchFields[0].operator: Invalid value: "Exists": not a valid selector operator'],
        ),
        (
            {"key": "metadata.uid", "operator": "In", "values": ["x"]},
            [f'{TERM}.matchFields[0].key: Invalid value: "metadata.uid": not a valid field selector key'],
        ),
    ],
)
def test_node_field_selector_requirement(requirement: dict[str, Any], expected: list[str]) -> None:
    """ValidateNodeFieldSelectorRequirement: only metadata.name, only In/NotIn, exactly one value."""
    assert problems(affinity=required(fields=[requirement])) == expected


@pytest.mark.parametrize(("weight", "ok"), [(1, True), (100, True), (0, False), (101, False), (-5, False)])
def test_preferred_scheduling_term_weight_is_1_to_100(weight: int, ok: bool) -> None:
    """ValidatePreferredSchedulingTerms: `must be in the range 1-100`."""
    term = {"weight": weight, "preference": {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}}
    found = problems(affinity={"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [term]}})
    assert found == (
        []
        if ok
        else [f"{NA}.preferredDuringSchedulingIgnoredDuringExecution[0].weight: Invalid value: {weight}: {RANGE}"]
    )


# -- pod (anti-)affinity -----------------------------------------------------------------------------------------
def anti(**term: Any) -> dict[str, Any]:
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}


def test_pod_affinity_term_topology_key_is_required() -> None:
    """validatePodAffinityTerm: `topologyKey: Required value: can not be empty`, then ValidateLabelName's own."""
    found = problems(affinity=anti(labelSelector={"matchLabels": {"app": "web"}}, topologyKey=""))
    assert found[0] == f"{ANTI}.topologyKey: Required value: can not be empty"
    assert all(p.startswith(f"{ANTI}.topologyKey: ") for p in found)


def test_pod_affinity_term_topology_key_must_be_a_label_name() -> None:
    """validatePodAffinityTerm -> unversionedvalidation.ValidateLabelName(topologyKey)."""
    found = problems(affinity=anti(labelSelector={}, topologyKey="no/such/key"))
    assert len(found) == 1 and found[0].startswith(f'{ANTI}.topologyKey: Invalid value: "no/such/key"')


def test_pod_affinity_term_namespaces_are_dns_labels() -> None:
    """validatePodAffinityTerm: each of `namespaces` is ValidateNamespaceName'd (reported at `.namespace`)."""
    ok = anti(labelSelector={}, namespaces=["default", "kube-system"], topologyKey="kubernetes.io/hostname")
    assert problems(affinity=ok) == []
    found = problems(affinity=anti(labelSelector={}, namespaces=["Bad_NS"], topologyKey="kubernetes.io/hostname"))
    assert len(found) == 1 and found[0].startswith(f'{ANTI}.namespace: Invalid value: "Bad_NS": a lowercase RFC 1123')


def test_pod_affinity_term_label_selector_is_checked() -> None:
    """ValidatePodAffinityTermSelector -> ValidateLabelSelector: operators of metav1.LabelSelector."""
    selector = {"matchExpressions": [{"key": "app", "operator": "Gt", "values": ["1"]}]}
    found = problems(affinity=anti(labelSelector=selector, topologyKey="kubernetes.io/hostname"))
    assert found == [
        f'{ANTI}.labelSelector.matchExpressions[0].operator: Unsupported value: "Gt": supported values: "In", '
        '"NotIn", "Exists", "DoesNotExist"'
    ]


@pytest.mark.parametrize(("weight", "ok"), [(1, True), (100, True), (0, False), (101, False)])
def test_weighted_pod_affinity_term_weight_is_1_to_100(weight: int, ok: bool) -> None:
    """validateWeightedPodAffinityTerms: `must be in the range 1-100`."""
    term = {"weight": weight, "podAffinityTerm": {"labelSelector": {}, "topologyKey": "zone"}}
    found = problems(affinity={"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [term]}})
    path = "spec.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight"
    assert found == ([] if ok else [f"{path}: Invalid value: {weight}: must be in the range 1-100"])


def test_namespace_selector_and_required_affinity_are_accepted() -> None:
    """validatePodAffinity / validatePodAntiAffinity: a complete term with namespaceSelector is valid."""
    term = {
        "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]},
        "namespaceSelector": {},
        "topologyKey": "kubernetes.io/hostname",
    }
    affinity = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}
    assert problems(affinity=affinity) == []


# -- topology spread ---------------------------------------------------------------------------------------------
def spread(**fields: Any) -> dict[str, Any]:
    base = {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {}}
    return {**base, **fields}


TSC = "spec.topologySpreadConstraints[0]"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, []),
        ({"maxSkew": 3, "whenUnsatisfiable": "ScheduleAnyway"}, []),
        ({"maxSkew": 0}, [f"{TSC}.maxSkew: Invalid value: 0: must be greater than zero"]),
        ({"maxSkew": -1}, [f"{TSC}.maxSkew: Invalid value: -1: must be greater than zero"]),
    ],
)
def test_max_skew_is_positive(fields: dict[str, Any], expected: list[str]) -> None:
    """ValidateMaxSkew: isNotPositiveErrorMsg `must be greater than zero`."""
    assert problems(topologySpreadConstraints=[spread(**fields)]) == expected


def test_topology_key_can_not_be_empty() -> None:
    """ValidateTopologyKey: `Required value: can not be empty`."""
    assert problems(topologySpreadConstraints=[spread(topologyKey="")]) == [
        f"{TSC}.topologyKey: Required value: can not be empty"
    ]


def test_when_unsatisfiable_is_do_not_schedule_or_schedule_anyway() -> None:
    """ValidateWhenUnsatisfiable: NotSupported with the sorted supported values."""
    assert problems(topologySpreadConstraints=[spread(whenUnsatisfiable="Sometimes")]) == [
        f'{TSC}.whenUnsatisfiable: Unsupported value: "Sometimes": supported values: "DoNotSchedule", "ScheduleAnyway"'
    ]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"minDomains": 3}, []),
        ({"minDomains": 0}, [f"{TSC}.minDomains: Invalid value: 0: must be greater than zero"]),
        (
            {"minDomains": 2, "whenUnsatisfiable": "ScheduleAnyway"},
            [
                f"{TSC}.minDomains: Invalid value: 2: can only use minDomains if whenUnsatisfiable=DoNotSchedule, "
                "not ScheduleAnyway"
            ],
        ),
    ],
)
def test_min_domains(fields: dict[str, Any], expected: list[str]) -> None:
    """validateMinDomains: positive, and only with whenUnsatisfiable DoNotSchedule."""
    assert problems(topologySpreadConstraints=[spread(**fields)]) == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"labelSelector": {"matchLabels": {"app": "web"}}, "matchLabelKeys": ["pod-template-hash"]}, []),
        (
            {"labelSelector": None, "matchLabelKeys": ["version"]},
            [f"{TSC}.matchLabelKeys: Forbidden: must not be specified when labelSelector is not set"],
        ),
        (
            {"labelSelector": {"matchLabels": {"app": "web"}}, "matchLabelKeys": ["app"]},
            [f'{TSC}.matchLabelKeys[0]: Invalid value: "app": exists in both matchLabelKeys and labelSelector'],
        ),
    ],
)
def test_match_label_keys(fields: dict[str, Any], expected: list[str]) -> None:
    """validateMatchLabelKeysInTopologySpread: needs a labelSelector, and no key the selector already has."""
    constraint = {k: v for k, v in spread(**fields).items() if v is not None}
    assert problems(topologySpreadConstraints=[constraint]) == expected


def test_topology_key_and_when_unsatisfiable_pair_is_unique() -> None:
    """ValidateSpreadConstraintNotRepeat: `{topologyKey, whenUnsatisfiable}: Duplicate value`."""
    found = problems(topologySpreadConstraints=[spread(), spread(maxSkew=2)])
    assert len(found) == 1
    pair = "topologySpreadConstraints[0].{topologyKey, whenUnsatisfiable}"
    assert f'{pair}: Duplicate value: "{{zone, DoNotSchedule}}"' in found[0]
    assert problems(topologySpreadConstraints=[spread(), spread(whenUnsatisfiable="ScheduleAnyway")]) == []


# -- tolerations -------------------------------------------------------------------------------------------------
TOL = "spec.tolerations[0]"
ONLY_NO_EXECUTE = "effect must be 'NoExecute' when `tolerationSeconds` is set"
EFFECTS = '"NoSchedule", "PreferNoSchedule", "NoExecute"'


@pytest.mark.parametrize(
    ("toleration", "expected"),
    [
        ({"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}, []),
        ({"key": "dedicated", "value": "gpu"}, []),  # operator defaults to Equal
        ({"key": "dedicated", "operator": "", "value": "gpu"}, []),  # "" means Equal
        ({"operator": "Exists"}, []),  # empty key + Exists: tolerate everything
        ({"key": "dedicated", "operator": "Exists", "effect": ""}, []),  # empty effect: every effect
        (
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": -1,
            },
            [],  # negative means evict at once; Kubernetes accepts it
        ),
        (
            {"operator": "Equal", "value": "x"},
            [
                f'{TOL}.operator: Invalid value: "Equal": operator must be Exists when `key` is empty, which means '
                '"match all values and all keys"'
            ],
        ),
        (
            {"key": "dedicated", "operator": "Exists", "value": "gpu"},
            [
                f'{TOL}.operator: Invalid value: {{"key": "dedicated", "operator": "Exists", "value": "gpu"}}: '
                "value must be empty when `operator` is 'Exists'"
            ],
        ),
        (
            {"key": "dedicated", "operator": "Exists", "tolerationSeconds": 30},
            [f'{TOL}.effect: Invalid value: "": {ONLY_NO_EXECUTE}'],
        ),
        (
            {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 30},
            [f'{TOL}.effect: Invalid value: "NoSchedule": {ONLY_NO_EXECUTE}'],
        ),
        (
            {"key": "ram", "operator": "Gt", "value": "4"},
            [f'{TOL}.operator: Unsupported value: "Gt": supported values: "Equal", "Exists"'],
        ),
        (
            {"key": "dedicated", "effect": "NoWay"},
            [f'{TOL}.effect: Unsupported value: "NoWay": supported values: {EFFECTS}'],
        ),
    ],
)
def test_tolerations(toleration: dict[str, Any], expected: list[str]) -> None:
    """ValidateTolerations (+ validateTaintEffect): key/operator/value/effect/tolerationSeconds rules."""
    assert problems(tolerations=[toleration]) == expected


def test_toleration_value_must_be_a_label_value_with_equal() -> None:
    """ValidateTolerations: with Equal (or ""), IsValidLabelValue(value), reported at `.operator`."""
    found = problems(tolerations=[{"key": "k", "value": "not valid!"}])
    assert len(found) == 1 and found[0].startswith(f'{TOL}.operator: Invalid value: "not valid!": a valid label')


def test_toleration_key_must_be_a_label_name() -> None:
    """ValidateTolerations -> unversionedvalidation.ValidateLabelName(key)."""
    found = problems(tolerations=[{"key": "a/b/c", "operator": "Exists"}])
    assert len(found) == 1 and found[0].startswith(f'{TOL}.key: Invalid value: "a/b/c"')


def test_every_broken_toleration_rule_is_reported() -> None:
    """ValidateTolerations appends every error of an entry instead of stopping at the first."""
    found = problems(tolerations=[{"operator": "Exists", "value": "x", "effect": "NoSchedule", "tolerationSeconds": 1}])
    assert [p.split(":")[0] for p in found] == [f"{TOL}.effect", f"{TOL}.operator"]


def test_empty_operator_is_stored_as_equal() -> None:
    """Kubernetes treats operator "" as Equal (ValidateTolerations' `case core.TolerationOpEqual, ""`)."""
    spec = PodSpec.model_validate(
        {"containers": [{"name": "c", "image": "busybox"}], "tolerations": [{"key": "k", "operator": "", "value": "v"}]}
    )
    assert spec.tolerations[0].operator == "Equal"


def test_a_bad_selector_and_an_empty_topology_key_are_both_reported() -> None:
    """validatePodAffinityTerm appends ValidatePodAffinityTermSelector's errors and then topologyKey's."""
    selector = {"matchExpressions": [{"key": "app", "operator": "Bogus"}]}
    found = problems(affinity=anti(labelSelector=selector, topologyKey=""))
    assert [p.split(":")[0] for p in found[:2]] == [
        f"{ANTI}.labelSelector.matchExpressions[0].operator",
        f"{ANTI}.topologyKey",
    ]
