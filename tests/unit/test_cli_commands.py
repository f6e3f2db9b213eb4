"""Unit tests of ekctl's commands against an in-memory fake of the master's API (no broker)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgekube.cli import wait
from edgekube.cli.client import PAGE_SIZE, Client
from edgekube.cli.config import Connection
from edgekube.cli.kinds import POD
from edgekube.cli.main import run
from edgekube.model.labels import parse_selector
from edgekube.model.manifest import load_manifests
from edgekube.model.wire import ApiRequest, ApiResponse, ErrorInfo, Outcome, Verb

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


class FakeMaster:
    """Just enough of master.api's semantics: apply, get, list with selector, delete with cascade, logs,
    and the verbs scale, label, annotate, cordon, uncordon and drain."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.requests: list[ApiRequest] = []
        self.timeouts: list[float | None] = []
        self.closed = False
        self.logs_text = "line 1\nline 2"

    def connect(self, connection: Connection, timeout: float) -> FakeMaster:
        self.connection = connection
        return self

    def call(self, request: ApiRequest, timeout: float | None = None) -> ApiResponse:
        # Round-trip through the wire format, as the real transport does.
        request = ApiRequest.decode(request.encode())
        self.requests.append(request)
        self.timeouts.append(timeout)
        try:
            response = self._handle(request)
        except LookupError as exc:
            response = ApiResponse(ok=False, error=ErrorInfo(reason="NotFound", message=f"{exc} not found"))
        except ValueError as exc:
            response = ApiResponse(ok=False, error=ErrorInfo(reason=exc.args[0], message=exc.args[1]))
        return ApiResponse.decode(response.encode())

    def close(self) -> None:
        self.closed = True

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        self.objects[(obj["kind"], meta.get("namespace", ""), meta["name"])] = obj
        return obj

    def _apply(self, req: ApiRequest) -> ApiResponse:
        outcomes = []
        for doc in load_manifests(req.manifest or ""):
            obj = doc.obj.to_dict()
            k = (obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"])
            current = self.objects.get(k)
            if current is None:
                obj["metadata"]["creationTimestamp"] = "2024-05-01T12:00:00Z"
                obj["metadata"]["uid"] = f"uid-{k[2]}"
                obj["status"] = {"phase": "Pending"} if k[0] == "Pod" else {"replicas": 0}
                self.objects[k] = obj
                action = "created"
            elif current["metadata"].get("labels") == obj["metadata"].get("labels"):
                action = "unchanged"
            else:
                current["metadata"]["labels"] = obj["metadata"].get("labels")
                action = "updated"
            outcomes.append(Outcome(kind=k[0], namespace=k[1], name=k[2], action=action))
        return ApiResponse(ok=True, outcomes=outcomes)

    def _list(self, req: ApiRequest) -> ApiResponse:
        if req.kind not in ("Pod", "Node", "ReplicationController", "ReplicaSet", "Event"):
            raise ValueError("Invalid", f"kind: {req.kind!r} is not supported")
        sel = parse_selector(req.selector or "")
        found = [
            o
            for (kind, namespace, _), o in sorted(self.objects.items())
            if kind == req.kind
            and (req.namespace is None or req.kind == "Node" or namespace == req.namespace)
            and sel.matches(o["metadata"].get("labels", {}))
        ]
        return ApiResponse(ok=True, items=found)

    def _delete(self, key: tuple[str, str, str], cascade: str) -> list[Outcome]:
        obj = self.objects.pop(key)
        outcomes = [Outcome(kind=key[0], namespace=key[1], name=key[2], action="deleted")]
        if cascade == "background":
            uid = obj["metadata"].get("uid")
            for k, pod in list(self.objects.items()):
                if k[0] == "Pod" and any(r.get("uid") == uid for r in pod["metadata"].get("ownerReferences", [])):
                    del self.objects[k]
        return outcomes

    def _relabel(self, obj: dict[str, Any], req: ApiRequest) -> None:
        field = "labels" if req.verb is Verb.LABEL else "annotations"
        current = obj["metadata"].setdefault(field, {})
        for key, value in (req.labels or {}).items():
            if value is not None and current.get(key, value) != value and not req.overwrite:
                raise ValueError("Invalid", f"'{key}' already has a value ({current[key]}), and --overwrite is false")
        for key, value in (req.labels or {}).items():
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value

    def _drain(self, node: dict[str, Any]) -> list[Outcome]:
        node.setdefault("spec", {})["unschedulable"] = True
        outcomes = []
        for key, pod in sorted(self.objects.items()):
            if key[0] == "Pod" and pod["spec"].get("nodeName") == node["metadata"]["name"]:
                outcomes += self._delete(key, "background")
        return outcomes

    def _handle(self, req: ApiRequest) -> ApiResponse:
        ns = "" if req.kind == "Node" else (req.namespace or "default")
        key = (req.kind or "", ns, req.name or "")
        if req.verb is Verb.APPLY:
            return self._apply(req)
        if req.verb is Verb.LIST:
            return self._list(req)
        if key not in self.objects:
            raise LookupError(key)
        obj = self.objects[key]
        before = json.dumps(obj, sort_keys=True)
        match req.verb:
            case Verb.GET:
                return ApiResponse(ok=True, object=obj)
            case Verb.DELETE:
                return ApiResponse(ok=True, outcomes=self._delete(key, req.cascade))
            case Verb.SCALE:
                if req.kind not in ("ReplicationController", "ReplicaSet"):
                    raise ValueError("Invalid", f"kind: {req.kind} cannot be scaled")
                obj["spec"]["replicas"] = req.replicas
            case Verb.LABEL | Verb.ANNOTATE:
                self._relabel(obj, req)
            case Verb.CORDON | Verb.UNCORDON:
                obj.setdefault("spec", {})["unschedulable"] = req.verb is Verb.CORDON
            case Verb.DRAIN:
                return ApiResponse(ok=True, object=obj, outcomes=self._drain(obj))
            case _:
                return ApiResponse(ok=True, text=self.logs_text)
        # As the real master: the updated object, and an outcome saying whether anything changed.
        action = "unchanged" if json.dumps(obj, sort_keys=True) == before else "updated"
        outcome = Outcome(kind=key[0], namespace=ns, name=key[2], action=action)
        return ApiResponse(ok=True, object=obj, outcomes=[outcome])


@pytest.fixture
def master() -> FakeMaster:
    return FakeMaster()


def ekctl(master: FakeMaster, *argv: str) -> int:
    return run(list(argv), connector=master.connect)


def manifest(tmp_path: Path, name: str = "hello", app: str = "x", file: str = "pod.yaml") -> Path:
    path = tmp_path / file
    path.write_text(POD_YAML.format(name=name, app=app))
    return path


def test_apply_created_unchanged_configured(master: FakeMaster, tmp_path: Path, capsys: Capture) -> None:
    path = manifest(tmp_path)
    assert ekctl(master, "apply", "-f", str(path)) == 0
    assert capsys.readouterr().out == "pod/hello created\n"
    assert ekctl(master, "apply", "-f", str(path)) == 0
    assert capsys.readouterr().out == "pod/hello unchanged\n"
    manifest(tmp_path, app="y")
    assert ekctl(master, "apply", "-f", str(path)) == 0
    assert capsys.readouterr().out == "pod/hello configured\n"
    assert master.closed


def test_apply_directory_in_sorted_order_one_request_per_file(
    master: FakeMaster, tmp_path: Path, capsys: Capture
) -> None:
    manifest(tmp_path, "b", file="b.yaml")
    manifest(tmp_path, "a", file="a.yml")
    (tmp_path / "c.json").write_text(json.dumps(yaml.safe_load(POD_YAML.format(name="c", app="x"))))
    (tmp_path / "notes.txt").write_text("not a manifest")
    assert ekctl(master, "apply", "-f", str(tmp_path)) == 0
    assert capsys.readouterr().out == "pod/a created\npod/b created\npod/c created\n"
    assert [r.verb for r in master.requests] == [Verb.APPLY] * 3


def test_apply_from_stdin(master: FakeMaster, monkeypatch: pytest.MonkeyPatch, capsys: Capture) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(POD_YAML.format(name="s", app="x").encode())))
    assert ekctl(master, "apply", "-f", "-") == 0
    assert capsys.readouterr().out == "pod/s created\n"


