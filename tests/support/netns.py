"""Network namespaces with a veth link to the host, so the fleet harness can cut one node off the network."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

#: Every namespace and veth this module makes carries this prefix, so leftovers are easy to find and remove.
PREFIX = "ekf"
#: Host side 10.251.<slot>.1/30, namespace side 10.251.<slot>.2/30.
SUBNET = "10.251"
_SLOTS = range(1, 255)


def available() -> str | None:
    """None when this process can make namespaces and veths, else the reason it cannot."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


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
