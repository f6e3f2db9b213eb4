"""The FUSE mount of a Ganesha export behaves like a local directory, and what it writes lands in the export.

One sequence of file operations (`exercise`) runs on a local temp dir and on the mount made by the installed
edgekube-nfs-mount helper; each step records what a program would observe (contents, stat fields, listings,
errno of failures), and both records must be equal. Then the export directory behind Ganesha must hold the same
tree as the local dir. Real Ganesha, real FUSE, no mocks.
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import shutil
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.local.nfs import Ganesha
from edgekube.nfs.client import NfsClient
from edgekube.nfs.mount import helper_path, source_of
from tests.support.nfs import helper_pids, is_mounted, mount_export, running_ganesha

pytestmark = pytest.mark.integration


@pytest.fixture
def ganesha() -> Iterator[Ganesha]:
    with running_ganesha() as server:
        yield server


@pytest.fixture
def short_lease() -> Iterator[Ganesha]:
    """Ganesha with a 5 s NFSv4 lease."""
    with running_ganesha(lease_lifetime=5) as server:
        yield server


Record = list[tuple[Any, ...]]  # (step, what was observed...)


def attempt(fn: Callable[[], Any]) -> Any:
    """The value, or the errno name of the OSError it raised (what a program sees)."""
    try:
        return fn()
    except OSError as exc:
        return f"OSError {errno.errorcode.get(exc.errno or 0, exc.errno)}"


def tree(root: Path) -> dict[str, Any]:
    """Every entry under root: type, permission bits, and contents (sha256) or symlink target."""
    found: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = str(path.relative_to(root))
        if stat.S_ISLNK(st.st_mode):
            found[rel] = ("link", os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            found[rel] = ("dir", stat.S_IMODE(st.st_mode))
        else:
            found[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_size, hashlib.sha256(path.read_bytes()).hexdigest())
    return found


def exercise(root: Path) -> Record:
    """The file operations of the contract, each followed by what can be observed of it."""
    rec: Record = []
    a = root / "a.txt"
    a.write_text("hello\n")
    rec.append(("create", a.read_text()))
    a.write_text("bye\n")
    rec.append(("overwrite", a.read_text()))
    with a.open("a") as f:
        f.write("more\n")
    rec.append(("append", a.read_text()))
    with a.open("r+b") as f:  # write in the middle through one descriptor, read back through it
        f.seek(1)
        f.write(b"YE")
        f.seek(0)
        rec.append(("rewrite in place", f.read()))

    t = root / "t.bin"
    t.write_bytes(b"0123456789")
    os.truncate(t, 100)
    rec.append(("truncate grow", t.read_bytes()))
    os.truncate(t, 3)
    rec.append(("truncate shrink", t.read_bytes(), t.stat().st_size))
    with t.open("r+b") as f:  # truncate through an open descriptor, then keep writing through it
        f.truncate(1)
        f.seek(0, os.SEEK_END)
        f.write(b"xyz")
    rec.append(("ftruncate then write", t.read_bytes()))
    with t.open("r+b") as f:  # truncate by path while the file is open elsewhere
        os.truncate(t, 2)
        f.seek(2)
        f.write(b"!")
    rec.append(("truncate by path while open", t.read_bytes()))

    os.chmod(a, 0o640)
    st = a.stat()
    rec.append(("chmod", oct(stat.S_IMODE(st.st_mode)), stat.S_IFMT(st.st_mode), st.st_size, st.st_nlink))
    with a.open("rb") as f:  # chmod while open: the open state must survive it
        os.chmod(a, 0o600)
        rec.append(("chmod while open", oct(stat.S_IMODE(a.stat().st_mode)), f.read()))
    x = root / "x.sh"
    fd = os.open(x, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o751)
    os.write(fd, b"#!/bin/sh\n")
    os.close(fd)
    rec.append(("create with mode", oct(stat.S_IMODE(x.stat().st_mode))))
    rec.append(("create exclusive again", attempt(lambda: os.open(x, os.O_CREAT | os.O_EXCL | os.O_WRONLY))))
    os.utime(x, (1_600_000_000, 1_700_000_000))
    rec.append(("utime", int(x.stat().st_mtime), int(x.stat().st_atime)))
    with x.open("r+b") as f:  # set times while the file is open, then keep writing through it
        os.utime(x, (1_600_000_000, 1_600_000_000))
        f.seek(0, os.SEEK_END)
        f.write(b"exit 0\n")
    rec.append(("utime while open", x.read_bytes()))
    (root / "touched").touch()
    rec.append(("a new file's mtime is now", abs((root / "touched").stat().st_mtime - time.time()) < 60))
    os.mkdir(root / "private", 0o700)
    rec.append(("mkdir with mode", oct(stat.S_IMODE((root / "private").stat().st_mode))))

    deep = root / "d1" / "d2" / "d3" / "d4" / "d5" / "d6"
    os.makedirs(deep)
    (deep / "leaf.txt").write_text("leaf")
    rec.append(("mkdir -p", [str(p.relative_to(root)) for p in sorted((root / "d1").rglob("*"))]))
    rec.append(("mkdir existing", attempt(lambda: os.mkdir(root / "d1"))))
    rec.append(("rmdir not empty", attempt(lambda: os.rmdir(root / "d1"))))
    rec.append(("listdir", sorted(os.listdir(root))))

    os.rename(a, root / "b.txt")
    rec.append(("rename file", sorted(os.listdir(root)), (root / "b.txt").read_bytes()))
    (root / "c.txt").write_text("old c")
    os.rename(root / "b.txt", root / "c.txt")
    rec.append(("rename over existing", sorted(os.listdir(root)), (root / "c.txt").read_bytes()))
    os.rename(root / "d1" / "d2", root / "moved")
    rec.append(("rename dir", sorted(os.listdir(root / "d1")), (root / "moved/d3/d4/d5/d6/leaf.txt").read_text()))
    os.mkdir(root / "empty")
    os.rename(root / "moved", root / "empty")
    rec.append(("rename dir over empty dir", sorted(os.listdir(root)), attempt(lambda: os.listdir(root / "moved"))))
    (root / "full").mkdir()
    (root / "full/f").write_text("f")
    rec.append(("rename dir over non-empty", attempt(lambda: os.rename(root / "empty", root / "full"))))
    with (root / "c.txt").open("rb") as f:  # rename a file while it is open; it stays readable through f
        os.rename(root / "c.txt", root / "e.txt")
        rec.append(("rename while open", f.read(), (root / "e.txt").read_bytes()))

    os.symlink("e.txt", root / "link")
    is_link = stat.S_ISLNK(os.lstat(root / "link").st_mode)
    rec.append(("symlink", os.readlink(root / "link"), (root / "link").read_text(), is_link))
    rec.append(("missing", attempt((root / "nope").read_text)))
    rec.append(("unlink missing", attempt(lambda: os.unlink(root / "nope"))))

    shutil.rmtree(root / "empty")
    rec.append(("rm -r", (root / "empty").exists(), sorted(os.listdir(root))))
    return rec


def test_the_file_operations_give_the_same_results_on_the_mount_as_on_a_local_dir(
    ganesha: Ganesha, tmp_path: Path
) -> None:
    local = tmp_path / "local"
    local.mkdir()
    expected = exercise(local)
    with mount_export(ganesha.target(), ganesha.root / "mnt") as mnt:
        got = exercise(mnt)
        assert [step for step, *_ in got] == [step for step, *_ in expected]
        for want, have in zip(expected, got, strict=True):
            assert have == want, f"step {want[0]!r} differs on the mount"
    assert tree(ganesha.export_dir) == tree(local), "the export directory does not hold what was written"


def test_a_50_mb_file_reads_back_identical_through_the_mount_and_in_the_export(ganesha: Ganesha) -> None:
    data = random.Random(9).randbytes(50 * 1024 * 1024)
    digest = hashlib.sha256(data).hexdigest()
    with mount_export(ganesha.target(), ganesha.root / "mnt") as mnt:
        with (mnt / "big.bin").open("wb") as f:
            for start in range(0, len(data), 1 << 20):
                f.write(data[start : start + (1 << 20)])
        with (mnt / "big.bin").open("rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == digest
        assert (mnt / "big.bin").stat().st_size == len(data)
    assert hashlib.sha256((ganesha.export_dir / "big.bin").read_bytes()).hexdigest() == digest


def test_a_sub_directory_of_the_export_mounts_and_writes_land_inside_it(ganesha: Ganesha) -> None:
    (ganesha.export_dir / "pvc-1").mkdir()
    with mount_export(ganesha.target("pvc-1"), ganesha.root / "mnt") as mnt:
        (mnt / "data").write_text("in pvc-1")
        assert os.listdir(mnt) == ["data"]
    assert (ganesha.export_dir / "pvc-1" / "data").read_text() == "in pvc-1"


def test_a_read_only_mount_reads_and_refuses_writes_with_erofs(ganesha: Ganesha) -> None:
    (ganesha.export_dir / "r.txt").write_text("read me")
    with mount_export(ganesha.target(), ganesha.root / "mnt", "ro") as mnt:
        assert (mnt / "r.txt").read_text() == "read me"
        with pytest.raises(OSError) as failed:
            (mnt / "w.txt").write_text("no")
        assert failed.value.errno == errno.EROFS
    assert not (ganesha.export_dir / "w.txt").exists()


def test_the_helper_fails_with_the_reason_on_stderr_when_the_server_cannot_be_used(
    ganesha: Ganesha, tmp_path: Path
) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    missing = subprocess.run([helper_path(), source_of(ganesha.target("nope")), str(mnt)],
                             capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert missing.returncode == 1 and "NOENT" in missing.stderr and f"127.0.0.1:{ganesha.port}" in missing.stderr
    ganesha.stop()
    down = subprocess.run([helper_path(), source_of(ganesha.target()), str(mnt)],
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert down.returncode == 1 and "cannot mount nfs server" in down.stderr
    assert not is_mounted(mnt) and not helper_pids(mnt)


def _idle(seconds: float) -> None:
    time.sleep(seconds)


@pytest.mark.parametrize(("keepalive", "reconnects"), [("0", True), ("1", False)], ids=["no-keepalive", "keepalive"])
def test_an_idle_mount_reads_and_writes_after_two_lease_periods_through_a_file_held_open(
    short_lease: Ganesha, keepalive: str, reconnects: bool
) -> None:
    """Without keepalive the lease expires and the client recovers (a reconnect is logged); with it, none is needed."""
    log = short_lease.root / "mount.log"
    with mount_export(short_lease.target(), short_lease.root / "mnt", f"keepalive={keepalive}", f"log={log}") as mnt:
        (mnt / "before.txt").write_text("before")
        with (mnt / "held.txt").open("w+b", buffering=0) as held:
            held.write(b"first ")
            _idle(2 * 5 + 1)
            held.write(b"second")
            held.seek(0)
            assert held.read() == b"first second"
        assert (mnt / "before.txt").read_text() == "before"
        (mnt / "after.txt").write_text("after")
        assert sorted(os.listdir(mnt)) == ["after.txt", "before.txt", "held.txt"]
    assert (short_lease.export_dir / "held.txt").read_bytes() == b"first second"
    assert (short_lease.export_dir / "after.txt").read_text() == "after"
    assert ("reconnecting" in log.read_text()) is reconnects, log.read_text()


def test_files_created_through_the_mount_belong_to_the_uid_and_gid_given_in_the_options(ganesha: Ganesha) -> None:
    with NfsClient(ganesha.target()) as root:  # made through the server: Ganesha caches what it serves
        root.mkdir("shared", 0o777)
    with mount_export(ganesha.target("shared"), ganesha.root / "mnt", "uid=1234", "gid=2345") as mnt:
        (mnt / "owned.txt").write_text("mine")
        st = (mnt / "owned.txt").stat()
        assert (st.st_uid, st.st_gid) == (1234, 2345)
    st = (ganesha.export_dir / "shared" / "owned.txt").stat()
    assert (st.st_uid, st.st_gid) == (1234, 2345)


def test_a_directory_mode_change_fails_with_eopnotsupp_and_an_unchanged_mode_or_owner_succeeds(
    ganesha: Ganesha,
) -> None:
    """libnfs 4.0 cannot set a directory's attributes over NFSv4 (a known limit of the userspace client)."""
    with mount_export(ganesha.target(), ganesha.root / "mnt") as mnt:
        (mnt / "d").mkdir(0o755)
        with pytest.raises(OSError) as failed:
            os.chmod(mnt / "d", 0o700)
        assert failed.value.errno == errno.EOPNOTSUPP
        os.chmod(mnt / "d", 0o755)
        os.chown(mnt / "d", 0, 0)  # what Podman does to a new volume's root
        os.utime(mnt / "d", (1_600_000_000, 1_600_000_000))  # left alone, so tar and cp -a go on
        assert stat.S_IMODE((mnt / "d").stat().st_mode) == 0o755


def test_while_the_server_is_down_mount_calls_fail_with_eio_within_the_timeout_and_work_again_after_restart(
    ganesha: Ganesha,
) -> None:
    with mount_export(ganesha.target(), ganesha.root / "mnt", "timeout=2") as mnt:
        (mnt / "kept.txt").write_text("kept")
        ganesha.stop()
        time.sleep(1.1)  # past the kernel's attribute and entry cache (1 s)
        for call in (lambda: os.listdir(mnt), (mnt / "kept.txt").read_text, lambda: (mnt / "new").write_text("x")):
            start = time.monotonic()
            with pytest.raises(OSError) as failed:
                call()
            assert failed.value.errno == errno.EIO and time.monotonic() - start < 3.0
        ganesha.start()
        assert (mnt / "kept.txt").read_text() == "kept"
        (mnt / "new").write_text("after restart")
    assert (ganesha.export_dir / "new").read_text() == "after restart"
