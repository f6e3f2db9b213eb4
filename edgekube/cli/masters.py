"""What ekctl sees of a two-master cluster's masters (docs/ha.md): their retained presences, for BusSession's hints.

Both masters are connected to every broker, and only the active one answers requests, so ekctl needs no master
address: it sends to the broker it is on and the active answers. When no answer comes, what the masters last said
of themselves on that broker tells the user why (the active is gone and a takeover is under way, or no master
announces itself at all).
"""

from __future__ import annotations

import threading

from edgekube.bus import topics
from edgekube.bus.protocol import Message
from edgekube.model.errors import ValidationError
from edgekube.model.ha import MasterPresence, Role


class MasterSightings:
    """Presences seen on `edgekube/v1/masters/+/online` (subscribed before connecting: retained copies come first)."""

    def __init__(self) -> None:
        self._seen: dict[str, MasterPresence] = {}
        self._lock = threading.Lock()

    def on_presence(self, msg: Message) -> None:
        try:
            master_id = topics.master_of(msg.topic)
            presence = MasterPresence.decode(msg.payload, what="master presence") if msg.payload else None
        except ValidationError:
            return  # a hint is best effort: never fail a command over it
        with self._lock:
            if presence is None:
                self._seen.pop(master_id, None)
            else:
                self._seen[master_id] = presence

    def active(self) -> str | None:
        """The master that says it is active and online, with the highest term; None if none does."""
        with self._lock:
            live = [(p.term, m) for m, p in self._seen.items() if p.online and p.role is Role.ACTIVE]
        return max(live)[1] if live else None

    def hint(self) -> str:
        """One line on the masters, for a request that got no answer ("" on a cluster without master presences)."""
        with self._lock:
            seen = sorted(self._seen.items())
        if not seen:
            return ""
        parts = []
        for master_id, p in seen:
            role = p.role.value if p.role is not None else "role unknown"
            parts.append(f"{master_id} {role} term {p.term} {'online' if p.online else 'offline'}")
        if self.active() is None:
            return "masters: " + "; ".join(parts) + " — no active master online: a takeover may be under way, retry"
        return "masters: " + "; ".join(parts)
