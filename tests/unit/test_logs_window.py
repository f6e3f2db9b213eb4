"""Unit tests of `ekctl logs` windows: --previous from a pod's status, the agent's since/until, the fake's filter."""

from __future__ import annotations

from typing import Any

import pytest

from edgekube.agent.app import log_window
from edgekube.agent.runtime.fake import FakeRuntime
from edgekube.agent.runtime.protocol import LogWindow
from edgekube.cli.cmd_logs import previous_window
from edgekube.model.errors import NotFoundError, ValidationError
from edgekube.model.names import NodeName, PodUID
from edgekube.model.pod import Pod
from edgekube.model.wire import ApiRequest, Verb


def pod(state: dict[str, Any], last: dict[str, Any] | None) -> dict[str, Any]:
    status: dict[str, Any] = {"name": "c", "state": state, **({"lastState": {"terminated": last}} if last else {})}
    return {"metadata": {"name": "web"}, "status": {"containerStatuses": [status]}}


def test_previous_is_the_last_terminated_run_ending_before_the_current_one() -> None:
    last = {"startedAt": "2026-12-03T10:00:00Z", "finishedAt": "2026-12-03T10:00:05Z"}
    running = pod({"running": {"startedAt": "2026-12-03T10:00:10Z"}}, last)
    assert previous_window(running, "c") == ("2026-12-03T10:00:00Z", "2026-12-03T10:00:06Z")
    soon = pod({"running": {"startedAt": "2026-12-03T10:00:05Z"}}, last)  # restarted within the second
    assert previous_window(soon, "c") == ("2026-12-03T10:00:00Z", "2026-12-03T10:00:04.999999Z")
    waiting = pod({"waiting": {"reason": "CrashLoopBackOff"}}, last)
    assert previous_window(waiting, "c")[1] == "2026-12-03T10:00:06Z"


def test_previous_without_a_terminated_run_is_not_found_in_kubectl_s_words() -> None:
    with pytest.raises(NotFoundError, match='previous terminated container "c" in pod "web" not found'):
        previous_window(pod({"running": {}}, None), "c")


def test_the_agent_takes_the_later_of_since_time_and_since_seconds_by_its_own_clock() -> None:
    assert log_window(ApiRequest(verb=Verb.LOGS), 1000.0) is None
    request = ApiRequest(verb=Verb.LOGS, since_time="1970-01-01T00:10:00Z", since_seconds=100, timestamps=True)
    assert log_window(request, 1000.0) == LogWindow(since=900.0, until=None, timestamps=True)
    assert log_window(ApiRequest(verb=Verb.LOGS, until_time="1970-01-01T00:00:10Z"), 0.0) == LogWindow(until=10.0)
    with pytest.raises(ValidationError, match="sinceTime: Invalid value: 'soon'"):
        log_window(ApiRequest(verb=Verb.LOGS, since_time="soon"), 0.0)


def test_the_fake_keeps_each_lines_time_and_filters_by_the_window() -> None:
    runtime = FakeRuntime(NodeName("n"))
    uid = PodUID("u1")
    manifest = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "main", "image": "busybox"}]}}
    runtime.create_pod(Pod.model_validate(manifest), uid, "h")
    runtime.write_log(uid, "main", "first\n", at=100.0)
    runtime.write_log(uid, "main", "second\nthird\n", at=200.0)
    assert runtime.logs(uid, "main", None, LogWindow(since=150.0)) == "second\nthird\n"
    assert runtime.logs(uid, "main", None, LogWindow(until=150.0, timestamps=True)) == (
        "1970-01-01T00:01:40.000000000Z first\n"
    )
