"""Await one slow request while a progress line on stderr says what is awaited (only once it takes a while)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TextIO, TypeVar

from edgekube.cli.wait import Progress

T = TypeVar("T")
#: Seconds before the progress line appears; a quick answer shows none.
DELAY = 1.0
TICK = 1.0


def await_with_progress(call: Callable[[], T], err: TextIO, what: str) -> T:
    """Run `call` on a worker thread and return its result or raise its error; Ctrl-C still stops ekctl."""
    outcome: list[T] = []
    failure: list[BaseException] = []
    finished = threading.Event()

    def work() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # handed to the caller's thread, re-raised there
            failure.append(exc)
        finally:
            finished.set()

    # A daemon, so an interrupted ekctl exits at once; closing the session ends the request anyway.
    threading.Thread(target=work, name="ekctl-request", daemon=True).start()
    progress = Progress(err)
    start = time.monotonic()
    shown = False
    while not finished.wait(TICK if shown else DELAY):
        progress.show(what, f"({time.monotonic() - start:.0f}s)", what)
        shown = True
    if shown:
        progress.clear()
    if failure:
        raise failure[0]
    return outcome[0]
