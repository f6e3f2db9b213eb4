"""Unit tests of the node side of `ekctl logs -f` (agent/logfollow.py) on FakeRuntime: what each read sends, how
lines are cut into chunks, timestamps kept only when asked, the end chunk, and renewals."""

from __future__ import annotations

import pytest

from edgekube.agent.logfollow import MAX_FOLLOWS, Follower, Follows, FollowSpec
from edgekube.agent.runtime.fake import FakeRuntime
from edgekube.model.errors import EdgekubeError, NotFoundError
from edgekube.model.names import NodeName, PodUID
from edgekube.model.pod import Pod
from edgekube.model.watch import LOG_CHUNK_CHARS, LogChunk

UID = PodUID("u1")


def runtime() -> FakeRuntime:
    fake = FakeRuntime(NodeName("n"))
    manifest = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "main", "image": "busybox"}]}}
    fake.create_pod(Pod.model_validate(manifest), UID, "h")
    return fake


def spec(topic: str = "t", *, timestamps: bool = False) -> FollowSpec:
    return FollowSpec(UID, "main", topic, "s", tail=None, since=None, timestamps=timestamps)


def follower(fake: FakeRuntime, sent: list[LogChunk], *, timestamps: bool = False) -> Follower:
    return Follower(
        spec(timestamps=timestamps), fake, lambda _topic, payload: sent.append(LogChunk.decode(payload)), lambda: 0.0
    )


def test_each_read_sends_only_the_lines_after_the_last_one_sent_without_their_stamps() -> None:
    fake, sent = runtime(), list[LogChunk]()
    fake.write_log(UID, "main", "one\ntwo\n", at=100.0)
    f = follower(fake, sent)
    f._ship(f._read(first=True))
    fake.write_log(UID, "main", "three\n", at=200.0)
    f._ship(f._read(first=False))
    f._ship(f._read(first=False))  # nothing new: nothing sent
    assert [(c.seq, c.text) for c in sent] == [(1, "one\ntwo\n"), (2, "three\n")]


def test_timestamps_are_kept_when_the_client_asked_and_long_text_is_cut_into_chunks() -> None:
    fake, sent = runtime(), list[LogChunk]()
    fake.write_log(UID, "main", "a\n", at=100.0)
    f = follower(fake, sent, timestamps=True)
    f._ship(f._read(first=True))
    assert sent[0].text == "1970-01-01T00:01:40.000000000Z a\n"
    big = "x" * (LOG_CHUNK_CHARS - 100) + "\n"
    fake.write_log(UID, "main", big + big, at=200.0)
    f._ship(f._read(first=False))
    assert [len(c.text) for c in sent[1:]] == [len(big) + 31, len(big) + 31]  # a line each, with its stamp
    huge = "y" * (2 * LOG_CHUNK_CHARS) + "\n"
    fake.write_log(UID, "main", huge, at=300.0)
    f._ship(f._read(first=False))
    assert "".join(c.text for c in sent[3:]).endswith(huge) and max(len(c.text) for c in sent) <= LOG_CHUNK_CHARS


def test_a_pod_gone_from_the_node_ends_the_stream_with_the_reason() -> None:
    fake, sent = runtime(), list[LogChunk]()
    f = follower(fake, sent)
    fake.remove_pod(UID, 0)
    with pytest.raises(NotFoundError):
        f._read(first=True)
    f.start().thread.join(timeout=10)
    assert sent[-1].end and "not found" in sent[-1].reason


def test_follows_start_once_per_stream_then_renew_and_are_limited() -> None:
    fake = runtime()
    follows = Follows(fake, lambda _t, _p: None, lambda: 0.0)
    try:
        assert follows.start_or_renew(spec("a"), None) is True
        assert follows.start_or_renew(spec("a"), 0) is False
        for i in range(MAX_FOLLOWS - 1):
            follows.start_or_renew(spec(f"more-{i}"), None)
        with pytest.raises(EdgekubeError, match=f"at most {MAX_FOLLOWS}"):
            follows.start_or_renew(spec("one-too-many"), None)
    finally:
        follows.stop_all()
