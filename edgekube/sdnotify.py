"""systemd's sd_notify protocol for the master and agent daemons: READY, STATUS, WATCHDOG and STOPPING datagrams.

Under a `Type=notify` unit systemd sets `NOTIFY_SOCKET` (a path, or `@name` for an abstract socket) and, with
`WatchdogSec=`, `WATCHDOG_USEC` (and `WATCHDOG_PID`: the watchdog is ours only if it names this process). Each
message is one datagram of `KEY=VALUE` lines. Without `NOTIFY_SOCKET` every call does nothing, so the daemons
call it unconditionally. No dependency: this is the whole protocol edgekube needs.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)


class SdNotify:
    """Sends notifications to systemd; a disabled one (no NOTIFY_SOCKET) ignores them."""

    def __init__(
        self,
        address: str | None,
        *,
        watchdog_usec: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._clock = clock
        self._last_ping = -float("inf")
        self._last_status = ""
        self._ready = False

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, *, pid: int | None = None) -> SdNotify:
        """What systemd told this process; a watchdog for another pid (a child's environment) is not ours."""
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        usec: int | None = None
        owner = env.get("WATCHDOG_PID")
        if env.get("WATCHDOG_USEC", "").isdigit() and (not owner or owner == str(pid or os.getpid())):
            usec = int(env["WATCHDOG_USEC"]) or None
        return cls(address, watchdog_usec=usec)

    @classmethod
    def disabled(cls) -> SdNotify:
        return cls(None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def ready_sent(self) -> bool:
        return self._ready

    def ready(self, status: str = "") -> None:
        """The daemon is serving: systemd starts units ordered after this one (sent once)."""
        if self._ready:
            return
        self._ready = True
        self._last_status = status or self._last_status
        self._send("READY=1", f"STATUS={status}" if status else "")

    def serving(self, status: str) -> None:
        """READY=1 with `status` the first time, a STATUS= line when it changes after that."""
        if self._ready:
            self.status(status)
        else:
            self.ready(status)

    def status(self, text: str) -> None:
        """What the daemon is doing, shown by `systemctl status` (sent only when it changed)."""
        if text != self._last_status:
            self._last_status = text
            self._send(f"STATUS={text}")

    def watchdog(self) -> None:
        """Called from the reconcile loop after each pass: sent at most every quarter of WatchdogSec."""
        if self.watchdog_usec is None:
            return
        now = self._clock()
        if now - self._last_ping < self.watchdog_usec / 4_000_000:
            return
        self._last_ping = now
        self._send("WATCHDOG=1")

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def _send(self, *lines: str) -> None:
        if self.address is None:
            return
        message = "\n".join(line for line in lines if line).encode()
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message, target)
        except OSError as exc:  # systemd gone or socket unreadable: the daemon keeps working regardless
            log.warning("sd_notify to %s failed: %s", self.address, exc)
