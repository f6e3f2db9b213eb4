"""Spec of label and annotation validation, ported from k8s util/validation tests; run by pytest."""

from __future__ import annotations

from typing import Any

import pytest

from edgekube.labels import (
    TOTAL_ANNOTATION_SIZE_LIMIT_B,
    validate_annotations,
    validate_label_key,
    validate_label_value,
    validate_labels,
)
from edgekube.model.errors import ValidationError

# TestIsQualifiedName (apimachinery/pkg/util/validation/validation_test.go)
GOOD_KEYS = [
    "simple",
    "now-with-dashes",
    "1-starts-with-num",
    "1234",
    "simple/simple",
    "now-with-dashes/simple",
    "now-with-dashes/now-with-dashes",
    "now.with.dots/simple",
    "now-with.dashes-and.dots/simple",
    "1-num.2-num/3-num",
    "1234/5678",
    "1.2.3.4/5678",
    "Uppercase_Is_OK_123",
    "example.com/Uppercase_Is_OK_123",
    "requests.storage-foo",
    "a" * 63,
    "a" * 253 + "/" + "b" * 63,
    "in",
    "notin",
]

# (key, fragment of the rule the message must name)
BAD_KEYS = [
    ("nospecialchars%^=@", "name part must consist of alphanumeric characters"),
    ("cantendwithadash-", "must start and end with an alphanumeric character"),
    ("-cantstartwithadash-", "must start and end with an alphanumeric character"),
    ("only/one/slash", "a qualified name must consist of"),
    ("Example.com/abc", "prefix part a DNS-1123 subdomain must consist of lower case"),
    ("example_com/abc", "prefix part a DNS-1123 subdomain"),
    ("example.com/", "name part must be non-empty"),
    ("/simple", "prefix part must be non-empty"),
    ("a" * 64, "name part must be no more than 63 characters"),
    ("a" * 254 + "/abc", "prefix part must be no more than 253 characters"),
    ("", "name part must be non-empty"),
    ("foo bar", "name part must consist of"),
    ("example..com/x", "prefix part a DNS-1123 subdomain"),
    ("-example.com/x", "prefix part a DNS-1123 subdomain"),
]

# TestIsValidLabelValue
GOOD_VALUES = [
    "simple",
    "now-with-dashes",
    "1-starts-with-num",
    "end-with-num-1",
    "1234",
    "a" * 63,
    "",
    "A.b_C-1",
]

BAD_VALUES = [
    ("nospecialchars%^=@", "a valid label must be an empty string or consist of alphanumeric"),
    ("Tama-nui-te-rā.is_Māori.Kiwi", "a valid label must be an empty string"),
    ("cantendwithadash-", "must start and end with an alphanumeric character"),
    ("-cantstartwithadash-", "must start and end with an alphanumeric character"),
    ("a" * 64, "must be no more than 63 characters"),
    ("has space", "a valid label must be"),
]


@pytest.mark.parametrize("key", GOOD_KEYS)
def test_valid_label_key_is_returned(key: str) -> None:
    assert validate_label_key(key) == key


