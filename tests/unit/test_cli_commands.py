"""Unit tests of ekctl's commands against the real master on the in-memory bus (tests/support/apiserver.py)."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgekube.bus import topics
from edgekube.cli import client, wait
from edgekube.cli.client import Client
from edgekube.cli.config import Connection
from edgekube.cli.kinds import POD
from edgekube.cli.main import run
from edgekube.model.wire import Verb
from tests.support.apiserver import ApiServer

Capture = pytest.CaptureFixture[str]
POD_YAML = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: {app}}}
spec:
  containers:
    - name: web
      image: busybox:1.36
    - name: side
      image: busybox:1.36
"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ApiServer]:
    with ApiServer(tmp_path / "cluster") as api:
        yield api


def ekctl(server: ApiServer, *argv: str) -> int:
    return server.ekctl(*argv)


def pod_names(server: ApiServer) -> list[tuple[str, str]]:
    """(namespace, name) of every stored pod."""
    return sorted(server.master.store.objects("Pod"))


def manifest(tmp_path: Path, name: str = "hello", app: str = "x", file: str = "pod.yaml") -> Path:
    path = tmp_path / file
    path.write_text(POD_YAML.format(name=name, app=app))
    return path


def test_apply_created_unchanged_configured(server: ApiServer, tmp_path: Path, capsys: Capture) -> None:
    path = manifest(tmp_path)
    assert ekctl(server, "apply", "-f", str(path)) == 0
    assert capsys.readouterr().out == "pod/hello created\n"
    assert ekctl(server, "apply", "-f", str(path)) == 0
    assert capsys.readouterr().out == "pod/hello unchanged\n"
    manifest(tmp_path, app="y")
    assert ekctl(server, "apply", "-f", str(path)) == 0
    assert capsys.readouterr().out == "pod/hello configured\n"
    assert server.clients and not any(bus.connected for bus in server.clients)  # ekctl disconnected


def test_apply_directory_in_sorted_order_one_request_per_file(
    server: ApiServer, tmp_path: Path, capsys: Capture
) -> None:
    manifest(tmp_path, "b", file="b.yaml")
    manifest(tmp_path, "a", file="a.yml")
    (tmp_path / "c.json").write_text(json.dumps(yaml.safe_load(POD_YAML.format(name="c", app="x"))))
    (tmp_path / "notes.txt").write_text("not a manifest")
    assert ekctl(server, "apply", "-f", str(tmp_path)) == 0
    assert capsys.readouterr().out == "pod/a created\npod/b created\npod/c created\n"
    assert [r.verb for r in server.requests] == [Verb.APPLY] * 3


def test_apply_from_stdin(server: ApiServer, monkeypatch: pytest.MonkeyPatch, capsys: Capture) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(POD_YAML.format(name="s", app="x").encode())))
    assert ekctl(server, "apply", "-f", "-") == 0
    assert capsys.readouterr().out == "pod/s created\n"


def test_apply_validates_everything_before_sending(server: ApiServer, tmp_path: Path, capsys: Capture) -> None:
    good = manifest(tmp_path, "good", file="a.yaml")
    bad = tmp_path / "b.yaml"
    bad.write_text(POD_YAML.format(name="ok", app="x") + "---\n" + POD_YAML.format(name="Bad_Name", app="x"))
    assert ekctl(server, "apply", "-f", str(good), "-f", str(bad)) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"error: {bad}[1]: metadata.name")
    assert err[1] == f"hint: run `ekctl lint {bad}` to list every problem"
    assert len(err) == 2
    assert server.requests == []


def test_apply_missing_path(server: ApiServer, capsys: Capture) -> None:
    assert ekctl(server, "apply", "-f", "/nonexistent/x.yaml") == 1
    assert capsys.readouterr().err == 'error: the path "/nonexistent/x.yaml" does not exist\n'


def test_apply_with_namespace_flag_fills_and_checks(server: ApiServer, tmp_path: Path, capsys: Capture) -> None:
    path = manifest(tmp_path)
    assert ekctl(server, "apply", "-n", "lab", "-f", str(path)) == 0
    assert pod_names(server) == [("lab", "hello")]
    other = tmp_path / "other.yaml"
    other.write_text(POD_YAML.format(name="o", app="x").replace("  name: o", "  name: o\n  namespace: prod"))
    assert ekctl(server, "-n", "lab", "apply", "-f", str(other)) == 1
    assert 'does not match the namespace "lab"' in capsys.readouterr().err


def test_get_pods_table_selector_and_empty(server: ApiServer, tmp_path: Path, capsys: Capture) -> None:
    ekctl(server, "apply", "-f", str(manifest(tmp_path, "a", "x", "a.yaml")))
    ekctl(server, "apply", "-f", str(manifest(tmp_path, "b", "y", "b.yaml")))
    capsys.readouterr()
    assert ekctl(server, "get", "pods") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [line.split()[:4] for line in lines[1:]] == [["a", "0/2", "Pending", "0"], ["b", "0/2", "Pending", "0"]]
    assert ekctl(server, "get", "po", "-l", "app=y", "-o", "name") == 0
    assert capsys.readouterr().out == "pod/b\n"
    assert server.requests[-1].selector == "app=y"
    assert ekctl(server, "get", "pods", "-l", "app=none") == 0
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "No resources found in default namespace.\n")
    assert ekctl(server, "get", "pods", "-A") == 0
    assert server.requests[-1].namespace is None


def test_get_bad_selector_is_refused_locally(server: ApiServer, capsys: Capture) -> None:
    assert ekctl(server, "get", "pods", "-l", "app in (x") == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith('error: selector "app in (x":')
    assert err[1].startswith("hint: selector syntax")
    assert server.requests == []


def test_get_by_name_json_yaml_and_not_found(server: ApiServer, tmp_path: Path, capsys: Capture) -> None:
    ekctl(server, "apply", "-f", str(manifest(tmp_path)))
    capsys.readouterr()
    assert ekctl(server, "get", "pod", "hello", "-o", "json") == 0
    assert json.loads(capsys.readouterr().out)["metadata"]["name"] == "hello"
    assert ekctl(server, "get", "pod/hello", "-o", "yaml") == 0
    assert yaml.safe_load(capsys.readouterr().out)["kind"] == "Pod"
    assert ekctl(server, "get", "pod", "nope") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        'error: pods "nope" not found in namespace "default"',
        "hint: list them with `ekctl get pods`",
    ]


def test_get_name_with_selector_is_an_error(server: ApiServer, capsys: Capture) -> None:
    assert ekctl(server, "get", "pod", "x", "-l", "a=b") == 1
    assert "name cannot be provided when a selector is specified" in capsys.readouterr().err


def test_unknown_resource_type(server: ApiServer, capsys: Capture) -> None:
    assert ekctl(server, "get", "daemonsets") == 1
    assert capsys.readouterr().err.splitlines() == [
        'error: the server doesn\'t have a resource type "daemonsets"',
        "hint: resource types: pods (po), nodes (no), replicationcontrollers (rc), replicasets (rs), "
        "deployments (deploy), events (ev), "
        "persistentvolumes (pv), persistentvolumeclaims (pvc), storageclasses (sc), configmaps (cm), secrets (secret), "
        "services (svc), endpoints (ep), endpointslices (endpointslice)",
    ]


def test_delete_by_name_and_by_file(server: ApiServer, tmp_path: Path, capsys: Capture) -> None:
    path = manifest(tmp_path)
    ekctl(server, "apply", "-f", str(path))
    capsys.readouterr()
    assert ekctl(server, "delete", "pod", "hello") == 0
    assert capsys.readouterr().out == 'pod "hello" deleted\n'
    assert ekctl(server, "delete", "pod", "hello") == 1
    assert capsys.readouterr().err.startswith('error: pods "hello" not found')
    assert ekctl(server, "delete", "pod", "hello", "--ignore-not-found") == 0
    ekctl(server, "apply", "-f", str(path))
    capsys.readouterr()
    assert ekctl(server, "delete", "-f", str(path)) == 0
    assert capsys.readouterr().out == 'pod "hello" deleted\n'


def test_delete_by_selector(server: ApiServer, tmp_path: Path, capsys: Capture) -> None:
    ekctl(server, "apply", "-f", str(manifest(tmp_path, "a", "x", "a.yaml")))
    ekctl(server, "apply", "-f", str(manifest(tmp_path, "b", "y", "b.yaml")))
    capsys.readouterr()
    assert ekctl(server, "delete", "pods", "-l", "app=x") == 0
    assert capsys.readouterr().out == 'pod "a" deleted\n'
    assert pod_names(server) == [("default", "b")]


def test_delete_needs_a_name(server: ApiServer, capsys: Capture) -> None:
    assert ekctl(server, "delete", "pod") == 1
    assert "no name was specified" in capsys.readouterr().err


def test_describe_pod_and_node(server: ApiServer, tmp_path: Path, capsys: Capture) -> None:
    server.add_node("pi-1")
    ekctl(server, "apply", "-f", str(manifest(tmp_path)))
    capsys.readouterr()
    assert ekctl(server, "describe", "pod", "hello") == 0
    out = capsys.readouterr().out
    assert "Name:         hello" in out and "Node:         pi-1" in out and "Labels:       app=x" in out
    web = out.splitlines().index("  web:")
    assert out.splitlines()[web + 1].split()[:2] == ["Container", "ID:"]  # the agent runs it
    assert out.splitlines()[web + 2].split() == ["Image:", "busybox:1.36"]
    assert ekctl(server, "describe", "node", "pi-1") == 0
    out = capsys.readouterr().out
    assert "Non-terminated Pods:" in out and "(1 in total)" in out
    assert any(line.split()[:2] == ["default", "hello"] for line in out.splitlines())


def test_logs_defaults_to_first_container(server: ApiServer, tmp_path: Path, capsys: Capture) -> None:
    server.add_node("pi-1")
    ekctl(server, "apply", "-f", str(manifest(tmp_path)))
    uid = server.master.store.get("Pod", "default", "hello")["metadata"]["uid"]
    server.runtimes["pi-1"].write_log(uid, "web", "line 0\nline 1\nline 2\n")
    server.runtimes["pi-1"].write_log(uid, "side", "side line\n")
    capsys.readouterr()
    assert ekctl(server, "logs", "hello", "--tail", "2") == 0
    captured = capsys.readouterr()
    assert captured.out == "line 1\nline 2\n"
    assert captured.err == 'Defaulted container "web" out of: web, side\n'
    req = server.requests[-1]
    assert (req.verb, req.name, req.container, req.tail) == (Verb.LOGS, "hello", "web", 2)
    assert ekctl(server, "logs", "pod/hello", "-c", "side") == 0
    assert capsys.readouterr().out == "side line\n"
    assert server.requests[-1].container == "side" and server.requests[-1].tail is None
    # The master forwarded both requests to the pod's node, whose agent answered.
    assert len(server.broker.published(topics.node_rpc("pi-1"))) == 2


def test_apply_wait_reports_progress_until_running(
    server: ApiServer, tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.add_silent_node("pi-1")
    polls = 0

    def fake_sleep(_seconds: float) -> None:
        nonlocal polls
        polls += 1
        running: dict[str, Any] = {"running": {}}
        status = {
            "phase": "Running",
            "containerStatuses": [
                {"name": "web", "image": "b", "ready": True, "state": running},
                {
                    "name": "side",
                    "image": "b",
                    "ready": polls > 1,
                    "state": running if polls > 1 else {"waiting": {"reason": "ContainerCreating"}},
                },
            ],
        }
        server.report("default", "hello", status)

    monkeypatch.setattr(wait, "pause", fake_sleep)
    assert ekctl(server, "apply", "--wait", "-f", str(manifest(tmp_path))) == 0
    captured = capsys.readouterr()
    assert captured.out == "pod/hello created\n"
    progress = captured.err.splitlines()
    assert progress[0].startswith("waiting for 1/1 pod(s) to run (0s): hello Pending 0/2")
    assert "hello ContainerCreating 1/2" in progress[1]
    assert progress[-1].startswith("1 pod(s) running after")


def test_apply_wait_times_out_with_hint(
    server: ApiServer, tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wait, "pause", lambda _s: None)
    assert ekctl(server, "apply", "--wait", "--wait-timeout", "0.01", "-f", str(manifest(tmp_path))) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-2].startswith("error: timed out after 0.01s waiting for 1 pod(s) to run: hello Pending 0/2")
    assert err[-1].startswith("hint: see `ekctl describe pod hello`")


def test_lint_lists_every_problem(server: ApiServer, tmp_path: Path, capsys: Capture) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        POD_YAML.format(name="Bad_Name", app="x")
        + "---\n"
        + POD_YAML.format(name="fine", app="x")
        + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: nospec}\n"
    )
    good = manifest(tmp_path, file="good.yaml")
    assert ekctl(server, "lint", str(bad), str(good)) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].startswith(f"{bad}[doc 0]: metadata.name")
    assert lines[-1] == f"{bad}[doc 2]: spec: Required value"
    assert captured.err == f"error: {len(lines)} problem(s) in 1 of 2 file(s)\n"
    assert ekctl(server, "lint", str(good), str(tmp_path / "good.yaml")) == 0
    assert capsys.readouterr().out == "2 document(s) OK\n"
    assert server.requests == []


def test_lint_reports_yaml_syntax_and_missing_files(tmp_path: Path, capsys: Capture) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: Pod\nmetadata: [\n")
    assert run(["lint", str(broken), str(tmp_path / "missing.yaml")]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{broken}: invalid YAML at line")
    assert lines[1] == f'the path "{tmp_path / "missing.yaml"}" does not exist'


def test_delete_file_honours_namespace_flag(server: ApiServer, tmp_path: Path, capsys: Capture) -> None:
    path = manifest(tmp_path)
    ekctl(server, "apply", "-n", "lab", "-f", str(path))
    capsys.readouterr()
    assert ekctl(server, "delete", "-n", "lab", "-f", str(path)) == 0
    assert capsys.readouterr().out == 'pod "hello" deleted\n'
    assert (server.requests[-1].namespace, pod_names(server)) == ("lab", [])


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_rewrites_one_line_on_a_terminal() -> None:
    err = Tty()
    progress = wait.Progress(err)
    progress.show("waiting", "(0s): a Pending", "a Pending")
    progress.show("waiting", "(1s): a Pending", "a Pending")
    progress.done("1 pod(s) running after 2s")
    assert err.getvalue() == (
        "\r\x1b[Kwaiting (0s): a Pending\r\x1b[Kwaiting (1s): a Pending\r\x1b[K1 pod(s) running after 2s\n"
    )


def test_progress_off_a_terminal_prints_only_changes() -> None:
    err = io.StringIO()
    progress = wait.Progress(err)
    progress.show("waiting", "(0s): a Pending", "a Pending")
    progress.show("waiting", "(1s): a Pending", "a Pending")
    progress.show("waiting", "(2s): a ContainerCreating", "a ContainerCreating")
    assert err.getvalue().splitlines() == ["waiting (0s): a Pending", "waiting (2s): a ContainerCreating"]


def test_apply_wait_stops_at_a_failed_pod(
    server: ApiServer, tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.add_silent_node("pi-1")

    def fail(_seconds: float) -> None:
        server.report("default", "hello", {"phase": "Failed", "reason": "ErrImagePull"})

    monkeypatch.setattr(wait, "pause", fail)
    assert ekctl(server, "apply", "--wait", "-f", str(manifest(tmp_path))) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-2] == "error: pod default/hello failed: ErrImagePull 0/2"
    assert err[-1] == "hint: see `ekctl describe pod hello` and `ekctl logs hello`"


def test_query_follows_continue_tokens_and_reports_progress(
    server: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(7):
        server.apply(POD_YAML.format(name=f"p{n}", app="x"))
    monkeypatch.setattr(client, "PAGE_SIZE", 3)
    progress: list[tuple[int, int]] = []
    session = server.connect(Connection("127.0.0.1", 1883, "defaults"), 1.0)
    try:
        found = Client(session).query(POD, "default", progress=lambda done, total: progress.append((done, total)))
    finally:
        session.close()
    assert [p["metadata"]["name"] for p in found] == [f"p{n}" for n in range(7)]
    pages = server.requests
    assert [r.limit for r in pages] == [3] * 3
    assert pages[0].continue_token is None and all(r.continue_token for r in pages[1:])
    assert progress == [(3, 7), (6, 7)]
