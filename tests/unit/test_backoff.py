"""Restart back-off (CrashLoopBackOff): the schedule, its cap, and the reset after a quiet run; time is injected."""

from __future__ import annotations

import pytest

from edgekube.agent.backoff import Backoff, BackoffPolicy, ImagePullBackoffPolicy


@pytest.mark.parametrize(
    ("streak", "delay"),
    [(0, 0.0), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 16.0), (6, 32.0), (7, 60.0), (8, 60.0), (10_000, 60.0)],
)
def test_default_schedule_is_immediate_then_doubling_from_one_second_capped_at_sixty(streak: int, delay: float) -> None:
    assert BackoffPolicy().delay(streak) == delay


def test_the_schedule_is_configurable() -> None:
    policy = BackoffPolicy(initial=0.5, cap=3.0)
    assert [policy.delay(n) for n in range(6)] == [0.0, 0.5, 1.0, 2.0, 3.0, 3.0]


def test_a_crash_loop_waits_longer_each_time() -> None:
    backoff: Backoff[str] = Backoff()
    now, delays = 100.0, []
    for _ in range(6):
        delay = backoff.failed("pod", now)
        delays.append(delay)
        assert not backoff.due("pod", now + delay - 0.01) or delay == 0
        assert backoff.due("pod", now + delay)
        now += delay
        backoff.retried("pod", now)
        now += 0.5  # crashes half a second after each restart
    assert delays == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0]
    assert backoff.streak("pod") == 6


def test_remaining_counts_down_to_zero() -> None:
    backoff: Backoff[str] = Backoff()
    backoff.failed("pod", 0.0)
    backoff.retried("pod", 0.0)
    assert backoff.failed("pod", 1.0) == 1.0
    assert backoff.remaining("pod", 1.25) == 0.75
    assert backoff.remaining("pod", 5.0) == 0.0
    assert backoff.remaining("other", 5.0) == 0.0


@pytest.mark.parametrize(
    ("ran_for", "next_delay"),
    [(59.9, 4.0), (60.0, 0.0), (600.0, 0.0)],
)
def test_running_sixty_seconds_without_trouble_resets_the_back_off(ran_for: float, next_delay: float) -> None:
    backoff: Backoff[str] = Backoff()
    now = 0.0
    for _ in range(3):  # delays 0, 1, 2
        now += backoff.failed("pod", now)
        backoff.retried("pod", now)
    assert backoff.failed("pod", now + ran_for) == next_delay


def test_a_failed_retry_keeps_the_streak() -> None:
    backoff: Backoff[str] = Backoff()
    assert backoff.failed("pod", 0.0) == 0.0
    # The retry itself failed (no retried() call): the next wait doubles as usual.
    assert backoff.failed("pod", 0.1) == 1.0
    assert backoff.failed("pod", 1.2) == 2.0


def test_keys_are_independent_and_can_be_forgotten() -> None:
    backoff: Backoff[str] = Backoff()
    backoff.failed("a", 0.0)
    backoff.failed("a", 0.0)
    assert backoff.failed("b", 0.0) == 0.0
    assert sorted(backoff.tracked()) == ["a", "b"]
    backoff.forget("a")
    assert backoff.tracked() == ["b"]
    assert backoff.due("a", 0.0) and backoff.streak("a") == 0
    assert backoff.failed("a", 0.0) == 0.0


def test_the_image_pull_back_off_is_the_kubelets_10s_doubling_to_300s_with_no_retry_at_once() -> None:
    backoff: Backoff[str] = Backoff(ImagePullBackoffPolicy())
    delays = [backoff.failed("pod/image", float(t)) for t in range(7)]
    assert delays == [10, 20, 40, 80, 160, 300, 300]
