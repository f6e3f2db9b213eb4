"""Podman reports container start times in whole seconds: the agent must never start probes early because of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edgekube.agent.app import _since


def test_a_whole_second_start_time_never_makes_a_container_look_older_than_it_is() -> None:
    wall = datetime.now(UTC)
    truncated = (wall - timedelta(seconds=3)).replace(microsecond=0)  # what Podman's list endpoint returns
    now = 1000.0
    since = _since(truncated.strftime("%Y-%m-%dT%H:%M:%SZ"), now)
    # The container started at most 3 s ago (maybe 3.99 s by the truncated stamp); counting from the latest
    # possible start keeps initialDelaySeconds whole.
    assert now - since <= 3.0 + 0.1
    assert now - since >= 2.0 - 0.1


def test_missing_or_garbled_start_times_count_from_now() -> None:
    assert _since(None, 5.0) == 5.0
    assert _since("yesterday", 5.0) == 5.0
