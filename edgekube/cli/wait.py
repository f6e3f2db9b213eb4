"""`apply --wait`: poll the applied pods until they run, with a one-line progress report on stderr."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, TextIO

from edgekube.cli.kinds import POD
from edgekube.cli.status import pod_summary, section
from edgekube.model.errors import EdgekubeError, NotFoundError
from edgekube.model.types import Obj

if TYPE_CHECKING:
    from edgekube.cli.client import Client

#: Polls come every FIRST_POLL_INTERVAL for the first FAST_POLLS_FOR seconds (a pod on an idle node runs within
#: ~0.3 s; one poll is one small request), then each 1.5 times the last, up to POLL_INTERVAL.
FIRST_POLL_INTERVAL = 0.025
FAST_POLLS_FOR = 2.0
POLL_INTERVAL = 0.5


def is_done(pod: Obj) -> bool:
    """Tell if a pod runs with every container ready, or already Succeeded (a short job may finish first)."""
    phase = section(pod, "status").get("phase")
    summary = pod_summary(pod)
    ready, total = summary.ready.split("/")
    return phase == "Succeeded" or (phase == "Running" and summary.status == "Running" and ready == total)


def describe_state(pod: Obj) -> str:
    summary, status = pod_summary(pod), section(pod, "status")
    shown = f"{summary.status} {summary.ready}"
    reason, message = status.get("reason"), status.get("message")
    if reason and reason != summary.status:
        shown += f" ({reason}: {message})" if message else f" ({reason})"
    return shown


class Progress:
    """Rewrites one line in place on a terminal; elsewhere (logs, CI) prints a line only when it changes."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.tty = err.isatty()
        self.last = ""

    def show(self, head: str, tail: str, state: str) -> None:
        """Show `head tail`; off a terminal only when `state` changed, so the ticking clock adds no lines."""
        if self.tty:
            self.err.write(f"\r\x1b[K{head} {tail}")
        elif state != self.last:
            self.err.write(f"{head} {tail}\n")
        self.err.flush()
        self.last = state

    def clear(self) -> None:
        """Erase the progress line on a terminal, before an error is printed in its place."""
        if self.tty:
            self.err.write("\r\x1b[K")
            self.err.flush()

    def done(self, text: str) -> None:
        if self.tty:
            self.err.write("\r\x1b[K")
        self.err.write(text + "\n")
        self.err.flush()


def pause(seconds: float) -> None:
    """Sleep between polls; a seam for tests, which replace it to change the pods' state instead."""
    time.sleep(seconds)


def until_running(client: Client, pods: list[tuple[str, str]], *, timeout: float, err: TextIO) -> None:
    """Return when every pod is done; raise when one failed, vanished or the time ran out."""
    if not pods:
        return
    progress = Progress(err)
    start = time.monotonic()
    interval = FIRST_POLL_INTERVAL
    while True:
        states: dict[str, str] = {}
        waiting = []
        for namespace, name in pods:
            try:
                pod = client.get(POD, namespace, name)
            except NotFoundError:
                raise EdgekubeError(f"pod {namespace}/{name} was deleted while waiting for it") from None
            if section(pod, "status").get("phase") == "Failed":
                progress.done(f"pod/{name}: {describe_state(pod)}")
                raise EdgekubeError(
                    f"pod {namespace}/{name} failed: {describe_state(pod)}",
                    hint=f"see `ekctl describe pod {name}` and `ekctl logs {name}`",
                )
            states[name] = describe_state(pod)
            if not is_done(pod):
                waiting.append(name)
        elapsed = time.monotonic() - start
        if not waiting:
            progress.done(f"{len(pods)} pod(s) running after {elapsed:.0f}s")
            return
        detail = ", ".join(f"{name} {states[name]}" for name in waiting)
        if elapsed >= timeout:
            progress.clear()
            raise EdgekubeError(
                f"timed out after {timeout:g}s waiting for {len(waiting)} pod(s) to run: {detail}",
                hint=f"see `ekctl describe pod {waiting[0]}`; a Pending pod usually has no node that fits",
            )
        progress.show(f"waiting for {len(waiting)}/{len(pods)} pod(s) to run", f"({elapsed:.0f}s): {detail}", detail)
        pause(interval)
        if elapsed >= FAST_POLLS_FOR:
            interval = min(interval * 1.5, POLL_INTERVAL)