def test_apply_validates_everything_before_sending(master: FakeMaster, tmp_path: Path, capsys: Capture) -> None:
    good = manifest(tmp_path, "good", file="a.yaml")
    bad = tmp_path / "b.yaml"
    bad.write_text(POD_YAML.format(name="ok", app="x") + "---\n" + POD_YAML.format(name="Bad_Name", app="x"))
    assert ekctl(master, "apply", "-f", str(good), "-f", str(bad)) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"error: {bad}[1]: metadata.name")
    assert err[1] == f"hint: run `ekctl lint {bad}` to list every problem"
    assert len(err) == 2
    assert master.requests == []


def test_apply_missing_path(master: FakeMaster, capsys: Capture) -> None:
    assert ekctl(master, "apply", "-f", "/nonexistent/x.yaml") == 1
    assert capsys.readouterr().err == 'error: the path "/nonexistent/x.yaml" does not exist\n'


def test_apply_with_namespace_flag_fills_and_checks(master: FakeMaster, tmp_path: Path, capsys: Capture) -> None:
    path = manifest(tmp_path)
    assert ekctl(master, "apply", "-n", "lab", "-f", str(path)) == 0
    assert ("Pod", "lab", "hello") in master.objects
    other = tmp_path / "other.yaml"
    other.write_text(POD_YAML.format(name="o", app="x").replace("  name: o", "  name: o\n  namespace: prod"))
    assert ekctl(master, "-n", "lab", "apply", "-f", str(other)) == 1
    assert 'does not match the namespace "lab"' in capsys.readouterr().err


