"""edgekube-nfs-mount: the FUSE mount helper for NFS volumes where the kernel has no NFS client (Podman type=fuse).

`podman volume create --opt type=fuse --opt device=<helper_path()>#<source_of(target)> NAME` makes Podman run
`mount -t fuse` at container start; mount.fuse execs `edgekube-nfs-mount SOURCE MOUNTPOINT -o OPTIONS` and waits
for it to exit. This program checks the server first (so a bad source fails the mount with a message on stderr),
mounts, then daemonizes (libfuse forks once the mount is live) and serves until it is unmounted.

Options (-o, comma-separated): `ro`/`rw`; `port=N` (else the port in SOURCE, else 2049); `timeout=S` per NFS call
(default 5); `uid=N`, `gid=N` the AUTH_SYS credentials sent to the server (default: the helper's, root
when Podman runs it); `keepalive=S` lease renewal period (default 5, 0 = off); `log=PATH` (default: syslog if /dev/log
exists); `debug` (log every call; with `-f`, stay in the foreground). FUSE's own mount options (nosuid, nodev,
noexec, allow_other, ...) are passed on; others are logged and ignored.
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import shutil
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

from edgekube.model.errors import StorageError
from edgekube.nfs.client import NfsClient
from edgekube.nfs.target import NfsTarget

__all__ = ["SCRIPT", "MountOptions", "helper_path", "main", "source_of"]

SCRIPT = "edgekube-nfs-mount"
_FUSE_FLAGS = frozenset(
    {"nosuid", "suid", "nodev", "dev", "noexec", "exec", "noatime", "atime", "relatime", "strictatime", "sync",
     "async", "dirsync", "allow_other", "allow_root", "default_permissions", "auto_unmount"}
)  # fmt: skip
_FUSE_VALUES = frozenset({"max_read", "max_write", "attr_timeout", "entry_timeout", "negative_timeout", "umask"})
#: What mount(8) and mount.fuse add that is no business of a FUSE filesystem.
_IGNORED = frozenset({"defaults", "auto", "noauto", "user", "nouser", "users", "_netdev", "nofail", "loop"})

log = logging.getLogger("edgekube.nfs.mount")


def source_of(target: NfsTarget) -> str:
    """The SOURCE argument for `target`: `nfs://server[:port]/path`."""
    return target.source()


def helper_path() -> str:
    """Absolute path of the installed helper: next to this Python (the venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / SCRIPT
    if beside.exists():
        return str(beside)
    found = shutil.which(SCRIPT)
    if found is None:
        raise StorageError(f"the NFS mount helper {SCRIPT} is not installed", hint="pip install edgekube")
    return str(Path(found).resolve())


class MountOptions:
    """The -o options of the helper: its own (ro, port, timeout, keepalive, uid, gid, log, debug) and FUSE's."""

    def __init__(self, raw: Sequence[str]) -> None:
        self.read_only = False
        self.port: int | None = None
        self.timeout = 5.0
        self.keepalive = 5.0
        self.log: str | None = None
        self.uid: int | None = None
        self.gid: int | None = None
        self.debug = False
        self.fuse: dict[str, str | bool] = {}
        self.ignored: list[str] = []
        for group in raw:
            for option in filter(None, (o.strip() for o in group.split(","))):
                self._take(option)

    def _take(self, option: str) -> None:
        key, has_value, value = option.partition("=")
        try:
            if key in ("ro", "rw"):
                self.read_only = key == "ro"
            elif key == "port" and has_value:
                self.port = int(value)
            elif key == "timeout" and has_value:
                self.timeout = float(value)
            elif key == "keepalive" and has_value:
                self.keepalive = float(value)
            elif key == "uid" and has_value:
                self.uid = int(value)
            elif key == "gid" and has_value:
                self.gid = int(value)
            elif key == "log" and has_value:
                self.log = value
            elif key == "debug":
                self.debug = True
            elif key in _FUSE_FLAGS and not has_value:
                self.fuse[key] = True
            elif key in _FUSE_VALUES and has_value:
                self.fuse[key] = value
            elif key not in _IGNORED and not key.startswith("x-"):
                self.ignored.append(option)
        except ValueError:
            raise StorageError(f"mount option {option!r}: not a number") from None


def _setup_logging(options: MountOptions) -> None:
    handler: logging.Handler
    if options.log:
        handler = logging.FileHandler(options.log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"))
    elif os.path.exists("/dev/log"):
        handler = logging.handlers.SysLogHandler(address="/dev/log")
        handler.setFormatter(logging.Formatter(f"{SCRIPT}[%(process)d]: %(message)s"))
    else:
        handler = logging.NullHandler()  # never stderr: after daemonizing it is /dev/null, before it is mount's
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if options.debug else logging.INFO)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=SCRIPT, description="Mount an NFSv4 export through FUSE (libnfs).")
    parser.add_argument("source", help="nfs://server[:port]/path")
    parser.add_argument("mountpoint")
    parser.add_argument("-o", dest="options", action="append", default=[], help="comma-separated mount options")
    parser.add_argument("-f", dest="foreground", action="store_true", help="stay in the foreground")
    parser.add_argument("-s", dest="single", action="store_true", help="(accepted; always single-threaded)")
    parser.add_argument("-n", dest="no_mtab", action="store_true", help="(accepted for mount(8); ignored)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Check the server, mount SOURCE on MOUNTPOINT and serve it (in a daemon unless -f); 1 on a bad start."""
    args = _parser().parse_args(argv)
    try:
        options = MountOptions(args.options)
        target = NfsTarget.parse(args.source)
        if options.port is not None:
            target = NfsTarget(target.server, target.path, options.port)
        mountpoint = os.path.abspath(args.mountpoint)
        if not os.path.isdir(mountpoint):
            raise StorageError(f"mount point {mountpoint} is not a directory")
        _setup_logging(options)
        # Before mounting and forking: a server that cannot be used fails the mount with its reason on stderr.
        with NfsClient(target, timeout=options.timeout, uid=options.uid, gid=options.gid) as client:
            if not stat.S_ISDIR(client.stat("").st_mode):
                raise StorageError(f"nfs path {target} is not a directory")
    except StorageError as exc:
        print(f"{SCRIPT}: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"{SCRIPT}: hint: {exc.hint}", file=sys.stderr)
        return 1
    if options.ignored:
        log.warning("ignoring mount options %s", ",".join(options.ignored))
    return _serve(target, mountpoint, options, foreground=args.foreground)


def _serve(target: NfsTarget, mountpoint: str, options: MountOptions, *, foreground: bool) -> int:
    from fuse import FUSE  # noqa: PLC0415 - loads libfuse; only the serving process needs it

    from edgekube.nfs.fuse import NfsOperations  # noqa: PLC0415

    operations = NfsOperations(target, timeout=options.timeout, keepalive=options.keepalive,
                               read_only=options.read_only, uid=options.uid, gid=options.gid)  # fmt: skip
    fuse_options: dict[str, str | bool] = {
        "fsname": f"{target.address()}:{target.path}".replace(",", "_"),
        "subtype": "edgekube-nfs",
        "big_writes": True,
        "max_write": "131072",
        # Containers run as other users; the kernel then checks each file's mode bits against the caller, as
        # an NFS server does with AUTH_SYS credentials (the helper itself sends its own, root's by default).
        **({"allow_other": True, "default_permissions": True} if os.geteuid() == 0 else {}),
        **options.fuse,
    }
    if options.read_only:
        fuse_options["ro"] = True
    log.info("mounting %s on %s", target, mountpoint)
    try:
        FUSE(operations, mountpoint, foreground=foreground, nothreads=True, debug=options.debug and foreground,
             **fuse_options)  # fmt: skip
    except RuntimeError as exc:  # fusepy: fuse_main failed (bad option, mount refused); libfuse said why on stderr
        log.error("fuse_main failed: %s", exc)
        print(f"{SCRIPT}: mounting {target} on {mountpoint} failed (see the message above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
