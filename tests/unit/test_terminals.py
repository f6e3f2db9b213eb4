"""Unit tests of the node side of `ekctl exec -it` (agent/terminals.py) on FakeRuntime's echoing terminal: the
command starts on the first request, keystrokes and resizes follow in order (duplicates dropped), its output goes
to the client's stream and the last chunk carries the exit code."""

from __future__ import annotations

import base64
import queue

import pytest

from edgekube.agent.runtime.fake import FakeRuntime, FakeTty
from edgekube.agent.terminals import Terminals
from edgekube.model.errors import EdgekubeError
from edgekube.model.names import NodeName, PodUID
from edgekube.model.pod import Pod
from edgekube.model.watch import LogChunk
from edgekube.model.wire import ApiRequest, Verb

UID = PodUID("u1")


def keys(text: str, ack: int) -> ApiRequest:
    data = base64.b64encode(text.encode()).decode()
    return ApiRequest(verb=Verb.EXEC, tty=True, stream="s", stdin=data, ack=ack)


def test_a_terminal_echoes_keys_in_order_resizes_and_ends_with_the_exit_code() -> None:
    fake = FakeRuntime(NodeName("n"))
    manifest = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "main", "image": "busybox"}]}}
    fake.create_pod(Pod.model_validate(manifest), UID, "h")
    sent: queue.Queue[LogChunk] = queue.Queue()
    terminals = Terminals(fake, lambda _topic, payload: sent.put(LogChunk.decode(payload)), lambda: 0.0)
    start = ApiRequest(verb=Verb.EXEC, tty=True, stream="s", command=["sh"], rows=30, cols=90)
    assert terminals.handle(start, UID, "main", "topic") is True
    session = terminals._open["topic"].session
    assert isinstance(session, FakeTty) and session.size == (30, 90)
    assert terminals.handle(keys("ls\n", 1), UID, "main", "topic") is False
    terminals.handle(keys("ls\n", 1), UID, "main", "topic")  # delivered twice: dropped
    terminals.handle(ApiRequest(verb=Verb.EXEC, tty=True, stream="s", rows=50, cols=120, ack=2), UID, "main", "topic")
    assert session.size == (50, 120)
    terminals.handle(keys("exit 3\n", 3), UID, "main", "topic")
    chunks = [sent.get(timeout=10) for _ in range(3)]
    assert [c.text for c in chunks] == ["ls\n", "exit 3\n", ""]
    assert chunks[-1].end and chunks[-1].exit_code == 3
    terminals._open["topic"].ended.wait(10)
    with pytest.raises(EdgekubeError, match="this terminal has ended"):
        terminals.handle(keys("x", 4), UID, "main", "topic")
