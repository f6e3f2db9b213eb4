"""The userspace proxy's loopback addresses on the real kernel (IpLoopback in a throwaway netns) and FakeAddresses.

Both must list only the addresses labelled `lo:edgekube`, refuse an address that is already there, and never remove
an address someone else put on the device; UserspaceProxy.start removes an earlier run's leftovers and nothing else.
Also the `auto` mode's probe on the real `nft`: this kernel takes it, and it leaves no table behind.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest

from edgekube.agent.network.loopback import IpLoopback, ServiceAddresses
from edgekube.agent.network.proxymode import nft_problem
from edgekube.agent.network.userspace import Frontend, Target, UserspaceProxy
from edgekube.model.errors import RuntimeFailure
from tests.support.netfakes import FakeAddresses
from tests.support.prerequisites import require_netns

FOREIGN = "10.43.9.9"


class NoListeners:
    """Listeners that hold none (start() touches addresses only)."""

    def targets(self) -> dict[Frontend, Target]:
        return {}

    def listen(self, frontend: Frontend, target: Target) -> None:
        raise AssertionError("not expected")

    retarget = listen

    def close(self, frontend: Frontend) -> None:
        raise AssertionError("not expected")


@pytest.fixture(scope="module")
def netns() -> Iterator[str]:
    require_netns()
    name = f"ekl{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "-n", name, "addr", "add", f"{FOREIGN}/32", "dev", "lo"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


@pytest.fixture(params=["fake", "ip"])
def addresses(request: pytest.FixtureRequest) -> Iterator[ServiceAddresses]:
    if request.param == "fake":
        yield FakeAddresses(foreign={FOREIGN})
        return
    name = request.getfixturevalue("netns")
    real = IpLoopback(prefix=["nsenter", f"--net=/run/netns/{name}"])
    yield real
    for address in real.list():
        real.delete(address)


def test_add_lists_only_labelled_addresses_and_delete_removes_one(addresses: ServiceAddresses) -> None:
    assert addresses.list() == set()
    addresses.add("10.43.0.10")
    addresses.add("10.43.0.11")
    assert addresses.list() == {"10.43.0.10", "10.43.0.11"}
    addresses.delete("10.43.0.10")
    assert addresses.list() == {"10.43.0.11"}


def test_an_address_already_there_is_refused_and_a_foreign_one_never_removed(addresses: ServiceAddresses) -> None:
    addresses.add("10.43.0.10")
    with pytest.raises(RuntimeFailure, match="already assigned"):
        addresses.add("10.43.0.10")
    with pytest.raises(RuntimeFailure, match="already assigned"):
        addresses.add(FOREIGN)
    with pytest.raises(RuntimeFailure, match="not found"):
        addresses.delete(FOREIGN)
    assert addresses.list() == {"10.43.0.10"}


def test_start_removes_an_earlier_runs_addresses_only(addresses: ServiceAddresses, netns: str) -> None:
    addresses.add("10.43.0.10")
    addresses.add("10.43.0.12")
    UserspaceProxy(addresses, NoListeners()).start()
    assert addresses.list() == set()
    if isinstance(addresses, IpLoopback):
        argv = ["ip", "-n", netns, "-4", "addr", "show", "dev", "lo"]
        shown = subprocess.run(argv, capture_output=True, text=True, check=True)
        assert f"{FOREIGN}/32" in shown.stdout


def test_the_nft_probe_passes_on_this_kernel_and_leaves_no_table(netns: str) -> None:
    enter = ["nsenter", f"--net=/run/netns/{netns}"]
    assert nft_problem((*enter, "nft")) == ""
    listed = subprocess.run([*enter, "nft", "list", "tables"], capture_output=True, text=True, check=True)
    assert listed.stdout == ""


def test_the_nft_probe_names_why_nft_cannot_be_used() -> None:
    assert nft_problem(("/nonexistent/nft",)).startswith("/nonexistent/nft: [Errno 2] No such file or directory")
