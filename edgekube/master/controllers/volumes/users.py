"""Which pods use each claim, and on which node: fed by the cache's Pod feed; read by protection, binder, scheduler."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edgekube.master.controllers.volumes.facts import ClaimKey, pod_claims

_TERMINAL = ("Succeeded", "Failed")
_Key = tuple[str, str]


@dataclass(frozen=True)
class ClaimUse:
    """One pod using a claim: its uid, its node ("" while pending)."""

    uid: str
    node: str


class ClaimUsers:
    """Listener for Pod writes (CachedStore.listen). Finished pods (Succeeded, Failed) use no claim any more."""

    def __init__(self) -> None:
        self._by_claim: dict[ClaimKey, dict[_Key, ClaimUse]] = {}
        self._claims_of: dict[_Key, tuple[ClaimKey, ...]] = {}

    def observe(self, key: _Key, pod: Mapping[str, Any] | None) -> None:
        for claim in self._claims_of.pop(key, ()):
            users = self._by_claim.get(claim)
            if users is not None:
                users.pop(key, None)
                if not users:
                    del self._by_claim[claim]
        if pod is None or (pod.get("status") or {}).get("phase") in _TERMINAL:
            return
        claims = tuple(dict.fromkeys((key[0], name) for _, name, _ in pod_claims(pod)))
        if not claims:
            return
        use = ClaimUse(str(pod["metadata"].get("uid") or ""), str(pod["spec"].get("nodeName") or ""))
        for claim in claims:
            self._by_claim.setdefault(claim, {})[key] = use
        self._claims_of[key] = claims

    def users(self, namespace: str, claim: str) -> Mapping[_Key, ClaimUse]:
        """The unfinished pods using the claim, by (namespace, name)."""
        return self._by_claim.get((namespace, claim)) or {}

    def in_use(self, namespace: str, claim: str) -> bool:
        return bool(self._by_claim.get((namespace, claim)))
