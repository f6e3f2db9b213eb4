"""Kubernetes labels, annotations and label selectors with k8s' exact rules; used by manifests, master and CLI.

Parts, in the order a selector string travels through them:

    lexer.py       tokens of the selector syntax ("k in (a,b),!x")
    parser.py      parse_selector: tokens -> Selector, with k8s' error messages and positions
    selector.py    Operator, Requirement, Selector: matching, canonical str(), matchLabels/matchExpressions
    validation.py  label key/value and annotation rules (IsQualifiedName, IsValidLabelValue, 256 KiB total)

The names below are the whole public surface; :mod:`edgekube.labels` re-exports them for library users.
"""

from edgekube.model.labels.parser import parse_selector
from edgekube.model.labels.selector import Operator, Requirement, Selector
from edgekube.model.labels.validation import (
    TOTAL_ANNOTATION_SIZE_LIMIT_B,
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
