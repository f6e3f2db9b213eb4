"""Builds the busybox demo image from host busybox-static, no registry needed; for local cluster and tests."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from edgekube.local.podman_service import PodmanService
from edgekube.model.errors import RuntimeFailure

DEMO_IMAGE = "localhost/edgekube/busybox:1"

#: Applets the demo pod and the tests rely on; building fails loudly if the host busybox lacks one.
REQUIRED_APPLETS = (
    "sh", "sleep", "httpd", "wget", "nc", "echo", "cat", "ls", "date", "mkdir",
    "printf", "true", "false", "env", "kill", "ps",
)  # fmt: skip

_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_INDEX_HTML = b"hello from edgekube\n"
_BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")


def find_static_busybox() -> Path:
    """Return the host's busybox binary; it must be static, as the image has no libc."""
    for candidate in _BUSYBOX_CANDIDATES:
        path = Path(candidate)
        if path.is_file():
            return path
    found = shutil.which("busybox")
    if found is None:
        raise RuntimeFailure(
            "busybox not found on this host", reason="ImageBuildError", hint="apt-get install busybox-static"
        )
    return Path(found)


def _applet_paths(busybox: Path) -> list[str]:
    # --list-full gives each applet's conventional directory (bin/sh, usr/bin/wget, sbin/ifconfig).
    try:
        out = subprocess.run(
            [str(busybox), "--list-full"], capture_output=True, text=True, check=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeFailure(f"{busybox} --list-full failed: {exc}", reason="ImageBuildError") from exc
    paths = [line.strip().lstrip("/") for line in out.splitlines() if line.strip()]
    names = {p.rsplit("/", 1)[-1] for p in paths}
    missing = [a for a in REQUIRED_APPLETS if a not in names]
    if missing:
        raise RuntimeFailure(f"{busybox} lacks applets {missing}", reason="ImageBuildError")
    return [p for p in paths if p != "bin/busybox"]


def build_rootfs_tar(busybox: Path, dest: Path) -> None:
    """Write a rootfs tarball: busybox, one symlink per applet, and the few files containers expect."""
    now = int(time.time())

    def info(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
        entry = tarfile.TarInfo(name)
        entry.type = kind
        entry.mode = mode
        entry.size = size
        entry.linkname = link
        entry.mtime = now
        entry.uid = entry.gid = 0
        entry.uname = entry.gname = "root"
        return entry

    def add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
        tar.addfile(info(name, tarfile.REGTYPE, mode, len(data)), io.BytesIO(data))

    applets = _applet_paths(busybox)
    dirs = {"bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "tmp", "www", "root", "var", "var/log",
            "proc", "sys", "dev", "run", "home"}  # fmt: skip
    dirs.update(p.rsplit("/", 1)[0] for p in applets if "/" in p)
    with tarfile.open(dest, "w") as tar:
        for name in sorted(dirs):
            tar.addfile(info(name, tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755))
        with busybox.open("rb") as binary:
            size = busybox.stat().st_size
            tar.addfile(info("bin/busybox", tarfile.REGTYPE, 0o755, size), binary)
        for path in applets:
            tar.addfile(info(path, tarfile.SYMTYPE, 0o777, link="/bin/busybox"))
        passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
        add_file(tar, "etc/passwd", passwd)
        add_file(tar, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")
        add_file(tar, "www/index.html", _INDEX_HTML)


def image_exists(service: PodmanService, name: str) -> bool:
    return service.podman("image", "exists", name, check=False).returncode == 0


def ensure_demo_image(service: PodmanService, name: str = DEMO_IMAGE) -> str:
    """Import the busybox image into `service`'s store unless it is already there; returns the image name."""
    if image_exists(service, name):
        return name
    busybox = find_static_busybox()
    with tempfile.TemporaryDirectory(prefix="ek-image-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        build_rootfs_tar(busybox, tarball)
        service.podman(
            "import",
            "--change", f"ENV PATH={_PATH}",
            "--change", 'CMD ["/bin/sh"]',
            "--change", "WORKDIR /",
            "--message", "edgekube demo image (busybox-static)",
            str(tarball),
            name,
        )  # fmt: skip
    return name
