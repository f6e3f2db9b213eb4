"""What the real-parts tests need from the machine (Podman, MQTT brokers, root, netns); used by fixtures.

Outside CI a missing prerequisite skips the tests that need it, so a laptop without Podman still runs the
rest. With `CI=true` (set by .ci/run) it fails them instead: CI installs everything with scripts/install.sh and
runs as root, so a missing part there is a broken machine or install script, and a skip would hide it.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import NoReturn

import pytest

from edgekube.local.broker import find_mosquitto
from edgekube.model.errors import BusError
from edgekube.nfs import libnfs
from tests.support import netns
from tests.support.machines import have_tools
from tests.support.rumqttd import have_rumqttd

#: How to get each part; every one of them but root is installed by scripts/install.sh.
INSTALL = "run scripts/install.sh (as root, as .ci/run does)"


def in_ci() -> bool:
    """True when the CI environment variable says so (`true`, `1` or `yes`, any case)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def missing(what: str, how: str = INSTALL) -> NoReturn:
    """Skip the test (outside CI) or fail it (CI=true), naming what is missing and how to get it."""
    message = f"{what}: {how}"
    if in_ci():
        pytest.fail(f"CI=true, so a missing prerequisite fails the run: {message}", pytrace=False)
    pytest.skip(message)


def require_podman() -> None:
    if shutil.which("podman") is None:
        missing("podman is not installed", f"{INSTALL}; it installs podman, runc and catatonit")


def require_mosquitto() -> None:
    try:
        find_mosquitto()
    except BusError:
        missing("the mosquitto broker is not installed", f"{INSTALL}; it installs mosquitto and mosquitto-clients")


def require_rumqttd() -> None:
    """The second MQTT 5 broker of the protocol tests: rumqttd, bundled in the PyPI package `iotcore` (dev extra)."""
    if not have_rumqttd():
        missing("rumqttd (PyPI iotcore) is not installed", f"{INSTALL}; pip installs the dev extra `iotcore`")


def require_netns() -> None:
    """Network namespaces and veths: root, `ip` (iproute2, from scripts/install.sh) and `nsenter` (util-linux)."""
    if reason := netns.available():
        how = "run the tests as root" if "root" in reason else INSTALL
        missing(f"network namespaces are unavailable ({reason})", how)


def require_machines() -> None:
    """The fleet test's systemd machines: root (privileged containers, mmdebstrap), mmdebstrap and podman."""
    if reason := have_tools():
        how = "run the tests as root" if "root" in reason else f"{INSTALL}; it installs mmdebstrap and podman"
        missing(f"the fleet machines cannot run ({reason})", how)


def require_nfs() -> None:
    """NFS volumes without a kernel client: NFS-Ganesha, /dev/fuse, the libnfs C library and fusepy's libfuse2."""
    if shutil.which("ganesha.nfsd") is None:
        missing("NFS-Ganesha is not installed", f"{INSTALL}; it installs nfs-ganesha and nfs-ganesha-vfs")
    if not os.path.exists("/dev/fuse"):
        missing("/dev/fuse is missing (FUSE)", "load the fuse module, or give the container --device /dev/fuse")
    try:
        libnfs.load()
    except OSError as exc:
        missing(f"the libnfs C library cannot be loaded ({exc})", f"{INSTALL}; it installs libnfs13")
    try:
        import fuse  # noqa: F401, PLC0415 - fusepy loads libfuse2 when imported
    except (ImportError, OSError) as exc:  # fusepy raises OSError when libfuse is missing
        missing(f"fusepy or libfuse2 is missing ({exc})", f"{INSTALL}; it installs libfuse2 and pip installs fusepy")


def require_ansible() -> None:
    """ansible-playbook from the venv's `ansible` package (it bundles containers.podman), else from PATH."""
    if ansible_playbook() is None:
        missing("ansible-playbook is not installed", f"{INSTALL}; pip installs the dev extra `ansible`")


def ansible_playbook() -> str | None:
    beside = Path(sys.executable).parent / "ansible-playbook"
    return str(beside) if beside.exists() else shutil.which("ansible-playbook")
