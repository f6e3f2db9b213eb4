"""Pi hardware as extended resources on the agent: discovery in a /dev-like tree, config overrides, which device a
pod's container gets (FakeRuntime), and that a restarted agent reads the assignment back from the containers.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.app import Agent, AgentConfig
from edgekube.agent.devices import DeviceTable, assign, check_overrides, discover, with_device_env
from edgekube.agent.runtime.fake import FakeRuntime
from edgekube.main import _build, _config_file, parser
from edgekube.model.errors import RuntimeFailure, ValidationError
from edgekube.model.names import NodeName, PodUID
from edgekube.model.pod import Pod, RestartPolicy
from edgekube.model.wire import NodeDesired
from tests.support.membus import MemoryBroker

NODE = NodeName("pi-1")
IMAGE = "localhost/edgekube/busybox:1"
SERIAL = "edgekube.io/serial"


def char(path: Path, minor: int) -> Path:
    """A character device node (major 1, like /dev/null's family) standing in for a Pi's device."""
    try:
        os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, minor))
    except PermissionError:
        pytest.skip("mknod needs CAP_MKNOD (run as root)")
    return path


@pytest.fixture
def dev(tmp_path: Path) -> Path:
    """A /dev like a Pi 4's with a USB serial adapter, a camera and I2C enabled."""
    root = tmp_path / "dev"
    root.mkdir()
    for minor, name in enumerate(["gpiochip0", "gpiochip1", "i2c-1", "ttyAMA0", "ttyUSB0", "video0", "spidev0.0"]):
        char(root / name, 20 + minor)
    (root / "serial0").symlink_to("ttyAMA0")  # the firmware's alias: one UART, not two
    (root / "serial").mkdir()  # /dev/serial/by-id: a directory, not a device
    (root / "video-notes").write_text("a regular file is no device")
    return root


def test_discovery_finds_each_kind_of_device_once(dev: Path) -> None:
    assert discover(dev) == {
        "edgekube.io/gpiochip": [str(dev / "gpiochip0"), str(dev / "gpiochip1")],
        "edgekube.io/i2c": [str(dev / "i2c-1")],
        "edgekube.io/serial": [str(dev / "ttyAMA0"), str(dev / "ttyUSB0")],
        "edgekube.io/spi": [str(dev / "spidev0.0")],
        "edgekube.io/video": [str(dev / "video0")],
    }


def test_discovery_of_a_board_without_devices_is_empty(tmp_path: Path) -> None:
    assert discover(tmp_path) == {}


def test_an_override_replaces_a_discovered_resource_and_an_empty_list_hides_one(dev: Path) -> None:
    table = DeviceTable(dev, {SERIAL: ["/dev/null"], "edgekube.io/video": [], "example.com/relay": ["/dev/zero"]})
    assert table.capacity() == {
        "edgekube.io/gpiochip": "2",
        "edgekube.io/i2c": "1",
        "edgekube.io/serial": "1",
        "edgekube.io/spi": "1",
        "example.com/relay": "1",
    }
    assert table.advertised()[SERIAL] == ["/dev/null"]


def test_an_empty_device_dir_turns_discovery_off(dev: Path) -> None:
    assert DeviceTable("", {SERIAL: ["/dev/null"]}).capacity() == {SERIAL: "1"}


@pytest.mark.parametrize(
    ("table", "error"),
    [
        ({"serial": ["/dev/null"]}, "devices[serial]: must be an extended resource name such as edgekube.io/serial"),
        ({SERIAL: "/dev/null"}, f"devices[{SERIAL}]: must be a list of absolute device paths"),
        ({SERIAL: ["ttyUSB0"]}, f"devices[{SERIAL}]: must be a list of absolute device paths"),
        ({SERIAL: ["/dev/a", "/dev/a"]}, f"devices[{SERIAL}]: a device is listed twice"),
        ("edgekube.io/serial=/dev/null", "devices: must be a table of resource"),
    ],
)
def test_bad_device_overrides_name_the_field_and_the_rule(table: Any, error: str) -> None:
    with pytest.raises(ValidationError, match="^" + error.replace("[", r"\[").replace("]", r"\]")):
        check_overrides(table)


def test_the_agent_config_file_takes_a_devices_table(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('device_dir = ""\n[devices]\n"edgekube.io/serial" = ["/dev/null"]\n')
    args = parser().parse_args(["agent", "--config", str(config)])
    built = _build(AgentConfig, args, _config_file(str(config)), node_name="pi-1", labels={})
    assert built.devices == {SERIAL: ["/dev/null"]}
    assert built.device_dir == ""


def serial_pod(name: str, count: int = 1, **containers: int) -> Pod:
    wanted = containers or {"app": count}
    return Pod.model_validate(
        {
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
            "spec": {
                "containers": [
                    {"name": c, "image": IMAGE, "resources": {"limits": {SERIAL: n}}} for c, n in wanted.items()
                ]
            },
        }
    )


def test_assign_gives_free_devices_in_path_order_per_container() -> None:
    advertised = {SERIAL: ["/dev/ttyAMA0", "/dev/ttyUSB0", "/dev/ttyUSB1"]}
    pod = serial_pod("p", a=1, b=2)
    with pytest.raises(RuntimeFailure) as info:
        assign(pod, advertised, taken={"/dev/ttyAMA0"})
    assert info.value.failure == "UnexpectedAdmissionError"
    assert str(info.value) == (
        f"Allocate failed due to requested number of devices unavailable for {SERIAL}. "
        "Requested: 2, Available: 1, which is unexpected"
    )
    assert assign(pod, advertised, taken=()) == {"a": ["/dev/ttyAMA0"], "b": ["/dev/ttyUSB0", "/dev/ttyUSB1"]}


def test_assign_keeps_an_earlier_assignment_while_it_is_still_advertised() -> None:
    advertised = {SERIAL: ["/dev/ttyAMA0", "/dev/ttyUSB0"]}
    pod = serial_pod("p")
    assert assign(pod, advertised, taken=(), previous={"app": ["/dev/ttyUSB0"]}) == {"app": ["/dev/ttyUSB0"]}
    assert assign(pod, advertised, taken=(), previous={"app": ["/dev/ttyUSB9"]}) == {"app": ["/dev/ttyAMA0"]}


def test_a_pod_without_extended_resources_gets_no_devices() -> None:
    pod = Pod.model_validate({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": IMAGE}]}})
    assert assign(pod, {SERIAL: ["/dev/ttyAMA0"]}, taken=()) == {}


# -- on the agent ---------------------------------------------------------------------------------------------------


class Node:
    def __init__(self, state_dir: Path, devices: dict[str, list[str]]) -> None:
        self.state_dir, self.devices = state_dir, devices
        self.runtime = FakeRuntime(NODE)
        self.runtime.add_image(IMAGE)
        self.broker = MemoryBroker(inline=True)
        self.agent = self._agent()
        self.generation = 0

    def _agent(self) -> Agent:
        bus = self.broker.client(f"edgekube-agent-{NODE}", persistent=True).start()
        config = AgentConfig(node_name=NODE, state_dir=self.state_dir, device_dir="", devices=self.devices)
        return Agent(config, self.runtime, bus)

    def restart_agent(self) -> None:
        self.agent.prober.stop()
        self.runtime = self.runtime.reopen()
        self.agent = self._agent()

    def want(self, *pods: Pod) -> None:
        self.generation += 1
        docs = [p.model_dump(by_alias=True, exclude_none=True) for p in pods]
        msg = NodeDesired(node=NODE, generation=self.generation, epoch="e", pods=docs)
        assert self.agent.desired.offer(msg, msg.encode())
        for _ in range(3):
            self.agent.reconcile()
            assert self.agent.wait_idle(5)

    def devices_of(self) -> dict[str, tuple[str, ...]]:
        return {p.name: p.containers[0].devices for p in self.runtime.list_pods()}


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path / "agent", {SERIAL: ["/dev/ttyAMA0", "/dev/ttyUSB0"]})
    yield n
    n.agent.prober.stop()


def test_the_node_advertises_its_devices_in_capacity_and_allocatable(node: Node) -> None:
    status = node.agent.node_object()["status"]
    assert status["capacity"][SERIAL] == "2"
    assert status["allocatable"][SERIAL] == "2"


def test_each_pod_gets_its_own_device_and_one_too_many_is_an_admission_error(node: Node) -> None:
    node.want(serial_pod("a"), serial_pod("b"), serial_pod("c"))
    assert node.devices_of() == {"a": ("/dev/ttyAMA0",), "b": ("/dev/ttyUSB0",)}
    [event] = [e for e in node.agent.events.events() if e["involvedObject"]["name"] == "c" and e["reason"] == "Failed"]
    assert event["message"].startswith("Error: UnexpectedAdmissionError: Allocate failed")


def test_a_finished_pod_frees_its_device_for_the_next_one(node: Node) -> None:
    done = serial_pod("job").model_copy(deep=True)
    done.spec.restart_policy = RestartPolicy.NEVER
    node.want(done, serial_pod("a"))
    node.runtime.exit_container(PodUID("uid-job"), "app", 0)
    node.want(done, serial_pod("a"), serial_pod("c"))  # the scheduler counts the finished job's device as free
    assert node.devices_of()["c"] == ("/dev/ttyAMA0",)


def test_a_restarted_agent_reads_the_assignment_back_and_gives_a_freed_device_again(node: Node) -> None:
    node.want(serial_pod("a"), serial_pod("b"))
    node.restart_agent()
    node.want(serial_pod("b"), serial_pod("d"))  # a is removed, d arrives: d must not get b's device
    assert node.devices_of() == {"b": ("/dev/ttyUSB0",), "d": ("/dev/ttyAMA0",)}


def test_each_container_is_told_its_devices_in_an_environment_variable() -> None:
    pod = serial_pod("p", a=2, b=0)
    advertised = {SERIAL: ["/dev/ttyAMA0", "/dev/ttyUSB0"], "edgekube.io/i2c": ["/dev/i2c-1"]}
    told = with_device_env(pod, {"a": ["/dev/ttyAMA0", "/dev/ttyUSB0"]}, advertised)
    a, b = told.spec.containers
    assert [(e.name, e.value) for e in a.env] == [("EDGEKUBE_DEVICES_SERIAL", "/dev/ttyAMA0,/dev/ttyUSB0")]
    assert b.env == []
    assert pod.spec.containers[0].env == []  # the desired pod is left as it was
