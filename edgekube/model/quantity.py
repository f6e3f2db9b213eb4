"""Kubernetes resource quantities (`250m`, `64Mi`, `1.5G`) as exact numbers; used by manifests and the scheduler."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated

from pydantic import PlainValidator

from edgekube.model.errors import ValidationError
from edgekube.model.fielderrors import go_value

_SUFFIX: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(
    r"^([+-]?[0-9]+(?:\.[0-9]*)?|[+-]?\.[0-9]+)(?:([eE][+-]?[0-9]+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$"
)

#: resource.Quantity's own syntax rule, as its error quotes it.
QUANTITY_REGEXP = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"


def _decode(value: object) -> str | int | float:
    """resource.Quantity's UnmarshalJSON takes a JSON string or number; `true`, lists and maps are refused."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(
            f"Invalid value: {go_value(value)}: quantities must match the regular expression '{QUANTITY_REGEXP}'"
        )
    return value


#: A quantity field as decoded (`250m`, `64Mi`, 1, 0.5); its syntax is checked by the model holding it.
Quantity = Annotated[str | int | float, PlainValidator(_decode, json_schema_input_type=str | int | float)]


def parse_quantity(text: str | int | float, field: str = "quantity") -> Decimal:
    """Return the quantity's value in base units (cores or bytes); a bad quantity names the field and the syntax."""
    if isinstance(text, bool):
        raise ValidationError(f"{field}: {text!r}: quantities must be a number or a string like '250m' or '64Mi'")
    if isinstance(text, int | float):
        # YAML turns `.inf`/`.nan` into floats: they must fail here, not as OverflowError in cpu_millis().
        value = Decimal(str(text))
        if not value.is_finite():
            raise ValidationError(f"{field}: {text!r}: must be a finite number")
    else:
        match = _QUANTITY.match(text.strip())
        if not match:
            raise ValidationError(
                f"{field}: {text!r}: quantities must match the regular expression "
                r"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' (e.g. '250m', '0.5', '64Mi', '1G')"
            )
        number, exponent, suffix = match.groups()
        try:
            value = Decimal(number)
            if exponent:
                value *= Decimal(10) ** int(exponent[1:])
            elif suffix:
                value *= _SUFFIX[suffix]
        except ArithmeticError as exc:  # decimal.Overflow for exponents such as `1e999999999`
            raise ValidationError(f"{field}: {text!r}: quantity is too large") from exc
    if value < 0:
        raise ValidationError(f"{field}: {text!r}: must be greater than or equal to 0")
    return value


def quantity_errors(raw: str | int | float) -> list[str]:
    """A quantity's problems in Kubernetes' words (resource.ParseQuantity, ValidateNonnegativeQuantity), or []."""
    try:
        parse_quantity(raw)
    except ValidationError as exc:
        text = str(exc)
        if "regular expression" in text or "quantities must" in text:
            return [f"quantities must match the regular expression '{QUANTITY_REGEXP}'"]
        if "greater than or equal to 0" in text:
            return ["must be greater than or equal to 0"]
        return [text.rsplit(": ", 1)[-1]]
    return []


def cpu_millis(text: str | int | float, field: str = "cpu") -> int:
    """CPU quantity in millicores, rounded up as Kubernetes does (`0.1` → 100, `1` → 1000)."""
    return int((parse_quantity(text, field) * 1000).to_integral_value(rounding="ROUND_CEILING"))


def memory_bytes(text: str | int | float, field: str = "memory") -> int:
    """Memory quantity in bytes, rounded up (`64Mi` → 67108864)."""
    return int(parse_quantity(text, field).to_integral_value(rounding="ROUND_CEILING"))


def format_millis(millis: int) -> str:
    """Format millicores the way kubectl shows them (`250m`, `2`)."""
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def format_bytes(value: int) -> str:
    """Format bytes with the largest exact binary suffix (`64Mi`), as kubectl does."""
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = int(_SUFFIX[suffix])
        if value and value % unit == 0:
            return f"{value // unit}{suffix}"
    return str(value)
