"""Kubernetes quantities: parsing into exact numbers, millicores and bytes, rejection messages, formatting."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from edgekube.model.errors import ValidationError
from edgekube.model.quantity import cpu_millis, format_bytes, format_millis, memory_bytes, parse_quantity

Q = str | int | float


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", Decimal(1)),
        ("250m", Decimal("0.25")),
        ("0.5", Decimal("0.5")),
        (".5", Decimal("0.5")),
        ("+2", Decimal(2)),
        ("1k", Decimal(1000)),
        ("1Ki", Decimal(1024)),
        ("1e3", Decimal(1000)),
        ("1E3", Decimal(1000)),
        ("1E", Decimal(10) ** 18),  # a bare E is the exa suffix, not an exponent
        ("100n", Decimal("1e-7")),
        ("  64Mi  ", Decimal(64 * 2**20)),
        (3, Decimal(3)),
        (0.25, Decimal("0.25")),
        (0, Decimal(0)),
    ],
)
def test_parse_quantity_returns_the_exact_value_in_base_units(text: Q, expected: Decimal) -> None:
    assert parse_quantity(text) == expected


@pytest.mark.parametrize(
    ("text", "millis"),
    [
        ("250m", 250),
        ("0.1", 100),
        ("1", 1000),
        ("1.5", 1500),
        ("2", 2000),
        (1, 1000),
        (2, 2000),
        (0.5, 500),
        ("0.0001", 1),  # rounded up, as Kubernetes does
        ("1n", 1),
        ("0", 0),
        ("100u", 1),
    ],
)
def test_cpu_millis(text: Q, millis: int) -> None:
    assert cpu_millis(text) == millis


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [
        ("64Mi", 64 * 2**20),
        ("123Mi", 123 * 2**20),
        ("1G", 10**9),
        ("1Gi", 2**30),
        ("1e3", 1000),
        ("128974848", 128974848),
        ("129e6", 129_000_000),
        ("129M", 129_000_000),
        ("1.5Ki", 1536),
        ("0.5", 1),  # fractions of a byte round up
        (1024, 1024),
        (0, 0),
    ],
)
def test_memory_bytes(text: Q, nbytes: int) -> None:
    assert memory_bytes(text) == nbytes


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("-1", "'-1': must be greater than or equal to 0"),
        ("-250m", "'-250m': must be greater than or equal to 0"),
        (-1, "-1: must be greater than or equal to 0"),
        (-0.5, "-0.5: must be greater than or equal to 0"),
        ("1.2.3", "'1.2.3': quantities must match the regular expression"),
        ("abc", "'abc': quantities must match the regular expression"),
        ("1Qi", "'1Qi': quantities must match the regular expression"),
        ("1e", "'1e': quantities must match the regular expression"),
        ("", "'': quantities must match the regular expression"),
        ("1 Mi", "'1 Mi': quantities must match the regular expression"),
        (True, "True: quantities must be a number or a string like '250m' or '64Mi'"),
        (False, "False: quantities must be a number or a string like '250m' or '64Mi'"),
        (float("inf"), "inf: must be a finite number"),
        (float("nan"), "nan: must be a finite number"),
        ("1e999999999", "'1e999999999': quantity is too large"),
    ],
)
def test_a_bad_quantity_is_rejected_with_the_field_name_and_the_rule(value: Q, rule: str) -> None:
    for convert in (parse_quantity, cpu_millis, memory_bytes):
        with pytest.raises(ValidationError) as info:
            convert(value, "resources.limits.cpu")
        assert str(info.value).startswith(f"resources.limits.cpu: {rule}")


def test_the_syntax_error_gives_examples() -> None:
    with pytest.raises(ValidationError, match=r"\(e\.g\. '250m', '0\.5', '64Mi', '1G'\)$"):
        parse_quantity("lots")


@pytest.mark.parametrize(
    ("convert", "field"),
    [(parse_quantity, "quantity"), (cpu_millis, "cpu"), (memory_bytes, "memory")],
)
def test_the_default_field_names(convert: Callable[[Q], object], field: str) -> None:
    with pytest.raises(ValidationError, match=f"^{field}: 'x': "):
        convert("x")


@pytest.mark.parametrize(
    ("millis", "text"),
    [(0, "0"), (250, "250m"), (1000, "1"), (1500, "1500m"), (2000, "2"), (4000, "4"), (1, "1m")],
)
def test_format_millis(millis: int, text: str) -> None:
    assert format_millis(millis) == text


@pytest.mark.parametrize(
    ("nbytes", "text"),
    [
        (0, "0"),
        (1, "1"),
        (1000, "1000"),
        (1024, "1Ki"),
        (1536, "1536"),
        (64 * 2**20, "64Mi"),
        (2**30, "1Gi"),
        (3 * 2**40, "3Ti"),
        (2**50, "1Pi"),
        (2**60, "1Ei"),
        (1024 * 1025, "1025Ki"),
        (128974848, "123Mi"),
    ],
)
def test_format_bytes_uses_the_largest_exact_binary_suffix(nbytes: int, text: str) -> None:
    assert format_bytes(nbytes) == text


@pytest.mark.parametrize("text", ["64Mi", "1Gi", "123Mi", "1Ki", "7"])
def test_format_bytes_round_trips_through_memory_bytes(text: str) -> None:
    assert format_bytes(memory_bytes(text)) == text


@pytest.mark.parametrize("text", ["250m", "1", "1500m", "4"])
def test_format_millis_round_trips_through_cpu_millis(text: str) -> None:
    assert format_millis(cpu_millis(text)) == text
