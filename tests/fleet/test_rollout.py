"""The fleet rollout end to end: ansible/site.yml on one master and two nodes running systemd, then what it promises.

One fleet for the module (the tests run in file order and build on each other): `make wheel` into a temporary
wheelhouse, machines from the cached image (tests/support/machines.py), an inventory over the
`podman_pipelined` connection (ansible/connection_plugins/), and the playbook with TLS on (the CA in a temporary
directory, issued by this repository's `edgekube ca`) and the role defaults otherwise, the pod network included.
`ekctl` runs on the host with the admin identity the broker role issues. The pod network is checked with a web pod
on node-2, a client pod on node-1 and a ClusterIP Service (podCIDRs, routes, pod to pod, Service by name), and is
still answering after the rolling upgrade restarted every agent.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from edgekube.local.images import DEMO_IMAGE, build_rootfs_tar, find_static_busybox
from tests.fleet.conftest import TIMINGS
from tests.support.cluster import wait_for
from tests.support.machines import ImageBuild, Machine, MachineHost, Machines
from tests.support.prerequisites import ansible_playbook, require_ansible

pytestmark = pytest.mark.timeout(1200)

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MASTER = "master-1"  # not "master": Ansible warns when a host and a group share a name
NODES = ("node-1", "node-2")
#: The test's own WatchdogSec for the agent (the unit's 30 s would make the test wait that long).
WATCHDOG_SEC = 3
VERSION_SCRIPT = "import importlib.metadata as m; print(m.version('edgekube'))"
POD = "rollout"
POD_MANIFEST = f"""\
apiVersion: v1
kind: Pod
metadata:
  name: {POD}
spec:
  containers:
    - name: main
      image: {DEMO_IMAGE}
      command: ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
"""
#: The pod network (on by default in the agent role): a web pod on node-2 serving its own name, a client pod on
#: node-1, and a ClusterIP Service in front of the web pod.
WEB_PORT = 8080
SERVICE_PORT = 80
NETWORK_MANIFEST = f"""\
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {{app: web}}
spec:
  nodeName: node-2
  containers:
    - name: main
      image: {DEMO_IMAGE}
      command:
        - sh
        - -c
        - mkdir -p /www && echo web-on-node-2 > /www/index.html && exec httpd -f -p {WEB_PORT} -h /www
      ports: [{{name: http, containerPort: {WEB_PORT}}}]
---
apiVersion: v1
kind: Pod
metadata:
  name: client
spec:
  nodeName: node-1
  containers:
    - name: main
      image: {DEMO_IMAGE}
      command: ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: {SERVICE_PORT}, targetPort: http}}]
"""


@dataclass(frozen=True)
class Recap:
    """One host's line of the PLAY RECAP."""

    ok: int
    changed: int
    unreachable: int
    failed: int


@dataclass
class PlaybookRun:
    returncode: int
    output: str
    recap: dict[str, Recap]


def parse_recap(output: str) -> dict[str, Recap]:
    recap: dict[str, Recap] = {}
    section = output.rsplit("PLAY RECAP", 1)[-1]
    for host, fields in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", section, re.MULTILINE):
        counts = dict(re.findall(r"(\w+)=(\d+)", fields))
        recap[host] = Recap(*(int(counts[k]) for k in ("ok", "changed", "unreachable", "failed")))
    return recap


