"""The master's self-ping through the broker: how far behind its own inbox is; heartbeat ages run on its clock.

The master's inbox is one FIFO queue, so when an echo is handled, everything that reached the master before
that ping was sent has been handled too: the send time of the newest echo is a watermark. Measured on it, a
master that falls behind its inbox (a big apply, a slow SD card) does not see its nodes' heartbeats age; only
silence that actually reached it counts. Used by master.app.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from edgekube.bus import topics
from edgekube.model.errors import ValidationError

log = logging.getLogger(__name__)


class Echo:
    """Ping payloads out, echoes in; `watermark` is the send time (on `clock`) of the newest echo handled."""

    def __init__(self, client_id: str, clock: Callable[[], float]) -> None:
        self.topic = f"{topics.ROOT}/master/ping/{client_id}"
        self._id = uuid.uuid4().hex  # another process with our client id (a restarted master) is not us
        self._clock = clock
        self.watermark = clock()
        self._lagging = False

    def ping(self) -> bytes:
        return f"{self._id} {self._clock():.6f}".encode()

    def heard(self, payload: bytes) -> None:
        ident, _, sent = payload.decode("ascii", "replace").partition(" ")
        if ident != self._id:
            return
        try:
            self.watermark = max(self.watermark, float(sent))
        except ValueError:
            raise ValidationError(f"ping: {payload!r} is not an id and a time") from None

    def catch_up(self) -> None:
        """Take everything up to now as heard (on connecting: nothing older is in the inbox to wait for)."""
        self.watermark = max(self.watermark, self._clock())

    def lag(self) -> float:
        return self._clock() - self.watermark

    def lagging(self, limit: float) -> bool:
        """Is the newest echo more than `limit` seconds old? Changes are logged once."""
        lagging = self.lag() > limit
        if lagging != self._lagging:
            self._lagging = lagging
            if lagging:
                log.warning("own messages are %.1fs behind: not judging nodes until they catch up", self.lag())
            else:
                log.info("own messages caught up: judging nodes again")
        return lagging
