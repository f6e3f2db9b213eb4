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


Handler = Callable[[Message], None]


class MessageBus(Protocol):
    """Publish/subscribe with QoS, retained messages and request/response; handlers never run on the I/O thread."""

    @property
    def connected(self) -> bool: ...

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
