"""Network namespaces for nodes on one machine: `edgekube up --network pod` and the fleet tests (tests/support).

NetNode: a namespace `ekf<slot>` with a veth pair to the host (its host end is what processes inside dial, e.g. the
broker's extra listener). Lan: one Ethernet segment (a bridge in a namespace of its own, so nothing touches the
host's bridges or firewall) with an interface `lan0` in each node namespace, addressed 10.252.0.<n>/24, the LAN
host-gw routing needs. NetnsPodmanService: a Podman service whose service, CLI and pods' bridges run inside a node
namespace, with its own network config directory.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekube.local.podman_service import PodmanService

#: Every namespace and veth this module makes carries this prefix, so leftovers are easy to find and remove.
PREFIX = "ekf"
#: Host side 10.251.<slot>.1/30, namespace side 10.251.<slot>.2/30.
SUBNET = "10.251"
LAN_SUBNET = "10.252.0"
_SLOTS = range(1, 255)


def available() -> str | None:
    """None when this process can make namespaces and veths, else the reason it cannot."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if subprocess.run(["ip", "netns", "list"], capture_output=True, check=False, timeout=10).returncode != 0:
        return "`ip netns` is not available"
    return None


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
    return result


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
    return result


def _slots_in_use() -> set[int]:
    """Slots whose namespace or host-side address exists, whoever made them."""
    used = {int(m) for m in re.findall(rf"\b{PREFIX}(\d+)\b", _ip("netns", "list").stdout)}
    used |= {int(m) for m in re.findall(rf"inet {re.escape(SUBNET)}\.(\d+)\.", _ip("-4", "-o", "addr").stdout)}
    return used


def exists(name: str) -> bool:
    """Whether the named network namespace exists."""
    return name in re.findall(r"^(\S+)", _ip("netns", "list", check=False).stdout, re.MULTILINE)


