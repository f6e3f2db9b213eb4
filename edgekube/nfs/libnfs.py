"""ctypes binding to the C library libnfs (NFSv4 client), used only by nfs/client.py; every call releases the GIL.

Why not the PyPI `libnfs` package: its SWIG wrapper keeps the GIL during each blocking call, so one RPC to a dead
server froze every thread of the process (the keepalive, FUSE, a probe trying to give up), and it does not expose
`nfs_set_timeout`. ctypes drops the GIL around foreign calls, and the functions below are the sync API of
libnfs 4.0 (`/usr/include/nfsc/libnfs.h`; Debian package libnfs13). Each returns 0 or a byte count, or -errno.
"""

from __future__ import annotations

import ctypes
from typing import Any

__all__ = ["LIB", "LibnfsMissing", "NfsStat64", "NfsStatvfs64", "Timeval", "load"]

#: libnfs 4.0 (Debian 12, Raspberry Pi OS bookworm). Not "whatever libnfs.so is": libnfs 6 (soname 16) changed the
#: argument order of nfs_pread/nfs_pwrite, and a wrong guess here corrupts memory instead of failing.
_SONAMES = ("libnfs.so.13",)


class LibnfsMissing(OSError):
    """The C library libnfs is not installed (Debian: libnfs13)."""


class NfsStat64(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "nfs_dev", "nfs_ino", "nfs_mode", "nfs_nlink", "nfs_uid", "nfs_gid", "nfs_rdev", "nfs_size",
            "nfs_blksize", "nfs_blocks", "nfs_atime", "nfs_mtime", "nfs_ctime", "nfs_atime_nsec",
            "nfs_mtime_nsec", "nfs_ctime_nsec", "nfs_used",
        )
    ]  # fmt: skip


class NfsStatvfs64(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_uint64)
        for name in (
            "f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files", "f_ffree", "f_favail", "f_fsid",
            "f_flag", "f_namemax",
        )
    ]  # fmt: skip


class Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class NfsUrl(ctypes.Structure):
    _fields_ = [("server", ctypes.c_char_p), ("path", ctypes.c_char_p), ("file", ctypes.c_char_p)]


class NfsDirent(ctypes.Structure):
    # Only the leading fields are read (the name); the rest of the C struct follows them in memory.
    _fields_ = [("next", ctypes.c_void_p), ("name", ctypes.c_char_p), ("inode", ctypes.c_uint64)]


_P = ctypes.c_void_p
_S = ctypes.c_char_p
_I = ctypes.c_int
_U64 = ctypes.c_uint64

# name: (restype, argtypes)
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "nfs_init_context": (_P, []),
    "nfs_destroy_context": (None, [_P]),
    "nfs_get_error": (_S, [_P]),
    "nfs_parse_url_dir": (ctypes.POINTER(NfsUrl), [_P, _S]),
    "nfs_destroy_url": (None, [ctypes.POINTER(NfsUrl)]),
    "nfs_set_timeout": (None, [_P, _I]),
    "nfs_set_autoreconnect": (None, [_P, _I]),
    "nfs_set_dircache": (None, [_P, _I]),
    "nfs_set_tcp_syncnt": (None, [_P, _I]),
    "nfs_set_uid": (None, [_P, _I]),
    "nfs_set_gid": (None, [_P, _I]),
    "nfs_mount": (_I, [_P, _S, _S]),
    "nfs_stat64": (_I, [_P, _S, ctypes.POINTER(NfsStat64)]),
    "nfs_lstat64": (_I, [_P, _S, ctypes.POINTER(NfsStat64)]),
    "nfs_fstat64": (_I, [_P, _P, ctypes.POINTER(NfsStat64)]),
    "nfs_statvfs64": (_I, [_P, _S, ctypes.POINTER(NfsStatvfs64)]),
    "nfs_open": (_I, [_P, _S, _I, ctypes.POINTER(_P)]),
    "nfs_create": (_I, [_P, _S, _I, _I, ctypes.POINTER(_P)]),
    "nfs_close": (_I, [_P, _P]),
    "nfs_pread": (_I, [_P, _P, _U64, _U64, _P]),
    "nfs_pwrite": (_I, [_P, _P, _U64, _U64, _P]),
    "nfs_fsync": (_I, [_P, _P]),
    "nfs_truncate": (_I, [_P, _S, _U64]),
    "nfs_ftruncate": (_I, [_P, _P, _U64]),
    "nfs_mkdir": (_I, [_P, _S]),
    "nfs_mkdir2": (_I, [_P, _S, _I]),
    "nfs_rmdir": (_I, [_P, _S]),
    "nfs_unlink": (_I, [_P, _S]),
    "nfs_rename": (_I, [_P, _S, _S]),
    "nfs_link": (_I, [_P, _S, _S]),
    "nfs_symlink": (_I, [_P, _S, _S]),
    "nfs_readlink": (_I, [_P, _S, ctypes.c_char_p, _I]),
    "nfs_chmod": (_I, [_P, _S, _I]),
    "nfs_lchmod": (_I, [_P, _S, _I]),
    "nfs_fchmod": (_I, [_P, _P, _I]),
    "nfs_chown": (_I, [_P, _S, _I, _I]),
    "nfs_lchown": (_I, [_P, _S, _I, _I]),
    "nfs_fchown": (_I, [_P, _P, _I, _I]),
    "nfs_utimes": (_I, [_P, _S, ctypes.POINTER(Timeval)]),
    "nfs_lutimes": (_I, [_P, _S, ctypes.POINTER(Timeval)]),
    "nfs_opendir": (_I, [_P, _S, ctypes.POINTER(_P)]),
    "nfs_readdir": (ctypes.POINTER(NfsDirent), [_P, _P]),
    "nfs_closedir": (None, [_P, _P]),
    "nfs4_set_client_name": (None, [_P, _S]),
}

_loaded: ctypes.CDLL | None = None


def load() -> ctypes.CDLL:
    """The libnfs shared library with every function's signature declared; LibnfsMissing if it is absent."""
    global _loaded  # noqa: PLW0603 - one library per process
    if _loaded is not None:
        return _loaded
    for name in _SONAMES:
        try:
            lib = ctypes.CDLL(name, use_errno=True)
        except OSError:
            continue
        for func, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(lib, func)
            fn.restype = restype
            fn.argtypes = argtypes
        _loaded = lib
        return lib
    raise LibnfsMissing(
        f"the NFS client library libnfs 4.0 ({', '.join(_SONAMES)}) is not installed (apt-get install libnfs13)"
    )


class _Lazy:
    """`LIB.nfs_x(...)` loads the library on first use, so importing edgekube.nfs never fails."""

    def __getattr__(self, name: str) -> Any:
        return getattr(load(), name)


LIB: Any = _Lazy()
