"""Debian 12 machines with a real systemd as PID 1, in Podman containers, for the fleet rollout test (tests/fleet/).

What a machine is: a container from a Debian bookworm rootfs built by `mmdebstrap --variant=minbase` and
`podman import`ed, run with `--systemd=always --privileged` and `/sbin/init`, so units, `Type=notify`, the
watchdog, cgroups and the journal are systemd's own. Ansible reaches it over the `containers.podman.podman`
connection (`podman exec`), so the machines need no SSH.

Choices, and why:

- **A private Podman store** (`--root/--runroot` under `CACHE`, own `containers.conf` with `runc` and explicit
  ulimits, as every Podman on this host needs, and its own network config dir) so the machines never collide
  with other Podman use on the host, and the image survives between runs.
- **The image is cached** under a tag that hashes its package list and `RECIPE_VERSION`: a rerun reuses it
  (≈ 0 s instead of ≈ 40 s); changing either builds a new one and removes the old tags. The image stays minimal
  (`PACKAGES`): the containers reach the Debian mirror through the bridge's NAT (measured), so the playbook's
  apt tasks really install Podman, crun, catatonit and Mosquitto, as on a fresh Raspberry Pi OS card.
- **Networking: one Podman bridge network of our own** (`NETWORK`, bridge `ekfleet0`, `SUBNET`, defined by a
  file in the private network config dir). The host (the test, `ekctl`) reaches every machine at its bridge
  address with no port mapping, and the machines reach each other (nodes → the master's broker) and the mirror.
  It does not collide with the pod networks of the Podman *inside* each node: those are Podman's default
  10.88.0.0/16, in each node's own network namespace, so two nodes may both use it.
- **apt's downloads are kept** (`CACHE/apt-archives`, one directory per machine name, bind-mounted at
  `/var/cache/apt/archives`): the playbook's apt tasks still refresh the lists and really install every package,
  but the `.deb` files of the last run are there, so only what changed on the mirror is downloaded again. A
  directory is lent to one run at a time (a lock file beside it); a second run at once gets none and downloads.
- **Leftovers of a killed run** are removed at the next start: every container carries the label `OWNER_LABEL`
  with its creator's pid and start time; a container whose creator is gone is removed. Containers of another
  live run (two `make test` at once) are left alone, and each run names its machines with its own run id.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

#: Bump when the way the image is built changes (not the package list: that is hashed as it is).
RECIPE_VERSION = 1
#: What the image has; everything else is the playbook's job. python3-apt: Ansible's apt module;
#: python3-venv: the edgekube venv in /opt/edgekube/venv; procps: pgrep/ps for the tests and humans;
#: sudo: the plays `become` with it, as on Raspberry Pi OS.
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "python3", "python3-apt", "python3-venv", "ca-certificates", "procps",
    "sudo",
)  # fmt: skip
SUITE = "bookworm"
IMAGE_REPOSITORY = "localhost/edgekube-fleet/debian12"

#: Where the private store, its config and the build lock live (kept between runs: the image cache).
CACHE = Path(os.environ.get("EDGEKUBE_FLEET_CACHE", "/var/tmp/edgekube-fleet"))
NETWORK = "edgekube-fleet"
BRIDGE = "ekfleet0"
SUBNET = "10.231.0.0/24"
GATEWAY = "10.231.0.1"
OWNER_LABEL = "io.edgekube.fleet.owner"

_CONTAINERS_CONF = """\
# Written by tests/support/machines.py: the fleet machines' private Podman.
[engine]
# crun cannot drive this host's hybrid cgroup v1/v2 layout; runc can.
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "{tmp_dir}"

[containers]
# Without explicit ulimits the OCI runtime inherits limits this sandbox refuses to set.
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[network]
network_config_dir = "{network_dir}"
"""


def image_tag(packages: Sequence[str] = PACKAGES, recipe: int = RECIPE_VERSION) -> str:
    """The cache key: a hash of the sorted package list, the suite and the recipe version."""
    key = json.dumps({"recipe": recipe, "suite": SUITE, "packages": sorted(packages)})
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _owner_token(pid: int) -> str | None:
    """`pid:starttime` of a live process (its start time tells a reused pid apart), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime), counted after the parenthesised command name, which may itself hold spaces.
    return f"{pid}:{stat.rsplit(')', 1)[1].split()[19]}"


@dataclass(frozen=True)
class ImageBuild:
    name: str
    cached: bool
    seconds: float


