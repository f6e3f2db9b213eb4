"""Spec of edgekube.labels, the documented library surface for labels and selectors; run by pytest.

Library users import only from ``edgekube.labels``; these tests use nothing else, on Kubernetes' own examples
(the "Labels and Selectors" concept page), so a refactoring of the implementation cannot change what they see.
"""

from __future__ import annotations

import pytest

import edgekube.labels
import edgekube.model.labels
from edgekube.labels import (
    TOTAL_ANNOTATION_SIZE_LIMIT_B,
    Operator,
    Requirement,
    Selector,
    parse_selector,
    validate_annotations,
    validate_label_key,
    validate_label_value,
    validate_labels,
)

PUBLIC_NAMES = [
    "TOTAL_ANNOTATION_SIZE_LIMIT_B",
    "Operator",
    "Requirement",
    "Selector",
    "parse_selector",
    "validate_annotations",
    "validate_label_key",
    "validate_label_value",
    "validate_labels",
]
QUALIFIED_NAME_RULE = "must start and end with an alphanumeric character"


def test_all_lists_exactly_the_documented_names_and_each_one_imports() -> None:
    assert sorted(edgekube.labels.__all__) == sorted(PUBLIC_NAMES)
    namespace: dict[str, object] = {}
    exec("from edgekube.labels import *", namespace)  # what `import *` gives a library user
    assert sorted(name for name in namespace if name != "__builtins__") == sorted(PUBLIC_NAMES)


def test_the_shim_exports_the_very_objects_of_edgekube_model_labels() -> None:
    assert edgekube.labels.__doc__ is not None
    assert "public home" in edgekube.labels.__doc__.splitlines()[0].lower()
    assert edgekube.model.labels.__all__ == edgekube.labels.__all__
    for name in PUBLIC_NAMES:
        assert getattr(edgekube.labels, name) is getattr(edgekube.model.labels, name), name


def test_a_set_based_selector_parses_to_its_canonical_string_sorted_by_key() -> None:
    selector = parse_selector("environment in (production, qa),tier notin (frontend),partition,!canary")

    assert str(selector) == "!canary,environment in (production,qa),partition,tier notin (frontend)"
    assert [(req.key, req.operator) for req in selector] == [
        ("canary", Operator.DOES_NOT_EXIST),
        ("environment", Operator.IN),
        ("partition", Operator.EXISTS),
        ("tier", Operator.NOT_IN),
    ]
    assert parse_selector(str(selector)) == selector


@pytest.mark.parametrize(
    ("labels", "selected"),
    [
        ({"environment": "qa", "partition": "customerA", "tier": "backend"}, True),
        ({"environment": "production", "partition": "customerB"}, True),  # notin matches a missing key
        ({"environment": "dev", "partition": "customerA"}, False),
        ({"environment": "qa", "partition": "customerA", "tier": "frontend"}, False),
        ({"environment": "qa", "tier": "backend"}, False),  # partition must exist
        ({"environment": "qa", "partition": "customerA", "canary": "true"}, False),  # !canary
    ],
)
def test_a_set_based_selector_selects_exactly_the_matching_label_sets(labels: dict[str, str], selected: bool) -> None:
    selector = parse_selector("environment in (production, qa),tier notin (frontend),partition,!canary")

    assert selector.matches(labels) is selected


def test_match_labels_and_match_expressions_build_the_selector_their_string_form_parses_to() -> None:
    built = Selector.from_match_labels(
        {"app": "nginx"}, [{"key": "tier", "operator": "In", "values": ["cache", "backend"]}]
    )

    assert built == parse_selector("tier in (backend,cache),app=nginx")
    assert built == Selector(
        (Requirement("app", Operator.EQUALS, ("nginx",)), Requirement("tier", Operator.IN, ("cache", "backend")))
    )
    assert built.matches({"app": "nginx", "tier": "cache"})
    assert not built.matches({"app": "nginx", "tier": "frontend"})


def test_an_empty_selector_selects_everything() -> None:
    assert parse_selector("") == Selector()
    assert parse_selector("").matches({"any": "thing"})


def test_a_bad_selector_string_is_refused_naming_the_position_and_what_was_expected() -> None:
    with pytest.raises(ValueError, match=r"found 'frontend' at position 8, expected: '\('"):
        parse_selector("tier in frontend")


def test_an_invalid_label_key_is_refused_naming_the_field_and_the_rule() -> None:
    with pytest.raises(ValueError) as caught:
        validate_labels({"app": "web", "-tier": "backend"})

    message = str(caught.value)
    assert message.startswith('metadata.labels["-tier"]: invalid key: name part ')
    assert QUALIFIED_NAME_RULE in message


def test_an_invalid_label_key_is_refused_at_the_path_the_caller_names() -> None:
    with pytest.raises(ValueError) as caught:
        validate_label_key("Example.com/app", path="spec.nodeSelector")

    message = str(caught.value)
    assert message.startswith('spec.nodeSelector["Example.com/app"]: invalid key: prefix part ')
    assert "a DNS-1123 subdomain must consist of lower case alphanumeric characters" in message


def test_valid_keys_values_and_annotations_are_returned_as_given() -> None:
    assert validate_label_key("app.kubernetes.io/name") == "app.kubernetes.io/name"
    assert validate_label_value("") == ""
    assert validate_labels({"app": "nginx", "release": "stable"}) == {"app": "nginx", "release": "stable"}
    assert validate_annotations({"imageregistry": "https://hub.docker.com/"}) == {
        "imageregistry": "https://hub.docker.com/"
    }


def test_a_label_value_over_63_characters_is_refused_with_the_limit() -> None:
    with pytest.raises(ValueError, match="must be no more than 63 characters"):
        validate_label_value("v" * 64)


def test_annotations_over_the_total_size_limit_are_refused_with_both_sizes() -> None:
    too_big = {"note": "x" * (TOTAL_ANNOTATION_SIZE_LIMIT_B - len("note") + 1)}

    with pytest.raises(ValueError, match=r"^metadata\.annotations: Too long: must have at most 262144 bytes "):
        validate_annotations(too_big)
