"""probe(): can this NFSv4 export be used right now? A TCP connect, then a mount and a stat of the path, time-boxed.

Used before a volume is mounted or provisioned, so a pod waiting for an unreachable server gets a one-line reason
instead of a hang. libnfs runs in a daemon thread (its calls release the GIL) that is abandoned at the deadline.
"""

from __future__ import annotations

import socket
import stat
import threading
import time

from edgekube.model.errors import StorageError
from edgekube.nfs.client import NfsClient
from edgekube.nfs.target import NfsTarget

__all__ = ["probe"]


def probe(target: NfsTarget, timeout: float = 2.0) -> str | None:
    """None when `target` is reachable and a directory; else one line saying why not. Returns within `timeout`."""
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((target.server, target.port), timeout=max(0.05, timeout)):
            pass
    except TimeoutError:
        return f"cannot reach nfs server {target.address()}: no answer within {timeout:g}s"
    except OSError as exc:
        return f"cannot reach nfs server {target.address()}: {exc.strerror or exc}"

    outcome: list[str | None] = []

    def check() -> None:
        try:
            with NfsClient(target, timeout=max(1.0, timeout)) as client:
                mode = client.stat("").st_mode
            outcome.append(None if stat.S_ISDIR(mode) else f"nfs path {target} is not a directory")
        except StorageError as exc:
            outcome.append(str(exc))

    worker = threading.Thread(target=check, name=f"nfs-probe {target}", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    if not outcome:
        return f"nfs server {target.address()} accepts connections but did not answer within {timeout:g}s"
    return outcome[0]
