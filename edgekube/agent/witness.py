"""What this node vouches for about the masters (docs/ha.md): its retained Witness and StaleMaster events; for Agent.

Every master announces itself, retained, on `edgekube/v1/masters/<id>/online` (`MasterPresence`; its Will says
offline). The agent follows those on the broker it is connected to and states, retained on
`edgekube/v1/nodes/<node>/witness`: the highest term it accepted desired state for, which master is the active one
of that term, and whether that master's presence is online where the node is. A standby takes over only when a
majority of Ready nodes say "term T, active offline" — so the node must never say "offline" without having seen it:
after a failover to another broker the presences already known are kept until that broker's retained copies (or
Wills) replace them, never cleared.

Called on the bus's handler thread only (presence messages, desired state, connect hook): no lock needed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from edgekube.agent.events import NodeEvents
from edgekube.bus import topics
from edgekube.bus.protocol import Message, MessageBus
from edgekube.model.ha import MasterPresence, Role, Witness

log = logging.getLogger(__name__)

#: Event reason when desired state from a deposed master (a lower term) is refused.
STALE_MASTER = "StaleMaster"


def _rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class MasterWatch:
    """The masters' presences as this node sees them, the term it holds, and the Witness that follows from both."""

    def __init__(self, node: str, term: int, *, wall: Callable[[], str] = _rfc3339) -> None:
        self.node = node
        self._wall = wall
        self._term = term
        self._active = ""
        self._presences: dict[str, MasterPresence] = {}
        self._since = wall()
        self._refused: tuple[int, str] | None = None
        #: StaleMaster events, flushed with the node's other events by the reporter.
        self.node_events = NodeEvents(node, clock=wall)

    def witness(self) -> Witness:
        return Witness(
            node=self.node, term=self._term, active=self._active, active_online=self._active_online(), since=self._since
        )

    def _active_online(self) -> bool:
        presence = self._presences.get(self._active)
        return presence is not None and presence.online

    def _state(self) -> tuple[int, str, bool]:
        return self._term, self._active, self._active_online()

    def _after(self, before: tuple[int, str, bool]) -> bool:
        """Whether anything the witness says changed; then `since` moves to now."""
        if self._state() == before:
            return False
        self._since = self._wall()
        return True

    def _elect(self) -> None:
        """The active of the held term is the master announcing itself active with it (kept until another does)."""
        for master_id, presence in sorted(self._presences.items()):
            if presence.online and presence.role is Role.ACTIVE and presence.term == self._term:
                self._active = master_id

    def on_presence(self, msg: Message) -> bool:
        """A master's presence (an empty payload: its retained copy was cleared); True if the witness changed."""
        master_id = topics.master_of(msg.topic)
        before = self._state()
        if msg.payload:
            presence = MasterPresence.decode(msg.payload, what="master presence")
            self._presences[master_id] = presence
        else:
            self._presences.pop(master_id, None)
        self._elect()
        return self._after(before)

    def on_term(self, term: int) -> bool:
        """Desired state of `term` was accepted; True if the witness changed."""
        if term == self._term:
            return False
        before = self._state()
        if term > self._term:
            self._term, self._active = term, ""
            self._elect()
        return self._after(before)

    def refused(self, term: int, epoch: str) -> None:
        """Record (once per master and term) that desired state of an older term was refused."""
        if self._refused == (term, epoch):
            return
        self._refused = (term, epoch)
        holder = f" (active master {self._active})" if self._active else ""
        self.node_events.record(
            STALE_MASTER,
            f"refused desired state of term {term}: this node follows term {self._term}{holder}",
            "Warning",
        )

    def publish(self, bus: MessageBus) -> None:
        """The witness, retained (QoS 1), on this node's witness topic."""
        bus.publish(topics.node_witness(self.node), self.witness().encode(), retain=True)

    def flush_events(self, publish: Callable[[list[dict[str, Any]]], None]) -> int:
        return self.node_events.flush(publish)