class Fleet:
    """The machines, the controller's files (inventory, CA, wheelhouse) and the commands run against them."""

    def __init__(self, host: MachineHost, machines: Machines, workdir: Path) -> None:
        self.host = host
        self.machines = machines
        self.workdir = workdir
        self.ca_dir = workdir / "pki"
        self.wheelhouse = workdir / "wheelhouse"
        self.inventory = workdir / "inventory.yml"
        self.first_run: PlaybookRun | None = None

    @property
    def master(self) -> Machine:
        return self.machines[MASTER]

    def node(self, name: str) -> Machine:
        return self.machines[name]

    def write_inventory(self, images_tar: Path) -> None:
        hosts = {name: {"ansible_host": machine.name} for name, machine in self.machines.machines.items()}
        inventory = {
            "all": {
                "vars": {
                    # containers.podman.podman with pipelining: one `podman exec` per module instead of four.
                    "ansible_connection": "podman_pipelined",
                    "ansible_podman_extra_args": " ".join(self.host.global_args),
                    "ansible_python_interpreter": "/usr/bin/python3",
                    "edgekube_ca_dir": str(self.ca_dir),
                    "edgekube_ca_command": str(BIN / "edgekube"),
                    "edgekube_wheelhouse_dir": str(self.wheelhouse),
                    # The nodes dial the master by address: the machines have no DNS for each other.
                    "edgekube_mqtt_host": self.master.address,
                    # Podman inside a container (measured, docs/machine.md): vfs, crun with cgroupfs, and the
                    # explicit ulimits every Podman here needs.
                    "edgekube_podman_storage_driver": "vfs",
                    "edgekube_podman_runtime": "crun",
                    "edgekube_podman_cgroup_manager": "cgroupfs",
                    "edgekube_podman_events_logger": "file",
                    "edgekube_podman_default_ulimits": ["nofile=1024:1024", "nproc=4096:4096"],
                    "edgekube_agent_images": [
                        {
                            "path": str(images_tar),
                            "name": DEMO_IMAGE,
                            "changes": [
                                "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                'CMD ["/bin/sh"]',
                            ],
                        },
                    ],
                },
                "children": {
                    "master": {"hosts": {MASTER: hosts[MASTER]}},
                    "nodes": {"hosts": {name: hosts[name] for name in NODES}},
                },
            }
        }
        self.inventory.write_text(yaml.safe_dump(inventory, sort_keys=False))

    def playbook(self, *extra: str) -> PlaybookRun:
        playbook = ansible_playbook()
        assert playbook is not None
        result = subprocess.run(
            [playbook, "-i", str(self.inventory), "site.yml", *extra],
            cwd=REPO / "ansible", env={**self.host.env, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"},
            capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        output = result.stdout + result.stderr
        (self.workdir / f"playbook-{time.monotonic_ns()}.log").write_text(output)
        return PlaybookRun(result.returncode, output, parse_recap(result.stdout))

    def ekctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        tls = self.ca_dir / "issued"
        argv = [
            str(BIN / "ekctl"), "--mqtt-host", self.master.address, "--mqtt-port", "8883",
            "--tls-ca", str(self.ca_dir / "ca.crt"), "--tls-cert", str(tls / "admin.crt"),
            "--tls-key", str(tls / "admin.key"), *args,
        ]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"ekctl {' '.join(args)} exited {result.returncode}: {result.stderr}{result.stdout}")
        return result

    def ekctl_json(self, *args: str) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.ekctl(*args, "-o", "json").stdout)
        return document

    def pod(self) -> dict[str, Any]:
        return self.ekctl_json("get", "pod", POD)

    def pod_node(self) -> Machine:
        return self.node(self.pod()["spec"]["nodeName"])


def wait_until(what: str, check: Callable[[], Any], timeout: float = 120.0, interval: float = 0.5) -> Any:
    """`wait_for` with the fleet's slower pace (systemd machines over the Podman connection)."""
    return wait_for(what, check, timeout=timeout, interval=interval)


def containers(node: Machine) -> dict[str, tuple[str, str, int]]:
    """What Podman on the node runs: name → (container id, StartedAt, restart count), infra containers too."""
    listed = json.loads(node.exec("podman", "ps", "--all", "--format", "json").stdout or "[]")
    found = {}
    for entry in listed:
        name = entry["Names"][0]
        inspect = json.loads(node.exec("podman", "inspect", name).stdout)[0]
        found[name] = (entry["Id"], inspect["State"]["StartedAt"], int(inspect.get("RestartCount", 0)))
    return found


def restart_counts(pod: dict[str, Any]) -> dict[str, int]:
    return {c["name"]: c["restartCount"] for c in pod["status"]["containerStatuses"]}


def agent_state(node: Machine) -> dict[str, str]:
    return node.show("edgekube-agent", "Type", "ActiveState", "NRestarts", "MainPID")


def pod_ip(fleet: Fleet, name: str) -> str:
    """The pod's address once it is Running with one."""

    def ip() -> str | None:
        status = fleet.ekctl_json("get", "pod", name).get("status") or {}
        return str(status["podIP"]) if status.get("phase") == "Running" and status.get("podIP") else None

    return str(wait_until(f"pod {name} Running with an address", ip))


