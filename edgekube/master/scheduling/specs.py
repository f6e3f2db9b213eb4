"""Scheduling facts of pod specs cached by pod uid, so the master's loop reads each pod's spec once, not per pass."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgekube.master.controllers.owners import controller_ref
from edgekube.master.scheduling.scheduler import Request
from edgekube.model.taints import Toleration


def owner_of(pod: Mapping[str, Any]) -> str | None:
    ref = controller_ref(pod)
    return str(ref["uid"]) if ref is not None and ref.get("uid") else None


class SpecCache:
    """A pod's spec never changes after it is created (bar nodeName, which no cached fact depends on).

    Keyed by (uid, owner uid): adopting or releasing a pod changes which replicas it spreads from.
    """

    def __init__(self, limit_factor: int = 2) -> None:
        self._requests: dict[tuple[str, str | None], Request] = {}
        self._limit_factor = limit_factor

    def __len__(self) -> int:
        return len(self._requests)

    def request(self, pod: Mapping[str, Any]) -> Request:
        key = (pod["metadata"].get("uid") or "", owner_of(pod))
        req = self._requests.get(key)
        if req is None:
            req = self._requests[key] = Request.of_stored(pod["spec"], owner=key[1], meta=pod["metadata"])
        return req

    def tolerations(self, pod: Mapping[str, Any]) -> tuple[Toleration, ...]:
        if not pod["spec"].get("tolerations"):
            return ()
        return self.request(pod).tolerations

    def prune(self, pods: Mapping[Any, Mapping[str, Any]]) -> None:
        """Forget deleted pods, once the cache holds many more entries than there are `pods`."""
        if len(self._requests) > self._limit_factor * max(len(pods), 64):
            uids = {p["metadata"].get("uid") or "" for p in pods.values()}
            self._requests = {k: v for k, v in self._requests.items() if k[0] in uids}
