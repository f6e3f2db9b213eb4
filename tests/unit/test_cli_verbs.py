"""Unit tests of ekctl's controller and node verbs (get rc/rs/events, scale, label, annotate, cordon, drain, delete
--cascade, describe rc) against the real master and agents on the in-memory bus (tests/support/apiserver.py)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.cli import pending, wait
from edgekube.cli.client import BusSession
from edgekube.model.types import Obj
from edgekube.model.wire import ApiRequest, ApiResponse, Outcome, Verb
from tests.support.apiserver import ApiServer

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


PODS = """\
apiVersion: v1
kind: Pod
metadata: {name: web-a, labels: {app: web}}
spec: {nodeName: pi-1, containers: [{name: web, image: "nginx:1.25"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: web-b, labels: {app: web}}
spec: {nodeName: pi-1, containers: [{name: web, image: "nginx:1.25"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: solo, labels: {app: solo}}
spec: {nodeName: pi-2, containers: [{name: web, image: "nginx:1.25"}]}
"""


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
def server(tmp_path: Path) -> Iterator[ApiServer]:
    """Real agents pi-1 and pi-2 running web-a and web-b (on pi-1, adopted by rc/web), solo (on pi-2) and the pod
    rs/front creates; three events pi-1 reported, out of order."""
    with ApiServer(tmp_path / "cluster") as api:
        api.add_node("pi-1")
        api.add_node("pi-2")
        api.apply(PODS)
        api.apply(CONTROLLERS)
        api.report_events(
            "pi-1",
            event("e2", "Pod", "web-a", "Started", "2024-05-01T11:58:00Z"),
            event("e1", "ReplicationController", "web", "SuccessfulCreate", "2024-05-01T11:57:00Z"),
            event("e3", "Node", "pi-1", "NodeReady", "2024-05-01T11:59:00Z"),
        )
        yield api


def ekctl(server: ApiServer, *argv: str) -> int:
    return server.ekctl(*argv)


def pods(server: ApiServer, **labels: str) -> list[str]:
    """Names of the stored pods carrying `labels`."""
    found = server.master.store.objects("Pod").items()
    return sorted(name for (_, name), p in found if labels.items() <= p["metadata"].get("labels", {}).items())


def front_pod(server: ApiServer) -> Obj:
    [pod] = [p for p in server.master.store.objects("Pod").values() if p["metadata"]["labels"] == {"tier": "front"}]
    return pod


def test_apply_prints_qualified_kinds(tmp_path: Path, capsys: Capture) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(CONTROLLERS)
    with ApiServer(tmp_path / "fresh") as fresh:
        assert ekctl(fresh, "apply", "-f", str(path)) == 0
    assert capsys.readouterr().out == "replicationcontroller/web created\nreplicaset.apps/front created\n"


@pytest.mark.parametrize(
    ("argv", "first_column"),
    [
        (["get", "rc"], ["NAME", "web"]),
        (["get", "replicasets"], ["NAME", "front"]),
        (["get", "rc,rs"], ["NAME", "replicationcontroller/web", "", "NAME", "replicaset.apps/front"]),
        (["get", "rc/web", "rs/front"], ["NAME", "replicationcontroller/web", "", "NAME", "replicaset.apps/front"]),
        (["get", "events", "e3", "e1", "-o", "name"], ["event/e3", "event/e1"]),
        (["get", "pods,nodes", "-l", "app=solo"], ["NAME", "solo"]),
    ],
)
def test_get_new_kinds_and_several(
    server: ApiServer, argv: list[str], first_column: list[str], capsys: Capture
) -> None:
    assert ekctl(server, *argv) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] if line else "" for line in out.splitlines()] == first_column


def test_get_events_sorted_by_last_seen_with_object(server: ApiServer, capsys: Capture) -> None:
    assert ekctl(server, "get", "ev", "-A") == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    # pi-1 reported them out of order, in 2024; the master's and the agents' own events are from just now.
    assert [(row[3], row[4]) for row in rows[:3]] == [
        ("SuccessfulCreate", "replicationcontroller/web"),
        ("Started", "pod/web-a"),
        ("NodeReady", "node/pi-1"),
    ]
    # Ages: the 2024 events are years old; the rest are seconds old ("0s", or "1s" across a second's edge).
    assert all("y" in row[1] for row in rows[:3]) and all(re.fullmatch(r"\d+s", row[1]) for row in rows[3:])
    assert ("Started", "pod/solo") in [(row[3], row[4]) for row in rows[3:]]
    assert server.requests[-1].namespace is None


def test_get_several_kinds_none_found(server: ApiServer, capsys: Capture) -> None:
    assert ekctl(server, "get", "rc,rs", "-n", "empty") == 0
    assert capsys.readouterr().err == "No resources found in empty namespace.\n"
    assert [r.kind for r in server.requests] == ["ReplicationController", "ReplicaSet"]


def test_get_several_kinds_reports_each_missing_name(server: ApiServer, capsys: Capture) -> None:
    assert ekctl(server, "get", "rc,rs", "web", "-o", "name") == 1
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
def test_scale(server: ApiServer, argv: list[str], out: str, replicas: int, capsys: Capture) -> None:
    assert ekctl(server, *argv) == 0
    assert capsys.readouterr().out == out
    request = server.requests[-1]
    assert (request.verb, request.replicas) == (Verb.SCALE, replicas)


@pytest.mark.parametrize(
    ("argv", "exit_code", "err"),
    [
        (
            ["scale", "pod", "web-a", "--replicas=1"],
            1,
            "error: scale: pods are not supported\n"
            "hint: scale works on replicationcontrollers (rc), replicasets (rs), deployments (deploy)\n",
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
def test_scale_errors(server: ApiServer, argv: list[str], exit_code: int, err: str, capsys: Capture) -> None:
    assert ekctl(server, *argv) == exit_code
    captured = capsys.readouterr()
    assert err in captured.err and "Traceback" not in captured.err
    assert all(r.verb is not Verb.SCALE or r.name == "nope" for r in server.requests)


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
    server: ApiServer, argv: list[str], out: str, changes: dict[str, str | None], overwrite: bool, capsys: Capture
) -> None:
    assert ekctl(server, *argv) == 0
    assert capsys.readouterr().out == out
    request = server.requests[-1]
    assert (request.verb.value, request.labels, request.overwrite) == (argv[0], changes, overwrite)


def test_label_changes_reach_the_object(server: ApiServer, capsys: Capture) -> None:
    assert ekctl(server, "label", "pod", "web-a", "tier=x", "app-") == 0
    assert server.master.store.get("Pod", "default", "web-a")["metadata"]["labels"] == {"tier": "x"}


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
def test_label_refused_locally(server: ApiServer, argv: list[str], err: str, capsys: Capture) -> None:
    assert ekctl(server, *argv) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("error: ") and err in lines[0]
    assert len(lines) <= 2
    assert server.requests == []


def test_label_conflict_from_master_gets_overwrite_hint_and_continues(server: ApiServer, capsys: Capture) -> None:
    assert ekctl(server, "label", "pods", "web-a", "nope", "web-b", "app=v2") == 1
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
    assert [r.name for r in server.requests] == ["web-a", "nope", "web-b"]


def test_a_lost_master_stops_the_loop(server: ApiServer, capsys: Capture) -> None:
    server.broker.drop("edgekube-master")  # its connection breaks: requests go unanswered
    assert ekctl(server, "--timeout", "0.05", "label", "pods", "web-a", "web-b", "x=1") == 1
    assert capsys.readouterr().err.splitlines()[0] == "error: no answer on edgekube/v1/api/request within 0.05s"
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("argv", "out", "verb", "unschedulable"),
    [
        (["cordon", "pi-1"], "node/pi-1 cordoned\n", Verb.CORDON, True),
        (["uncordon", "node/pi-1"], "node/pi-1 uncordoned\n", Verb.UNCORDON, False),
        (["cordon", "pi-1", "pi-2"], "node/pi-1 cordoned\nnode/pi-2 cordoned\n", Verb.CORDON, True),
    ],
)
def test_cordon_uncordon(
    server: ApiServer, argv: list[str], out: str, verb: Verb, unschedulable: bool, capsys: Capture
) -> None:
    if verb is Verb.UNCORDON:
        assert ekctl(server, "cordon", "pi-1") == 0  # uncordoning a schedulable node says "already uncordoned"
        capsys.readouterr()
    assert ekctl(server, *argv) == 0
    assert capsys.readouterr().out == out
    assert server.requests[-1].verb is verb
    assert server.master.store.get("Node", "", "pi-1")["spec"].get("unschedulable", False) is unschedulable


@pytest.mark.parametrize(
    ("argv", "err"),
    [
        (["cordon"], "error: cordon: no node name was given\nhint: usage: ekctl cordon NODE... or -l SELECTOR\n"),
        (["drain", "pod/web-a"], "error: drain: pods are not supported\nhint: drain works on nodes (no)\n"),
        (["uncordon", "nope"], 'error: nodes "nope" not found\nhint: list them with `ekctl get nodes`\n'),
    ],
)
def test_node_verb_errors(server: ApiServer, argv: list[str], err: str, capsys: Capture) -> None:
    assert ekctl(server, *argv) == 1
    assert capsys.readouterr().err == err


def test_drain_prints_cordoned_evictions_drained(server: ApiServer, capsys: Capture) -> None:
    assert ekctl(server, "drain", "pi-1") == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "node/pi-1 cordoned",
        "evicting pod default/web-a",
        "evicting pod default/web-b",
        "node/pi-1 drained",
    ]
    assert captured.err == ""
    assert server.requests[-1].verb is Verb.DRAIN
    assert server.timeouts[-1] == 60.0  # drain may take longer than --timeout's default of 10 s
    assert "solo" in pods(server) and "web-a" not in pods(server)


def test_drain_shows_progress_while_waiting(
    server: ApiServer, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pending, "DELAY", 0.01)
    monkeypatch.setattr(pending, "TICK", 0.01)
    shown = threading.Event()

    class Seen(wait.Progress):
        def show(self, what: str, detail: str, key: str) -> None:
            super().show(what, detail, key)
            shown.set()

    drain = server.master.api.drain

    def slow(name: str) -> tuple[Obj, list[Outcome]]:
        assert shown.wait(5), "no progress line while the master was draining"
        return drain(name)

    monkeypatch.setattr(pending, "Progress", Seen)
    monkeypatch.setattr(server.master.api, "drain", slow)  # the master answers only once ekctl shows progress
    assert ekctl(server, "--timeout", "90", "drain", "pi-1") == 0
    captured = capsys.readouterr()
    assert captured.err == "draining node/pi-1 (0s)\n"  # off a terminal the line is printed once
    assert captured.out.splitlines() == [
        "node/pi-1 cordoned",
        "evicting pod default/web-a",
        "evicting pod default/web-b",
        "node/pi-1 drained",
    ]
    assert server.timeouts[-1] == 90.0


def test_drain_error_from_the_worker_thread_is_one_line(
    server: ApiServer, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(session: BusSession, request: ApiRequest, timeout: float | None = None) -> ApiResponse:
        raise RuntimeError("boom")

    monkeypatch.setattr(BusSession, "call", refuse)
    assert ekctl(server, "drain", "pi-1") == 1
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
    server: ApiServer, flags: list[str], cascade: str, pods_left: list[str], capsys: Capture
) -> None:
    assert ekctl(server, "delete", "rc", "web", *flags) == 0
    assert capsys.readouterr().out == 'replicationcontroller "web" deleted\n'
    assert server.requests[-1].cascade == cascade
    assert pods(server, app="web") == pods_left


def test_delete_rejects_foreground_before_sending(server: ApiServer, capsys: Capture) -> None:
    assert ekctl(server, "delete", "rc", "web", "--cascade=foreground") == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == 'error: invalid --cascade value "foreground": supported values: background, orphan'
    assert server.requests == []


def test_delete_several_kinds(server: ApiServer, capsys: Capture) -> None:
    assert ekctl(server, "delete", "rc/web", "rs/front") == 0
    assert capsys.readouterr().out == 'replicationcontroller "web" deleted\nreplicaset.apps "front" deleted\n'


def test_names_after_flags_join_the_positionals(server: ApiServer, capsys: Capture) -> None:
    assert ekctl(server, "label", "pod", "web-a", "--overwrite", "app=v3") == 0
    assert server.requests[-1].labels == {"app": "v3"}
    assert ekctl(server, "get", "pods", "-o", "name", "web-a", "web-b") == 0
    assert capsys.readouterr().out.endswith("pod/web-a\npod/web-b\n")
    assert ekctl(server, "get", "pods", "-o", "name", "--bogus") == 2


def test_describe_rc_with_owned_pods_and_events(server: ApiServer, capsys: Capture) -> None:
    assert ekctl(server, "describe", "rc", "web") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["Name:", "web"]
    assert "Replicas:     2 current / 2 desired" in lines  # it adopted web-a and web-b
    assert "Pods Status:  2 Running / 0 Waiting / 0 Succeeded / 0 Failed" in lines
    assert lines[-1].split()[:2] == ["Normal", "SuccessfulCreate"]
    kinds = [(r.verb, r.kind) for r in server.requests]
    assert kinds == [(Verb.GET, "ReplicationController"), (Verb.LIST, "Event"), (Verb.LIST, "Pod")]


def test_describe_pod_and_node_end_with_their_events(server: ApiServer, capsys: Capture) -> None:
    assert ekctl(server, "describe", "pod", "web-a", "web-b") == 0
    out = capsys.readouterr().out
    assert "Controlled By:  ReplicationController/web" in out
    first, second = out.split("\n\n\n")
    assert first.splitlines()[-1].split()[:2] == ["Normal", "Started"]
    assert second.splitlines()[-1].split()[:2] == ["Normal", "Started"]  # the agent's, web-b has no seeded one
    assert "Started container web" in first.splitlines()[-1] and "Started web-a" in first  # pi-1 reported it first
    assert [r.kind for r in server.requests].count("Event") == 1  # listed once, filtered per pod
    assert ekctl(server, "describe", "node", "pi-1") == 0
    assert capsys.readouterr().out.splitlines()[-1].split()[:2] == ["Normal", "NodeReady"]
    assert server.requests[-2].namespace is None  # node events may be in any namespace


def test_describe_without_event_support_leaves_the_section_out(
    server: ApiServer, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    handle = BusSession.call

    def no_events(session: BusSession, request: ApiRequest, timeout: float | None = None) -> ApiResponse:
        if request.kind == "Event":  # as a master that knows no events would be asked
            request = request.model_copy(update={"kind": "Unknown"})
        return handle(session, request, timeout)

    monkeypatch.setattr(BusSession, "call", no_events)
    assert ekctl(server, "describe", "pod", "web-a") == 0
    captured = capsys.readouterr()
    assert "Events:" not in captured.out and captured.err == ""


def test_describe_several_kinds_and_unsupported(server: ApiServer, capsys: Capture) -> None:
    assert ekctl(server, "describe", "rc,rs") == 0
    out = capsys.readouterr().out
    assert "Name:         web" in out and "Name:         front" in out
    assert ekctl(server, "describe", "events") == 1
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
def test_repeated_edits_say_what_kubectl_says(server: ApiServer, argv: list[str], again: str, capsys: Capture) -> None:
    assert ekctl(server, *argv) == 0
    assert ekctl(server, *argv) == 0
    assert capsys.readouterr().out.splitlines()[-1] + "\n" == again
    assert server.requests[-1].verb.value == argv[0]