def http_get_from_client(fleet: Fleet, address: str, port: int, attempts: int = 5) -> str:
    """The page the client pod on node-1 gets from address:port (through `ekctl exec`), or what it got instead.

    A request with no answer at all is tried again: on a loaded machine busybox's nc times out now and then.
    """
    got = ""
    for _ in range(attempts):
        request = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {address} {port}"
        done = fleet.ekctl("exec", "client", "--", "sh", "-c", request, check=False)
        if "200 OK" in done.stdout:
            return done.stdout.rsplit("\n\n", 1)[-1].strip()
        got = f"no page: {done.stdout!r} {done.stderr!r}"
    return got


def resolve_in_client(fleet: Fleet, name: str) -> str:
    """The name's address as the client pod resolves it (its resolv.conf: the cluster DNS on its node's bridge).

    busybox's nslookup: the demo image's static busybox has no NSS, so its nc cannot resolve names itself.
    """
    done = fleet.ekctl("exec", "client", "--", "nslookup", "-type=a", name, check=False)
    found = re.findall(r"^Address: (\S+)$", done.stdout, re.MULTILINE)
    return found[-1] if found else ""


@pytest.fixture(scope="module")
def fleet(
    machine_host: MachineHost, machine_image: ImageBuild, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    """Machines up, the wheelhouse built and the first playbook run done (its outcome is the first test's)."""
    require_ansible()
    started = time.monotonic()
    workdir = tmp_path_factory.mktemp("fleet")
    machines = Machines(machine_host, machine_image.name)
    fleet = Fleet(machine_host, machines, workdir)
    try:
        began = time.monotonic()
        subprocess.run(
            ["make", "--no-print-directory", "wheel", f"WHEELHOUSE={fleet.wheelhouse}"],
            cwd=REPO, capture_output=True, text=True, timeout=600, check=True,
        )  # fmt: skip
        TIMINGS["make wheel"] = time.monotonic() - began
        images_tar = workdir / "busybox-rootfs.tar"
        build_rootfs_tar(find_static_busybox(), images_tar)
        began = time.monotonic()
        machines.start(MASTER, *NODES)
        TIMINGS["3 machines started and booted"] = time.monotonic() - began
        fleet.write_inventory(images_tar)
        began = time.monotonic()
        fleet.first_run = fleet.playbook()
        TIMINGS["first playbook run (apt installs included)"] = time.monotonic() - began
        yield fleet
    finally:
        machines.close()
        TIMINGS["whole rollout test module"] = time.monotonic() - started


def test_the_first_playbook_run_succeeds_on_every_host(fleet: Fleet) -> None:
    run = fleet.first_run
    assert run is not None
    assert run.returncode == 0, run.output[-6000:]
    assert sorted(run.recap) == [MASTER, *NODES]
    assert all(r.failed == 0 and r.unreachable == 0 for r in run.recap.values()), run.recap


def test_both_nodes_are_ready_in_ekctl_get_nodes_from_the_host(fleet: Fleet) -> None:
    def ready() -> dict[str, str]:
        nodes = fleet.ekctl_json("get", "nodes")["items"]
        states = {
            n["metadata"]["name"]: next(c["status"] for c in n["status"]["conditions"] if c["type"] == "Ready")
            for n in nodes
        }
        return states if states == dict.fromkeys(NODES, "True") else {}

    assert wait_until("both nodes Ready", ready) == {"node-1": "True", "node-2": "True"}


def test_a_pod_applied_from_the_host_runs_on_a_node(fleet: Fleet) -> None:
    manifest = fleet.workdir / "pod.yaml"
    manifest.write_text(POD_MANIFEST)
    fleet.ekctl("apply", "-f", str(manifest), "--wait")
    pod = fleet.pod()
    assert pod["status"]["phase"] == "Running"
    assert pod["spec"]["nodeName"] in NODES
    running = json.loads(fleet.pod_node().exec("podman", "ps", "--format", "json").stdout)
    assert any(entry["Names"][0].endswith("main") and entry["State"] == "running" for entry in running), running


def test_each_node_has_its_own_pod_cidr_routes_to_the_other_and_pods_get_addresses_from_it(fleet: Fleet) -> None:
    manifest = fleet.workdir / "network.yaml"
    manifest.write_text(NETWORK_MANIFEST)
    fleet.ekctl("apply", "-f", str(manifest))
    cidrs = {name: fleet.ekctl_json("get", "node", name)["spec"].get("podCIDR") or "" for name in NODES}
    assert all(cidrs.values()) and len(set(cidrs.values())) == len(NODES), cidrs
    for name, cidr in cidrs.items():
        assert ipaddress.IPv4Network(cidr).subnet_of(ipaddress.IPv4Network("10.42.0.0/16")), (name, cidr)
    for pod, node in (("web", "node-2"), ("client", "node-1"), (POD, fleet.pod()["spec"]["nodeName"])):
        assert ipaddress.ip_address(pod_ip(fleet, pod)) in ipaddress.ip_network(cidrs[node]), (pod, node, cidrs)
    wide = fleet.ekctl("get", "pods", "-o", "wide").stdout
    assert pod_ip(fleet, "web") in wide and pod_ip(fleet, "client") in wide, wide
    # host-gw: each node routes the other's podCIDR via the other's address on the machines' LAN (proto 211).
    for name, other in (("node-1", "node-2"), ("node-2", "node-1")):
        want = f"{cidrs[other]} via {fleet.node(other).address}"

        def routed(name: str = name, want: str = want) -> bool:
            out = fleet.node(name).exec("ip", "-4", "route", "show", "proto", "211").stdout
            return want in {" ".join(line.split()[:3]) for line in out.splitlines()}

        assert wait_until(f"the route {want} on {name}", routed)


def test_a_pod_on_node_1_reaches_a_pod_on_node_2_by_its_address(fleet: Fleet) -> None:
    assert http_get_from_client(fleet, pod_ip(fleet, "web"), WEB_PORT) == "web-on-node-2"


def test_a_cluster_ip_service_answers_by_name_from_a_pod_on_the_other_node(fleet: Fleet) -> None:
    cluster_ip = fleet.ekctl_json("get", "service", "web")["spec"]["clusterIP"]
    assert ipaddress.ip_address(cluster_ip) in ipaddress.ip_network("10.43.0.0/16")
    assert wait_until(
        "web to resolve to its clusterIP in the client pod", lambda: resolve_in_client(fleet, "web") == cluster_ip
    )
    assert resolve_in_client(fleet, "web.default.svc.cluster.local") == cluster_ip
    # The node proxy's rules on node-1 (the client's node) send the clusterIP to the web pod on node-2.
    assert wait_until(
        "the Service to answer from the client pod",
        lambda: (
            http_get_from_client(fleet, resolve_in_client(fleet, "web"), SERVICE_PORT, attempts=1) == "web-on-node-2"
        ),
    )
    assert "table ip edgekube" in fleet.node("node-1").exec("nft", "list", "tables").stdout


def test_a_second_playbook_run_changes_nothing(fleet: Fleet) -> None:
    began = time.monotonic()
    run = fleet.playbook()
    TIMINGS["second playbook run (nothing to do)"] = time.monotonic() - began
    assert run.returncode == 0, run.output[-6000:]
    assert {host: r.changed for host, r in run.recap.items()} == dict.fromkeys([MASTER, *NODES], 0)


def test_the_agent_is_an_active_notify_service_that_never_restarted(fleet: Fleet) -> None:
    for name in NODES:
        state = agent_state(fleet.node(name))
        assert (state["Type"], state["ActiveState"], state["NRestarts"]) == ("notify", "active", "0"), name


def test_pods_are_outside_the_agents_cgroup_and_survive_its_restart_stop_and_podmans_exit(fleet: Fleet) -> None:
    node = fleet.pod_node()
    before = containers(node)
    agent_cgroup = node.sh("grep name=systemd /proc/$(systemctl show -p MainPID --value edgekube-agent)/cgroup")
    for pid in node.exec("pgrep", "-x", "conmon").stdout.split():
        assert node.sh(f"grep name=systemd /proc/{pid}/cgroup") != agent_cgroup
    assert agent_cgroup.strip().endswith("/edgekube-agent.service")

    node.exec("systemctl", "restart", "edgekube-agent")
    assert containers(node) == before
    node.exec("systemctl", "stop", "edgekube-agent")
    # podman.service (socket-activated) exits once idle; Debian's unit has KillMode=process, so conmon stays.
    assert node.show("podman.service", "KillMode")["KillMode"] == "process"
    node.exec("systemctl", "stop", "podman.service")
    assert containers(node) == before
    node.exec("systemctl", "start", "edgekube-agent")
    assert containers(node) == before
    assert agent_state(node)["ActiveState"] == "active"


def test_a_frozen_agent_is_restarted_by_the_watchdog_and_its_pods_keep_running(fleet: Fleet) -> None:
    node = fleet.pod_node()
    # A drop-in of the test's own: the unit's WatchdogSec=30 works the same, only slower to wait for.
    node.write(
        "/etc/systemd/system/edgekube-agent.service.d/50-test-watchdog.conf",
        f"# tests/fleet/test_rollout.py: a short watchdog, so the test waits {WATCHDOG_SEC} s, not 30.\n"
        f"[Service]\nWatchdogSec={WATCHDOG_SEC}\n",
    )
    node.exec("systemctl", "daemon-reload")
    node.exec("systemctl", "restart", "edgekube-agent")  # WATCHDOG_USEC reaches the daemon only at its start
    before = agent_state(node)
    pod_before = fleet.pod()
    containers_before = containers(node)

    node.exec("kill", "-STOP", before["MainPID"])
    after = wait_until(
        "the watchdog to restart the agent",
        lambda: (s := agent_state(node))["NRestarts"] != before["NRestarts"] and s["ActiveState"] == "active" and s,
    )
    assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1
    assert after["MainPID"] != before["MainPID"]
    assert "Watchdog timeout" in node.journal("edgekube-agent")
    assert containers(node) == containers_before
    assert restart_counts(fleet.pod()) == restart_counts(pod_before)
    node.exec("rm", "/etc/systemd/system/edgekube-agent.service.d/50-test-watchdog.conf")
    node.exec("systemctl", "daemon-reload")


def test_a_rolling_upgrade_to_a_rebuilt_wheel_restarts_every_agent_and_no_pod_and_the_service_still_answers(
    fleet: Fleet,
) -> None:
    upgrade = fleet.workdir / "wheelhouse-2"
    shutil.copytree(fleet.wheelhouse, upgrade)
    for old in upgrade.glob("edgekube-*.whl"):
        old.unlink()
    source = fleet.workdir / "source-2"
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    for name in files:
        if (REPO / name).is_file() and not name.startswith(("tests/", "docs/", "benchmarks/")):
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    pyproject = source / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"', 'version = "0.1.0+rollout.2"', 1))
    subprocess.run(
        [str(BIN / "pip"), "wheel", "--no-deps", "-q", "-w", str(upgrade), str(source)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip

    containers_before = {name: containers(fleet.node(name)) for name in NODES}
    restarts_before = {pod: restart_counts(fleet.ekctl_json("get", "pod", pod)) for pod in (POD, "web", "client")}
    addresses_before = {pod: pod_ip(fleet, pod) for pod in (POD, "web", "client")}
    agents_before = {name: agent_state(fleet.node(name))["MainPID"] for name in NODES}

    began = time.monotonic()
    run = fleet.playbook("-e", f"edgekube_wheelhouse_dir={upgrade}")
    TIMINGS["rolling upgrade playbook run"] = time.monotonic() - began
    assert run.returncode == 0, run.output[-6000:]
    # serial: 1 in site.yml: the nodes' play runs once per node, one after the other.
    assert run.output.count("PLAY [Nodes]") == len(NODES)
    for name in NODES:
        node = fleet.node(name)
        assert agent_state(node)["MainPID"] != agents_before[name], name
        assert agent_state(node)["ActiveState"] == "active", name
        version = node.exec(
            "/opt/edgekube/venv/bin/python", "-c", "import importlib.metadata as m; print(m.version('edgekube'))"
        )
        assert version.stdout.strip() == "0.1.0+rollout.2", name
    assert {name: containers(fleet.node(name)) for name in NODES} == containers_before
    assert {pod: restart_counts(fleet.ekctl_json("get", "pod", pod)) for pod in restarts_before} == restarts_before
    assert {pod: pod_ip(fleet, pod) for pod in addresses_before} == addresses_before
    # The upgraded agents took the pod network over where the old ones left it: the Service answers by name.
    assert wait_until(
        "the Service to answer the client pod after the upgrade",
        lambda: (
            http_get_from_client(fleet, resolve_in_client(fleet, "web"), SERVICE_PORT, attempts=1) == "web-on-node-2"
        ),
    )
