"""Pytest fixtures: one private Podman API service (own store and socket) per session, and the demo image."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekube.local.images import ensure_demo_image
from edgekube.local.podman_service import PodmanService


@pytest.fixture(scope="session")
def podman_service() -> Iterator[PodmanService]:
    """A started `podman system service` on a fresh store; everything in it is deleted at session end.

    Lives under /tmp rather than pytest's tmp_path so the socket path stays far below the 108-byte limit.
    """
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    workdir = Path(tempfile.mkdtemp(prefix="ek-podman-", dir="/tmp"))
    service = PodmanService(workdir)
    try:
        service.start()
        yield service
    finally:
        service.destroy()


@pytest.fixture(scope="session")
def demo_image(podman_service: PodmanService) -> str:
    """Name of the busybox demo image, imported into the session's Podman store."""
    return ensure_demo_image(podman_service)