def test_get_pods_table_selector_and_empty(master: FakeMaster, tmp_path: Path, capsys: Capture) -> None:
    ekctl(master, "apply", "-f", str(manifest(tmp_path, "a", "x", "a.yaml")))
    ekctl(master, "apply", "-f", str(manifest(tmp_path, "b", "y", "b.yaml")))
    capsys.readouterr()
    assert ekctl(master, "get", "pods") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [line.split()[:4] for line in lines[1:]] == [["a", "0/2", "Pending", "0"], ["b", "0/2", "Pending", "0"]]
    assert ekctl(master, "get", "po", "-l", "app=y", "-o", "name") == 0
    assert capsys.readouterr().out == "pod/b\n"
    assert master.requests[-1].selector == "app=y"
    assert ekctl(master, "get", "pods", "-l", "app=none") == 0
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "No resources found in default namespace.\n")
    assert ekctl(master, "get", "pods", "-A") == 0
    assert master.requests[-1].namespace is None


def test_get_bad_selector_is_refused_locally(master: FakeMaster, capsys: Capture) -> None:
    assert ekctl(master, "get", "pods", "-l", "app in (x") == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith('error: selector "app in (x":')
    assert err[1].startswith("hint: selector syntax")
    assert master.requests == []


def test_get_by_name_json_yaml_and_not_found(master: FakeMaster, tmp_path: Path, capsys: Capture) -> None:
    ekctl(master, "apply", "-f", str(manifest(tmp_path)))
    capsys.readouterr()
    assert ekctl(master, "get", "pod", "hello", "-o", "json") == 0
    assert json.loads(capsys.readouterr().out)["metadata"]["name"] == "hello"
    assert ekctl(master, "get", "pod/hello", "-o", "yaml") == 0
    assert yaml.safe_load(capsys.readouterr().out)["kind"] == "Pod"
    assert ekctl(master, "get", "pod", "nope") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        'error: pods "nope" not found in namespace "default"',
        "hint: list them with `ekctl get pods`",
    ]


def test_get_name_with_selector_is_an_error(master: FakeMaster, capsys: Capture) -> None:
    assert ekctl(master, "get", "pod", "x", "-l", "a=b") == 1
    assert "name cannot be provided when a selector is specified" in capsys.readouterr().err


def test_unknown_resource_type(master: FakeMaster, capsys: Capture) -> None:
    assert ekctl(master, "get", "deployments") == 1
    assert capsys.readouterr().err.splitlines() == [
        'error: the server doesn\'t have a resource type "deployments"',
        "hint: resource types: pods (po), nodes (no), replicationcontrollers (rc), replicasets (rs), events (ev)",
    ]


