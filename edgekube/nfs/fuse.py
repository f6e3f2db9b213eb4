"""NfsOperations: the FUSE filesystem (fusepy) that the mount helper serves, each call forwarded to an NfsClient.

Runs single-threaded (fusepy `nothreads`): the kernel's requests are answered one at a time on one NFS connection,
while a keepalive thread renews the NFSv4 lease through the same (locked) client. Every error becomes the errno
the kernel hands to the process: StorageError carries it; anything unexpected is logged and answered with EIO.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
import time
from typing import Any

from fuse import FuseOSError, Operations

from edgekube.model.errors import StorageError
from edgekube.nfs.client import NfsClient, NfsFile
from edgekube.nfs.target import NfsTarget

__all__ = ["NfsOperations"]

log = logging.getLogger("edgekube.nfs.fuse")


class NfsOperations(Operations):  # type: ignore[misc]  # fusepy has no types
    """The filesystem of one NFS target; the connection is made in init() (after the helper daemonized)."""

    #: fusepy: utimens gets nanoseconds (without it fusepy warns that float seconds are deprecated).
    use_ns = True

    def __init__(
        self,
        target: NfsTarget,
        *,
        timeout: float = 5.0,
        keepalive: float = 5.0,
        read_only: bool = False,
        uid: int | None = None,
        gid: int | None = None,
    ) -> None:
        self.target = target
        self.uid = uid
        self.gid = gid
        self.timeout = timeout
        self.keepalive_interval = keepalive
        self.read_only = read_only
        self.client: NfsClient | None = None
        self._files: dict[int, NfsFile] = {}
        self._next_fh = 1
        self._stop = threading.Event()
        self._keepalive: threading.Thread | None = None

    # -- dispatch ------------------------------------------------------------------------------------------------
    def __call__(self, op: str, *args: Any) -> Any:
        method = getattr(self, op, None)
        if method is None:
            raise FuseOSError(errno.ENOSYS)
        try:
            return method(*args)
        except FuseOSError:
            raise
        except StorageError as exc:
            code = exc.errno if isinstance(exc.errno, int) and exc.errno > 0 else errno.EIO
            level = logging.DEBUG if code in (errno.ENOENT, errno.EEXIST, errno.ENOTEMPTY) else logging.WARNING
            log.log(level, "%s %s: %s", op, args[:1], exc)
            raise FuseOSError(code) from None
        except Exception:
            log.exception("%s %s failed unexpectedly", op, args[:1])
            raise FuseOSError(errno.EIO) from None

    def _nfs(self) -> NfsClient:
        if self.client is None:
            self.client = NfsClient(self.target, timeout=self.timeout, uid=self.uid, gid=self.gid)
        return self.client

    def _writable(self) -> None:
        if self.read_only:
            raise FuseOSError(errno.EROFS)

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def init(self, path: str) -> None:
        self._nfs()
        if self.keepalive_interval > 0:
            self._keepalive = threading.Thread(target=self._renew, name="nfs-keepalive", daemon=True)
            self._keepalive.start()
        log.info("mounted %s", self.target)

    def destroy(self, path: str) -> None:
        self._stop.set()
        if self.client is not None:
            self.client.close()
        log.info("unmounted %s", self.target)

    def _renew(self) -> None:
        while not self._stop.wait(self.keepalive_interval):
            client = self.client
            if client is not None:
                try:
                    client.keepalive()
                except Exception:  # never let the thread die: the next round may work
                    log.exception("keepalive failed")

    # -- metadata -----------------------------------------------------------------------------------------------
    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        file = self._files.get(fh) if fh else None
        st = file.stat() if file is not None else self._nfs().lstat(path)
        return {
            "st_mode": st.st_mode, "st_ino": st.st_ino, "st_nlink": st.st_nlink, "st_uid": st.st_uid,
            "st_gid": st.st_gid, "st_size": st.st_size, "st_atime": st.st_atime_ns, "st_mtime": st.st_mtime_ns,
            "st_ctime": st.st_ctime_ns, "st_blocks": st.st_blocks, "st_blksize": st.st_blksize,
        }  # fmt: skip

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", *self._nfs().listdir(path)]

    def readlink(self, path: str) -> str:
        return self._nfs().readlink(path)

    def statfs(self, path: str) -> dict[str, int]:
        st = self._nfs().statvfs(path)
        return {
            "f_bsize": st.f_bsize, "f_frsize": st.f_frsize, "f_blocks": st.f_blocks, "f_bfree": st.f_bfree,
            "f_bavail": st.f_bavail, "f_files": st.f_files, "f_ffree": st.f_ffree, "f_favail": st.f_favail,
            "f_namemax": st.f_namemax,
        }  # fmt: skip

    def chmod(self, path: str, mode: int) -> None:
        self._writable()
        st = self._nfs().lstat(path)
        if stat.S_IMODE(st.st_mode) != stat.S_IMODE(mode):  # unchanged is a no-op (libnfs cannot do directories)
            self._nfs().chmod(path, stat.S_IMODE(mode))

    def chown(self, path: str, uid: int, gid: int) -> None:
        """An unchanged owner is a no-op: Podman chowns a new volume's root to the container's user."""
        self._writable()
        st = self._nfs().lstat(path)
        uid = st.st_uid if uid == -1 else uid
        gid = st.st_gid if gid == -1 else gid
        if (uid, gid) != (st.st_uid, st.st_gid):
            self._nfs().chown(path, uid, gid)

    def utimens(self, path: str, times: tuple[int, int] | None = None) -> None:
        """A directory's times cannot be set through libnfs 4.0: they are left alone (tar, cp -a, touch succeed)."""
        self._writable()
        atime, mtime = (t / 1e9 for t in times) if times else (time.time(),) * 2
        try:
            self._nfs().utimes(path, atime, mtime)
        except StorageError as exc:
            if exc.errno != errno.EOPNOTSUPP:
                raise
            log.debug("utimens %s: %s (ignored)", path, exc)

    # -- the namespace --------------------------------------------------------------------------------------------
    def mkdir(self, path: str, mode: int) -> None:
        self._writable()
        self._nfs().mkdir(path, stat.S_IMODE(mode))

    def rmdir(self, path: str) -> None:
        self._writable()
        self._nfs().rmdir(path)

    def unlink(self, path: str) -> None:
        self._writable()
        self._nfs().remove(path)

    def rename(self, old: str, new: str) -> None:
        self._writable()
        self._nfs().rename(old, new)

    def symlink(self, target: str, source: str) -> None:
        """Make symlink `target` (fusepy's order) pointing at `source`."""
        self._writable()
        self._nfs().symlink(source, target)

    def link(self, target: str, source: str) -> None:
        """Make hard link `target` (fusepy's order) to the existing file `source`."""
        self._writable()
        self._nfs().link(source, target)

    # -- file contents --------------------------------------------------------------------------------------------
    def _handle(self, file: NfsFile) -> int:
        fh = self._next_fh
        self._next_fh += 1
        self._files[fh] = file
        return fh

    def _file(self, fh: int) -> NfsFile:
        file = self._files.get(fh)
        if file is None:
            raise FuseOSError(errno.EBADF)
        return file

    def create(self, path: str, mode: int, fi: Any = None) -> int:
        self._writable()
        return self._handle(self._nfs().open_file(path, os.O_RDWR | os.O_CREAT, stat.S_IMODE(mode)))

    def open(self, path: str, flags: int) -> int:
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
            self._writable()
        # O_APPEND is the kernel's business: it sends each write with the offset at the end of the file.
        return self._handle(self._nfs().open_file(path, flags & ~(os.O_CREAT | os.O_EXCL | os.O_APPEND)))

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return self._file(fh).pread(size, offset)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        self._writable()
        return self._file(fh).pwrite(data, offset)

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        self._writable()
        file = self._files.get(fh) if fh else None
        if file is not None:
            file.truncate(length)
        else:
            self._nfs().truncate(path, length)

    def flush(self, path: str, fh: int) -> None:
        return None  # the last release() of a written file commits it (fsync), as NFS clients do on close

    def fsync(self, path: str, datasync: int, fh: int) -> None:
        self._file(fh).fsync()

    def release(self, path: str, fh: int) -> None:
        file = self._files.pop(fh, None)
        if file is not None:
            file.close()
