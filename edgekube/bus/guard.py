"""The one wrapper master and agent put around every bus handler: a bad message is logged and answered, never raised.

A malformed or hostile payload (or a bug) must not take a daemon down nor reach its loop: the error is logged
(one warning line for an EdgekubeError, a traceback for anything else) and, when the message asked for an
answer, answered with the wire error (`ErrorInfo.of`) naming the component whose log to read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from edgekube.bus.protocol import Handler, Message
from edgekube.model.errors import EdgekubeError
from edgekube.model.wire import ApiResponse, ErrorInfo

#: Sends an answer to the message's response topic.
Answer = Callable[[Message, ApiResponse], None]


def guarded(
    handler: Handler,
    *,
    answer: Answer,
    component: str,
    log: logging.Logger,
    stopping: Callable[[], bool] = lambda: False,
) -> Handler:
    """`handler`, made safe: while `stopping()` messages are dropped (the store may already be closed)."""

    def run(msg: Message) -> None:
        if stopping():
            return
        try:
            handler(msg)
        except Exception as exc:
            if isinstance(exc, EdgekubeError):
                log.warning("rejected message on %s: %s", msg.topic, exc)
            else:
                log.exception("failed to handle message on %s", msg.topic)
            if msg.response_topic:
                answer(msg, ApiResponse(ok=False, error=ErrorInfo.of(exc, component=component)))

    return run
