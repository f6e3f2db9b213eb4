"""Unit tests of ekctl's output: AGE, pod READY/STATUS/RESTARTS, node STATUS/ROLES, tables and -o formats."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from edgekube.cli import output
from edgekube.cli.kinds import NODE, POD
from edgekube.cli.status import node_roles, node_status, pod_summary
from edgekube.cli.tabwriter import align
from edgekube.cli.timefmt import age, human_duration, rfc1123

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (45, "45s"),
        (119, "119s"),
        (120, "2m"),
        (182, "3m2s"),
        (599, "9m59s"),
        (600, "10m"),
        (179 * 60, "179m"),
        (3 * 3600, "3h"),
        (5 * 3600, "5h"),
        (5 * 3600 + 30 * 60, "5h30m"),
        (8 * 3600, "8h"),
        (47 * 3600, "47h"),
        (48 * 3600, "2d"),
        (3 * 86400 + 4 * 3600, "3d4h"),
        (8 * 86400, "8d"),
        (400 * 86400, "400d"),
        (2 * 365 * 86400, "2y"),
        (3 * 365 * 86400 + 10 * 86400, "3y10d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration_matches_kubectl(seconds: int, expected: str) -> None:
    assert human_duration(timedelta(seconds=seconds)) == expected


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2024-05-01T11:59:15Z", "45s"),
        ("2024-05-01T11:56:58+00:00", "3m2s"),
        ("2024-05-01T07:00:00Z", "5h"),
        ("2024-04-29T12:00:00Z", "2d"),
        ("2024-05-01T11:59:15", "45s"),  # naive stamps are read as UTC
        (None, "<unknown>"),
        ("", "<unknown>"),
        ("yesterday", "<unknown>"),
    ],
)
def test_age_from_creation_timestamp(stamp: str | None, expected: str) -> None:
    assert age(stamp, NOW) == expected


def test_rfc1123_like_describe() -> None:
    assert rfc1123("2024-01-02T15:04:05Z") == "Tue, 02 Jan 2024 15:04:05 +0000"
    assert rfc1123(None) == "<unknown>"


def container(name: str = "app", image: str = "busybox") -> dict[str, Any]:
    return {"name": name, "image": image}


def pod(*statuses: dict[str, Any], containers: int = 1, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "hello", "namespace": "default", "creationTimestamp": "2024-05-01T11:59:00Z"},
        "spec": {"containers": [container(f"c{i}") for i in range(containers)], "nodeName": "pi-1"},
        "status": {**status, "containerStatuses": list(statuses)} if statuses else status,
    }


def cs(state: dict[str, Any], *, ready: bool = False, restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {"name": "c0", "image": "busybox", "ready": ready, "restartCount": restarts, "state": state, **extra}


RUNNING = {"running": {"startedAt": "2024-05-01T11:59:10Z"}}


@pytest.mark.parametrize(
    ("obj", "ready", "status", "restarts"),
    [
        pytest.param(pod(cs(RUNNING, ready=True), phase="Running"), "1/1", "Running", "0", id="running"),
        pytest.param(
            pod(cs({"waiting": {"reason": "ContainerCreating"}}), phase="Pending"),
            "0/1",
            "ContainerCreating",
            "0",
            id="container-creating",
        ),
        pytest.param(
            pod(
                cs({"waiting": {"reason": "ErrImagePull", "message": "manifest unknown"}}),
                phase="Failed",
                reason="ErrImagePull",
                message="pull failed",
            ),
            "0/1",
            "ErrImagePull",
            "0",
            id="err-image-pull",
        ),
        pytest.param(
            pod(phase="Failed", reason="ErrImagePull"),
            "0/1",
            "ErrImagePull",
            "0",
            id="pod-reason-only",
        ),
        pytest.param(
            pod(cs({"terminated": {"exitCode": 0, "reason": "Completed"}}), phase="Succeeded"),
            "0/1",
            "Completed",
            "0",
            id="completed",
        ),
        pytest.param(
            pod(phase="Pending", reason="Unschedulable", message="0/0 nodes are available"),
            "0/1",
            "Pending",
            "0",
            id="unschedulable-shows-pending",
        ),
        pytest.param(pod(phase="Pending"), "0/1", "Pending", "0", id="pending-no-status"),
        pytest.param({"metadata": {"name": "bare"}}, "0/0", "Pending", "0", id="no-spec-no-status"),
        pytest.param(
            pod(cs({"terminated": {"exitCode": 137}}), phase="Failed"),
            "0/1",
            "ExitCode:137",
            "0",
            id="exit-code",
        ),
        pytest.param(
            pod(
                cs(
                    {"waiting": {"reason": "CrashLoopBackOff"}},
                    restarts=4,
                    lastState={"terminated": {"exitCode": 1, "finishedAt": "2024-05-01T11:55:00Z"}},
                ),
                phase="Running",
            ),
            "0/1",
            "CrashLoopBackOff",
            "4 (5m ago)",
            id="crashloop-with-last-restart",
        ),
        pytest.param(
            pod(cs(RUNNING, ready=True), {**cs(RUNNING, ready=False), "name": "c1"}, containers=2, phase="Running"),
            "1/2",
            "Running",
            "0",
            id="one-of-two-ready",
        ),
        pytest.param(
            {
                **pod(cs(RUNNING, ready=True), phase="Running"),
                "metadata": {"name": "x", "deletionTimestamp": "2024-05-01T11:59:59Z"},
            },
            "1/1",
            "Terminating",
            "0",
            id="terminating",
        ),
    ],
)
def test_pod_ready_status_restarts(obj: dict[str, Any], ready: str, status: str, restarts: str) -> None:
    summary = pod_summary(obj, NOW)
    assert (summary.ready, summary.status, summary.restarts) == (ready, status, restarts)


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull"])
def test_a_pending_pod_whose_image_cannot_be_had_shows_the_waiting_reason(reason: str) -> None:
    obj = pod(cs({"waiting": {"reason": reason, "message": 'Back-off pulling image "x"'}}), phase="Pending")
    assert pod_summary(obj, NOW).status == reason


def test_first_container_reason_wins_like_kubectl() -> None:
    obj = pod(
        cs({"waiting": {"reason": "ErrImagePull"}}),
        {**cs({"waiting": {"reason": "ContainerCreating"}}), "name": "c1"},
        containers=2,
        phase="Pending",
    )
    assert pod_summary(obj, NOW).status == "ErrImagePull"


def node(ready: str | None, *, unschedulable: bool = False, labels: dict[str, str] | None = None) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": ready}] if ready else []
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "pi-1", "labels": labels or {}, "creationTimestamp": "2024-04-01T12:00:00Z"},
        "spec": {"unschedulable": unschedulable},
        "status": {
            "conditions": [{"type": "MemoryPressure", "status": "False"}, *conditions],
            "addresses": [{"type": "Hostname", "address": "pi-1"}, {"type": "InternalIP", "address": "10.0.0.7"}],
            "nodeInfo": {
                "osImage": "Debian GNU/Linux 12",
                "kernelVersion": "6.6.31",
                "agentVersion": "v0.1.0",
                "containerRuntimeVersion": "podman://4.9.4",
            },
        },
    }


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (node("True"), "Ready"),
        (node("False"), "NotReady"),
        (node("Unknown"), "NotReady"),
        (node(None), "Unknown"),
        (node("True", unschedulable=True), "Ready,SchedulingDisabled"),
        (node("False", unschedulable=True), "NotReady,SchedulingDisabled"),
    ],
)
def test_node_status(obj: dict[str, Any], expected: str) -> None:
    assert node_status(obj) == expected


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({}, "<none>"),
        ({"node-role.kubernetes.io/edge": ""}, "edge"),
        ({"node-role.kubernetes.io/worker": "", "kubernetes.io/role": "camera"}, "camera,worker"),
    ],
)
def test_node_roles(labels: dict[str, str], expected: str) -> None:
    assert node_roles(node("True", labels=labels)) == expected


def test_pod_table_and_wide() -> None:
    running = pod(cs(RUNNING, ready=True), phase="Running", podIP="10.88.0.5")
    assert output.render(POD, [running], None, now=NOW) == (
        "NAME    READY   STATUS    RESTARTS   AGE\nhello   1/1     Running   0          60s\n"
    )
    assert output.render(POD, [running], "wide", now=NOW).splitlines() == [
        "NAME    READY   STATUS    RESTARTS   AGE   IP          NODE",
        "hello   1/1     Running   0          60s   10.88.0.5   pi-1",
    ]


def test_all_namespaces_adds_namespace_column_and_no_headers_drops_header() -> None:
    text = output.render(POD, [pod(phase="Pending")], None, all_namespaces=True, headers=False, now=NOW)
    assert text == "default   hello   0/1   Pending   0     60s\n"


def test_node_table_and_wide() -> None:
    assert output.render(NODE, [node("True")], None, now=NOW).splitlines() == [
        "NAME   STATUS   ROLES    AGE   VERSION",
        "pi-1   Ready    <none>   30d   v0.1.0",
    ]
    wide = output.render(NODE, [node("False")], "wide", now=NOW).splitlines()
    assert wide[0].split() == [
        "NAME",
        "STATUS",
        "ROLES",
        "AGE",
        "VERSION",
        "INTERNAL-IP",
        "OS-IMAGE",
        "KERNEL-VERSION",
        "CONTAINER-RUNTIME",
    ]
    assert "NotReady" in wide[1] and "10.0.0.7" in wide[1] and "Debian GNU/Linux 12" in wide[1]


def test_output_name() -> None:
    assert output.render(POD, [pod(), pod()], "name") == "pod/hello\npod/hello\n"
    assert output.render(NODE, [node("True")], "name") == "node/pi-1\n"


def test_output_json_single_object_and_list() -> None:
    obj = pod(phase="Pending")
    assert json.loads(output.render(POD, [obj], "json", single=True)) == obj
    as_list = json.loads(output.render(POD, [obj], "json"))
    assert as_list == {"apiVersion": "v1", "kind": "List", "items": [obj]}


def test_output_yaml_keeps_key_order_and_wraps_lists() -> None:
    obj = pod(phase="Pending")
    single = output.render(POD, [obj], "yaml", single=True)
    assert single.startswith("apiVersion: v1\nkind: Pod\nmetadata:\n")
    assert yaml.safe_load(single) == obj
    listed = output.render(POD, [obj], "yaml")
    assert listed.startswith("apiVersion: v1\nkind: List\nitems:\n")
    assert yaml.safe_load(listed)["items"] == [obj]
    assert yaml.safe_load(output.render(POD, [], "yaml")) == {"apiVersion": "v1", "kind": "List", "items": []}


def test_empty_table_prints_nothing() -> None:
    assert output.render(POD, [], None) == ""


def test_tabwriter_blocks_like_go() -> None:
    # A row without a tab ends a block, so the second block aligns on its own.
    text = align([["Name:", "x"], ["Namespace:", "default"], ["Containers:"], ["  a:", "1"], ["  long-key:", "2"]])
    assert text.splitlines() == [
        "Name:       x",
        "Namespace:  default",
        "Containers:",
        "  a:         1",
        "  long-key:  2",
    ]
