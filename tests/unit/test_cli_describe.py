"""Unit tests of `ekctl describe`'s kubectl-shaped text: controllers, probes, tolerations, taints and Events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from edgekube.cli import events
from edgekube.cli.describe_container import probe_text
from edgekube.cli.describe_controller import describe_controller
from edgekube.cli.describe_node import describe_node
from edgekube.cli.describe_pod import describe_pod
from edgekube.cli.scheduling import taints, toleration_text
from tests.unit.test_cli_workloads import event, rc, rs

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
TIMING = "delay=0s timeout=1s period=10s #success=1 #failure=3"


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        pytest.param({"httpGet": {"path": "/", "port": 8080}}, f"http-get http://:8080/ {TIMING}", id="http"),
        pytest.param(
            {
                "httpGet": {"path": "healthz", "port": "web", "host": "10.0.0.1", "scheme": "HTTPS"},
                "initialDelaySeconds": 5,
                "periodSeconds": 3,
                "failureThreshold": 1,
            },
            "http-get https://10.0.0.1:web/healthz delay=5s timeout=1s period=3s #success=1 #failure=1",
            id="https",
        ),
        pytest.param({"httpGet": {"port": 80, "host": "fe80::1"}}, f"http-get http://[fe80::1]:80 {TIMING}", id="ipv6"),
        pytest.param({"exec": {"command": ["cat", "/tmp/healthy"]}}, f"exec [cat /tmp/healthy] {TIMING}", id="exec"),
        pytest.param(
            {"tcpSocket": {"port": 6379}, "timeoutSeconds": 2},
            "tcp-socket :6379 delay=0s timeout=2s period=10s #success=1 #failure=3",
            id="tcp",
        ),
        pytest.param({"periodSeconds": 10}, f"unknown {TIMING}", id="no-handler"),
    ],
)
def test_probe_lines_like_kubectl(probe: dict[str, Any], expected: str) -> None:
    assert probe_text(probe) == expected


@pytest.mark.parametrize(
    ("toleration", "expected"),
    [
        (
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
            "node.kubernetes.io/unreachable:NoExecute op=Exists for 300s",
        ),
        (
            {"key": "dedicated", "operator": "Equal", "value": "camera", "effect": "NoSchedule"},
            "dedicated=camera:NoSchedule",
        ),
        ({"operator": "Exists"}, "op=Exists"),
        ({"key": "gpu", "operator": "Exists"}, "gpu op=Exists"),
        ({"key": "a", "value": "b"}, "a=b"),
    ],
)
def test_toleration_lines_like_kubectl(toleration: dict[str, Any], expected: str) -> None:
    assert toleration_text(toleration) == expected


def test_taints_sorted_by_effect_then_key() -> None:
    found = [
        {"key": "z", "effect": "NoSchedule"},
        {"key": "b", "value": "1", "effect": "NoExecute"},
        {"key": "a", "effect": "NoSchedule"},
    ]
    assert taints(found) == ["b=1:NoExecute", "a:NoSchedule", "z:NoSchedule"]


def owned_pod(name: str, phase: str) -> dict[str, Any]:
    ref = {"apiVersion": "v1", "kind": "ReplicationController", "name": "web", "uid": "uid-web", "controller": True}
    return {"metadata": {"name": name, "namespace": "default", "ownerReferences": [ref]}, "status": {"phase": phase}}


def test_describe_replication_controller() -> None:
    obj = rc()
    obj["spec"]["template"]["spec"]["containers"][0].update(
        ports=[{"containerPort": 80}], livenessProbe={"httpGet": {"path": "/", "port": 80}}
    )
    pods = [owned_pod("web-a", "Running"), owned_pod("web-b", "Running"), owned_pod("web-c", "Pending")]
    found = [
        event(
            "SuccessfulCreate",
            "2024-05-01T11:59:00Z",
            kind="ReplicationController",
            name="web",
            first="2024-05-01T11:59:00Z",
            source={"component": "replication-controller"},
        )
    ]
    assert describe_controller(obj, pods, found, now=NOW).splitlines() == [
        "Name:         web",
        "Namespace:    default",
        "Selector:     app=web",
        "Labels:       app=web",
        "Annotations:  <none>",
        "Replicas:     3 current / 3 desired",
        "Pods Status:  2 Running / 1 Waiting / 0 Succeeded / 0 Failed",
        "Pod Template:",
        "  Labels:  app=web",
        "  Containers:",
        "   web:",
        "    Image:         nginx:1.25",
        "    Port:          80/TCP",
        "    Host Port:     0/TCP",
        f"    Liveness:      http-get http://:80/ {TIMING}",
        "    Environment:   <none>",
        "    Mounts:        <none>",
        "  Volumes:         <none>",
        "  Node-Selectors:  <none>",
        "  Tolerations:     <none>",
        "Events:",
        "  Type    Reason            Age   From                    Message",
        "  ----    ------            ----  ----                    -------",
        "  Normal  SuccessfulCreate  60s   replication-controller  SuccessfulCreate happened",
    ]


def test_describe_replica_set_selector_and_no_events() -> None:
    obj = rs(matchLabels={"tier": "front"}, matchExpressions=[{"key": "env", "operator": "In", "values": ["a"]}])
    obj["metadata"]["ownerReferences"] = [{"kind": "Deployment", "name": "front", "uid": "u", "controller": True}]
    lines = describe_controller(obj, [], [], now=NOW).splitlines()
    assert lines[2] == "Selector:       env in (a),tier=front"
    assert "Controlled By:  Deployment/front" in lines
    assert "Replicas:       0 current / 2 desired" in lines
    assert lines[-1].split() == ["Events:", "<none>"]
    assert describe_controller(obj, [], None).splitlines()[-1].split()[0] == "Tolerations:"


def crashing_pod() -> dict[str, Any]:
    return {
        "kind": "Pod",
        "metadata": {
            "name": "web-abcde",
            "namespace": "default",
            "uid": "p1",
            "ownerReferences": [{"kind": "ReplicationController", "name": "web", "uid": "uid-web", "controller": True}],
        },
        "spec": {
            "nodeName": "pi-1",
            "containers": [
                {
                    "name": "web",
                    "image": "nginx:1.25",
                    "livenessProbe": {"httpGet": {"path": "/", "port": 8080}},
                    "readinessProbe": {"tcpSocket": {"port": 8080}},
                }
            ],
            "tolerations": [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {"key": "gpu", "operator": "Exists"},
            ],
        },
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "web",
                    "ready": False,
                    "restartCount": 4,
                    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s restarting"}},
                    "lastState": {
                        "terminated": {
                            "exitCode": 137,
                            "reason": "Error",
                            "startedAt": "2024-05-01T11:50:00Z",
                            "finishedAt": "2024-05-01T11:55:00Z",
                        }
                    },
                }
            ],
        },
    }


def test_describe_pod_owner_probes_last_state_tolerations_events() -> None:
    found = events.about(
        [
            event("BackOff", "2024-05-01T11:58:00Z", count=5, message="Back-off restarting failed container"),
            event("Killing", "2024-05-01T11:55:00Z", first="2024-05-01T11:55:00Z"),
            event("Scheduled", "2024-05-01T11:00:00Z", name="other"),
        ],
        crashing_pod(),
    )
    lines = describe_pod(crashing_pod(), found, now=NOW).splitlines()
    at = lines.index("Controlled By:  ReplicationController/web")
    assert lines[at + 1] == "Containers:"
    state = lines.index("    State:          Waiting")
    assert lines[state : state + 10] == [
        "    State:          Waiting",
        "      Reason:       CrashLoopBackOff",
        "      Message:      back-off 40s restarting",
        "    Last State:     Terminated",
        "      Reason:       Error",
        "      Exit Code:    137",
        "      Started:      Wed, 01 May 2024 11:50:00 +0000",
        "      Finished:     Wed, 01 May 2024 11:55:00 +0000",
        "    Ready:          False",
        "    Restart Count:  4",
    ]
    assert lines[state + 10] == f"    Liveness:       http-get http://:8080/ {TIMING}"
    assert lines[state + 11] == f"    Readiness:      tcp-socket :8080 {TIMING}"
    tolerations = next(i for i, line in enumerate(lines) if line.startswith("Tolerations:"))
    assert lines[tolerations:] == [
        "Tolerations:        node.kubernetes.io/not-ready:NoExecute op=Exists for 300s",
        "                    gpu op=Exists",
        "Events:",
        "  Type     Reason   Age               From   Message",
        "  ----     ------   ----              ----   -------",
        "  Normal   Killing  5m                agent  Killing happened",
        "  Warning  BackOff  2m (x5 over 60m)  agent  Back-off restarting failed container",
    ]


@pytest.mark.parametrize(
    ("ref", "matches"),
    [
        ({"kind": "Pod", "name": "web-abcde", "namespace": "default"}, True),
        ({"kind": "Pod", "name": "web-abcde", "namespace": "default", "uid": "p1"}, True),
        ({"kind": "Pod", "name": "web-abcde", "namespace": "default", "uid": "old-pod"}, False),
        ({"kind": "Pod", "name": "web-abcde", "namespace": "prod"}, False),
        ({"kind": "Node", "name": "web-abcde"}, False),
    ],
)
def test_events_about_an_object(ref: dict[str, Any], matches: bool) -> None:
    evt = {**event("Started", "2024-05-01T11:00:00Z"), "involvedObject": ref}
    assert events.about([evt], crashing_pod()) == ([evt] if matches else [])


def test_describe_pod_without_events_section_when_unavailable() -> None:
    text = describe_pod(crashing_pod(), None, now=NOW)
    assert "Events:" not in text
    assert describe_pod(crashing_pod(), [], now=NOW).splitlines()[-1].split() == ["Events:", "<none>"]


def test_describe_node_taints_unschedulable_and_events() -> None:
    node = {
        "kind": "Node",
        "metadata": {"name": "pi-1"},
        "spec": {
            "unschedulable": True,
            "taints": [
                {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
                {"key": "dedicated", "value": "cam", "effect": "NoSchedule"},
            ],
        },
    }
    found = [
        {
            **event("NodeNotReady", "2024-05-01T11:59:00Z", first="2024-05-01T11:59:00Z"),
            "involvedObject": {"kind": "Node", "name": "pi-1"},
        }
    ]
    lines = describe_node(node, [], events.about(found, node), now=NOW).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Taints:"))
    assert lines[at : at + 3] == [
        "Taints:             node.kubernetes.io/unreachable:NoExecute",
        "                    dedicated=cam:NoSchedule",
        "Unschedulable:      true",
    ]
    assert lines[-4:] == [
        "Events:",
        "  Type    Reason        Age   From   Message",
        "  ----    ------        ----  ----   -------",
        "  Normal  NodeNotReady  60s   agent  NodeNotReady happened",
    ]
    assert "Taints:             <none>" in describe_node({"metadata": {"name": "n"}}, []).splitlines()


def test_describe_node_counts_the_extended_resources_its_pods_hold_like_kubectl() -> None:
    node = {
        "metadata": {"name": "pi-1"},
        "status": {"allocatable": {"cpu": "4", "memory": "4Gi", "pods": 110, "edgekube.io/serial": "2"}},
    }
    pod = {
        "metadata": {"name": "sensor", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "i", "resources": {"limits": {"edgekube.io/serial": 1}}}]},
        "status": {"phase": "Running"},
    }
    lines = describe_node(node, [pod], now=NOW).splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("Resource"))
    assert [line.split() for line in lines[at + 2 : at + 5]] == [
        ["cpu", "0", "(0%)", "0", "(0%)"],
        ["memory", "0", "(0%)", "0", "(0%)"],
        ["edgekube.io/serial", "1", "1"],
    ]
