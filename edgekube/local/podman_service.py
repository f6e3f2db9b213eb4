"""Runs a private `podman system service` (own store, config, socket) for the local cluster and the tests."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from edgekube.local.processes import stop_child, stop_pidfile, write_pidfile
from edgekube.model.errors import RuntimeFailure

#: Unix socket paths are limited to 108 bytes (sun_path); leave a margin for the ".lock" podman adds.
_MAX_SOCKET_PATH = 100

_CONTAINERS_CONF = """\
# Written by edgekube.local.podman_service; one per simulated node.
[engine]
# crun cannot drive this host's hybrid cgroup v1/v2 layout; runc can.
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
# With no infra_image set, Podman 4.x builds localhost/podman-pause:<version> from the host's catatonit,
# so pods work without any registry.
{infra_image_line}
# Per-node: events, exit files and the "alive" marker would otherwise be shared by every node on the host.
tmp_dir = "{tmp_dir}"
volume_path = "{volume_path}"

[containers]
# Without explicit ulimits the OCI runtime inherits limits this sandbox refuses to set.
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
log_driver = "k8s-file"
"""

_STORAGE_CONF = """\
# Written by edgekube.local.podman_service.
[storage]
driver = "{driver}"
graphroot = "{graphroot}"
runroot = "{runroot}"
"""


class PodmanService:
    """A `podman system service --time=0` on `<workdir>/podman.sock`, with its own store under `workdir`.

    Use as a context manager, or call `start()`/`stop()`. With `pidfile` set, `stop()` can be called by a
    different process (the service runs in its own session so Ctrl-C in the parent does not reach it).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        infra_image: str | None = None,
        pidfile: Path | None = None,
        storage_driver: str = "overlay",
        startup_timeout: float = 30.0,
        podman_binary: str = "podman",
    ) -> None:
        self.workdir = Path(workdir).absolute()
        self.infra_image = infra_image
        self.pidfile = pidfile
        self.storage_driver = storage_driver
        self.startup_timeout = startup_timeout
        self.podman_binary = podman_binary
        self.socket_path = _socket_path(self.workdir)
        self.root = self.workdir / "root"
        self.runroot = _runroot(self.workdir)
        self.tmpdir = self.workdir / "tmp"
        self.libpod_tmp = self.workdir / "libpod"
        self.containers_conf = self.workdir / "containers.conf"
        self.storage_conf = self.workdir / "storage.conf"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """podman-py / Docker-style URL of the API socket."""
        return f"unix://{self.socket_path}"

    @property
    def env(self) -> dict[str, str]:
        """Environment for any podman CLI or service process that must use this store and config."""
        env = dict(os.environ)
        env["CONTAINERS_CONF"] = str(self.containers_conf)
        env["CONTAINERS_STORAGE_CONF"] = str(self.storage_conf)
        # Podman writes temporary layers here; keeping it in workdir avoids filling the shared /var/tmp.
        env["TMPDIR"] = str(self.tmpdir)
        return env

    def _global_args(self) -> list[str]:
        # --root/--runroot on top of storage.conf: explicit flags win even if a user storage.conf exists.
        return [
            self.podman_binary,
            "--root",
            str(self.root),
            "--runroot",
            str(self.runroot),
            "--storage-driver",
            self.storage_driver,
            "--cgroup-manager",
            "cgroupfs",
        ]

    def write_config(self) -> None:
        """Create workdir, containers.conf and storage.conf (idempotent)."""
        dirs = (self.socket_path.parent, self.workdir, self.root, self.runroot, self.tmpdir, self.libpod_tmp)
        for path in dirs:
            path.mkdir(parents=True, exist_ok=True)
        infra_line = f'infra_image = "{self.infra_image}"' if self.infra_image else ""
        self.containers_conf.write_text(
            _CONTAINERS_CONF.format(
                infra_image_line=infra_line, tmp_dir=self.libpod_tmp, volume_path=self.root / "volumes"
            )
        )
        self.storage_conf.write_text(
            _STORAGE_CONF.format(driver=self.storage_driver, graphroot=self.root, runroot=self.runroot)
        )

    def podman(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the podman CLI against this service's store; raises RuntimeFailure on failure if `check`."""
        cmd = [*self._global_args(), *args]
        try:
            result = subprocess.run(
                cmd,
                env=self.env,
                input=input,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeFailure(f"podman {' '.join(args)}: {exc}", reason="PodmanCLIError") from exc
        if check and result.returncode != 0:
            raise RuntimeFailure(
                f"podman {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}",
                reason="PodmanCLIError",
            )
        return result

    def start(self) -> PodmanService:
        """Write the config, launch the service and wait until it answers /_ping."""
        if self._process is not None and self._process.poll() is None:
            return self
        self.write_config()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        log = (self.workdir / "service.log").open("ab")
        try:
            self._process = subprocess.Popen(
                [*self._global_args(), "system", "service", "--time=0", self.url],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            raise RuntimeFailure(f"cannot start podman service: {exc}", reason="PodmanServiceError") from exc
        finally:
            log.close()
        if self.pidfile is not None:
            write_pidfile(self.pidfile, self._process.pid)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = (self.workdir / "service.log").read_text(errors="replace")[-2000:]
                raise RuntimeFailure(
                    f"podman service exited {self._process.returncode} during startup: {tail.strip()}",
                    reason="PodmanServiceError",
                )
            if self.ping():
                if self.pidfile is not None:
                    self._detach()
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeFailure(
            f"podman service on {self.socket_path} did not answer /_ping within {self.startup_timeout}s",
            reason="PodmanServiceError",
        )

    def _detach(self) -> None:
        # With a pidfile the service outlives this object (`edgekube up` exits, `down` stops it later):
        # forget the Popen, marking it reaped so its finalizer does not warn about a running child.
        assert self._process is not None
        self._process.returncode = 0
        self._process = None

    def ping(self, timeout: float = 2.0) -> bool:
        """Return True if the API socket answers `GET /_ping` with OK."""
        if not self.socket_path.exists():
            return False
        conn = _UnixHTTPConnection(str(self.socket_path), timeout=timeout)
        try:
            conn.request("GET", "/_ping")
            response = conn.getresponse()
            return response.status == 200 and response.read().strip() == b"OK"
        except OSError:
            return False
        finally:
            conn.close()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the service (SIGKILL after `timeout`); containers keep running under conmon."""
        if self._process is not None:
            stop_child(self._process, timeout)
        elif self.pidfile is not None:
            # A stale pidfile may name a recycled PID; only signal it if it is still our podman service.
            # The detached service may be our own child that nobody waits for: reap it once it exits.
            stop_pidfile(self.pidfile, timeout, is_ours=lambda pid: _is_our_service(pid, self.url), reap=True)
        self._process = None
        if self.pidfile is not None:
            with contextlib.suppress(FileNotFoundError):
                self.pidfile.unlink()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def cleanup(self) -> None:
        """Remove every container, pod and volume in this store (tests call it at session end)."""
        self.podman("pod", "rm", "--all", "--force", "--time", "0", check=False)
        self.podman("rm", "--all", "--force", "--time", "0", check=False)
        self.podman("volume", "rm", "--all", "--force", check=False)

    def destroy(self) -> None:
        """Stop the service, remove all containers and delete the whole workdir (store included)."""
        self.stop()
        self.cleanup()
        # Not `podman system reset`: it would also delete networks, which all nodes on this host share.
        shutil.rmtree(self.workdir, ignore_errors=True)
        for outside in {self.socket_path.parent, self.runroot.parent} - {self.workdir}:
            shutil.rmtree(outside, ignore_errors=True)

    def __enter__(self) -> PodmanService:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class _UnixHTTPConnection(http.client.HTTPConnection):
    """http.client over a unix socket, so the readiness probe needs nothing beyond the stdlib."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


#: Podman refuses a runroot path longer than this ("the specified runroot is longer than 50 characters").
_MAX_RUNROOT = 50


def _short_dir(workdir: Path) -> Path:
    """A short per-workdir directory under /tmp for the paths Podman or the kernel limit in length."""
    digest = hashlib.sha256(str(workdir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"ek-podman-{digest}"


def _runroot(workdir: Path) -> Path:
    """`<workdir>/run`, or `<short dir>/run` when that is longer than Podman accepts (a checkout in a deep path)."""
    preferred = workdir / "run"
    return preferred if len(str(preferred)) <= _MAX_RUNROOT else _short_dir(workdir) / "run"


def _socket_path(workdir: Path) -> Path:
    """`<workdir>/podman.sock`, or a short per-workdir path under /tmp when that is too long for sun_path."""
    preferred = workdir / "podman.sock"
    if len(str(preferred)) <= _MAX_SOCKET_PATH:
        return preferred
    return _short_dir(workdir) / "podman.sock"


def _is_our_service(pid: int, url: str) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"service" in argv and url.encode() in argv
