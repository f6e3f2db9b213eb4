"""NfsClient: one NFSv4 connection to one export (libnfs), thread-safe, reconnecting; used by the provisioner and FUSE.

libnfs 4.0's NFSv4 client has traps this class hides (each measured against NFS-Ganesha 4.3):
- a WRITE over ~3.9 KB fails to encode ("ZDR error"), so writes go out in chunks of WRITE_CHUNK bytes;
- it never renews the lease: after Lease_Lifetime idle seconds the open state is gone (NFS4ERR_EXPIRED, which
  libnfs reports as ERANGE). `keepalive()` READs one byte through an open file (a stateful op renews the lease);
  when the state is lost anyway, the connection is made again, open files are re-opened and the call retried;
- two OPENs of one file on one connection share one stateid, and closing either breaks the other, so each path
  has one refcounted open file (`open_file`), and truncate/chmod go through it while it is open;
- an exclusive create is all `nfs_create` does (EEXIST on an existing file), and it ignores the mode: chmod after;
- a call to a server that stopped answering returns EINTR "Command timed out" after `timeout` (whole seconds).
Paths given to the methods are relative to the target's path ("" is the target directory itself).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import posixpath
import socket
import stat as stat_module
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Self

from edgekube.model.errors import StorageError
from edgekube.nfs.libnfs import LIB, LibnfsMissing, NfsStat64, NfsStatvfs64, Timeval
from edgekube.nfs.target import NfsTarget

__all__ = ["READ_CHUNK", "WRITE_CHUNK", "NfsClient", "NfsFile", "storage_error"]

log = logging.getLogger(__name__)

#: Largest WRITE libnfs 4.0 encodes reliably over NFSv4 (3.8 KB works, 4 KB fails).
WRITE_CHUNK = 3072
#: Largest READ asked for at once (libnfs splits nothing itself; Ganesha's default maximum is 1 MiB).
READ_CHUNK = 1 << 20
#: libnfs errors after which the connection is made again and the call retried once: state lost (NFSv4 errors
#: libnfs has no errno for come back as ERANGE: EXPIRED, BAD_STATEID, STALE_CLIENTID), connection gone.
_RECONNECT = frozenset({errno.ERANGE, errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN, errno.EBADF})
#: A timeout (EINTR) or a refused/failed connect: the connection is dropped, the error raised at once.
_DROP = frozenset({errno.EINTR, errno.ETIMEDOUT, errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EIO})


def storage_error(err: int, message: str, *, hint: str = "") -> StorageError:
    """A StorageError carrying `err` as its errno (FUSE answers with it); str() stays `message`.

    (OSError's str() becomes "[Errno n] strerror" once strerror is set, so only errno is.)
    """
    exc = StorageError(message, hint=hint)
    exc.errno = err
    return exc


class _Connection:
    """One libnfs context, mounted; `generation` tells open files whether their handle belongs to it."""

    def __init__(self, context: int, generation: int) -> None:
        self.context = context
        self.generation = generation


class NfsFile:
    """A file open on the server, shared by every opener of its path (see NfsClient.open_file); close() each time."""

    def __init__(self, client: NfsClient, path: str, writable: bool) -> None:
        self.client = client
        self.path = path  # server path, kept current by NfsClient.rename
        self.writable = writable
        self.refs = 1
        self.handle = ctypes.c_void_p()
        self.generation = -1
        self.dirty = False  # written since the last fsync: the last close() commits it (close-to-open)

    def pread(self, size: int, offset: int) -> bytes:
        return self.client._pread(self, size, offset)

    def pwrite(self, data: bytes, offset: int) -> int:
        return self.client._pwrite(self, data, offset)

    def truncate(self, length: int) -> None:
        self.client._fcall("truncate", self, lambda c, h: LIB.nfs_ftruncate(c, h, length))

    def chmod(self, mode: int) -> None:
        self.client._fcall("chmod", self, lambda c, h: LIB.nfs_fchmod(c, h, mode & 0o7777))

    def chown(self, uid: int, gid: int) -> None:
        self.client._fcall("chown", self, lambda c, h: LIB.nfs_fchown(c, h, uid, gid))

    def fsync(self) -> None:
        self.client._fcall("fsync", self, LIB.nfs_fsync)
        self.dirty = False

    def stat(self) -> os.stat_result:
        st = NfsStat64()
        self.client._fcall("stat", self, lambda c, h: LIB.nfs_fstat64(c, h, ctypes.byref(st)))
        return _stat_result(st)

    def close(self) -> None:
        self.client._release(self)


class NfsClient:
    """One connection to one NFSv4 export; every call holds a lock, so threads may share it; a context manager.

    Each method raises StorageError (with errno set) naming the server and path; a call to a server that stopped
    answering gives up after about `timeout` seconds. `uid`/`gid` are the AUTH_SYS credentials sent (default:
    this process's).
    """

    def __init__(
        self, target: NfsTarget, *, timeout: float = 5.0, uid: int | None = None, gid: int | None = None
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.uid = os.getuid() if uid is None else uid
        self.gid = os.getgid() if gid is None else gid
        self._lock = threading.RLock()
        self._conn: _Connection | None = None
        self._generation = 0
        self._files: dict[str, NfsFile] = {}
        self._closed = False
        # libnfs 4.0 cannot change attributes of the directory it mounted (chmod/chown "/" fail with
        # NFS4ERR_INVAL): it mounts the target's parent when that is not the server's root, so the target
        # directory is an ordinary entry in it.
        parent = posixpath.dirname(target.path)
        self._mount_path = target.path if parent == "/" else parent

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conn = self._conn
            if conn is not None:
                for file in self._files.values():
                    if file.generation == conn.generation:
                        LIB.nfs_close(conn.context, file.handle)
            self._files.clear()
            self._drop()

    def connect(self) -> None:
        """Mount now (the other methods do it when needed); StorageError if the server cannot be reached."""
        with self._lock:
            self._connection()

    def keepalive(self) -> None:
        """Renew the NFSv4 lease: READ one byte through an open file (nothing to renew when none is open).

        Call it more often than the server's lease time (Linux knfsd: 90 s, Ganesha: 60 s by default).
        """
        with self._lock:
            if self._conn is None or self._closed:
                return
            for file in list(self._files.values()):
                with contextlib.suppress(StorageError):
                    self._pread(file, 1, 0)
                    return

    # -- the path API --------------------------------------------------------------------------------------------
    def exists(self, path: str) -> bool:
        try:
            self._lstat(self._abs(path))
        except StorageError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return False
            raise
        return True

    def stat(self, path: str) -> os.stat_result:
        """Like os.stat (symlinks followed)."""
        st = NfsStat64()
        server_path = self._abs(path)
        self._call("stat", server_path, lambda c: LIB.nfs_stat64(c, self._n(server_path), ctypes.byref(st)))
        return _stat_result(st)

    def lstat(self, path: str) -> os.stat_result:
        return self._lstat(self._abs(path))

    def makedirs(self, path: str, mode: int = 0o777) -> None:
        """Like os.makedirs(path, mode, exist_ok=True): StorageError (EEXIST) only if a file is in the way."""
        current = self.target.path
        for part in self._abs(path)[len(self.target.path) :].split("/"):
            if not part:
                continue
            current = posixpath.join(current, part)
            try:
                self._mkdir(current, mode)
            except StorageError as exc:
                if exc.errno != errno.EEXIST:
                    raise
                if not stat_module.S_ISDIR(self._lstat(current).st_mode):
                    raise
        if not stat_module.S_ISDIR(self.stat(path).st_mode):
            raise storage_error(errno.ENOTDIR, self._message("makedirs", self._abs(path), errno.ENOTDIR))

    def mkdir(self, path: str, mode: int = 0o777) -> None:
        self._mkdir(self._abs(path), mode)

    def listdir(self, path: str = "") -> list[str]:
        server_path = self._abs(path)
        names: list[str] = []

        def read(context: int) -> int:
            names.clear()
            directory = ctypes.c_void_p()
            rc: int = LIB.nfs_opendir(context, self._n(server_path), ctypes.byref(directory))
            if rc < 0:
                return rc
            try:
                while entry := LIB.nfs_readdir(context, directory):
                    name = entry.contents.name.decode("utf-8", "surrogateescape")
                    if name not in (".", ".."):
                        names.append(name)
            finally:
                LIB.nfs_closedir(context, directory)
            return 0

        self._call("listdir", server_path, read)
        return sorted(names)

    def read_bytes(self, path: str) -> bytes:
        file = self.open_file(path, os.O_RDONLY)
        try:
            chunks: list[bytes] = []
            offset = 0
            while chunk := file.pread(READ_CHUNK, offset):
                chunks.append(chunk)
                offset += len(chunk)
            return b"".join(chunks)
        finally:
            file.close()

    def write_bytes(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Replace the file at `path` with `data` atomically: a temporary file beside it, synced, renamed over it."""
        directory, name = posixpath.split(path.strip("/"))
        tmp = posixpath.join(directory, f".{name}.tmp-{uuid.uuid4().hex[:12]}")
        file = self.open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            file.pwrite(data, 0)
            file.fsync()
        except BaseException:
            file.close()
            with contextlib.suppress(StorageError):
                self.remove(tmp)
            raise
        file.close()
        self.rename(tmp, path)

    def rename(self, old: str, new: str) -> None:
        """Like os.rename: replaces an existing file `new` (or an empty directory, for a directory)."""
        old_path, new_path = self._abs(old), self._abs(new)
        self._call(
            "rename", f"{old_path} -> {new_path}", lambda c: LIB.nfs_rename(c, self._n(old_path), self._n(new_path))
        )
        with self._lock:
            replaced = self._files.pop(new_path, None)
            if replaced is not None:  # its open state now names a file nobody can reach: keep it under no name
                self._files[f"\0replaced-{id(replaced)}"] = replaced
            moved = {p: f for p, f in self._files.items() if p == old_path or p.startswith(old_path + "/")}
            for path, file in moved.items():
                del self._files[path]
                file.path = new_path + path[len(old_path) :]
                self._files[file.path] = file

    def remove(self, path: str) -> None:
        """Like os.remove (a file or a symlink)."""
        server_path = self._abs(path)
        self._call("remove", server_path, lambda c: LIB.nfs_unlink(c, self._n(server_path)))

    def rmdir(self, path: str) -> None:
        server_path = self._abs(path)
        self._call("rmdir", server_path, lambda c: LIB.nfs_rmdir(c, self._n(server_path)))

    def rmtree(self, path: str) -> None:
        """Like shutil.rmtree: the directory and everything in it (symlinks are removed, not followed)."""
        rel = path.strip("/")
        for name in self.listdir(rel):
            child = posixpath.join(rel, name)
            if stat_module.S_ISDIR(self.lstat(child).st_mode):
                self.rmtree(child)
            else:
                self.remove(child)
        if rel:
            self.rmdir(rel)

    def truncate(self, path: str, length: int) -> None:
        """Through the open file when `path` is open (a truncate by path would break its open state)."""
        server_path = self._abs(path)
        with self._lock:
            file = self._files.get(server_path)
            if file is not None:
                file.truncate(length)
                return
        self._call("truncate", server_path, lambda c: LIB.nfs_truncate(c, self._n(server_path), length))

    def chmod(self, path: str, mode: int) -> None:
        """Through the open file when `path` is open (see truncate)."""
        server_path = self._abs(path)
        with self._lock:
            file = self._files.get(server_path)
            if file is not None:
                file.chmod(mode)
                return
        with self._no_directory_attributes("chmod", server_path):
            self._call("chmod", server_path, lambda c: LIB.nfs_chmod(c, self._n(server_path), mode & 0o7777))

    def chown(self, path: str, uid: int, gid: int) -> None:
        server_path = self._abs(path)
        with self._lock:
            file = self._files.get(server_path)
            if file is not None:
                file.chown(uid, gid)
                return
        with self._no_directory_attributes("chown", server_path):
            self._call("chown", server_path, lambda c: LIB.nfs_lchown(c, self._n(server_path), uid, gid))

    def utimes(self, path: str, atime: float, mtime: float) -> None:
        """Set access and modification times (seconds since the epoch)."""
        self._utimes(self._abs(path), atime, mtime)

    def _utimes(self, server_path: str, atime: float, mtime: float) -> None:
        times = (Timeval * 2)()
        for slot, value in zip(times, (atime, mtime), strict=True):
            slot.tv_sec = int(value // 1)
            slot.tv_usec = round((value % 1) * 1_000_000) % 1_000_000
        with self._lock:
            file = self._files.get(server_path)
            if file is not None:
                # libnfs has no futimes and sets times by OPEN + SETATTR + CLOSE, a CLOSE that would end the open
                # state of `file` too: close it first, it re-opens on its next use.
                self._suspend(file)
            with self._no_directory_attributes("utimes", server_path):
                self._call("utimes", server_path, lambda c: LIB.nfs_utimes(c, self._n(server_path), times))

    def symlink(self, target: str, path: str) -> None:
        """Create symlink `path` pointing at `target` (stored as given)."""
        server_path = self._abs(path)
        self._call("symlink", server_path, lambda c: LIB.nfs_symlink(c, _b(target), self._n(server_path)))

    def readlink(self, path: str) -> str:
        server_path = self._abs(path)
        buf = ctypes.create_string_buffer(4097)
        self._call("readlink", server_path, lambda c: LIB.nfs_readlink(c, self._n(server_path), buf, len(buf) - 1))
        return buf.value.decode("utf-8", "surrogateescape")

    def link(self, existing: str, new: str) -> None:
        old_path, new_path = self._abs(existing), self._abs(new)
        self._call("link", f"{old_path} -> {new_path}", lambda c: LIB.nfs_link(c, self._n(old_path), self._n(new_path)))

    def statvfs(self, path: str = "") -> os.statvfs_result:
        server_path = self._abs(path)
        st = NfsStatvfs64()
        self._call("statvfs", server_path, lambda c: LIB.nfs_statvfs64(c, self._n(server_path), ctypes.byref(st)))
        return os.statvfs_result(
            (st.f_bsize, st.f_frsize, st.f_blocks, st.f_bfree, st.f_bavail, st.f_files, st.f_ffree, st.f_favail,
             st.f_flag, st.f_namemax)
        )  # fmt: skip

    def open_file(self, path: str, flags: int = os.O_RDONLY, mode: int = 0o644) -> NfsFile:
        """Open (O_CREAT, O_EXCL, O_TRUNC honoured; O_APPEND is the caller's: pwrite takes offsets) and share per path.

        The file is opened read-write whenever the server allows it, so later openers of the same path share the
        one open state whatever they asked for.
        """
        server_path = self._abs(path)
        want_write = flags & os.O_ACCMODE != os.O_RDONLY
        with self._lock:
            file = self._files.get(server_path)
            if file is not None:
                if flags & os.O_CREAT and flags & os.O_EXCL:
                    raise storage_error(errno.EEXIST, self._message("create", server_path, errno.EEXIST))
                if want_write and not file.writable:
                    raise storage_error(
                        errno.EACCES, self._message("open for writing", server_path, errno.EACCES),
                        hint="the file is open read-only already and the server refused read-write",
                    )  # fmt: skip
                file.refs += 1
                if flags & os.O_TRUNC:
                    file.truncate(0)
                return file
            file = NfsFile(self, server_path, writable=True)
            created = False
            if flags & os.O_CREAT:
                created = self._create(file, exclusive=bool(flags & os.O_EXCL))
            if not created:
                self._open(file, want_write)
                if flags & os.O_TRUNC and want_write:
                    file.truncate(0)
            self._files[server_path] = file
            if created:
                try:
                    file.chmod(mode)  # nfs_create ignores the mode
                    # ... and makes an exclusive create, whose verifier the server keeps in the times (year 2105)
                    now = time.time()
                    self._utimes(server_path, now, now)
                except StorageError:
                    self._release(file)
                    raise
            return file

    # -- internals -----------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _no_directory_attributes(self, what: str, server_path: str) -> Iterator[None]:
        """Turn EISDIR into EOPNOTSUPP: libnfs 4.0 OPENs what it changes the attributes of (NFS4ERR_ISDIR)."""
        try:
            yield
        except StorageError as exc:
            if exc.errno != errno.EISDIR:
                raise
            raise storage_error(
                errno.EOPNOTSUPP,
                f"nfs server {self.target.address()}: {what} {server_path}: "
                "libnfs 4.0 cannot change a directory's mode, owner or times over NFSv4",
                hint="give the mode when creating the directory (mkdir takes one)",
            ) from None

    def _abs(self, path: str) -> str:
        rel = path.strip("/")
        if rel and ".." in rel.split("/"):
            raise storage_error(errno.EINVAL, f"nfs path {path!r} must not contain '..'")
        return posixpath.join(self.target.path, rel) if rel else self.target.path

    def _rel_to_mount(self, server_path: str) -> str:
        """The path libnfs takes: relative to the mounted directory (`_mount_path`), whose "/" it is."""
        rest = server_path[len(self._mount_path) :]
        return rest if rest.startswith("/") else "/" + rest

    def _n(self, server_path: str) -> bytes:
        return _b(self._rel_to_mount(server_path))

    def _message(self, what: str, path: str, err: int, detail: str = "") -> str:
        text = f"nfs server {self.target.address()}: {what} {path}: {os.strerror(err)}"
        return f"{text} ({detail})" if detail and detail != os.strerror(err) else text

    def _connection(self) -> _Connection:
        if self._closed:
            raise storage_error(errno.EBADF, f"nfs client for {self.target} is closed")
        if self._conn is not None:
            return self._conn
        try:
            context = LIB.nfs_init_context()
        except LibnfsMissing as exc:
            raise storage_error(errno.ENOSYS, str(exc), hint="run scripts/install.sh") from None
        if not context:
            raise storage_error(errno.ENOMEM, "libnfs could not create a context")
        ok = False
        try:
            # Seconds, rounded up: libnfs counts its timeout in whole seconds.
            LIB.nfs_set_timeout(context, max(1, int(-(-self.timeout // 1))) * 1000)
            url = LIB.nfs_parse_url_dir(context, _b(self.target.url()))
            if not url:
                detail = (LIB.nfs_get_error(context) or b"").decode(errors="replace")
                raise storage_error(errno.EINVAL, f"nfs url {self.target.url()} is not valid: {detail}")
            try:
                LIB.nfs_set_uid(context, self.uid)
                LIB.nfs_set_gid(context, self.gid)
                LIB.nfs_set_autoreconnect(context, 0)
                LIB.nfs_set_dircache(context, 0)
                # A client name of our own: two connections with the same name would take each other's state.
                LIB.nfs4_set_client_name(context, _b(f"edgekube-{os.uname().nodename}-{os.getpid()}-{uuid.uuid4()}"))
                rc = LIB.nfs_mount(context, url.contents.server, _b(self._mount_path))
            finally:
                LIB.nfs_destroy_url(url)
            if rc < 0:
                detail = (LIB.nfs_get_error(context) or b"").decode(errors="replace")
                if "nfs_service failed" in detail:  # libnfs' words for "the connection failed"; say how
                    detail = _tcp_failure(self.target, min(self.timeout, 2.0)) or detail
                err = -rc if -rc in _DROP or -rc not in (errno.ERANGE, 0) else errno.EIO
                raise storage_error(
                    err, f"cannot mount nfs server {self.target.address()} export {self.target.path}: {detail}",
                    hint="check the server runs, exports the path over NFSv4 and the port is reachable",
                )  # fmt: skip
            ok = True
        finally:
            if not ok:
                LIB.nfs_destroy_context(context)
        self._generation += 1
        self._conn = _Connection(context, self._generation)
        return self._conn

    def _drop(self) -> None:
        """Forget the connection (its open handles die with it; open files re-open on next use)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            LIB.nfs_destroy_context(conn.context)

    def _call(self, what: str, path: str, fn: Callable[[int], int], *, retry: bool = True) -> int:
        """Run `fn(context)` under the lock; reconnect and retry once when the state or connection was lost."""
        with self._lock:
            for attempt in (0, 1):
                conn = self._connection()
                rc = fn(conn.context)
                if rc >= 0:
                    return rc
                self._failed(what, path, conn, -rc, retry=retry and attempt == 0)
            raise AssertionError("unreachable")

    def _lstat(self, server_path: str) -> os.stat_result:
        st = NfsStat64()
        rel = self._rel_to_mount(server_path)
        self._call("stat", server_path, lambda c: LIB.nfs_lstat64(c, _b(rel), ctypes.byref(st)))
        return _stat_result(st)

    def _mkdir(self, server_path: str, mode: int) -> None:
        rel = self._rel_to_mount(server_path)
        self._call("mkdir", server_path, lambda c: LIB.nfs_mkdir2(c, _b(rel), mode & 0o7777))

    def _create(self, file: NfsFile, *, exclusive: bool) -> bool:
        """Create the file (nfs_create is exclusive); False when it exists already and `exclusive` is off."""
        rel = self._rel_to_mount(file.path)

        def create(context: int) -> int:
            rc: int = LIB.nfs_create(context, _b(rel), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600,
                                     ctypes.byref(file.handle))  # fmt: skip
            return rc

        try:
            self._call("create", file.path, create)
        except StorageError as exc:
            if exc.errno == errno.EEXIST and not exclusive:
                return False
            raise
        assert self._conn is not None
        file.generation = self._conn.generation
        return True

    def _open(self, file: NfsFile, want_write: bool) -> None:
        rel = self._rel_to_mount(file.path)

        def open_(flags: int) -> Callable[[int], int]:
            return lambda c: LIB.nfs_open(c, _b(rel), flags, ctypes.byref(file.handle))

        try:
            self._call("open", file.path, open_(os.O_RDWR))
            file.writable = True
        except StorageError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR) or want_write:
                raise
            self._call("open", file.path, open_(os.O_RDONLY))
            file.writable = False
        assert self._conn is not None
        file.generation = self._conn.generation

    def _fcall(self, what: str, file: NfsFile, fn: Callable[[int, ctypes.c_void_p], int]) -> int:
        """`fn(context, handle)` on an open file, re-opening it first when the connection was made again."""
        with self._lock:
            for attempt in (0, 1):
                conn = self._connection()
                if file.generation != conn.generation:
                    self._open(file, file.writable)
                    conn = self._connection()
                rc = fn(conn.context, file.handle)
                if rc >= 0:
                    return rc
                self._failed(what, file.path, conn, -rc, retry=attempt == 0)
            raise AssertionError("unreachable")

    def _failed(self, what: str, path: str, conn: _Connection, err: int, *, retry: bool) -> None:
        """Return (after dropping the connection) when the call should be retried on a new one; else raise."""
        detail = (LIB.nfs_get_error(conn.context) or b"").decode(errors="replace")
        if err in _RECONNECT or err in _DROP:
            self._drop()
            if err in _RECONNECT and retry:
                log.info("nfs server %s: %s %s lost its state or connection (%s); reconnecting",
                         self.target.address(), what, path, detail)  # fmt: skip
                return
            if err == errno.ERANGE:
                err = errno.EIO
        raise storage_error(err, self._message(what, path, err, detail))

    def _pread(self, file: NfsFile, size: int, offset: int) -> bytes:
        buf = ctypes.create_string_buffer(min(size, READ_CHUNK))
        out: list[bytes] = []
        while size > 0:
            want = min(size, READ_CHUNK)
            got = self._fcall("read", file, lambda c, h: LIB.nfs_pread(c, h, offset, want, buf))  # noqa: B023
            if got <= 0:
                break
            out.append(buf.raw[:got])
            offset += got
            size -= got
        return b"".join(out)

    def _pwrite(self, file: NfsFile, data: bytes, offset: int) -> int:
        view = memoryview(data)
        written = 0
        with self._lock:
            file.dirty = True
            for start in range(0, len(view), WRITE_CHUNK):
                chunk = bytes(view[start : start + WRITE_CHUNK])
                at = offset + start
                n = self._fcall("write", file, lambda c, h: LIB.nfs_pwrite(c, h, at, len(chunk), chunk))  # noqa: B023
                written += n
                if n < len(chunk):
                    break
        return written

    def _suspend(self, file: NfsFile) -> None:
        """Close the file's handle on the server; the next call through it opens it again."""
        conn = self._conn
        if conn is not None and file.generation == conn.generation:
            LIB.nfs_close(conn.context, file.handle)
        file.generation = -1

    def _release(self, file: NfsFile) -> None:
        with self._lock:
            failed: StorageError | None = None
            if file.refs == 1 and file.dirty:
                try:
                    file.fsync()
                except StorageError as exc:  # the last closer learns its data may not be on the server's disk
                    failed = exc
            file.refs -= 1
            if file.refs > 0:
                return
            for path, known in list(self._files.items()):
                if known is file:
                    del self._files[path]
            conn = self._conn
            if conn is not None and file.generation == conn.generation:
                rc = LIB.nfs_close(conn.context, file.handle)
                if rc < 0 and -rc in _RECONNECT | _DROP:
                    self._drop()
            file.generation = -1
            if failed is not None:
                raise failed

    def open_files(self) -> Iterator[NfsFile]:
        """The files open now (for keepalive and tests)."""
        with self._lock:
            return iter(list(self._files.values()))


def _tcp_failure(target: NfsTarget, timeout: float) -> str | None:
    """Why a TCP connection to the target's port fails (e.g. "Connection refused"), or None if it works."""
    try:
        with socket.create_connection((target.server, target.port), timeout=timeout):
            return None
    except TimeoutError:
        return f"no answer to a TCP connect to port {target.port} within {timeout:g}s"
    except OSError as exc:
        return f"{exc.strerror or exc} (port {target.port})"


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _stat_result(st: NfsStat64) -> os.stat_result:
    ns = [st.nfs_atime * 1_000_000_000 + st.nfs_atime_nsec, st.nfs_mtime * 1_000_000_000 + st.nfs_mtime_nsec,
          st.nfs_ctime * 1_000_000_000 + st.nfs_ctime_nsec]  # fmt: skip
    return os.stat_result(
        (st.nfs_mode, st.nfs_ino, st.nfs_dev, st.nfs_nlink, st.nfs_uid, st.nfs_gid, st.nfs_size,
         st.nfs_atime, st.nfs_mtime, st.nfs_ctime),
        {"st_atime": ns[0] / 1e9, "st_mtime": ns[1] / 1e9, "st_ctime": ns[2] / 1e9,
         "st_atime_ns": ns[0], "st_mtime_ns": ns[1], "st_ctime_ns": ns[2],
         "st_blksize": st.nfs_blksize or 4096, "st_blocks": st.nfs_blocks},
    )  # fmt: skip
