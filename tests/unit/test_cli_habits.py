"""Unit tests of kubectl's everyday get flags in ekctl: --show-labels, -L, --sort-by, -o jsonpath/custom-columns/name,
explain from the models and the generated bash completion; commands run against the real master on the in-memory bus.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.cli import columns, jsonpath, output
from edgekube.cli.completion import bash
from edgekube.cli.explain import explain, field_type
from edgekube.cli.kinds import POD
from edgekube.cli.parser import build_parser
from edgekube.model.errors import ValidationError
from edgekube.model.pod import Pod
from tests.support.apiserver import ApiServer

Capture = pytest.CaptureFixture[str]


def pod(name: str, labels: dict[str, str] | None = None, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels or {}},
        "spec": {
            "containers": [{"name": "app", "image": "busybox"}],
            **({"nodeName": status.pop("node")} if "node" in status else {}),
        },
        "status": {"phase": "Running", **status},
    }


LIST = output.as_list([pod("a", {"app": "web"}, phase="Running"), pod("b", {"app": "db"}, phase="Pending")])


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{.items[*].metadata.name}", "a b"),
        ('{range .items[*]}{.metadata.name}{"\\t"}{.status.phase}{"\\n"}{end}', "a\tRunning\nb\tPending\n"),
        ('{.items[?(@.status.phase=="Pending")].metadata.name}', "b"),
        ("{.items[0].metadata.labels}", '{"app":"web"}'),
        ("{.items[-1:].metadata.name}", "b"),
        ("{.items[0,1].metadata.labels.app}", "web db"),
        ("{.items[0]['metadata']['name']}", "a"),
        ("{..labels.app}", "web db"),
        ("{.kind}/{.apiVersion}", "List/v1"),
        ("{.items[*].metadata.missing}", ""),
        ("names: {.items[*].metadata.name}.", "names: a b."),
    ],
)
def test_jsonpath_templates_print_as_kubectl(template: str, expected: str) -> None:
    assert jsonpath.render(template, LIST) == expected


def test_jsonpath_escaped_dots_reach_a_dotted_label_key() -> None:
    obj = pod("a", {"app.kubernetes.io/name": "web"})
    assert jsonpath.render(r"{.metadata.labels.app\.kubernetes\.io/name}", obj) == "web"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{.items[*]", "unclosed action"),
        ("{range .items[*]}{.x}", "unclosed range"),
        ("{end}", "not in range"),
        ("{.items[9]}", "array index out of bounds: index 9, length 2"),
        ("{.items[x]}", "invalid array index x"),
    ],
)
def test_jsonpath_errors_name_the_problem(template: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("[", r"\[")):
        jsonpath.render(template, LIST)


def test_go_text_prints_maps_and_lists_as_go_does() -> None:
    assert jsonpath.go_text({"b": 1, "a": [True, None, 2.5]}) == "map[a:[true <nil> 2.5] b:1]"


def test_label_columns_and_show_labels_follow_the_table() -> None:
    objects = [pod("a", {"app": "web", "tier": "front"}), pod("b")]
    text = output.render(POD, objects, None, label_columns=columns.label_keys(["app", "tier,app.kubernetes.io/name"]))
    lines = text.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "APP", "TIER", "NAME"]
    assert lines[1].split()[-2:] == ["web", "front"]
    shown = output.render(POD, objects, None, show_labels=True, label_columns=["app"]).splitlines()
    assert shown[0].split()[-2:] == ["APP", "LABELS"]
    assert shown[1].split()[-2:] == ["web", "app=web,tier=front"]
    assert shown[2].split()[-1] == "<none>"


def test_custom_columns_join_values_and_mark_missing() -> None:
    spec = "NAME:.metadata.name,NODE:.spec.nodeName,IMAGES:.spec.containers[*].image,L:{.metadata.labels}"
    parsed = columns.parse_custom_columns(spec)
    text = columns.custom_columns(parsed, [pod("a", {"app": "web"}, node="n1"), pod("b")])
    assert text.splitlines() == [
        "NAME   NODE     IMAGES    L",
        "a      n1       busybox   map[app:web]",
        "b      <none>   busybox   map[]",
    ]
    with pytest.raises(ValidationError, match="expected <header>:<json-path-expr>"):
        columns.parse_custom_columns("NAME")


def test_output_format_accepts_templates_and_refuses_unknown() -> None:
    parse = build_parser().parse_args
    assert parse(["get", "pods", "-o", "jsonpath={.items}"]).output == "jsonpath={.items}"
    assert parse(["get", "pods", "-o", "custom-columns=N:.metadata.name"]).output.startswith("custom-columns=")
    with pytest.raises(SystemExit):
        parse(["get", "pods", "-o", "jsonpath="])
    with pytest.raises(SystemExit):
        parse(["get", "pods", "-o", "table"])


def test_sort_by_orders_numbers_quantities_and_text_naturally_missing_first() -> None:
    def names(objects: list[dict[str, Any]]) -> list[str]:
        return [o["metadata"]["name"] for o in objects]

    pods = [pod("web-10", restarts=3), pod("web-9", restarts=12), pod("web-1")]
    assert names(columns.sort_by(pods, ".metadata.name")) == ["web-1", "web-9", "web-10"]
    assert names(columns.sort_by(pods, "{.status.restarts}")) == ["web-1", "web-10", "web-9"]
    memory = [pod(n, mem=m) for n, m in (("a", "1Gi"), ("b", "512Mi"), ("c", "2G"))]
    assert names(columns.sort_by(memory, ".status.mem")) == ["b", "a", "c"]
    with pytest.raises(ValidationError, match=r'couldn\'t find any field with path "\{\.status\.nope\}"'):
        columns.sort_by(pods, ".status.nope")


def test_explain_shows_a_field_its_type_enum_and_description() -> None:
    text = explain("Pod", "v1", Pod, ["spec", "containers"])
    assert text.startswith("KIND:       Pod\nVERSION:    v1\n\nFIELD: containers <[]Container> -required-\n")
    assert "  envFrom\t<[]EnvFromSource>\n    Every key of a ConfigMap or Secret as a variable" in text
    assert "  imagePullPolicy\t<string>\n  enum: Always, IfNotPresent, Never\n" in text
    policy = explain("Pod", "v1", Pod, ["spec", "restartPolicy"])
    assert "ENUM:\n    Always\n    OnFailure\n    Never\n" in policy and "FIELDS:" not in policy
    with pytest.raises(ValidationError, match='field "nope" does not exist'):
        explain("Pod", "v1", Pod, ["spec", "nope"])


def test_explain_types_are_spelled_as_kubectl_spells_them() -> None:
    assert field_type(dict[str, str]).text == "map[string]string"
    assert field_type(list[int] | None).text == "[]integer"
    assert field_type(bool).text == "boolean"
    assert field_type(int | str).text == "IntOrString"


def test_explain_recursive_indents_nested_fields() -> None:
    text = explain("Pod", "v1", Pod, ["metadata"], recursive=True)
    assert "  ownerReferences\t<[]OwnerReference>\n    apiVersion\t<string> -required-\n" in text


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ApiServer]:
    with ApiServer(tmp_path / "cluster") as api:
        yield api


def test_get_flags_through_ekctl_against_the_master(server: ApiServer, tmp_path: Path, capsys: Capture) -> None:
    for name, app in (("b", "web"), ("a", "db"), ("c", "web")):
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {app}}}}}\n"
            "spec: {containers: [{name: c, image: busybox}]}\n"
        )
        assert server.ekctl("apply", "-f", str(path)) == 0
    capsys.readouterr()
    assert server.ekctl("get", "pods", "-o", "jsonpath={.items[*].metadata.name}", "--sort-by", ".metadata.name") == 0
    assert capsys.readouterr().out == "a b c"
    assert server.ekctl("get", "pods", "-L", "app", "--sort-by", "{.metadata.labels.app}", "--no-headers") == 0
    assert [(line.split()[0], line.split()[-1]) for line in capsys.readouterr().out.splitlines()] == [
        ("a", "db"),
        ("b", "web"),
        ("c", "web"),
    ]
    assert server.ekctl("get", "pod", "a", "-o", "jsonpath={.metadata.labels.app}") == 0
    assert capsys.readouterr().out == "db"
    assert server.ekctl("get", "pods", "-o", "custom-columns=POD:.metadata.name,APP:.metadata.labels.app") == 0
    assert capsys.readouterr().out.splitlines()[:2] == ["POD   APP", "a     db"]
    assert server.ekctl("get", "pods", "--sort-by", ".metadata.nope") == 1
    assert "couldn't find any field" in capsys.readouterr().err


def test_explain_runs_offline(capsys: Capture) -> None:
    from edgekube.cli.main import run  # noqa: PLC0415

    assert run(["explain", "rs.spec.replicas"]) == 0
    assert "KIND:       ReplicaSet\nVERSION:    apps/v1\n\nFIELD: replicas <integer>" in capsys.readouterr().out
    assert run(["explain", "pods.spec.nope"]) == 1


COMPLETE = """
source "$1"
ekctl() { printf 'web-1\\nweb-2\\n'; }
t() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _ekctl; echo "${COMPREPLY[*]}"; }
t ekctl ge
t ekctl -n kube-system ge
t ekctl get po
t ekctl get pods w
t ekctl get pods --show-l
t ekctl get pods -o j
t ekctl completion ''
t ekctl logs ''
"""


def test_bash_completion_generated_from_the_parser_completes_commands_flags_types_and_names(tmp_path: Path) -> None:
    script = tmp_path / "ekctl.bash"
    script.write_text(bash(build_parser()))
    test = tmp_path / "t.sh"
    test.write_text(COMPLETE)
    result = subprocess.run(["bash", str(test), str(script)], capture_output=True, text=True, check=True)
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "get",
        "get",
        "po pod pods",
        "web-1 web-2",
        "--show-labels",
        "json jsonpath=",
        "bash zsh",
        "web-1 web-2",
    ]
