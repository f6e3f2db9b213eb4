"""The label linter (model.lint): one test per rule with its exact message and line, then ekctl lint over files."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from edgekube.cli.main import main
from edgekube.model.labels import parse_selector
from edgekube.model.lint import Item, document_marks, lint
from edgekube.model.lint.reason import damerau_levenshtein, near, overlap, suggestion
from edgekube.model.manifest import decode_documents

ROOT = Path(__file__).resolve().parents[2]

RC = """\
apiVersion: v1
kind: ReplicationController
metadata: {name: web}
spec:
  selector: {app: web}
  template:
    metadata:
      labels: {app: web, tier: fe}
    spec:
      containers:
        - name: web
          image: busybox
          ports: [{name: http, containerPort: 8080}]
"""


def findings(text: str, nodes: list[dict[str, Any]] | None = None) -> list[str]:
    documents = decode_documents(text)
    marks = document_marks(text)
    assert marks is not None and len(marks) == len(documents)
    items = [Item(doc, "app.yaml", mark) for doc, mark in zip(documents, marks, strict=True)]
    return [f.text() for f in lint(items, nodes)]


def service(selector: str, target: str = "http") -> str:
    return f"""\
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {selector}
  ports:
    - name: http
      port: 80
      targetPort: {target}
"""


def test_a_clean_set_has_no_findings() -> None:
    assert findings(RC + service("{app: web}")) == []


def test_missed_route_a_service_selecting_nothing() -> None:
    assert findings(RC + service("{app: api}")) == [
        "app.yaml:19 (Service default/web): missed-route: selector app=api matches no pod and no pod template in "
        "namespace default; fix: change spec.selector to labels its pods carry (labels in namespace default: "
        "app=web, tier=fe), or label the pods"
    ]


def test_label_key_typo_says_did_you_mean() -> None:
    found = findings(RC + service("{App: web}"))
    assert found[1] == (
        'app.yaml:19 (Service default/web): label-key-typo: selector key "App" is on no pod; did you mean `app`?; '
        "fix: write `app` in the selector, or label the pods with `App`"
    )
    assert found[0].startswith("app.yaml:19 (Service default/web): missed-route:")


def test_label_key_typo_by_prefix_and_by_small_edit() -> None:
    assert suggestion("name", ["app.kubernetes.io/name", "tier"]) == "app.kubernetes.io/name"
    assert suggestion("app.kubernetes.io/nmae", ["app.kubernetes.io/name"]) == "app.kubernetes.io/name"
    assert suggestion("tear", ["tier"]) == "tier"
    assert suggestion("zone", ["app", "tier"]) is None
    assert (damerau_levenshtein("nmae", "name"), damerau_levenshtein("kitten", "sitting")) == (1, 3)
    assert near("app", "env") is None  # short keys: one edit at most


def test_unknown_target_port_names_the_declared_ones() -> None:
    assert findings(RC + service("{app: web}", target="htpp")) == [
        'app.yaml:23 (Service default/web): unknown-target-port: targetPort "htpp" is declared by no container of '
        'the pods it selects; fix: name a containerPort "htpp", or use one of http'
    ]


def test_template_mismatch() -> None:
    text = RC.replace("selector: {app: web}", "selector: {app: web, track: stable}")
    assert findings(text) == [
        "app.yaml:8 (ReplicationController default/web): template-mismatch: template labels app=web,tier=fe do not "
        "satisfy its selector app=web,track=stable; fix: make spec.template.metadata.labels satisfy track=stable"
    ]


CANARY = """\
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: canary}
spec:
  selector:
    matchExpressions:
      - {key: tier, operator: In, values: [fe, be]}
  template:
    metadata:
      labels: {tier: fe, track: canary}
    spec:
      containers: [{name: web, image: busybox}]
"""


def test_selector_overlap_of_two_controllers() -> None:
    assert findings(RC + CANARY) == [
        "app.yaml:19 (ReplicaSet default/canary): selector-overlap: selector tier in (be,fe) can select the same pods "
        "as ReplicationController default/web (selector app=web); fix: add a label that tells their pods apart "
        "(e.g. controller=canary) to this selector and template"
    ]
    apart = CANARY.replace("key: tier, operator: In, values: [fe, be]", "key: app, operator: NotIn, values: [web]")
    assert findings(RC + apart.replace("labels: {tier: fe,", "labels: {app: canary,")) == []


@pytest.mark.parametrize(
    ("a", "b", "both"),
    [
        ("app=web", "app=web,tier=fe", True),
        ("app=web", "app=api", False),
        ("app in (a,b)", "app notin (a,b)", False),
        ("app in (a,b)", "app notin (a)", True),
        ("app", "!app", False),
        ("!app", "app!=x", True),
        ("", "app=web", True),
    ],
)
def test_overlap_reasons_over_equality_and_set_based_requirements(a: str, b: str, both: bool) -> None:
    assert overlap(parse_selector(a), parse_selector(b)) is both


def test_unsatisfiable_placement_needs_the_nodes() -> None:
    text = RC.replace("    spec:\n      containers:", "    spec:\n      nodeSelector: {disk: ssd}\n      containers:")
    assert findings(text) == []  # files alone: nothing known of the nodes
    nodes = [{"metadata": {"name": "pi-1", "labels": {"disktype": "ssd"}}}]
    assert findings(text, nodes) == [
        "app.yaml:10 (ReplicationController default/web): unsatisfiable-placement: nodeSelector disk=ssd matches "
        "none of the 1 node(s); fix: label a node to match (ekctl label node NAME KEY=VALUE) or change the pod's "
        "node constraints"
    ]
    nodes[0]["metadata"]["labels"] = {"disk": "ssd"}
    assert findings(text, nodes) == []


def test_required_node_affinity_no_node_satisfies() -> None:
    pod = {
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "arch", "operator": "In", "values": ["amd64"]}]}]
        }}}},
    }  # fmt: skip
    found = lint([Item(pod)], [{"metadata": {"name": "pi-1", "labels": {"arch": "arm64"}}}])
    assert [f.text() for f in found] == [
        "Pod default/p: unsatisfiable-placement: required node affinity matches none of the 1 node(s); fix: label a "
        "node to match (ekctl label node NAME KEY=VALUE) or change the pod's node constraints"
    ]


def run(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_ekctl_lint_reports_findings_with_file_and_line_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "rc.yaml").write_text(RC)
    (tmp_path / "svc.yaml").write_text(service("{app: api}").removeprefix("---\n"))
    code, out, err = run("lint", str(tmp_path), capsys=capsys)
    assert code == 1
    assert out.splitlines()[0].startswith(f"{tmp_path / 'svc.yaml'}:5 (Service default/web): missed-route:")
    assert err == "error: 1 label finding(s)\n"
    code, out, _ = run("lint", str(tmp_path), "-o", "json", capsys=capsys)
    report = json.loads(out)
    assert code == 1 and report["problems"] == []
    assert report["findings"][0]["rule"] == "missed-route"
    assert (report["findings"][0]["file"], report["findings"][0]["line"]) == (str(tmp_path / "svc.yaml"), 5)


def test_ekctl_lint_needs_files_or_cluster(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"")))
    code, _, err = run("lint", capsys=capsys)
    assert code != 0 and "give manifest files or directories (FILE|DIR|-), or --cluster" in err


def test_the_examples_have_no_findings(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run("lint", str(ROOT / "examples"), capsys=capsys)
    assert code == 0 and out.endswith("document(s) OK\n")
