"""docs/compatibility.md is true: every Pod/RC/RS field the model accepts, and every Kubernetes field, has its row.

The model is walked (Pod, ReplicationController, ReplicaSet, through every nested K8sModel, by wire name); the
doc's `| field | status | notes |` tables are parsed; Kubernetes' own field list is tests/unit/data/k8s-v1-fields.txt.
A failure lists each missing or wrong row, so adding a manifest field tells you exactly which rows to write.
"""

from __future__ import annotations

from functools import cache

import pytest

from edgekube.model.manifest import ManifestError, parse_object
from tests.support.compatibility import (
    DOC,
    MINIMAL,
    Doc,
    accepted,
    covering_row,
    kubernetes_fields,
    parent,
    parse_doc,
    with_field,
)

HOW = "(rows: `| field | status | notes |`, status one of supported / accepted and ignored / rejected)"


@cache
def doc() -> Doc:
    return parse_doc(DOC.read_text(encoding="utf-8"))


@cache
def model() -> dict[str, dict[str, bool]]:
    return accepted()


def is_leaf(path: str) -> bool:
    return not all(model()[path].values())


def _report(title: str, problems: list[str]) -> str:
    return f"{title} {HOW}:\n  " + "\n  ".join(problems)


def test_the_doc_rows_are_well_formed_and_name_each_field_once() -> None:
    problems = list(doc().problems)
    seen: dict[str, int] = {}
    for row in doc().rows:
        for path in row.paths:
            if path in seen:
                problems.append(f"line {row.line}: {path} already has a row (line {seen[path]})")
            seen.setdefault(path, row.line)
    assert not problems, _report("docs/compatibility.md has malformed rows", problems)


def test_the_doc_has_rows_of_every_status() -> None:
    statuses = {row.status for row in doc().rows}
    assert statuses == {"supported", "accepted and ignored", "rejected"}


def test_every_field_the_model_accepts_has_a_supported_or_ignored_row() -> None:
    rows = doc().by_path()
    missing, wrong = [], []
    for path in sorted(model()):
        if not is_leaf(path):
            continue  # an object is covered by the rows of its fields
        row = covering_row(path, rows)
        if row is None:
            missing.append(path)
        elif row.status == "rejected":
            wrong.append(f"{path}: the model accepts it, but line {row.line} says rejected")
    assert not missing and not wrong, _report(
        "fields the model accepts without a supported / accepted-and-ignored row", missing + wrong
    )


def test_every_supported_or_ignored_row_names_a_field_the_model_accepts() -> None:
    unknown = [
        f"line {row.line}: {path}"
        for row in doc().rows
        if row.status in ("supported", "accepted and ignored")
        for path in row.paths
        if path.removesuffix(".*") not in model()
    ]
    assert not unknown, _report("rows saying supported / accepted and ignored for fields the model refuses", unknown)


def test_every_rejected_row_names_a_kubernetes_field_the_model_does_not_accept() -> None:
    kubernetes = kubernetes_fields()
    problems = []
    for row in doc().rows:
        if row.status != "rejected":
            continue
        for path in row.paths:
            if path not in kubernetes:
                problems.append(f"line {row.line}: {path} is no Kubernetes field (tests/unit/data/k8s-v1-fields.txt)")
            elif path in model():
                problems.append(f"line {row.line}: {path} says rejected, but the model accepts it")
            elif parent(path) and parent(path) not in model():
                problems.append(f"line {row.line}: {path}: its parent {parent(path)} is refused already; drop the row")
    assert not problems, _report("wrong rejected rows", problems)


def test_every_kubernetes_field_under_an_accepted_one_has_a_row() -> None:
    rows = doc().by_path()
    missing = []
    for path in sorted(kubernetes_fields()):
        if path in model() or (parent(path) and parent(path) not in model()):
            continue  # accepted (the test above) or under a refused field (that field's row says it)
        row = covering_row(path, rows)
        if row is None:
            missing.append(f"{path} (the model refuses it: a `rejected` row)")
        elif row.status != "rejected":
            missing.append(f"{path}: the model refuses it, but line {row.line} says {row.status}")
    assert not missing, _report("Kubernetes fields without a row", missing)


def _kind_for(path: str) -> str:
    """A kind whose model accepts the field's parent: the Pod where it can, else a controller."""
    holder = parent(path)
    kinds = model().get(holder, {}) if holder else {"Pod": True}
    return next(kind for kind in ("Pod", "ReplicationController", "ReplicaSet") if kind in kinds)


def _rejected_paths() -> list[str]:
    paths = [p for row in doc().rows if row.status == "rejected" for p in row.paths]
    return [p for p in paths if p not in model() and (not parent(p) or parent(p) in model())]


def test_there_are_rejected_fields_to_check() -> None:
    assert len(_rejected_paths()) > 50


@pytest.mark.parametrize("path", _rejected_paths(), ids=str)
def test_a_manifest_using_a_rejected_field_is_refused_as_not_supported(path: str) -> None:
    kind = _kind_for(path)
    manifest, concrete = with_field(MINIMAL[kind], path, "x")
    with pytest.raises(ManifestError) as refused:
        parse_object(manifest)
    assert f"{concrete}: not supported" in refused.value.problems


def _ignored_objects() -> list[tuple[str, str]]:
    """(kind, X) for each `X.*` accepted-and-ignored row and each kind that has X."""
    rows = [row for row in doc().rows if row.status == "accepted and ignored"]
    stars = [path.removesuffix(".*") for row in rows for path in row.paths if path.endswith(".*")]
    return [(kind, star) for star in stars for kind in sorted(model().get(star, {}))]


def test_there_are_whole_objects_accepted_and_ignored() -> None:
    assert ("Pod", "status") in _ignored_objects()


@pytest.mark.parametrize(("kind", "path"), _ignored_objects())
def test_a_whole_object_accepted_and_ignored_is_accepted_whatever_it_holds(kind: str, path: str) -> None:
    anything = {"qosClass": "BestEffort", "podIPs": [{"ip": "10.0.0.1"}], "conditions": 3, "notAField": {"a": 1}}
    manifest, _ = with_field(MINIMAL[kind], path, anything)
    assert parse_object(manifest).to_dict()["kind"] == kind


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_the_minimal_manifests_the_refusals_start_from_are_valid(kind: str) -> None:
    assert parse_object(MINIMAL[kind]).to_dict()["kind"] == kind


def test_a_row_s_braces_expand_to_every_path_it_names() -> None:
    text = "| field | status | notes |\n|---|---|---|\n| `spec.{a,b[]}.{c,d}`, `e` | rejected | why |\n"
    parsed = parse_doc(text)
    assert (parsed.problems, [row.paths for row in parsed.rows]) == (
        [],
        [["spec.a.c", "spec.a.d", "spec.b[].c", "spec.b[].d", "e"]],
    )


def test_a_row_without_a_known_status_or_with_prose_in_the_field_column_is_reported() -> None:
    text = "| field | status | notes |\n|---|---|---|\n| `spec.a` and more | maybe | |\n"
    assert parse_doc(text).problems == [
        "line 3: the field column must hold backticked paths only: '`spec.a` and more'",
        "line 3: status 'maybe' is none of supported, accepted and ignored, rejected",
    ]


def test_tables_not_headed_field_are_not_field_rows() -> None:
    assert parse_doc("| ConfigMap / Secret field | status |\n|---|---|\n| ConfigMap `data` | supported |\n").rows == []
