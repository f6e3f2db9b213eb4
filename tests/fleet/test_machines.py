"""The machine harness itself: a machine boots a real systemd as PID 1 on the fleet's own bridge."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.machines import GATEWAY, ImageBuild, Machine, MachineHost, Machines


@pytest.fixture
def machine(machine_host: MachineHost, machine_image: ImageBuild) -> Iterator[Machine]:
    machines = Machines(machine_host, machine_image.name)
    try:
        yield machines.start("probe")[0]
    finally:
        machines.close()


def test_a_machine_boots_systemd_as_pid_1_on_the_fleet_bridge(machine: Machine) -> None:
    assert machine.system_state() in {"running", "degraded"}
    assert machine.exec("cat", "/proc/1/comm").stdout.strip() == "systemd"
    assert machine.exec("hostname").stdout.strip() == "probe"
    assert machine.address.startswith(GATEWAY.rsplit(".", 1)[0] + ".")
    # The default route is the bridge's gateway on the host: the way to the mirror (NAT) and to the host.
    assert _default_gateway(machine) == GATEWAY


def _default_gateway(machine: Machine) -> str:
    for line in machine.exec("cat", "/proc/net/route").stdout.splitlines()[1:]:
        fields = line.split()
        if fields[1] == "00000000":
            return ".".join(str(b) for b in bytes.fromhex(fields[2])[::-1])  # little-endian hex
    return ""
