"""The ordered broker list of a client and its failover order (pure; PahoBus asks it where each attempt goes).

A fleet with two masters runs a broker beside each (docs/ha.md). Agents and `ekctl` know both, connect to one at
a time and move on when it fails; the masters connect to every broker, so any broker a client lands on carries
the active master's desired state and answers.

Policy, as most MQTT clients with a server list do it:

* the first attempt goes to the first broker of the list (the preferred one);
* a connection that works is kept: there is no switching back to the preferred broker while the current one
  works (a return would cost every client a reconnect, and each broker serves as well as the other);
* when the connection is lost or an attempt fails, the next attempt goes to the next broker, at once;
* only when every broker of the list failed in a row does the client back off (paho's 1-2 s) between attempts.

A connection shorter than `stable` seconds does not count as working (a broker that accepts and drops a client
at once must not make it spin between brokers without backing off).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgekube.model.errors import ValidationError

DEFAULT_PORT = 1883


@dataclass(frozen=True, order=True)
class Broker:
    """One MQTT broker's address."""

    host: str
    port: int = DEFAULT_PORT

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_broker(text: str, *, what: str = "--broker") -> Broker:
    """`HOST`, `HOST:PORT` or `[IPv6]:PORT`; ValidationError names the flag and the rule."""
    value = text.strip()
    host, port_text = value, ""
    if value.startswith("["):
        end = value.find("]")
        if end < 0 or (value[end + 1 :] and not value[end + 1 :].startswith(":")):
            raise ValidationError(f"{what} {text!r}: Invalid value: an IPv6 address goes in brackets, [ADDRESS]:PORT")
        host, port_text = value[1:end], value[end + 2 :]
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    elif ":" in value:
        raise ValidationError(f"{what} {text!r}: Invalid value: write an IPv6 address as [ADDRESS]:PORT")
    if not host:
        raise ValidationError(f"{what} {text!r}: Required value: a host name or address (HOST:PORT)")
    if not port_text:
        return Broker(host)
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValidationError(f"{what} {text!r}: Invalid value: the port must be a number from 1 to 65535")
    return Broker(host, int(port_text))


def resolve(brokers: Sequence[str] | str, host: str, port: int, *, what: str = "--broker") -> tuple[Broker, ...]:
    """The ordered broker list: `brokers` ("HOST:PORT" each, or one comma-separated string) or else host:port.

    Duplicates after the first mention are dropped (a list naming one broker twice would retry it as "another").
    """
    items = [b for b in brokers.split(",") if b.strip()] if isinstance(brokers, str) else list(brokers)
    parsed = [parse_broker(b, what=what) for b in items] or [Broker(host, port)]
    return tuple(dict.fromkeys(parsed))


class Failover:
    """Which broker each connection attempt goes to, and when to back off; see the module docstring.

    Calls come from one thread (paho's network loop): `attempt()` before each try, then `connected()` when the
    broker accepted it, `failed()` when the attempt or the connection ended.
    """

    def __init__(
        self, brokers: Sequence[Broker], *, stable: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not brokers:
            raise ValidationError("brokers: Required value: at least one MQTT broker")
        self.brokers = tuple(brokers)
        self._stable = stable
        self._clock = clock
        self._index = 0
        #: Attempts since the last connection that worked (the broker of a lost one counts as tried).
        self._tries = 0
        self._up_since: float | None = None
        self._pending = False

    @property
    def pending(self) -> bool:
        """An attempt (or the connection it made) is under way: its end is still to be reported by `failed()`."""
        return self._pending

    @property
    def current(self) -> Broker:
        """The broker connected to, or the one the next attempt goes to."""
        return self.brokers[self._index]

    def must_wait(self) -> bool:
        """Back off before the next attempt: every broker has been tried since the last connection that worked."""
        return self._tries >= len(self.brokers)

    def attempt(self) -> Broker:
        """Where this attempt goes (counted as a try)."""
        self._tries += 1
        self._pending = True
        return self.current

    def connected(self) -> None:
        """The current broker accepted the connection."""
        self._up_since = self._clock()

    def failed(self) -> None:
        """The attempt failed or the connection was lost: the next attempt goes to the next broker.

        Only the first report of an attempt's end counts (paho reports a keep-alive timeout twice): a second one
        would skip a broker.
        """
        if not self._pending:
            return
        self._pending = False
        if self._up_since is not None and self._clock() - self._up_since >= self._stable:
            self._tries = 1  # it worked: a new round starts, with this broker already tried
        self._up_since = None
        self._index = (self._index + 1) % len(self.brokers)
