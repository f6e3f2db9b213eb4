"""Public home of label, annotation and selector rules; manifests, CLI and controllers import from here.

A thin re-export of the package :mod:`edgekube.model.labels`, whose modules (lexer, parser, selector,
validation) hold the implementation.
"""

from edgekube.model.labels import (
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

__all__ = [
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