class MachineHost:
    """The host side: the private Podman that builds the image, owns the network and runs the machines."""

    def __init__(self, cache: Path = CACHE) -> None:
        self.cache = cache
        self.root = cache / "root"
        self.runroot = cache / "run"
        self.containers_conf = cache / "containers.conf"
        self.network_dir = cache / "networks"
        #: Per machine name, its /var/cache/apt/archives (kept between runs: the .debs the playbook installs).
        self.apt_cache = cache / "apt-archives"
        self.owner = _owner_token(os.getpid())
        for path in (self.cache, self.root, self.runroot, self.network_dir, self.runroot / "libpod"):
            path.mkdir(parents=True, exist_ok=True)
        self.containers_conf.write_text(
            _CONTAINERS_CONF.format(tmp_dir=self.runroot / "libpod", network_dir=self.network_dir)
        )

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_CONF": str(self.containers_conf), "TMPDIR": str(self.cache / "tmp")}

    @property
    def global_args(self) -> list[str]:
        """podman's options for this store (with `env`): also Ansible's `ansible_podman_extra_args`."""
        return [
            "--root", str(self.root), "--runroot", str(self.runroot),
            "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs",
        ]  # fmt: skip

    def argv(self, *args: str) -> list[str]:
        return ["podman", *self.global_args, *args]

    def podman(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 300.0
    ) -> subprocess.CompletedProcess[str]:
        (self.cache / "tmp").mkdir(exist_ok=True)
        result = subprocess.run(
            self.argv(*args), env=self.env, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
        return result

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One image build or network setup at a time, across processes (two test runs at once)."""
        with (self.cache / "lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- the image ------------------------------------------------------------------------------------------------
    def ensure_image(self, packages: Sequence[str] = PACKAGES) -> ImageBuild:
        """The machine image, built with mmdebstrap unless the cache already holds this package list's tag."""
        started = time.monotonic()
        name = f"{IMAGE_REPOSITORY}:{image_tag(packages)}"
        with self._locked():
            if self.podman("image", "exists", name, check=False).returncode == 0:
                return ImageBuild(name, cached=True, seconds=time.monotonic() - started)
            with tempfile.TemporaryDirectory(prefix="rootfs-", dir=self.cache) as tmp:
                tarball = Path(tmp) / "rootfs.tar"
                build = subprocess.run(
                    ["mmdebstrap", "--variant=minbase", f"--include={','.join(sorted(packages))}", SUITE, str(tarball)],
                    capture_output=True, text=True, timeout=900, check=False,
                )  # fmt: skip
                if build.returncode != 0:
                    raise RuntimeError(f"mmdebstrap exited {build.returncode}: {build.stderr[-3000:]}")
                self.podman(
                    "import", "--change", 'CMD ["/sbin/init"]', "--change", "ENV container=podman",
                    "--message", f"edgekube fleet machine: Debian {SUITE} + {','.join(sorted(packages))}",
                    str(tarball), name,
                )  # fmt: skip
            self._remove_other_tags(name)
        return ImageBuild(name, cached=False, seconds=time.monotonic() - started)

    def _remove_other_tags(self, keep: str) -> None:
        """Old builds take ≈ 250 MB each; one still used by another live run stays (rmi refuses it)."""
        listed = self.podman("images", "--format", "{{.Repository}}:{{.Tag}}", IMAGE_REPOSITORY).stdout.split()
        for name in listed:
            if name != keep:
                self.podman("rmi", name, check=False)

    # -- the network ----------------------------------------------------------------------------------------------
    def ensure_network(self) -> str:
        """The machines' bridge, defined by a file (Podman 4.3's `network create` cannot name the bridge)."""
        config = {
            "name": NETWORK,
            "id": hashlib.sha256(NETWORK.encode()).hexdigest(),
            "driver": "bridge",
            "network_interface": BRIDGE,
            "created": "2026-01-01T00:00:00Z",
            "subnets": [{"subnet": SUBNET, "gateway": GATEWAY}],
            "ipv6_enabled": False,
            "internal": False,
            # No aardvark: the machines use the host's resolver, as on a LAN; they address each other by IP.
            "dns_enabled": False,
            "ipam_options": {"driver": "host-local"},
        }
        path = self.network_dir / f"{NETWORK}.json"
        with self._locked():
            if not path.exists() or json.loads(path.read_text()) != config:
                path.write_text(json.dumps(config, indent=2))
        return NETWORK

    # -- machines -------------------------------------------------------------------------------------------------
    def remove_leftovers(self) -> list[str]:
        """Remove machines whose creating process is gone (a killed run); returns their names."""
        listed = self.podman("ps", "-a", "--filter", f"label={OWNER_LABEL}", "--format", "json").stdout
        removed = []
        for container in json.loads(listed or "[]"):
            token = container.get("Labels", {}).get(OWNER_LABEL, "")
            pid = token.split(":", 1)[0]
            if not pid.isdigit() or _owner_token(int(pid)) != token:
                name = container["Names"][0]
                self.podman("rm", "-f", "-t", "0", name, check=False)
                removed.append(name)
        return removed

    def start_machine(self, image: str, hostname: str, run_id: str, apt_cache: Path | None = None) -> Machine:
        """Run a machine; `apt_cache`: a host directory mounted as its /var/cache/apt/archives."""
        name = f"ekf-{run_id}-{hostname}"
        volumes = ["--volume", f"{apt_cache}:/var/cache/apt/archives"] if apt_cache is not None else []
        self.podman(
            "run", "-d", "--systemd=always", "--privileged", "--network", NETWORK,
            "--hostname", hostname, "--name", name, "--label", f"{OWNER_LABEL}={self.owner}",
            *volumes, image, "/sbin/init",
        )  # fmt: skip
        return Machine(self, name, hostname)

    def lend_apt_cache(self, hostname: str) -> tuple[Path, IO[str]] | None:
        """The machine name's apt download directory and its lock (held until closed), None if another run has it."""
        path = self.apt_cache / hostname
        (path / "partial").mkdir(parents=True, exist_ok=True)
        lock = (self.apt_cache / f"{hostname}.lock").open("a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            return None
        return path, lock


@dataclass
class Machine:
    """One running machine: `exec` runs a command in it as root, through `podman exec`."""

    host: MachineHost
    name: str
    hostname: str
    _address: str | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        """Its address on the fleet bridge (reachable from the host and from the other machines)."""
        if self._address is None:
            fmt = f'{{{{(index .NetworkSettings.Networks "{NETWORK}").IPAddress}}}}'
            self._address = self.host.podman("inspect", "--format", fmt, self.name).stdout.strip()
        return self._address

    def exec(
        self, *argv: str, check: bool = True, input: str | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        result = self.host.podman("exec", "-i", self.name, *argv, check=False, input=input, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{self.hostname}: {' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}"
                f"{result.stdout.strip()[-2000:]}"
            )
        return result

    def sh(self, script: str, *, check: bool = True, timeout: float = 120.0) -> str:
        return self.exec("sh", "-ec", script, check=check, timeout=timeout).stdout

    def copy_in(self, source: Path, dest: str) -> None:
        self.host.podman("cp", str(source), f"{self.name}:{dest}")

    def write(self, dest: str, text: str, mode: str = "0644") -> None:
        script = f'umask 022; mkdir -p "$(dirname {dest})"; cat > {dest}; chmod {mode} {dest}'
        self.exec("sh", "-ec", script, input=text)

    def system_state(self) -> str:
        return self.exec("systemctl", "is-system-running", check=False).stdout.strip()

    def wait_booted(self, timeout: float = 120.0) -> str:
        """Wait until systemd finished booting (`running`, or `degraded` when a unit failed); returns the state."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.system_state()
            if state in {"running", "degraded"}:
                return state
            time.sleep(0.2)
        raise RuntimeError(f"{self.hostname}: systemd did not finish booting within {timeout}s (state {state!r})")

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        """`systemctl show UNIT -p …` as a dict."""
        args = [arg for prop in properties for arg in ("-p", prop)]
        out = self.exec("systemctl", "show", unit, *args).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str) -> str:
        return self.exec("journalctl", "-u", unit, "--no-pager", "-o", "cat").stdout

    def remove(self) -> None:
        self.host.podman("rm", "-f", "-t", "0", self.name, check=False)


class Machines:
    """A set of machines of one run: started together, removed together (`close`)."""

    def __init__(self, host: MachineHost, image: str) -> None:
        self.host = host
        self.image = image
        self.run_id = uuid.uuid4().hex[:6]
        self.machines: dict[str, Machine] = {}
        self._apt_locks: list[IO[str]] = []

    def start(self, *hostnames: str) -> list[Machine]:
        self.host.ensure_network()
        started = []
        for hostname in hostnames:
            lent = self.host.lend_apt_cache(hostname)
            if lent is not None:
                self._apt_locks.append(lent[1])
            apt_cache = lent[0] if lent is not None else None
            machine = self.host.start_machine(self.image, hostname, self.run_id, apt_cache)
            self.machines[hostname] = machine
            started.append(machine)
        for machine in started:
            machine.wait_booted()
        return started

    def __getitem__(self, hostname: str) -> Machine:
        return self.machines[hostname]

    def close(self) -> None:
        """Remove the machines; with EDGEKUBE_FLEET_KEEP=1 leave them for a look (the next run removes them)."""
        if os.environ.get("EDGEKUBE_FLEET_KEEP") == "1":
            return
        for machine in self.machines.values():
            machine.remove()
        self.machines.clear()
        for lock in self._apt_locks:
            lock.close()
        self._apt_locks.clear()


def have_tools() -> str | None:
    """None when the host can build and run machines, else what is missing."""
    if os.geteuid() != 0:
        return "building the rootfs and running privileged systemd containers needs root"
    for tool in ("mmdebstrap", "podman"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None
