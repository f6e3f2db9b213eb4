"""What the master's group commit asks before it answers and publishes: the replication gate (master/app.py).

A single master has `NoGate`: answers go once the writes are on its flash. An HA active has the Replicator
(active.py): the commit ships the new journal records to the standby under the master's lock, then waits outside
it until the standby acknowledged them (or was declared down, and the cluster told so). A deposed master's gate
refuses: its owed answers are dropped (the client sees a timeout, never a success that may be lost) and its
desired state is never published again.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol


class CommitGate(Protocol):
    #: The master's term, written into every NodeDesired it publishes (0: a single master, no terms).
    term: int

    def ship(self) -> int:
        """Under the master's lock, right after a group commit: send what was written; the seq to wait for."""
        ...

    def settle(self, seq: int) -> bool:
        """Outside the lock: block until the writes up to `seq` may be acknowledged; False: never (deposed)."""
        ...

    def publishing(self) -> AbstractContextManager[bool]:
        """Hold while publishing desired state; it yields False once this master is deposed."""
        ...


class NoGate:
    """A single master: nothing to ship, every answer may go at once."""

    term = 0

    def ship(self) -> int:
        return 0

    def settle(self, seq: int) -> bool:
        return True

    @contextmanager
    def publishing(self) -> Iterator[bool]:
        yield True
