"""Ganesha: one NFSv4-only NFS-Ganesha server exporting a directory, for `edgekube up` and the tests.

Facts it is built on (NFS-Ganesha 4.3, Debian 12): with NFSv3/NLM/RQUOTA on it needs rpcbind and dies quietly
without one, so only NFSv4 is served; the config path must be absolute (the daemon changes directory when it
forks); it is ready in about 0.1 s, which is checked by connecting to its port, not by its exit status. Owners
go over the wire as numbers (`Only_Numeric_Owners`), as Linux servers send them, so clients see real uids. Each
server keeps its NFSv4 recovery records under its own root, so servers running side by side do not share them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from edgekube.local.broker import free_port
from edgekube.local.processes import alive, live_pid, terminate
from edgekube.model.errors import StorageError
from edgekube.nfs.target import NfsTarget

__all__ = ["PSEUDO", "Ganesha", "find_ganesha"]

#: The NFSv4 pseudo path the export appears under.
PSEUDO = "/export"
_EXTRA_BIN_DIRS = ("/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/sbin")


def find_ganesha() -> str:
    """Path of `ganesha.nfsd`; StorageError naming the packages if it is missing."""
    found = shutil.which("ganesha.nfsd") or shutil.which("ganesha.nfsd", path=os.pathsep.join(_EXTRA_BIN_DIRS))
    if found is None:
        raise StorageError(
            "NFS-Ganesha is not installed",
            hint="run scripts/install.sh (or: apt-get install nfs-ganesha nfs-ganesha-vfs)",
        )
    return found


def _is_ganesha(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text(encoding="utf-8", errors="replace").strip() == "ganesha.nfsd"
    except OSError:
        return True  # no procfs: trust the pidfile


class Ganesha:
    """An NFS-Ganesha serving `export_dir` over NFSv4 as `nfs://bind:port/export`; its files live under `root`.

    A second Ganesha object with the same `pidfile` finds a server started earlier (`running`), so `edgekube up`
    run again keeps it; stop() stops it whoever started it.
    """

    def __init__(
        self,
        root: Path,
        export_dir: Path,
        *,
        bind: str = "127.0.0.1",
        port: int | None = None,
        lease_lifetime: int = 10,
        pidfile: Path | None = None,
    ) -> None:
        self.root = root.resolve()
        self.export_dir = export_dir.resolve()
        self.bind = bind
        self._port = port
        self.lease_lifetime = lease_lifetime
        self.pidfile = (pidfile or self.root / "ganesha.pid").resolve()
        self.pseudo = PSEUDO

    # -- what it is ----------------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            self._port = free_port(self.bind)
        return self._port

    @property
    def conf_path(self) -> Path:
        return self.root / "ganesha.conf"

    @property
    def log_path(self) -> Path:
        return self.root / "ganesha.log"

    @property
    def pid(self) -> int | None:
        return live_pid(self.pidfile, is_ours=_is_ganesha, reap=True)

    @property
    def running(self) -> bool:
        return self.pid is not None

    def target(self, subpath: str = "") -> NfsTarget:
        """The NfsTarget of the export, or of `subpath` inside it."""
        base = NfsTarget(self.bind, self.pseudo, self.port)
        return base.child(subpath) if subpath.strip("/") else base

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])

    def config_text(self) -> str:
        # Grace_Period 0: no client state survives a restart here (the tests restart it and go on at once);
        # Ganesha warns that grace should match the lease and carries on.
        return f"""# Written by edgekube.local.nfs; rewritten at each start.
NFS_CORE_PARAM {{
    Protocols = 4;
    NFS_Port = {self.port};
    Bind_addr = {self.bind};
    Enable_NLM = false;
    Enable_RQUOTA = false;
}}
NFSV4 {{
    Grace_Period = 0;
    Lease_Lifetime = {self.lease_lifetime};
    Only_Numeric_Owners = true;
    Allow_Numeric_Owners = true;
    RecoveryRoot = "{self.root / "recovery"}";
}}
EXPORT {{
    Export_Id = 1;
    Path = "{self.export_dir}";
    Pseudo = "{self.pseudo}";
    Access_Type = RW;
    Squash = No_Root_Squash;
    Protocols = 4;
    SecType = sys;
    FSAL {{ Name = VFS; }}
}}
"""

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> Self:
        """Write the config, start the daemon and wait until its port answers; StorageError with the log's tail."""
        if self.running:
            return self
        binary = find_ganesha()
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "recovery").mkdir(exist_ok=True)
        self.export_dir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.config_text(), encoding="utf-8")
        with contextlib.suppress(FileNotFoundError):
            self.pidfile.unlink()
        self.pidfile.parent.mkdir(parents=True, exist_ok=True)
        command = [binary, "-f", str(self.conf_path), "-L", str(self.log_path), "-p", str(self.pidfile)]
        # It forks and the parent exits at once; what it prints before forking goes to the log too.
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        started = time.monotonic()
        while time.monotonic() < started + timeout:
            if self._answers():
                return self
            if time.monotonic() > started + 1.0 and not self.running:
                break  # the daemon is gone (it writes its pidfile within milliseconds): no point waiting
            time.sleep(0.02)
        output = (result.stdout + result.stderr).strip()
        self.stop()
        raise StorageError(
            f"NFS-Ganesha did not start serving on {self.bind}:{self.port} within {timeout:.0f}s "
            f"(exit status {result.returncode}){': ' + output if output else ''}\n"
            f"last lines of {self.log_path}:\n{self.log_tail(15)}",
            hint="is the port taken by another NFS server? the log above says why Ganesha stopped",
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the daemon (SIGTERM, then SIGKILL after `timeout`); nothing if it is not running."""
        pid = self.pid
        if pid is not None:
            terminate(pid, timeout, reap=True)
        with contextlib.suppress(FileNotFoundError):
            self.pidfile.unlink()

    def kill(self) -> None:
        """SIGKILL, no shutdown at all: a crashed server."""
        pid = self.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while alive(pid, reap=True):
                time.sleep(0.01)

    def restart(self, timeout: float = 10.0) -> Self:
        """Stop and start on the same port and export (clients must reconnect; their open state is gone)."""
        self.stop()
        return self.start(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _answers(self) -> bool:
        try:
            with socket.create_connection((self.bind, self.port), timeout=0.5):
                return True
        except OSError:
            return False