@pytest.mark.parametrize(("key", "rule"), BAD_KEYS)
def test_invalid_label_key_names_key_and_rule(key: str, rule: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_label_key(key)
    message = str(caught.value)
    assert message.startswith(f'metadata.labels["{key}"]: invalid key: ')
    assert rule in message


@pytest.mark.parametrize("value", GOOD_VALUES)
def test_valid_label_value_is_returned(value: str) -> None:
    assert validate_label_value(value) == value


@pytest.mark.parametrize(("value", "rule"), BAD_VALUES)
def test_invalid_label_value_names_value_and_rule(value: str, rule: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_label_value(value, path='spec.template.metadata.labels["app"]')
    message = str(caught.value)
    assert message.startswith(f'spec.template.metadata.labels["app"]: invalid value "{value}": ')
    assert rule in message


def test_messages_quote_the_k8s_regex_and_examples() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_label_key("foo bar")
    assert str(caught.value) == (
        'metadata.labels["foo bar"]: invalid key: name part must consist of alphanumeric characters, '
        "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or "
        "'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    )


def test_a_key_can_break_several_rules_at_once() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_label_key("Bad_Prefix/" + "-" * 64)
    message = str(caught.value)
    assert "prefix part a DNS-1123 subdomain" in message
    assert "name part must be no more than 63 characters" in message
    assert "name part must consist of" in message


@pytest.mark.parametrize(
    ("labels", "fragments"),
    [
        ({"foo bar": "x"}, ['metadata.labels["foo bar"]: invalid key: name part']),
        ({"app": "bad value!"}, ['metadata.labels["app"]: invalid value "bad value!": a valid label']),
        ({"version": 1}, ['metadata.labels["version"]: invalid value 1: must be a string, got int']),
        ({2: "x"}, ["metadata.labels[2]: invalid key: must be a string, got int"]),
        (
            {"a b": "c d", "ok": "-x"},
            ['["a b"]: invalid key', '["a b"]: invalid value "c d"', '["ok"]: invalid value "-x"'],
        ),
        (["app"], ["metadata.labels: must be a mapping of label keys to values, got list"]),
    ],
)
def test_validate_labels_reports_every_problem(labels: object, fragments: list[str]) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_labels(labels)  # type: ignore[arg-type]
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_several_errors_are_aggregated_like_k8s() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_labels({"a b": "x", "c": "d e"}, path="spec.selector")
    message = str(caught.value)
    assert message.startswith('[spec.selector["a b"]: invalid key')
    assert ', spec.selector["c"]: invalid value "d e"' in message
    assert message.endswith("]")


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (None, {}),
        ({}, {}),
        ({"app": "web", "example.com/tier": "", "k8s.io/Name_1": "v.1"}, None),
    ],
)
def test_valid_labels_are_copied(labels: dict[str, str] | None, expected: dict[str, str] | None) -> None:
    result = validate_labels(labels)
    assert result == (labels if expected is None else expected)
    assert result is not labels


@pytest.mark.parametrize(
    "annotations",
    [
        None,
        {},
        {"description": "free text, with spaces = and (parens)!"},
        # k8s lowercases annotation keys before checking, so an upper-case prefix is fine here.
        {"Example.com/Owner": "ops"},
        {"k": "x" * (TOTAL_ANNOTATION_SIZE_LIMIT_B - 1)},
    ],
)
def test_valid_annotations(annotations: dict[str, str] | None) -> None:
    assert validate_annotations(annotations) == (annotations or {})


@pytest.mark.parametrize(
    ("annotations", "fragment"),
    [
        ({"k": "x" * TOTAL_ANNOTATION_SIZE_LIMIT_B}, "Too long: must have at most 262144 bytes (keys plus"),
        # Sizes are UTF-8 bytes, as Go's len() counts them: 1 + 2 * 131072.
        ({"k": "é" * (TOTAL_ANNOTATION_SIZE_LIMIT_B // 2)}, "total 262145 bytes"),
        ({"a": "x" * 200_000, "b": "y" * 70_000}, "metadata.annotations: Too long"),
        ({"foo bar": "x"}, 'metadata.annotations["foo bar"]: invalid key: name part'),
        ({"only/one/slash": "x"}, "a qualified name must consist of"),
        ({"n": 3}, 'metadata.annotations["n"]: invalid value 3: must be a string, got int'),
        ("text", "metadata.annotations: must be a mapping"),
    ],
)
def test_invalid_annotations(annotations: object, fragment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        validate_annotations(annotations)  # type: ignore[arg-type]
    assert fragment in str(caught.value)


@pytest.mark.parametrize(
    ("check", "argument", "message"),
    [
        (validate_labels, {"a b": "x"}, '"a b": invalid key: name part must consist of'),
        (validate_labels, {"app": "x y"}, '"app": invalid value "x y": a valid label must be'),
        (validate_label_value, "x y", 'invalid value "x y": a valid label must be'),
        (validate_annotations, {"k": "v" * TOTAL_ANNOTATION_SIZE_LIMIT_B}, "Too long: must have at most"),
        (validate_annotations, [], "must be a mapping of annotation keys to values, got list"),
    ],
)
def test_empty_path_leaves_the_field_to_the_caller(check: Any, argument: object, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check(argument, path="")
    assert str(caught.value).startswith(message)


def test_upper_case_prefix_is_still_refused_in_labels() -> None:
    with pytest.raises(ValidationError, match="prefix part a DNS-1123 subdomain"):
        validate_labels({"Example.com/Owner": "ops"})


def test_validation_error_is_a_value_error_so_pydantic_validators_can_use_it() -> None:
    with pytest.raises(ValueError, match="invalid key"):
        validate_label_key("no spaces")
