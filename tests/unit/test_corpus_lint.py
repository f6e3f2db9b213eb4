"""The Kubernetes example corpus: `ekctl lint` accepts at least the pinned count, and rejects only the listed documents.

tests/corpus/k8s-examples.expected pins what lint says of the corpus (tests/corpus/README.md): the accepted count
(a lower bound) and each rejected document with its first reason. A document newly rejected fails by name; one
now accepted, or rejected for another reason, asks for the file to be rewritten (`benchmarks/lint_corpus.py
--write`), so the checked-in list stays what lint says. Skipped where the corpus has not been built (it is the
example repositories' content, not committed: benchmarks/k8s_examples.py builds it).
"""

from __future__ import annotations

from functools import cache

import pytest

from tests.support.corpus import (
    CORPUS,
    EXPECTED,
    WRITE_COMMAND,
    Expectations,
    Result,
    category,
    corpus_files,
    corpus_sources,
    lint_corpus,
    read_expectations,
)

needs_corpus = pytest.mark.skipif(
    not corpus_files(),
    reason=f"no corpus in {CORPUS}: build it with benchmarks/k8s_examples.py (tests/corpus/README.md)",
)


@cache
def result() -> Result:
    return lint_corpus()


@cache
def expected() -> Expectations:
    return read_expectations()


def test_the_expectations_name_their_sources_and_count_every_rejected_document() -> None:
    pinned = expected()
    assert pinned.sources, f"{EXPECTED} names no `source:` repository"
    assert pinned.documents - pinned.accepted == len(pinned.rejected)


@needs_corpus
def test_the_corpus_is_the_one_the_expectations_were_written_for() -> None:
    assert corpus_sources() == expected().sources, f"the corpus was built from other commits: run `{WRITE_COMMAND}`"
    assert result().documents == expected().documents


@needs_corpus
def test_lint_accepts_at_least_the_pinned_number_of_documents() -> None:
    assert result().accepted >= expected().accepted


@needs_corpus
def test_no_document_lint_accepted_is_rejected_now() -> None:
    regressed = {doc: reason for doc, reason in result().first_reasons().items() if doc not in expected().rejected}
    assert not regressed, "newly rejected:\n  " + "\n  ".join(f"{d}: {r}" for d, r in sorted(regressed.items()))


@needs_corpus
def test_every_rejected_document_is_listed_with_its_current_reason() -> None:
    now = result().first_reasons()
    stale = [f"{doc}: now accepted" for doc in sorted(expected().rejected) if doc not in now]
    stale += [
        f"{doc}: {reason} (listed: {expected().rejected[doc]})"
        for doc, reason in sorted(now.items())
        if doc in expected().rejected and expected().rejected[doc] != reason
    ]
    assert not stale, f"rewrite {EXPECTED.name} with `{WRITE_COMMAND}`:\n  " + "\n  ".join(stale)


@pytest.mark.parametrize(
    ("problem", "reason"),
    [
        (
            "spec.template.spec.containers[0].securityContext: not supported",
            "spec.containers[].securityContext: not supported",
        ),
        ('metadata.labels["a b"]: Invalid value: "a b": name part must …', "metadata.labels: Invalid value"),
        ("spec.selector: Required value", "spec.selector: Required value"),
        (
            "kind: ReplicaSet (extensions/v1beta1) is not supported (supported: Pod (v1))",
            "kind: ReplicaSet (extensions/v1beta1) is not supported",
        ),
    ],
)
def test_a_problem_s_reason_is_its_field_with_list_items_as_brackets_and_kubernetes_error_type(
    problem: str, reason: str
) -> None:
    assert category(problem) == reason


def test_extraction_keeps_the_pod_documents_as_written_and_drops_other_kinds() -> None:
    from benchmarks.k8s_examples import extract  # noqa: PLC0415 - a script's helper, only this test needs it

    text = "kind: Service\nmetadata: {name: s}\n---\n# the pod\nkind: Pod\nmetadata:\n  name: p  # here\n"
    found = extract(text, json_file=False)
    assert found is not None
    assert (found.body, found.count, found.total, found.verbatim) == (
        "# the pod\nkind: Pod\nmetadata:\n  name: p  # here\n",
        1,
        2,
        True,
    )
    assert extract("kind: Pod\nspec: {{ .Values.spec }}\n", json_file=False) is None


def test_extraction_flattens_a_json_list_into_yaml_documents() -> None:
    from benchmarks.k8s_examples import extract  # noqa: PLC0415 - a script's helper, only this test needs it

    found = extract('{"kind": "List", "items": [{"kind": "ReplicaSet"}, {"kind": "Service"}]}', json_file=True)
    assert found is not None
    assert (found.body, found.count, found.total, found.verbatim) == ("kind: ReplicaSet\n", 1, 2, False)
