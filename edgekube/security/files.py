"""Writing secrets safely: files created with their final mode (0600 keys), atomic replace, a lock for the index."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

#: Private keys: owner read/write only, from the moment the file exists (never chmod after writing).
SECRET_MODE = 0o600
#: Certificates, the CRL, the index and the ACL hold nothing secret.
PUBLIC_MODE = 0o644


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to a temporary file created with `mode`, fsync it, then rename it over `path`."""
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have taken bits away from a public file; never adds any
        with os.fdopen(fd, "wb") as fh:
            fd = -1
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        if fd >= 0:
            os.close(fd)
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """Hold an exclusive lock on `directory` (its `.lock` file): `ca issue` run in parallel by Ansible stays safe."""
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, SECRET_MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