def test_delete_by_name_and_by_file(master: FakeMaster, tmp_path: Path, capsys: Capture) -> None:
    path = manifest(tmp_path)
    ekctl(master, "apply", "-f", str(path))
    capsys.readouterr()
    assert ekctl(master, "delete", "pod", "hello") == 0
    assert capsys.readouterr().out == 'pod "hello" deleted\n'
    assert ekctl(master, "delete", "pod", "hello") == 1
    assert capsys.readouterr().err.startswith('error: pods "hello" not found')
    assert ekctl(master, "delete", "pod", "hello", "--ignore-not-found") == 0
    ekctl(master, "apply", "-f", str(path))
    capsys.readouterr()
    assert ekctl(master, "delete", "-f", str(path)) == 0
    assert capsys.readouterr().out == 'pod "hello" deleted\n'


def test_delete_by_selector(master: FakeMaster, tmp_path: Path, capsys: Capture) -> None:
    ekctl(master, "apply", "-f", str(manifest(tmp_path, "a", "x", "a.yaml")))
    ekctl(master, "apply", "-f", str(manifest(tmp_path, "b", "y", "b.yaml")))
    capsys.readouterr()
    assert ekctl(master, "delete", "pods", "-l", "app=x") == 0
    assert capsys.readouterr().out == 'pod "a" deleted\n'
    assert [k[2] for k in master.objects] == ["b"]


def test_delete_needs_a_name(master: FakeMaster, capsys: Capture) -> None:
    assert ekctl(master, "delete", "pod") == 1
    assert "no name was specified" in capsys.readouterr().err


def test_describe_pod_and_node(master: FakeMaster, tmp_path: Path, capsys: Capture) -> None:
    ekctl(master, "apply", "-f", str(manifest(tmp_path)))
    master.objects[("Pod", "default", "hello")]["spec"]["nodeName"] = "pi-1"
    master.objects[("Node", "", "pi-1")] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "pi-1", "namespace": ""},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": {"cpu": "4"}},
    }
    capsys.readouterr()
    assert ekctl(master, "describe", "pod", "hello") == 0
    out = capsys.readouterr().out
    assert "Name:         hello" in out and "Node:         pi-1" in out and "Labels:       app=x" in out
    web = out.splitlines().index("  web:")
    assert out.splitlines()[web + 1].split() == ["Image:", "busybox:1.36"]
    assert ekctl(master, "describe", "node", "pi-1") == 0
    out = capsys.readouterr().out
    assert "Non-terminated Pods:" in out and "(1 in total)" in out
    assert any(line.split()[:2] == ["default", "hello"] for line in out.splitlines())


def test_logs_defaults_to_first_container(master: FakeMaster, tmp_path: Path, capsys: Capture) -> None:
    ekctl(master, "apply", "-f", str(manifest(tmp_path)))
    capsys.readouterr()
    assert ekctl(master, "logs", "hello", "--tail", "5") == 0
    captured = capsys.readouterr()
    assert captured.out == "line 1\nline 2\n"
    assert captured.err == 'Defaulted container "web" out of: web, side\n'
    req = master.requests[-1]
    assert (req.verb, req.name, req.container, req.tail) == (Verb.LOGS, "hello", "web", 5)
    assert ekctl(master, "logs", "pod/hello", "-c", "side") == 0
    assert master.requests[-1].container == "side" and master.requests[-1].tail is None


