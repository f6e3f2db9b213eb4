"""The Kubernetes example corpus linted as `ekctl lint` does, with a reason category per rejected document.

Used by benchmarks/lint_corpus.py (the figure and histogram) and tests/unit/test_corpus_lint.py (the pinned
expectations). The corpus is built by benchmarks/k8s_examples.py into tests/corpus/k8s-examples/.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edgekube.model.errors import ValidationError
from edgekube.model.manifest import ManifestError, decode_documents, lint_manifests

ROOT = Path(__file__).resolve().parents[2]
#: Where benchmarks/k8s_examples.py builds it (git-ignored), else shared/corpus/k8s-examples beside the work tree.
CORPUS_PLACES = (ROOT / "tests" / "corpus" / "k8s-examples", ROOT.parent / "shared" / "corpus" / "k8s-examples")
CORPUS = next((p for p in CORPUS_PLACES if any(p.glob("*.yaml"))), CORPUS_PLACES[0])
EXPECTED = ROOT / "tests" / "corpus" / "k8s-examples.expected"
WRITE_COMMAND = ".venv/bin/python benchmarks/lint_corpus.py --write"

_INDEX = re.compile(r"\[\d+\]")
_KEY = re.compile(r'\["(?:[^"\\]|\\.)*"\]|\[\'(?:[^\'\\]|\\.)*\'\]')
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
#: apimachinery's field error types (field.ErrorType) and edgekube's unknown-field wording.
RULES = (
    "not supported",
    "Required value",
    "Invalid value",
    "Unsupported value",
    "Duplicate value",
    "Not found",
    "Forbidden",
    "Too long",
    "Too many",
)


def category(problem: str) -> str:
    """`spec.template.spec.containers[0].securityContext: not supported` → `spec.containers[].securityContext: …`.

    List indexes become `[]`, map keys are dropped, a controller's template spec reads as the Pod's `spec`; the
    rule is Kubernetes' error type where the message starts with one, else the message without quoted values.
    """
    path, sep, rule = problem.partition(": ")
    path = _KEY.sub("", _INDEX.sub("[]", path))
    if not sep or " " in path:
        path, rule = "", problem
    if path.startswith("spec.template.spec"):
        path = "spec" + path.removeprefix("spec.template.spec")
    head = next((r for r in RULES if rule.startswith(r)), None)
    if head is None:  # a message not yet in Kubernetes' words: its first clause, without the values
        text = _QUOTED.sub("…", rule.split(" (supported:", 1)[0]).removeprefix("…: ").split(": ", 1)[0]
        head = text if len(text) <= 60 else text[:60].rsplit(" ", 1)[0] + " …"
    return f"{path}: {head}" if path else head


@dataclass
class Result:
    documents: int = 0
    #: `file[doc N]` → the categories of its problems, in the order lint reports them.
    rejected: dict[str, list[str]] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        return self.documents - len(self.rejected)

    def first_reasons(self) -> dict[str, str]:
        return {doc: reasons[0] for doc, reasons in self.rejected.items()}

    def histogram(self) -> list[tuple[str, int, int]]:
        """(category, documents with it anywhere, documents with it first), most documents first."""
        anywhere = Counter(c for reasons in self.rejected.values() for c in dict.fromkeys(reasons))
        first = Counter(self.first_reasons().values())
        return sorted(((c, n, first[c]) for c, n in anywhere.items()), key=lambda row: (-row[1], -row[2], row[0]))


def corpus_files(corpus: Path = CORPUS) -> list[Path]:
    return sorted(corpus.glob("*.yaml"))


def corpus_sources(corpus: Path = CORPUS) -> list[str]:
    """`OWNER/NAME COMMIT` of every repository the corpus was built from (its files' header comments)."""
    found: set[str] = set()
    for path in corpus_files(corpus):
        head = path.read_text(encoding="utf-8").split("\n", 2)[:2]
        if len(head) == 2 and head[0].startswith("# source: ") and head[1].startswith("# commit: "):
            found.add(f"{head[0].removeprefix('# source: ').split(' ', 1)[0]} {head[1].removeprefix('# commit: ')}")
    return sorted(found)


def lint_corpus(corpus: Path = CORPUS) -> Result:
    """Every document of every corpus file through the model, as `ekctl lint` validates it."""
    result = Result()
    for path in corpus_files(corpus):
        data = path.read_bytes()
        try:
            result.documents += len(decode_documents(data, source=path.name))
        except ValidationError as unreadable:
            result.documents += 1
            result.rejected[f"{path.name}[doc 0]"] = [category(str(unreadable).removeprefix(path.name + ": "))]
            continue
        for problem in lint_manifests(data, source=path.name):
            if isinstance(problem, ManifestError) and problem.index is not None:
                result.rejected[f"{path.name}[doc {problem.index}]"] = [category(p) for p in problem.problems]
    return result


def expectations_text(result: Result, sources: list[str]) -> str:
    lines = [
        "# What `ekctl lint` says of the corpus (tests/corpus/README.md), pinned by tests/unit/test_corpus_lint.py.",
        f"# Written by `{WRITE_COMMAND}`: sources, `accepted` (a lower bound), each rejected document's reason.",
        *(f"source: {source}" for source in sources),
        f"accepted: {result.accepted} of {result.documents}",
    ]
    lines += [f"{doc}: {reason}" for doc, reason in sorted(result.first_reasons().items())]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Expectations:
    sources: list[str]
    accepted: int
    documents: int
    rejected: dict[str, str]


def read_expectations(path: Path = EXPECTED) -> Expectations:
    accepted = documents = 0
    sources: list[str] = []
    rejected: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("source: "):
            sources.append(line.removeprefix("source: "))
            continue
        if line.startswith("accepted: "):
            counts = line.removeprefix("accepted: ").split(" of ")
            accepted, documents = int(counts[0]), int(counts[1])
            continue
        doc, _, reason = line.partition(": ")
        rejected[doc] = reason
    return Expectations(sorted(sources), accepted, documents, rejected)
