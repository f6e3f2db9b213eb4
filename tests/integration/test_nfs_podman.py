"""A Podman container writes through a `type=fuse` named volume served by edgekube-nfs-mount onto a Ganesha export.

This is how the agent mounts NFS volumes where the kernel has no NFS client: `podman volume create --opt type=fuse
--opt device=<helper>#<source>`; Podman mounts it (mount.fuse runs the helper) when a container starts and unmounts
it when the container stops.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekube.local.nfs import Ganesha
from edgekube.local.podman_service import PodmanService
from edgekube.nfs.mount import helper_path, source_of
from tests.support.nfs import helper_pids, running_ganesha, wait_exited

pytestmark = pytest.mark.integration


@pytest.fixture
def ganesha() -> Iterator[Ganesha]:
    with running_ganesha() as server:
        yield server


def _mounts() -> str:
    return Path("/proc/self/mounts").read_text(encoding="utf-8")


def test_a_container_writes_through_a_fuse_volume_and_the_file_appears_in_the_export(
    ganesha: Ganesha, podman_service: PodmanService, demo_image: str
) -> None:
    (ganesha.export_dir / "pvc-1").mkdir()
    (ganesha.export_dir / "pvc-1" / "seed.txt").write_text("from the server\n")
    volume = f"nfs-{uuid.uuid4().hex[:8]}"
    name = f"nfs-writer-{uuid.uuid4().hex[:8]}"
    source = source_of(ganesha.target("pvc-1"))
    device = f"{helper_path()}#{source}"
    podman_service.podman("volume", "create", "--opt", "type=fuse", "--opt", f"device={device}", volume)
    try:
        started = time.monotonic()
        run = podman_service.podman(
            "run", "--rm", "-v", f"{volume}:/data", demo_image,
            "sh", "-c", "cat /data/seed.txt && echo written-in-container > /data/out.txt && ls /data",
        )  # fmt: skip
        elapsed = time.monotonic() - started
        assert run.stdout.split() == ["from", "the", "server", "out.txt", "seed.txt"], run.stdout + run.stderr
        assert (ganesha.export_dir / "pvc-1" / "out.txt").read_text() == "written-in-container\n"
        target = ganesha.target("pvc-1")
        fsname = f"{target.address()}:{target.path} "
        assert fsname not in _mounts(), "Podman did not unmount the volume when the container stopped"
        print(f"podman run with the NFS FUSE volume: {elapsed:.2f}s")

        # A long-running container: the helper serves while it runs, and exits when Podman unmounts at stop.
        podman_service.podman("run", "-d", "--name", name, "-v", f"{volume}:/data", demo_image,
                              "sh", "-c", "echo second > /data/second.txt; exec sleep 60")  # fmt: skip
        second = ganesha.export_dir / "pvc-1" / "second.txt"
        deadline = time.monotonic() + 10
        while not (second.exists() and second.read_text() == "second\n") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert second.read_text() == "second\n"
        pids = helper_pids(source)
        assert pids and fsname in _mounts(), "no helper serves the volume of the running container"
        podman_service.podman("stop", "-t", "1", name)
        podman_service.podman("rm", "-f", name)
        assert wait_exited(pids, timeout=5), "the helper still runs after Podman stopped the container"
        assert fsname not in _mounts()
    finally:
        # Containers first: Podman 4.3's `volume rm -f` of a volume with mount options (fuse, tmpfs alike) that a
        # running container uses hangs (measured: > 120 s), while stop + volume rm takes about 1 s.
        podman_service.podman("rm", "-f", "-t", "1", name, check=False)
        podman_service.podman("volume", "rm", "-f", volume, check=False)
