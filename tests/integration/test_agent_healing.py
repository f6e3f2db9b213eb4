"""Self-healing on real Podman and Mosquitto: shared fate, restart policies, CrashLoopBackOff and probes.

Each test runs one agent in-process on its own broker. The test plays the master: it publishes the node's
desired state (retained, pods with uids) and reads pod status from the NodeReports the agent publishes.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.podman import EdgeNode, manifest, running

pytestmark = pytest.mark.integration

#: PID 1 of a container ignores SIGTERM unless it traps it; these exit at once when stopped.
IDLE = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]
HTTPD = ["sh", "-c", "trap 'exit 0' TERM; httpd -f -p 8080 -h /www & wait"]


def states(status: dict[str, Any]) -> list[str]:
    return [next(iter(c["state"])) for c in status["containerStatuses"]]


def restarts(status: dict[str, Any]) -> list[int]:
    return [c["restartCount"] for c in status["containerStatuses"]]


def ready(status: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))


def test_a_killed_container_restarts_the_whole_pod(edge_node: EdgeNode) -> None:
    edge_node.start_agent()
    edge_node.want(manifest("duo", {"name": "web", "command": HTTPD}, {"name": "side", "command": IDLE}))
    edge_node.wait_status("duo Ready", "duo", ready)
    before = edge_node.wait_observed("duo running", "duo", running)
    edge_node.kill("duo", "web")
    edge_node.wait_observed("web exited", "duo", lambda p: p.containers[0].state == "exited")
    after = edge_node.wait_observed("duo running again", "duo", running)
    status = edge_node.wait_status("restartCount 1", "duo", lambda s: restarts(s) == [1, 1] and ready(s))
    assert [c.container_id for c in after.containers] == [c.container_id for c in before.containers]
    assert after.pod_id == before.pod_id
    web, side = status["containerStatuses"]
    assert web["lastState"]["terminated"]["exitCode"] == 137
    assert side["lastState"]["terminated"]["exitCode"] == 0  # stopped by shared fate: it traps SIGTERM
    # Podman's clock: side stopped no earlier than web died, and both started again only after both had stopped.
    stopped = [c["lastState"]["terminated"]["finishedAt"] for c in (web, side)]
    assert stopped[0] <= stopped[1] <= min(c["state"]["running"]["startedAt"] for c in (web, side))
    assert status["podIP"] == after.ip and status["hostIP"]
    # The agent's account: it stopped side (only side, once) because web died, and started both a second time.
    started_twice = {("Started", f"Started container {c}", 2) for c in ("web", "side")}
    deadline = time.monotonic() + 5
    while not started_twice <= set(edge_node.event_log("duo")) and time.monotonic() < deadline:
        time.sleep(0.05)
    log = edge_node.event_log("duo")
    assert started_twice <= set(log), log
    killing = [(message, count) for reason, message, count in log if reason == "Killing"]
    assert killing == [("Stopping container side: container web exited with code 137", 1)]


def test_a_crashing_container_is_backed_off_longer_each_time(edge_node: EdgeNode) -> None:
    edge_node.config["backoff_initial"] = 0.5
    edge_node.start_agent()
    edge_node.want(manifest("crash", {"name": "app", "command": ["sh", "-c", "sleep 0.2; exit 1"]}))
    delays: list[float] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and max(delays, default=0) < 2:
        status = edge_node.status("crash")
        waiting = (status or {}).get("containerStatuses", [{}])[0].get("state", {}).get("waiting", {})
        if waiting.get("reason") == "CrashLoopBackOff":
            delay = float(waiting["message"].split()[1].rstrip("s"))
            assert waiting["message"] == f"back-off {delay:g}s restarting failed container=app pod=default/crash"
            assert status is not None and status["phase"] == "Running" and not ready(status)
            if delay not in delays:
                delays.append(delay)
        time.sleep(0.05)
    # Immediately, then 0.5 s, 1 s, 2 s: each wait is seen (a loaded machine may skip the shortest).
    assert delays == sorted(delays) and len(delays) >= 2, delays
    assert set(delays) <= {0.5, 1, 2, 4}
    status = edge_node.wait_status("restartCount 3", "crash", lambda s: restarts(s)[0] >= 3)
    assert status["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 1
    edge_node.wait_status("more restarts", "crash", lambda s: restarts(s)[0] >= 4, timeout=15)
    backoffs = [m for r, m in edge_node.event_reasons("crash") if r == "BackOff"]
    assert backoffs == ["Back-off restarting failed container app in pod default/crash"]
    assert edge_node.event_count("crash", "BackOff") >= 2


def test_restart_policy_never_fails_the_pod_and_stops_its_other_containers(edge_node: EdgeNode) -> None:
    edge_node.start_agent()
    job = {"name": "job", "command": ["sh", "-c", "sleep 0.5; exit 3"]}
    edge_node.want(manifest("job", job, {"name": "side", "command": IDLE}, policy="Never"))
    status = edge_node.wait_status("job Failed", "job", lambda s: s["phase"] == "Failed")
    edge_node.wait_observed("side stopped", "job", lambda p: all(c.state == "exited" for c in p.containers))
    time.sleep(2)  # give a wrong restart the time to happen
    status = edge_node.status("job") or {}
    assert (status["phase"], states(status), restarts(status)) == ("Failed", ["terminated", "terminated"], [0, 0])
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    observed = edge_node.observed("job")
    assert observed is not None and all(c.state == "exited" for c in observed.containers)


def test_on_failure_with_exit_zero_succeeds(edge_node: EdgeNode) -> None:
    edge_node.start_agent()
    edge_node.want(
        manifest("batch", {"name": "quick", "command": ["true"]}, {"name": "slow", "command": ["sh", "-c", "sleep 1"]},
                 policy="OnFailure")
    )  # fmt: skip
    status = edge_node.wait_status("batch Succeeded", "batch", lambda s: s["phase"] == "Succeeded")
    assert restarts(status) == [0, 0]
    assert [c["state"]["terminated"]["reason"] for c in status["containerStatuses"]] == ["Completed", "Completed"]
    time.sleep(1.5)
    assert (edge_node.status("batch") or {})["phase"] == "Succeeded"


def test_a_failing_exec_liveness_probe_restarts_the_pod(edge_node: EdgeNode) -> None:
    alive = ["sh", "-c", "touch /tmp/alive; trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]
    probe = {"exec": {"command": ["test", "-f", "/tmp/alive"]}, "periodSeconds": 1, "failureThreshold": 1}
    edge_node.start_agent()
    edge_node.want(manifest("live", {"name": "app", "command": alive, "livenessProbe": probe},
                            {"name": "side", "command": IDLE}))  # fmt: skip
    edge_node.wait_status("live Ready", "live", ready)
    time.sleep(1.5)  # a passing probe changes nothing
    assert restarts(edge_node.status("live") or {}) == [0, 0]
    found = edge_node.observed("live")
    assert found is not None
    edge_node.runtime.exec(found.uid, "app", ["rm", "/tmp/alive"], 5)
    status = edge_node.wait_status("restarted", "live", lambda s: restarts(s) == [1, 1] and ready(s))
    assert states(status) == ["running", "running"]
    killed = ("Killing", "Container app failed liveness probe, will be restarted")
    deadline = time.monotonic() + 5
    while killed not in edge_node.event_reasons("live") and time.monotonic() < deadline:
        time.sleep(0.05)
    reasons = edge_node.event_reasons("live")
    assert killed in reasons, reasons
    # In the order the agent sent them: the probe failed, then the pod was killed for it.
    unhealthy = [
        i
        for i, (r, m) in enumerate(reasons)
        if r == "Unhealthy" and m.startswith("container app: Liveness probe failed: command ['test', '-f',")
    ]
    assert unhealthy and unhealthy[0] < reasons.index(killed), reasons


def test_exec_false_and_http_get_on_a_closed_port_fail_liveness(edge_node: EdgeNode) -> None:
    false = {"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 1}
    closed = {"httpGet": {"path": "/healthz", "port": 9999}, "periodSeconds": 1, "failureThreshold": 2}
    edge_node.start_agent()
    edge_node.want(
        manifest("ex", {"name": "app", "command": IDLE, "livenessProbe": false}),
        manifest("http", {"name": "web", "command": HTTPD, "livenessProbe": closed}),
    )
    for pod in ("ex", "http"):
        edge_node.wait_status(f"{pod} restarted", pod, lambda s: restarts(s)[0] >= 1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(
        any(r == "Unhealthy" for r, _ in edge_node.event_reasons(p)) for p in ("ex", "http")
    ):
        time.sleep(0.05)
    [ex] = {m for r, m in edge_node.event_reasons("ex") if r == "Unhealthy"}
    assert ex == "container app: Liveness probe failed: command ['false'] exited with 1"
    [http] = {m for r, m in edge_node.event_reasons("http") if r == "Unhealthy"}
    assert http.startswith("container web: Liveness probe failed: Get 'http://10.")
    assert ":9999/healthz'" in http and "refused" in http


def test_a_readiness_probe_gates_ready(edge_node: EdgeNode) -> None:
    probe = {"exec": {"command": ["test", "-f", "/tmp/ready"]}, "periodSeconds": 1, "failureThreshold": 1}
    edge_node.start_agent()
    edge_node.want(manifest("gate", {"name": "app", "command": IDLE, "readinessProbe": probe},
                            {"name": "side", "command": IDLE}))  # fmt: skip
    status = edge_node.wait_status("gate Running", "gate", lambda s: states(s) == ["running", "running"])
    time.sleep(1.5)
    status = edge_node.status("gate") or {}
    assert (status["phase"], ready(status)) == ("Running", False)
    assert [c["ready"] for c in status["containerStatuses"]] == [False, True]
    found = edge_node.observed("gate")
    assert found is not None
    edge_node.runtime.exec(found.uid, "app", ["touch", "/tmp/ready"], 5)
    status = edge_node.wait_status("gate Ready", "gate", ready, timeout=5)
    assert [c["ready"] for c in status["containerStatuses"]] == [True, True]
    edge_node.runtime.exec(found.uid, "app", ["rm", "/tmp/ready"], 5)
    status = edge_node.wait_status("gate not Ready", "gate", lambda s: not ready(s), timeout=5)
    assert restarts(status) == [0, 0]  # readiness never restarts anything


def test_http_get_and_tcp_socket_probes_pass_against_httpd(edge_node: EdgeNode) -> None:
    web = {
        "name": "web",
        "command": HTTPD,
        "ports": [{"containerPort": 8080, "name": "http"}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
        "livenessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1, "failureThreshold": 1},
    }
    edge_node.start_agent()
    edge_node.want(manifest("site", web))
    status = edge_node.wait_status("site Ready", "site", ready)
    assert status["podIP"].startswith("10.")
    time.sleep(3)
    status = edge_node.status("site") or {}
    assert ready(status) and restarts(status) == [0]
    assert not [m for r, m in edge_node.event_reasons("site") if r == "Unhealthy"]