@dataclass
class NetNode:
    """One namespace `ekf<slot>` joined to the host by the veth pair `ekh<slot>` (host) / `ekn<slot>` (inside)."""

    slot: int

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.slot}"

    @property
    def host_veth(self) -> str:
        return f"ekh{self.slot}"

    @property
    def inner_veth(self) -> str:
        return f"ekn{self.slot}"

    @property
    def host_address(self) -> str:
        """The host end: what processes inside the namespace connect to (e.g. the broker's extra listener)."""
        return f"{SUBNET}.{self.slot}.1"

    @property
    def address(self) -> str:
        return f"{SUBNET}.{self.slot}.2"

    @property
    def path(self) -> Path:
        return Path("/run/netns") / self.name

    def enter(self, argv: list[str]) -> list[str]:
        """`argv` run inside the namespace. nsenter, not `ip netns exec`: that remounts /sys and hides cgroups."""
        return ["nsenter", f"--net={self.path}", *argv]

    @classmethod
    def create(cls) -> NetNode:
        """Make a namespace on a free slot with its veth pair up and addressed (lo up inside)."""
        for slot in _SLOTS:
            if slot in _slots_in_use():
                continue
            node = cls(slot)
            if _ip("netns", "add", node.name, check=False).returncode != 0:
                continue  # taken meanwhile by someone else
            try:
                node._plumb()
            except BaseException:
                node.delete()
                raise
            return node
        raise RuntimeError(f"no free {SUBNET}.<slot>.0/30 for a network namespace")

    def _plumb(self) -> None:
        _ip("link", "add", self.host_veth, "type", "veth", "peer", "name", self.inner_veth)
        _ip("link", "set", self.inner_veth, "netns", self.name)
        _ip("addr", "add", f"{self.host_address}/30", "dev", self.host_veth)
        _ip("link", "set", self.host_veth, "up")
        _ip("-n", self.name, "addr", "add", f"{self.address}/30", "dev", self.inner_veth)
        _ip("-n", self.name, "link", "set", self.inner_veth, "up")
        _ip("-n", self.name, "link", "set", "lo", "up")
        # Everything else through the host end: the host's other addresses (e.g. an NFS server on its main address)
        # answer from any veth (weak host model); nothing is forwarded beyond the host.
        _ip("-n", self.name, "route", "add", "default", "via", self.host_address)

    def cut(self) -> None:
        """Take the host end down: nothing passes either way until restore(); sockets stay open, as on a real cut."""
        _ip("link", "set", "dev", self.host_veth, "down")

    def restore(self) -> None:
        _ip("link", "set", "dev", self.host_veth, "up")

    def drop_port(self, port: int) -> None:
        """Drop TCP to and from the service on `port`, both ways (nftables inside the namespace); all else passes."""
        table = f"{PREFIX}cut"
        for rule in (
            ["add", "table", "inet", table],
            ["add", "chain", "inet", table, "out", "{ type filter hook output priority 0 ; }"],
            ["add", "chain", "inet", table, "in", "{ type filter hook input priority 0 ; }"],
            ["add", "rule", "inet", table, "out", "tcp", "dport", str(port), "drop"],
            ["add", "rule", "inet", table, "in", "tcp", "sport", str(port), "drop"],
        ):
            self._nft(*rule)

    def allow_all(self) -> None:
        """Undo every drop_port()."""
        self._nft("delete", "table", "inet", f"{PREFIX}cut", check=False)

    @property
    def dropped_ports(self) -> list[int]:
        listed = self._nft("list", "table", "inet", f"{PREFIX}cut", check=False)
        return [int(p) for p in re.findall(r"tcp dport (\d+) drop", listed.stdout)] if listed.returncode == 0 else []

    def _nft(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = self.enter(["nft", *args])
        result = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
        return result

    @property
    def is_cut(self) -> bool:
        flags = re.search(r"<([^>]*)>", _ip("-o", "link", "show", "dev", self.host_veth, check=False).stdout)
        return flags is None or "UP" not in flags.group(1).split(",")

    def delete(self) -> None:
        """Remove the namespace and both veth ends; safe to call twice and on a half-made node."""
        _ip("netns", "delete", self.name, check=False)
        # Deleting the namespace destroys the inner end and with it the pair; this catches a pair never moved.
        if _ip("link", "show", "dev", self.host_veth, check=False).returncode == 0:
            _ip("link", "delete", "dev", self.host_veth, check=False)


class NetnsPodmanService(PodmanService):
    """A PodmanService whose service and CLI run in `netns` (so do its pods' bridges), networks in its workdir."""

    def __init__(self, workdir: Path, netns: Path, **kwargs: Any) -> None:
        super().__init__(workdir, **kwargs)
        self.netns = netns

    def _global_args(self) -> list[str]:
        return ["nsenter", f"--net={self.netns}", *super()._global_args()]

    def write_config(self) -> None:
        super().write_config()
        networks = self.workdir / "networks"
        networks.mkdir(exist_ok=True)
        with self.containers_conf.open("a") as conf:
            conf.write(f'\n[network]\nnetwork_config_dir = "{networks}"\n')


class Lan:
    """One Ethernet segment: a bridge in namespace `name` (default `eklan<pid>`), a veth per node (`lan0` inside).

    `create=False` names an existing segment, e.g. for `edgekube down` to delete the one `up` recorded.
    """

    def __init__(self, name: str | None = None, *, create: bool = True) -> None:
        self.name = name or f"eklan{os.getpid()}"
        self.links: list[str] = []
        if create:
            run(["ip", "netns", "add", self.name])
            run(["ip", "-n", self.name, "link", "add", "br0", "type", "bridge"])
            run(["ip", "-n", self.name, "link", "set", "br0", "up"])

    def join(self, node: NetNode, host: int) -> str:
        """Plug `node` in as 10.252.0.<host>; returns that address."""
        outside = f"ekl{node.slot}"
        address = f"{LAN_SUBNET}.{host}"
        run(["ip", "link", "add", outside, "type", "veth", "peer", "name", "lan0", "netns", node.name])
        run(["ip", "link", "set", outside, "netns", self.name])
        run(["ip", "-n", self.name, "link", "set", outside, "master", "br0", "up"])
        run(["ip", "-n", node.name, "addr", "add", f"{address}/24", "dev", "lan0"])
        run(["ip", "-n", node.name, "link", "set", "lan0", "up"])
        self.links.append(outside)
        return address

    def delete(self) -> None:
        """Delete the segment's namespace (its bridge and the node links' outer ends go with it)."""
        run(["ip", "netns", "delete", self.name], check=False)
