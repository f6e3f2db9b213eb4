"""Lifecycle hooks on real Podman and Mosquitto: postStart after the start, preStop before the stop signal.

The test plays the master (EdgeNode publishes the node's desired state); the containers write what happens to
them, in order, into a hostPath file the test reads from the host: the main process when it starts and when it
gets SIGTERM, each hook when it runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.podman import EdgeNode, manifest

pytestmark = pytest.mark.integration

#: Writes `main` when it starts and `term` when SIGTERM comes, then exits.
LOGGING = ["sh", "-c", "echo main >> /log/order; trap 'echo term >> /log/order; exit 0' TERM; "
           "while :; do sleep 1 & wait $!; done"]  # fmt: skip


ORDER = "/log/order"


def _hooked(name: str, log: Path, lifecycle: dict[str, Any], **spec: Any) -> dict[str, Any]:
    pod = manifest(name, {"name": "app", "command": LOGGING, "lifecycle": lifecycle,
                          "volumeMounts": [{"name": "log", "mountPath": "/log"}]}, **spec)  # fmt: skip
    pod["spec"]["volumes"] = [{"name": "log", "hostPath": {"path": str(log), "type": "DirectoryOrCreate"}}]
    return pod


def _lines(log: Path) -> list[str]:
    order = log / "order"
    return order.read_text().split() if order.exists() else []


def _wait_lines(log: Path, what: str, check: Any, timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = _lines(log)
        if check(lines):
            return lines
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}; the log has {_lines(log)}")


def test_post_start_runs_after_the_start_and_pre_stop_before_sigterm_when_the_pod_is_deleted(
    edge_node: EdgeNode, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    hooks = {
        "postStart": {"exec": {"command": ["sh", "-c", "echo post-start >> /log/order"]}},
        "preStop": {
            "exec": {"command": ["sh", "-c", f"echo pre-stop >> {ORDER}; sleep 1; echo pre-stop-done >> {ORDER}"]}
        },
    }
    edge_node.start_agent()
    edge_node.want(_hooked("hooked", log, hooks, grace=10))
    _wait_lines(log, "the postStart hook", lambda lines: "post-start" in lines)
    edge_node.want()  # deleted: the agent knows the hook only from the container it created
    lines = _wait_lines(log, "SIGTERM after the preStop hook", lambda lines: "term" in lines)
    assert lines.index("main") < lines.index("pre-stop")
    assert lines.index("post-start") < lines.index("pre-stop")
    assert lines[-3:] == ["pre-stop", "pre-stop-done", "term"]
    deadline = time.monotonic() + 20
    while edge_node.observed("hooked") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert edge_node.observed("hooked") is None


def test_a_failed_post_start_hook_kills_the_container_and_fails_the_pod_under_restart_policy_never(
    edge_node: EdgeNode, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    hooks = {
        "postStart": {"exec": {"command": ["sh", "-c", "echo token=s3cret; exit 3"]}},
        "preStop": {"exec": {"command": ["sh", "-c", "echo pre-stop >> /log/order"]}},
    }
    edge_node.start_agent()
    edge_node.want(_hooked("failing", log, hooks, policy="Never"))
    edge_node.wait_status(
        "phase Failed, the container stopped",
        "failing",
        lambda s: s.get("phase") == "Failed" and "terminated" in s["containerStatuses"][0]["state"],
    )
    events = edge_node.event_log("failing")
    reasons = [(reason, message) for reason, message, _ in events]
    assert ("FailedPostStartHook", "PostStartHook failed") in reasons
    assert ("Killing", "FailedPostStartHook") in reasons
    assert [r for r, _ in reasons].index("Started") < [r for r, _ in reasons].index("FailedPostStartHook")
    assert "s3cret" not in repr(events)
    # The kubelet kills a container whose postStart failed as any other: its preStop hook runs, then SIGTERM.
    assert _wait_lines(log, "the stop", lambda lines: "term" in lines)[-2:] == ["pre-stop", "term"]
