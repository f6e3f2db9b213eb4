"""One iproute2 `ip` command with its failure as RuntimeFailure: the runner of routes.py and loopback.py."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from edgekube.model.errors import RuntimeFailure


class IpCommand:
    """`ip` in the agent's network namespace (`prefix`: e.g. nsenter, for tests); failures carry `reason`."""

    reason = "IpError"

    def __init__(self, binary: str = "ip", timeout: float = 10.0, prefix: Sequence[str] = ()) -> None:
        self.argv = [*prefix, binary]
        self.timeout = timeout

    def _run(self, *args: str) -> str:
        argv = [*self.argv, *args]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeFailure(f"{' '.join(argv)}: {exc}", reason=self.reason) from exc
        if done.returncode != 0:
            raise RuntimeFailure(f"{' '.join(argv)}: {done.stderr.strip()}", reason=self.reason)
        return done.stdout
