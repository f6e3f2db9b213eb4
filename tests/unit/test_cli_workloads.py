"""Unit tests of ekctl's views of controllers and events: type names, RC/RS and event tables, several kinds at once."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from edgekube.cli import events, output, workloads
from edgekube.cli.kinds import EVENT, NODE, POD, RC, RS, Resource, resource, split_args, split_multi
from edgekube.model.errors import ValidationError

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def rc(name: str = "web", *, replicas: int = 3, current: int = 3, ready: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": f"uid-{name}",
            "creationTimestamp": "2024-05-01T11:50:00Z",
            "labels": {"app": name},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"app": name},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.25"}]},
            },
        },
        "status": {"replicas": current, "readyReplicas": ready},
    }


def rs(name: str = "front", **selector: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "lab", "creationTimestamp": "2024-04-30T12:00:00Z"},
        "spec": {
            "replicas": 2,
            "selector": selector or {"matchLabels": {"tier": "front"}},
            "template": {
                "metadata": {"labels": {"tier": "front"}},
                "spec": {"containers": [{"name": "a", "image": "busybox"}, {"name": "b", "image": "alpine"}]},
            },
        },
    }


def event(
    reason: str,
    last: str,
    *,
    count: int = 1,
    kind: str = "Pod",
    name: str = "web-abcde",
    first: str = "2024-05-01T11:00:00Z",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name}.{reason.lower()}", "namespace": "default"},
        "involvedObject": {"kind": kind, "name": name, "namespace": "default"},
        "reason": reason,
        "message": f"{reason} happened",
        "type": "Warning" if reason == "BackOff" else "Normal",
        "source": {"component": "agent", "host": "pi-1"},
        "count": count,
        "firstTimestamp": first,
        "lastTimestamp": last,
        **extra,
    }


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("rc", RC),
        ("replicationcontrollers", RC),
        ("ReplicationController", RC),
        ("rs", RS),
        ("replicasets", RS),
        ("replicaset.apps", RS),
        ("rs.apps", RS),
        ("ev", EVENT),
        ("events", EVENT),
        ("event", EVENT),
        ("po", POD),
        ("no", NODE),
    ],
)
def test_type_names_and_aliases(typed: str, expected: Resource) -> None:
    assert resource(typed) == expected


@pytest.mark.parametrize("typed", ["daemonsets", "rc.apps", "pods.apps", "", "replicasets.batch", "deploy.batch"])
def test_unknown_type_names(typed: str) -> None:
    with pytest.raises(ValidationError, match="doesn't have a resource type"):
        resource(typed)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["rc,rs"], [(RC, []), (RS, [])]),
        (["pods,nodes,pods"], [(POD, []), (NODE, [])]),
        (["rc,rs", "web"], [(RC, ["web"]), (RS, ["web"])]),
        (["rc/web", "rs/front", "rc/db"], [(RC, ["web", "db"]), (RS, ["front"])]),
        (["pod/a"], [(POD, ["a"])]),
    ],
)
def test_several_types(args: list[str], expected: list[tuple[Resource, list[str]]]) -> None:
    assert split_multi(args) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rc,rs/web"], "must have a single resource and name"),
        (["rc", "rs/web"], "no need to specify a resource type"),
        (["rc,"], "doesn't have a resource type"),
    ],
)
def test_several_types_errors(args: list[str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        split_multi(args)


def test_single_kind_commands_refuse_several() -> None:
    with pytest.raises(ValidationError, match="mixed resource types in one command: replicationcontrollers and"):
        split_args(["rc/web", "rs/front"])


def test_qualified_names_like_kubectl() -> None:
    assert (RC.qualified, RS.qualified, POD.qualified) == ("replicationcontroller", "replicaset.apps", "pod")
    assert RS.qualified_plural == "replicasets.apps"


def test_controller_tables_and_wide() -> None:
    assert output.render(RC, [rc()], None, now=NOW) == (
        "NAME   DESIRED   CURRENT   READY   AGE\nweb    3         3         2       10m\n"
    )
    assert output.render(RS, [rs()], "wide", now=NOW).splitlines() == [
        "NAME    DESIRED   CURRENT   READY   AGE   CONTAINERS   IMAGES           SELECTOR",
        "front   2         0         0       24h   a,b          busybox,alpine   tier=front",
    ]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(rc(), "app=web", id="rc-set"),
        pytest.param({**rc(), "spec": {"selector": {"b": "2", "a": "1"}}}, "a=1,b=2", id="rc-sorted"),
        pytest.param({**rc(), "spec": {}}, "<none>", id="rc-none"),
        pytest.param(
            rs(
                matchLabels={"tier": "front"},
                matchExpressions=[
                    {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                    {"key": "gpu", "operator": "DoesNotExist"},
                ],
            ),
            "env in (dev,prod),!gpu,tier=front",
            id="rs-expressions",
        ),
        pytest.param(rs(matchLabels={}), "<none>", id="rs-empty"),
        pytest.param(rs(matchLabels="bogus"), "<none>", id="rs-malformed"),
    ],
)
def test_selector_text(obj: dict[str, Any], expected: str) -> None:
    assert workloads.selector_text(obj) == expected


def test_all_namespaces_column_for_every_namespaced_kind() -> None:
    text = output.render(RS, [rs()], None, all_namespaces=True, now=NOW)
    assert text.splitlines()[1].split()[:2] == ["lab", "front"]
    assert output.render(NODE, [{"metadata": {"name": "n"}}], None, all_namespaces=True).startswith("NAME")


@pytest.mark.parametrize(
    ("evt", "expected"),
    [
        pytest.param(event("Scheduled", "2024-05-01T11:59:30Z"), "30s", id="once"),
        pytest.param(event("BackOff", "2024-05-01T11:58:00Z", count=5), "2m (x5 over 60m)", id="repeated"),
        pytest.param(event("Started", "", first="2024-05-01T11:57:00Z"), "3m", id="no-last-uses-first"),
        pytest.param({"metadata": {"creationTimestamp": "2024-05-01T11:59:00Z"}}, "60s", id="only-creation"),
        pytest.param({}, "<unknown>", id="nothing"),
    ],
)
def test_event_last_seen(evt: dict[str, Any], expected: str) -> None:
    assert events.last_seen(evt, NOW) == expected


def test_events_table_sorted_by_last_seen_with_object_column() -> None:
    late = event("BackOff", "2024-05-01T11:58:00Z", count=5)
    early = event("Created", "2024-05-01T11:01:00Z", kind="ReplicationController", name="web")
    undated = {**event("Pulled", ""), "firstTimestamp": None}
    text = output.render(EVENT, events.by_time([late, early, undated]), None, now=NOW)
    assert text.splitlines() == [
        "LAST SEEN          TYPE      REASON    OBJECT                      MESSAGE",
        "<unknown>          Normal    Pulled    pod/web-abcde               Pulled happened",
        "59m                Normal    Created   replicationcontroller/web   Created happened",
        "2m (x5 over 60m)   Warning   BackOff   pod/web-abcde               BackOff happened",
    ]


def test_events_wide_has_source_first_seen_count_name() -> None:
    text = output.render(EVENT, [event("BackOff", "2024-05-01T11:58:00Z", count=5)], "wide", now=NOW)
    assert text.splitlines() == [
        "LAST SEEN          TYPE      REASON    OBJECT          SOURCE        MESSAGE            "
        "FIRST SEEN   COUNT   NAME",
        "2m (x5 over 60m)   Warning   BackOff   pod/web-abcde   agent, pi-1   BackOff happened   "
        "60m          5       web-abcde.backoff",
    ]


def test_several_kinds_print_one_table_each_with_kind_prefixes() -> None:
    text = output.render_groups([(RC, [rc()]), (RS, [rs()])], None, now=NOW)
    assert text == (
        "NAME                        DESIRED   CURRENT   READY   AGE\n"
        "replicationcontroller/web   3         3         2       10m\n"
        "\n"
        "NAME                    DESIRED   CURRENT   READY   AGE\n"
        "replicaset.apps/front   2         0         0       24h\n"
    )


def test_several_kinds_with_one_empty_print_no_prefix() -> None:
    assert output.render_groups([(RC, [rc()]), (RS, [])], None, now=NOW).splitlines()[1].startswith("web ")


def test_several_kinds_no_headers_has_no_blank_line() -> None:
    text = output.render_groups([(RC, [rc()]), (RS, [rs()])], None, headers=False, now=NOW)
    assert text.splitlines() == [
        "replicationcontroller/web   3     3     2     10m",
        "replicaset.apps/front   2     0     0     24h",
    ]


@pytest.mark.parametrize(
    ("fmt", "check"),
    [
        ("name", lambda text: text == "replicationcontroller/web\nreplicaset.apps/front\n"),
        ("json", lambda text: [o["kind"] for o in json.loads(text)["items"]] == [RC.kind, RS.kind]),
    ],
)
def test_several_kinds_name_and_json(fmt: str, check: Any) -> None:
    assert check(output.render_groups([(RC, [rc()]), (RS, [rs()])], fmt))


def test_pods_status_counts_phases() -> None:
    pods = [{"status": {"phase": p}} for p in ("Running", "Running", "Pending", "Failed", "Succeeded")] + [{}]
    assert workloads.pods_status(pods) == "2 Running / 2 Waiting / 1 Succeeded / 1 Failed"


@pytest.mark.parametrize(
    ("ref", "owned"),
    [
        ({"kind": "ReplicationController", "name": "web", "uid": "uid-web", "controller": True}, True),
        ({"kind": "ReplicationController", "name": "web", "uid": "uid-old", "controller": True}, False),
        ({"kind": "ReplicationController", "name": "web", "controller": True}, True),
        ({"kind": "ReplicaSet", "name": "web", "controller": True}, False),
        ({"kind": "ReplicationController", "name": "web", "uid": "uid-web"}, False),
    ],
)
def test_owns_by_controller_reference(ref: dict[str, Any], owned: bool) -> None:
    pod = {"metadata": {"name": "web-x", "ownerReferences": [ref]}}
    assert workloads.owns(rc(), pod) is owned


def pod_row(name: str, phase: str, *states: dict[str, Any], restarts: int = 0, finished: str = "") -> dict[str, Any]:
    last = {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": finished}} if finished else {}
    return {
        "metadata": {"name": name, "creationTimestamp": "2024-05-01T11:59:00Z"},
        "spec": {"containers": [{"name": f"c{i}"} for i in range(len(states))]},
        "status": {
            "phase": phase,
            "containerStatuses": [
                {
                    "name": f"c{i}",
                    "ready": "running" in state,
                    "restartCount": restarts,
                    "state": state,
                    "lastState": last,
                }
                for i, state in enumerate(states)
            ],
        },
    }


@pytest.mark.parametrize(
    ("obj", "row"),
    [
        pytest.param(
            pod_row(
                "web-abcde",
                "Running",
                {"waiting": {"reason": "CrashLoopBackOff"}},
                restarts=4,
                finished="2024-05-01T11:55:00Z",
            ),
            "web-abcde   0/1     CrashLoopBackOff   4 (5m ago)   60s",
            id="crashloop",
        ),
        pytest.param(
            pod_row(
                "web-fghij", "Running", {"running": {}}, {"running": {}}, restarts=1, finished="2024-05-01T10:00:00Z"
            ),
            "web-fghij   2/2     Running            2 (120m ago)   60s",
            id="restarted-two-containers",
        ),
        pytest.param(
            pod_row("job", "Succeeded", {"terminated": {"exitCode": 0, "reason": "Completed"}}),
            "job         0/1     Completed          0            60s",
            id="completed",
        ),
        pytest.param(
            pod_row("bad", "Failed", {"waiting": {"reason": "ErrImagePull"}}),
            "bad         0/1     ErrImagePull       0            60s",
            id="err-image-pull",
        ),
    ],
)
def test_pod_table_rows(obj: dict[str, Any], row: str) -> None:
    others = [
        pod_row(
            "web-abcde",
            "Running",
            {"waiting": {"reason": "CrashLoopBackOff"}},
            restarts=4,
            finished="2024-05-01T11:55:00Z",
        ),
        pod_row("job", "Succeeded", {}),
    ]
    lines = output.render(POD, [obj, *others], None, now=NOW).splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert lines[1].split() == row.split()