def test_apply_wait_reports_progress_until_running(
    master: FakeMaster, tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    polls = 0

    def fake_sleep(_seconds: float) -> None:
        nonlocal polls
        polls += 1
        pod = master.objects[("Pod", "default", "hello")]
        running: dict[str, Any] = {"running": {}}
        pod["status"] = {
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

    monkeypatch.setattr(wait, "pause", fake_sleep)
    assert ekctl(master, "apply", "--wait", "-f", str(manifest(tmp_path))) == 0
    captured = capsys.readouterr()
    assert captured.out == "pod/hello created\n"
    progress = captured.err.splitlines()
    assert progress[0].startswith("waiting for 1/1 pod(s) to run (0s): hello Pending 0/2")
    assert "hello ContainerCreating 1/2" in progress[1]
    assert progress[-1].startswith("1 pod(s) running after")


def test_apply_wait_times_out_with_hint(
    master: FakeMaster, tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wait, "pause", lambda _s: None)
    assert ekctl(master, "apply", "--wait", "--wait-timeout", "0.01", "-f", str(manifest(tmp_path))) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-2].startswith("error: timed out after 0.01s waiting for 1 pod(s) to run: hello Pending 0/2")
    assert err[-1].startswith("hint: see `ekctl describe pod hello`")


def test_lint_lists_every_problem(master: FakeMaster, tmp_path: Path, capsys: Capture) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        POD_YAML.format(name="Bad_Name", app="x")
        + "---\n"
        + POD_YAML.format(name="fine", app="x")
        + "---\napiVersion: v1\nkind: Pod\nmetadata: {name: nospec}\n"
    )
    good = manifest(tmp_path, file="good.yaml")
    assert ekctl(master, "lint", str(bad), str(good)) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].startswith(f"{bad}[doc 0]: metadata.name")
    assert lines[-1] == f"{bad}[doc 2]: spec: Required value"
    assert captured.err == f"error: {len(lines)} problem(s) in 1 of 2 file(s)\n"
    assert ekctl(master, "lint", str(good), str(tmp_path / "good.yaml")) == 0
    assert capsys.readouterr().out == "2 document(s) OK\n"
    assert master.requests == []


def test_lint_reports_yaml_syntax_and_missing_files(tmp_path: Path, capsys: Capture) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: Pod\nmetadata: [\n")
    assert run(["lint", str(broken), str(tmp_path / "missing.yaml")]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{broken}: invalid YAML at line")
    assert lines[1] == f'the path "{tmp_path / "missing.yaml"}" does not exist'


def test_delete_file_honours_namespace_flag(master: FakeMaster, tmp_path: Path, capsys: Capture) -> None:
    path = manifest(tmp_path)
    ekctl(master, "apply", "-n", "lab", "-f", str(path))
    capsys.readouterr()
    assert ekctl(master, "delete", "-n", "lab", "-f", str(path)) == 0
    assert capsys.readouterr().out == 'pod "hello" deleted\n'
    assert (master.requests[-1].namespace, master.objects) == ("lab", {})


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
    master: FakeMaster, tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(_seconds: float) -> None:
        master.objects[("Pod", "default", "hello")]["status"] = {"phase": "Failed", "reason": "ErrImagePull"}

    monkeypatch.setattr(wait, "pause", fail)
    assert ekctl(master, "apply", "--wait", "-f", str(manifest(tmp_path))) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-2] == "error: pod default/hello failed: ErrImagePull 0/2"
    assert err[-1] == "hint: see `ekctl describe pod hello` and `ekctl logs hello`"


class PagingSession:
    """A master answering lists in pages of `size` items (fewer than the client asks for), with tokens."""

    def __init__(self, items: list[dict[str, Any]], size: int) -> None:
        self.items, self.size = items, size
        self.requests: list[ApiRequest] = []

    def call(self, request: ApiRequest, timeout: float | None = None) -> ApiResponse:
        request = ApiRequest.decode(request.encode())
        self.requests.append(request)
        start = int(request.continue_token or 0)
        end = start + min(self.size, request.limit or len(self.items))
        more = end < len(self.items)
        return ApiResponse(
            ok=True,
            items=self.items[start:end],
            continue_token=str(end) if more else None,
            remaining_item_count=len(self.items) - min(end, len(self.items)),
        )

    def close(self) -> None:
        pass


def test_query_follows_continue_tokens_and_reports_progress() -> None:
    pods = [{"kind": "Pod", "metadata": {"name": f"p{n}", "namespace": "default"}} for n in range(7)]
    session = PagingSession(pods, size=3)
    progress: list[tuple[int, int]] = []
    found = Client(session).query(POD, "default", progress=lambda done, total: progress.append((done, total)))
    assert [p["metadata"]["name"] for p in found] == [f"p{n}" for n in range(7)]
    assert [r.limit for r in session.requests] == [PAGE_SIZE] * 3
    assert [r.continue_token for r in session.requests] == [None, "3", "6"]
    assert progress == [(3, 7), (6, 7)]
