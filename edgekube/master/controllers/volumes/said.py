"""A volume controller's memory of the events it raised, so one situation is told once, not on every pass."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edgekube.master.controllers.volumes.actions import Say


class Said:
    """Drops a Say whose object, reason, message (and `instance`) equal the last one said for that object and reason."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str, str, str, str], tuple[str, str]] = {}

    def filter(self, actions: Sequence[Any]) -> list[Any]:
        out = []
        for action in actions:
            if isinstance(action, Say):
                ref = action.about
                key = (ref.kind, ref.namespace, ref.name, ref.uid or "", action.reason)
                said = (action.message, action.instance)
                if self._last.get(key) == said:
                    continue
                self._last[key] = said
            out.append(action)
        return out

    def forget_except(self, uids: set[str]) -> None:
        """Forget what was said about objects that are gone (keys by uid)."""
        self._last = {k: v for k, v in self._last.items() if k[3] in uids}
