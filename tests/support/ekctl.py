"""`ekctl` as a process of its own, its stdout read line by line: used by integration tests of `logs -f`."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class Following:
    """A running ekctl; `lines` receives each line of its stdout (without the newline) as it is printed."""

    proc: subprocess.Popen[str]
    lines: queue.Queue[str]

    def ended(self, timeout: float = 60) -> tuple[int, str]:
        """Wait for ekctl to exit: its exit code and all it wrote on stderr."""
        code = self.proc.wait(timeout=timeout)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()


@contextmanager
def following(port: int, *args: str) -> Iterator[Following]:
    """Run `ekctl --mqtt-host 127.0.0.1 --mqtt-port PORT ARGS`; on leaving, kill it if running, close its pipes."""
    argv = ["--mqtt-host", "127.0.0.1", "--mqtt-port", str(port), *args]
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekube.cli.main", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    try:
        yield Following(proc, lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
