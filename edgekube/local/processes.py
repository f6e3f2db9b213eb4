"""Pidfiles and process stopping shared by the local broker, the Podman services and the local cluster's daemons."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["alive", "live_pid", "read_pidfile", "stop_child", "stop_pidfile", "terminate", "write_pidfile"]

_POLL_INTERVAL = 0.05


def alive(pid: int | None, *, reap: bool = False) -> bool:
    """Tell whether `pid` runs and is not a zombie.

    With `reap`, an exited child of this process is reaped first (a detached child nobody waits for would
    otherwise stay a zombie). Without procfs a zombie cannot be told apart and counts as running.
    """
    if pid is None or pid <= 0:
        return False
    if reap:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True  # no procfs: trust kill(0)
    # The state follows the command name in parentheses, which may itself contain ")" or spaces.
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def read_pidfile(path: Path) -> int | None:
    """The pid written in `path`, or None when the file is missing, unreadable or holds no positive number."""
    try:
        pid = int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 0 else None


def write_pidfile(path: Path, pid: int) -> None:
    """Record `pid` in `path` atomically (a reader never sees a half-written file), creating its directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{pid}\n", encoding="ascii")
    tmp.replace(path)


def live_pid(path: Path, *, is_ours: Callable[[int], bool] | None = None, reap: bool = False) -> int | None:
    """The pid in `path` if that process runs (see alive()) and `is_ours(pid)` holds; else None.

    `is_ours` guards against a stale pidfile whose pid the kernel has since given to an unrelated process.
    """
    pid = read_pidfile(path)
    if pid is None or not alive(pid, reap=reap) or (is_ours is not None and not is_ours(pid)):
        return None
    return pid


def terminate(pid: int, timeout: float, *, reap: bool = False) -> None:
    """SIGTERM `pid`, wait up to `timeout` seconds for it to end, then SIGKILL it (it need not be our child)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while alive(pid, reap=reap):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return
        time.sleep(_POLL_INTERVAL)


def stop_pidfile(
    path: Path, timeout: float = 10.0, *, is_ours: Callable[[int], bool] | None = None, reap: bool = False
) -> bool:
    """terminate() the process named in `path` (see live_pid()); False if none was running.

    The pidfile is removed either way.
    """
    try:
        pid = live_pid(path, is_ours=is_ours, reap=reap)
        if pid is None:
            return False
        terminate(pid, timeout, reap=reap)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def stop_child(proc: subprocess.Popen[bytes], timeout: float, sig: signal.Signals = signal.SIGTERM) -> None:
    """Send `sig` to our child `proc` unless it has ended, and reap it; SIGKILL it after `timeout` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
