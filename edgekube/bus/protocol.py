"""The MessageBus protocol master, agent and CLI program against, and the Message record handlers receive."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Message:
    """One received MQTT message; response_topic/correlation come from MQTT 5 properties when present."""

    topic: str
    payload: bytes
    retain: bool = False
    response_topic: str | None = None
    correlation: bytes | None = None


@dataclass(frozen=True)
class Will:
    """Last Will: published (retained) by the broker when this client vanishes without a clean disconnect."""

    topic: str
    payload: bytes
    retain: bool = True
    qos: int = 1


Handler = Callable[[Message], None]
#: Called (on the handler thread) after every connection and reconnection, e.g. to publish presence again.
ConnectHook = Callable[[], None]


class MessageBus(Protocol):
    """Publish/subscribe with QoS, retained messages and request/response; handlers never run on the I/O thread.

    The daemon that owns a bus subscribes and registers its connect hooks, then calls `start`; subscriptions
    and hooks added later work too. Handlers and hooks run one at a time, in arrival order, on one thread.
    """

    def start(self, wait: float | None = None) -> MessageBus:
        """Connect (and keep reconnecting); with `wait`, raise BusError if not connected within that time."""
        ...

    def on_connect(self, hook: ConnectHook) -> None:
        """Run `hook` after every (re)connection; at once (on the handler thread) if already connected."""
        ...

    @property
    def connected(self) -> bool: ...

    def wait_connected(self, timeout: float) -> bool: ...

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None: ...

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        response_topic: str | None = None,
        correlation: bytes | None = None,
    ) -> None: ...

    def request(self, topic: str, payload: bytes, timeout: float = 5.0) -> Message: ...

    def close(self) -> None: ...
