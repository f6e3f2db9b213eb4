"""Unit tests of ekctl's controller and node verbs (get rc/rs/events, scale, label, annotate, cordon, drain, delete
--cascade, describe rc) against the in-memory fake master."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from edgekube.cli import pending
from edgekube.cli.main import run
from edgekube.model.errors import BusError
from edgekube.model.wire import ApiRequest, ApiResponse, Verb
from tests.unit.test_cli_commands import FakeMaster

Capture = pytest.CaptureFixture[str]
CONTROLLERS = """\
apiVersion: v1
kind: ReplicationController
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "nginx:1.25"}]}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: front}
spec:
  replicas: 1
  selector: {matchLabels: {tier: front}}
  template:
    metadata: {labels: {tier: front}}
    spec: {containers: [{name: a, image: busybox}]}
"""


def pod(
    name: str,
    *,
    node: str = "pi-1",
    owner: str | None = None,
    labels: dict[str, str] | None = None,
    namespace: str = "default",
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": f"uid-{name}", "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [
            {
                "apiVersion": "v1",
                "kind": "ReplicationController",
                "name": owner,
                "uid": f"uid-{owner}",
                "controller": True,
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"nodeName": node, "containers": [{"name": "web", "image": "nginx:1.25"}]},
        "status": {"phase": "Running"},
    }


def node(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "namespace": "", "labels": {}},
        "spec": {},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


def event(name: str, kind: str, about: str, reason: str, last: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": "default"},
        "involvedObject": {"kind": kind, "name": about, "namespace": "default" if kind != "Node" else ""},
        "reason": reason,
        "message": f"{reason} {about}",
        "type": "Normal",
        "source": {"component": "controller"},
        "count": 1,
        "firstTimestamp": last,
        "lastTimestamp": last,
    }


@pytest.fixture
def master(tmp_path: Path) -> FakeMaster:
    """A cluster with rc/web (two pods on pi-1), rs/front, node pi-1 and pi-2, and a few events."""
    fake = FakeMaster()
    path = tmp_path / "controllers.yaml"
    path.write_text(CONTROLLERS)
    assert run(["apply", "-f", str(path)], connector=fake.connect) == 0
    fake.add(pod("web-a", owner="web", labels={"app": "web"}))
    fake.add(pod("web-b", owner="web", labels={"app": "web"}))
    fake.add(pod("solo", node="pi-2", labels={"app": "solo"}))
    fake.add(node("pi-1"))
    fake.add(node("pi-2"))
    fake.add(event("e2", "Pod", "web-a", "Started", "2024-05-01T11:58:00Z"))
    fake.add(event("e1", "ReplicationController", "web", "SuccessfulCreate", "2024-05-01T11:57:00Z"))
    fake.add(event("e3", "Node", "pi-1", "NodeReady", "2024-05-01T11:59:00Z"))
    fake.requests.clear()
    return fake


def ekctl(master: FakeMaster, *argv: str) -> int:
    return run(list(argv), connector=master.connect)


def test_apply_prints_qualified_kinds(tmp_path: Path, capsys: Capture) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CONTROLLERS)
    assert ekctl(FakeMaster(), "apply", "-f", str(path)) == 0
    assert capsys.readouterr().out == "replicationcontroller/web created\nreplicaset.apps/front created\n"


@pytest.mark.parametrize(
    ("argv", "first_column"),
    [
        (["get", "rc"], ["NAME", "web"]),
        (["get", "replicasets"], ["NAME", "front"]),
        (["get", "rc,rs"], ["NAME", "replicationcontroller/web", "", "NAME", "replicaset.apps/front"]),
        (["get", "rc/web", "rs/front"], ["NAME", "replicationcontroller/web", "", "NAME", "replicaset.apps/front"]),
        (["get", "events", "-o", "name"], ["event/e1", "event/e2", "event/e3"]),
        (["get", "pods,nodes", "-l", "app=solo"], ["NAME", "solo"]),
    ],
)
def test_get_new_kinds_and_several(
    master: FakeMaster, argv: list[str], first_column: list[str], capsys: Capture
) -> None:
    assert ekctl(master, *argv) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] if line else "" for line in out.splitlines()] == first_column


def test_get_events_sorted_by_last_seen_with_object(master: FakeMaster, capsys: Capture) -> None:
    assert ekctl(master, "get", "ev", "-A") == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert [(row[3], row[4]) for row in rows] == [
        ("SuccessfulCreate", "replicationcontroller/web"),
        ("Started", "pod/web-a"),
        ("NodeReady", "node/pi-1"),
    ]
    assert master.requests[-1].namespace is None


def test_get_several_kinds_none_found(master: FakeMaster, capsys: Capture) -> None:
    assert ekctl(master, "get", "rc,rs", "-n", "empty") == 0
    assert capsys.readouterr().err == "No resources found in empty namespace.\n"
    assert [r.kind for r in master.requests] == ["ReplicationController", "ReplicaSet"]


def test_get_several_kinds_reports_each_missing_name(master: FakeMaster, capsys: Capture) -> None:
    assert ekctl(master, "get", "rc,rs", "web", "-o", "name") == 1
    captured = capsys.readouterr()
    assert captured.out == "replicationcontroller/web\n"
    assert captured.err.splitlines()[0] == 'error: replicasets.apps "web" not found in namespace "default"'


@pytest.mark.parametrize(
    ("argv", "out", "replicas"),
    [
        (["scale", "rc", "web", "--replicas=5"], "replicationcontroller/web scaled\n", 5),
        (["scale", "rs/front", "--replicas", "0"], "replicaset.apps/front scaled\n", 0),
        (["scale", "--replicas=3", "replicationcontrollers", "web"], "replicationcontroller/web scaled\n", 3),
        (["scale", "rc", "-l", "app=web", "--replicas=4"], "replicationcontroller/web scaled\n", 4),
    ],
)
def test_scale(master: FakeMaster, argv: list[str], out: str, replicas: int, capsys: Capture) -> None:
    assert ekctl(master, *argv) == 0
    assert capsys.readouterr().out == out
    request = master.requests[-1]
    assert (request.verb, request.replicas) == (Verb.SCALE, replicas)


@pytest.mark.parametrize(
    ("argv", "exit_code", "err"),
    [
        (
            ["scale", "pod", "web-a", "--replicas=1"],
            1,
            "error: scale: pods are not supported\n"
            "hint: scale works on replicationcontrollers (rc), replicasets (rs)\n",
        ),
        (
            ["scale", "rc", "nope", "--replicas=1"],
            1,
            'error: replicationcontrollers "nope" not found in namespace "default"\n'
            "hint: list them with `ekctl get replicationcontrollers`\n",
        ),
        (["scale", "rc", "web"], 2, "the following arguments are required: --replicas"),
        (["scale", "rc", "web", "--replicas=-1"], 2, "the replica count must be an integer >= 0"),
        (["scale", "rc", "--replicas=1"], 1, "no name was specified"),
    ],
)
def test_scale_errors(master: FakeMaster, argv: list[str], exit_code: int, err: str, capsys: Capture) -> None:
    assert ekctl(master, *argv) == exit_code
    captured = capsys.readouterr()
    assert err in captured.err and "Traceback" not in captured.err
    assert all(r.verb is not Verb.SCALE or r.name == "nope" for r in master.requests)


@pytest.mark.parametrize(
    ("argv", "out", "changes", "overwrite"),
    [
        (["label", "pod", "web-a", "tier=x", "app-"], "pod/web-a labeled\n", {"tier": "x", "app": None}, False),
        (["label", "pods", "web-a", "app-"], "pod/web-a unlabeled\n", {"app": None}, False),
        (["label", "pod", "web-a", "--overwrite", "app=v2"], "pod/web-a labeled\n", {"app": "v2"}, True),
        (
            ["label", "pod", "web-a", "web-b", "x.io/t=1"],
            "pod/web-a labeled\npod/web-b labeled\n",
            {"x.io/t": "1"},
            False,
        ),
        (["label", "pods", "-l", "app=web", "team=a"], "pod/web-a labeled\npod/web-b labeled\n", {"team": "a"}, False),
        (["label", "node/pi-1", "zone=lab"], "node/pi-1 labeled\n", {"zone": "lab"}, False),
        (["label", "rs", "front", "zone="], "replicaset.apps/front labeled\n", {"zone": ""}, False),
        (
            ["annotate", "rc", "web", "note=hello world", "Example.com/Owner=me"],
            "replicationcontroller/web annotated\n",
            {"note": "hello world", "Example.com/Owner": "me"},
            False,
        ),
        (["annotate", "pod", "web-a", "note-"], "pod/web-a annotated\n", {"note": None}, False),
    ],
)
def test_label_and_annotate(
    master: FakeMaster, argv: list[str], out: str, changes: dict[str, str | None], overwrite: bool, capsys: Capture
) -> None:
    assert ekctl(master, *argv) == 0
    assert capsys.readouterr().out == out
    request = master.requests[-1]
    assert (request.verb.value, request.labels, request.overwrite) == (argv[0], changes, overwrite)


def test_label_changes_reach_the_object(master: FakeMaster, capsys: Capture) -> None:
    assert ekctl(master, "label", "pod", "web-a", "tier=x", "app-") == 0
    assert master.objects[("Pod", "default", "web-a")]["metadata"]["labels"] == {"tier": "x"}


@pytest.mark.parametrize(
    ("argv", "err"),
    [
        (["label", "pod", "web-a", "a b=c"], "error: invalid label 'a b=c': labels[\"a b\"]: invalid key: name part"),
        (["label", "pod", "web-a", "app=x y"], 'invalid label \'app=x y\': labels["app"]: invalid value "x y"'),
        (["label", "pod", "web-a", "a=b=c"], "error: invalid label spec: a=b=c"),
        (["label", "pod", "web-a", "=x"], "invalid label '=x': labels[\"\"]: invalid key: name part must be non-empty"),
        (["label", "pod", "web-a", f"{'k' * 64}=v"], "name part must be no more than 63 characters"),
        (["annotate", "pod", "web-a", "Bad_/x=1"], "error: invalid annotation 'Bad_/x=1': annotations[\"Bad_/x\"]"),
        (["label", "pod", "web-a", "a=1", "a-"], "error: can not both modify and remove label 'a' in the same command"),
        (["label", "pod", "web-a"], "error: at least one label update is required"),
        (["label", "events", "e1", "a=b"], "error: label: events are not supported"),
        (["label", "pod", "a=b"], "error: resource(s) were provided, but no name was specified"),
        (["label", "pod", "web-a", "-l", "app=web", "a=b"], "name cannot be provided when a selector is specified"),
    ],
)
def test_label_refused_locally(master: FakeMaster, argv: list[str], err: str, capsys: Capture) -> None:
    assert ekctl(master, *argv) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("error: ") and err in lines[0]
    assert len(lines) <= 2
    assert master.requests == []


def test_label_conflict_from_master_gets_overwrite_hint_and_continues(master: FakeMaster, capsys: Capture) -> None:
    assert ekctl(master, "label", "pods", "web-a", "nope", "web-b", "app=v2") == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "error: 'app' already has a value (web), and --overwrite is false",
        "hint: add --overwrite to replace existing values",
        'error: pods "nope" not found in namespace "default"',
        "hint: list them with `ekctl get pods`",
        "error: 'app' already has a value (web), and --overwrite is false",
        "hint: add --overwrite to replace existing values",
    ]
    assert [r.name for r in master.requests] == ["web-a", "nope", "web-b"]


def test_a_lost_master_stops_the_loop(master: FakeMaster, capsys: Capture, monkeypatch: pytest.MonkeyPatch) -> None:
    def gone(request: ApiRequest, timeout: float | None = None) -> ApiResponse:
        master.requests.append(request)
        raise BusError("no answer on edgekube/v1/api/request within 1s", hint="is the edgekube master running?")

    monkeypatch.setattr(master, "call", gone)
    assert ekctl(master, "label", "pods", "web-a", "web-b", "x=1") == 1
    assert capsys.readouterr().err.splitlines()[0] == "error: no answer on edgekube/v1/api/request within 1s"
    assert len(master.requests) == 1


@pytest.mark.parametrize(
    ("argv", "out", "verb", "unschedulable"),
    [
        (["cordon", "pi-1"], "node/pi-1 cordoned\n", Verb.CORDON, True),
        (["uncordon", "node/pi-1"], "node/pi-1 uncordoned\n", Verb.UNCORDON, False),
        (["cordon", "pi-1", "pi-2"], "node/pi-1 cordoned\nnode/pi-2 cordoned\n", Verb.CORDON, True),
    ],
)
def test_cordon_uncordon(
    master: FakeMaster, argv: list[str], out: str, verb: Verb, unschedulable: bool, capsys: Capture
) -> None:
    assert ekctl(master, *argv) == 0
    assert capsys.readouterr().out == out
    assert master.requests[-1].verb is verb
    assert master.objects[("Node", "", "pi-1")]["spec"]["unschedulable"] is unschedulable


@pytest.mark.parametrize(
    ("argv", "err"),
    [
        (["cordon"], "error: cordon: no node name was given\nhint: usage: ekctl cordon NODE... or -l SELECTOR\n"),
        (["drain", "pod/web-a"], "error: drain: pods are not supported\nhint: drain works on nodes (no)\n"),
        (["uncordon", "nope"], 'error: nodes "nope" not found\nhint: list them with `ekctl get nodes`\n'),
    ],
)
def test_node_verb_errors(master: FakeMaster, argv: list[str], err: str, capsys: Capture) -> None:
    assert ekctl(master, *argv) == 1
    assert capsys.readouterr().err == err


def test_drain_prints_cordoned_evictions_drained(master: FakeMaster, capsys: Capture) -> None:
    assert ekctl(master, "drain", "pi-1") == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "node/pi-1 cordoned",
        "evicting pod default/web-a",
        "evicting pod default/web-b",
        "node/pi-1 drained",
    ]
    assert captured.err == ""
    assert master.requests[-1].verb is Verb.DRAIN
    assert master.timeouts[-1] == 60.0  # drain may take longer than --timeout's default of 10 s
    assert ("Pod", "default", "solo") in master.objects and ("Pod", "default", "web-a") not in master.objects


def test_drain_shows_progress_while_waiting(
    master: FakeMaster, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pending, "DELAY", 0.01)
    monkeypatch.setattr(pending, "TICK", 0.01)
    handle = master.call
    answered = threading.Event()

    def slow(request: ApiRequest, timeout: float | None = None) -> ApiResponse:
        time.sleep(0.1)
        answered.set()
        return handle(request, timeout)

    monkeypatch.setattr(master, "call", slow)
    assert ekctl(master, "--timeout", "90", "drain", "pi-2") == 0
    captured = capsys.readouterr()
    assert answered.is_set()
    assert captured.err == "draining node/pi-2 (0s)\n"  # off a terminal the line is printed once
    assert captured.out.splitlines() == ["node/pi-2 cordoned", "evicting pod default/solo", "node/pi-2 drained"]
    assert master.timeouts[-1] == 90.0


def test_drain_error_from_the_worker_thread_is_one_line(
    master: FakeMaster, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(request: ApiRequest, timeout: float | None = None) -> ApiResponse:
        raise RuntimeError("boom")

    monkeypatch.setattr(master, "call", refuse)
    assert ekctl(master, "drain", "pi-1") == 1
    assert capsys.readouterr().err == "error: unexpected RuntimeError: boom\nhint: rerun with --debug for a traceback\n"


@pytest.mark.parametrize(
    ("flags", "cascade", "pods_left"),
    [
        ([], "background", []),
        (["--cascade=background"], "background", []),
        (["--cascade"], "background", []),
        (["--cascade=orphan"], "orphan", ["web-a", "web-b"]),
        (["--cascade=false"], "orphan", ["web-a", "web-b"]),
        (["--cascade=true"], "background", []),
    ],
)
def test_delete_cascade(
    master: FakeMaster, flags: list[str], cascade: str, pods_left: list[str], capsys: Capture
) -> None:
    assert ekctl(master, "delete", "rc", "web", *flags) == 0
    assert capsys.readouterr().out == 'replicationcontroller "web" deleted\n'
    assert master.requests[-1].cascade == cascade
    assert sorted(k[2] for k in master.objects if k[0] == "Pod" and k[2] != "solo") == pods_left


def test_delete_rejects_foreground_before_sending(master: FakeMaster, capsys: Capture) -> None:
    assert ekctl(master, "delete", "rc", "web", "--cascade=foreground") == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == 'error: invalid --cascade value "foreground": supported values: background, orphan'
    assert master.requests == []


def test_delete_several_kinds(master: FakeMaster, capsys: Capture) -> None:
    assert ekctl(master, "delete", "rc/web", "rs/front") == 0
    assert capsys.readouterr().out == 'replicationcontroller "web" deleted\nreplicaset.apps "front" deleted\n'


def test_names_after_flags_join_the_positionals(master: FakeMaster, capsys: Capture) -> None:
    assert ekctl(master, "label", "pod", "web-a", "--overwrite", "app=v3") == 0
    assert master.requests[-1].labels == {"app": "v3"}
    assert ekctl(master, "get", "pods", "-o", "name", "web-a", "web-b") == 0
    assert capsys.readouterr().out.endswith("pod/web-a\npod/web-b\n")
    assert ekctl(master, "get", "pods", "-o", "name", "--bogus") == 2


def test_describe_rc_with_owned_pods_and_events(master: FakeMaster, capsys: Capture) -> None:
    assert ekctl(master, "describe", "rc", "web") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["Name:", "web"]
    assert "Replicas:     0 current / 2 desired" in lines
    assert "Pods Status:  2 Running / 0 Waiting / 0 Succeeded / 0 Failed" in lines
    assert lines[-1].split()[:2] == ["Normal", "SuccessfulCreate"]
    kinds = [(r.verb, r.kind) for r in master.requests]
    assert kinds == [(Verb.GET, "ReplicationController"), (Verb.LIST, "Event"), (Verb.LIST, "Pod")]


def test_describe_pod_and_node_end_with_their_events(master: FakeMaster, capsys: Capture) -> None:
    assert ekctl(master, "describe", "pod", "web-a", "web-b") == 0
    out = capsys.readouterr().out
    assert "Controlled By:  ReplicationController/web" in out
    first, second = out.split("\n\n\n")
    assert first.splitlines()[-1].split()[:2] == ["Normal", "Started"]
    assert second.splitlines()[-1].split() == ["Events:", "<none>"]
    assert [r.kind for r in master.requests].count("Event") == 1  # listed once, filtered per pod
    assert ekctl(master, "describe", "node", "pi-1") == 0
    assert capsys.readouterr().out.splitlines()[-1].split()[:2] == ["Normal", "NodeReady"]
    assert master.requests[-2].namespace is None  # node events may be in any namespace


def test_describe_without_event_support_leaves_the_section_out(
    master: FakeMaster, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = master.call

    def no_events(request: ApiRequest, timeout: float | None = None) -> ApiResponse:
        if request.kind == "Event":
            request = request.model_copy(update={"kind": "Unknown"})
        return handle(request, timeout)

    monkeypatch.setattr(master, "call", no_events)
    assert ekctl(master, "describe", "pod", "web-a") == 0
    captured = capsys.readouterr()
    assert "Events:" not in captured.out and captured.err == ""


def test_describe_several_kinds_and_unsupported(master: FakeMaster, capsys: Capture) -> None:
    assert ekctl(master, "describe", "rc,rs") == 0
    out = capsys.readouterr().out
    assert "Name:         web" in out and "Name:         front" in out
    assert ekctl(master, "describe", "events") == 1
    assert capsys.readouterr().err.startswith("error: describe: events are not supported")


@pytest.mark.parametrize(
    ("argv", "again"),
    [
        (["cordon", "pi-1"], "node/pi-1 already cordoned\n"),
        (["label", "pod", "web-a", "app=web"], "pod/web-a not labeled\n"),
        (["label", "pod", "web-a", "nothere-"], "pod/web-a not labeled\n"),
        (["annotate", "rc", "web", "a=b"], "replicationcontroller/web annotated\n"),
        (["scale", "rc", "web", "--replicas=2"], "replicationcontroller/web scaled\n"),
    ],
)
def test_repeated_edits_say_what_kubectl_says(master: FakeMaster, argv: list[str], again: str, capsys: Capture) -> None:
    assert ekctl(master, *argv) == 0
    assert ekctl(master, *argv) == 0
    assert capsys.readouterr().out.splitlines()[-1] + "\n" == again
    assert master.requests[-1].verb.value == argv[0]
