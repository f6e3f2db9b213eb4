"""The static label linter (`ekctl lint`, `ekctl lint --cluster`): pure rules over manifests and live objects.

Parts:

    marks.py    YAML line numbers of each document's fields (PyYAML's node marks), so a finding names FILE:LINE
    reason.py   selector reasoning: can two selectors select one pod, which requirements labels miss, near keys
    rules.py    the rules (missed-route, selector-overlap, template-mismatch, unsatisfiable-placement,
                label-key-typo, unknown-target-port) over `Item`s, each finding with its fix

Pure: no I/O, no bus; the CLI reads files and asks the master for live objects, then calls `lint`.
"""

from edgekube.model.lint.marks import Marks, document_marks
from edgekube.model.lint.rules import RULES, Finding, Item, lint

__all__ = ["RULES", "Finding", "Item", "Marks", "document_marks", "lint"]
