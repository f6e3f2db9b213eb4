"""Counts a node's starting and failing pods from the statuses the agent reports; pure, used by Agent for NodeState."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: Waiting reasons of a container that is not getting anywhere (the kubelet's words).
FAILING_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ErrImagePull",
        "ImagePullBackOff",
        "ImageNotFound",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CreateContainerError",
        "CreateContainerConfigError",
        "RunContainerError",
    }
)


def _waiting_reasons(status: Mapping[str, Any]) -> list[str]:
    reasons = []
    for c in [*(status.get("containerStatuses") or ()), *(status.get("initContainerStatuses") or ())]:
        waiting = (c.get("state") or {}).get("waiting")
        if waiting:
            reasons.append(str(waiting.get("reason") or ""))
    return reasons


def failing(status: Mapping[str, Any]) -> bool:
    """A pod that failed (not one that completed), or a container stuck in a failing reason."""
    if status.get("phase") == "Failed":
        return True
    if status.get("reason") in FAILING_REASONS:
        return True
    return any(r in FAILING_REASONS for r in _waiting_reasons(status))


def starting(status: Mapping[str, Any]) -> bool:
    """Pending, or Running with a container not Ready yet (being created, adopted, or before its readiness probe)."""
    phase = status.get("phase")
    if phase == "Pending":
        return True
    if phase != "Running":
        return False
    ready = next((c for c in status.get("conditions") or () if c.get("type") == "Ready"), None)
    return ready is not None and ready.get("status") != "True"


def count(statuses: Iterable[Mapping[str, Any]]) -> tuple[int, int]:
    """(starting, failing) among `statuses`; a failing pod is not counted as starting."""
    start = fail = 0
    for status in statuses:
        if failing(status):
            fail += 1
        elif starting(status):
            start += 1
    return start, fail
