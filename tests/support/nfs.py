"""Test helpers for NFS volumes: a real NFS-Ganesha per test and FUSE mounts made by the edgekube-nfs-mount helper.

`running_ganesha()` gives a test module its server fixture; `mount_export()` runs the helper exactly as
mount.fuse does and unmounts at the end, checking the daemon exits.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekube.local.nfs import Ganesha
from edgekube.nfs.mount import helper_path, source_of
from edgekube.nfs.target import NfsTarget
from tests.support.prerequisites import require_nfs


@contextlib.contextmanager
def running_ganesha(*, lease_lifetime: int = 10) -> Iterator[Ganesha]:
    """A fresh NFSv4 Ganesha on a free loopback port, exporting an empty directory; stopped and removed at the end.

    Under /tmp rather than tmp_path: the mount points beside it stay short, and Ganesha's log is easy to find.
    Skips (or fails, with CI=true) when Ganesha, FUSE or libnfs is missing.
    """
    require_nfs()
    root = Path(tempfile.mkdtemp(prefix="ek-nfs-", dir="/tmp"))
    server = Ganesha(root / "server", root / "export", lease_lifetime=lease_lifetime).start()
    try:
        yield server
    finally:
        server.stop()
        _remove_tree(root)


def _remove_tree(root: Path) -> None:
    # Only once nothing is mounted inside (a live FUSE mount would be walked into).
    if not any(line.split()[1].startswith(str(root)) for line in _mounts()):
        subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False)


def _mounts() -> list[str]:
    return Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines()


def is_mounted(path: Path) -> bool:
    return any(line.split()[1] == str(path) for line in _mounts())


def helper_pids(mountpoint_or_source: Path | str) -> list[int]:
    """Pids of edgekube-nfs-mount processes with `mountpoint_or_source` as one of their arguments."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"edgekube-nfs-mount") for a in args[:2]) and str(mountpoint_or_source).encode() in args:
            found.append(int(entry.name))
    return found


def unmount(mountpoint: Path, timeout: float = 10.0) -> None:
    """fusermount -u, then wait until the helper serving it has exited; fails the test if it does not."""
    pids = helper_pids(mountpoint)
    if is_mounted(mountpoint):
        result = subprocess.run(["fusermount", "-u", str(mountpoint)], capture_output=True, text=True, check=False)
        if result.returncode != 0:  # busy: detach it lazily so the test run can go on
            subprocess.run(["fusermount", "-u", "-z", str(mountpoint)], capture_output=True, check=False)
    if not wait_exited(pids, timeout):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        pytest.fail(f"edgekube-nfs-mount for {mountpoint} did not exit within {timeout}s of the unmount")


def wait_exited(pids: list[int], timeout: float) -> bool:
    """Wait until none of `pids` runs (True), or `timeout` passed (False)."""
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@contextlib.contextmanager
def mount_export(target: NfsTarget, mountpoint: Path, *options: str) -> Iterator[Path]:
    """Mount `target` on `mountpoint` with the installed helper (as mount.fuse runs it); unmount at the end."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    command = [helper_path(), source_of(target), str(mountpoint)]
    if options:
        command += ["-o", ",".join(options)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, f"{' '.join(command)} failed: {result.stderr}"
    assert is_mounted(mountpoint), f"the helper exited 0 but {mountpoint} is not mounted"
    try:
        yield mountpoint
    finally:
        unmount(mountpoint)
