"""ReadWriteOnce is safe across node failure: one writer at a time on a real NFS volume, whatever fails.

Real parts: Mosquitto, the master and three agents as processes (each agent in its own network namespace), Podman
per node, NFS-Ganesha on the host's main address. A static PersistentVolume on the export, a ReadWriteOnce claim
bound to it, and a ReplicationController of one pod that appends `<pod name> <n>` to /data/beat every 0.2 s through
the userspace NFS mount. Each test hurts one part and then reads the file on the server: the pods that wrote it
follow one another (no line of an old writer after the first line of a new one), every line written before the
fault is still there, and the pod ends up running where the row of the failure table in docs/storage.md says.
Agents run with a 6 s lease: renewed every 1.5 s, a holder stops its pods 4 s after its last renewal (or its fence
keeper does, when the agent is frozen), another node takes an unrenewed lease after seeing it unchanged for 8 s.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.fencing_plan import LEASE_FILE, Lease
from edgekube.local.podman_service import PodmanService
from edgekube.nfs.target import NfsTarget
from tests.faults.conftest import NODES
from tests.support.cluster import wait_for
from tests.support.fleet import Fleet, container, node_of, phase, terminating, uid_of
from tests.support.prerequisites import missing, require_netns, require_nfs

pytestmark = pytest.mark.integration

LEASE_SECONDS = 6
BEAT = "/data/beat"
WRITER = [
    "sh", "-c",
    f"trap 'exit 0' TERM; n=0; while true; do n=$((n+1)); echo \"$(hostname) $n\" >> {BEAT}; sleep 0.2; done",
]  # fmt: skip
LINE = re.compile(r"^(\S+) (\d+)$")


@pytest.fixture(scope="module")
def fleet(fleet_podman: dict[str, PodmanService], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """The module's own fleet: with an NFS server, agents on short leases mounting NFS in userspace."""
    require_netns()
    require_nfs()
    if shutil.which("nft") is None:
        missing("nftables is not installed (cut_master/cut_nfs drop one service's port in a node's namespace)",
                "apt-get install nftables")  # fmt: skip
    agent_args = ["--lease-duration", str(LEASE_SECONDS), "--nfs-client", "userspace"]
    root = tmp_path_factory.mktemp("rwo_fencing")
    with Fleet(root, NODES, netns=True, podman=fleet_podman, nfs=True, agent_args=agent_args) as started:
        yield started


@dataclass
class Workload:
    """One RWO claim on its own export directory and the one-replica controller writing to it."""

    fleet: Fleet
    name: str
    directory: Path

    @property
    def selector(self) -> str:
        return f"app={self.name}"

    def lines(self) -> list[str]:
        try:
            return (self.directory / "beat").read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def lease(self) -> Lease | None:
        try:
            return Lease.decode((self.directory / LEASE_FILE).read_bytes())
        except FileNotFoundError:
            return None

    def running(self, avoid: str = "", timeout: float = 120.0) -> dict[str, Any]:
        """The one Running pod of the controller (on a node other than `avoid`), once it has written a line."""
        (pod,) = self.fleet.wait_replicas(self.selector, 1, avoid=avoid, timeout=timeout)
        self.wait_written_by(pod["metadata"]["name"])
        return pod

    def wait_written_by(self, pod: str, after: int = 0, timeout: float = 60.0) -> None:
        """Wait until `pod` wrote a line past the first `after` lines of the file."""
        wait_for(
            f"a line from {pod} in {self.directory}/beat after line {after}",
            lambda: any(line.startswith(f"{pod} ") for line in self.lines()[after:]),
            timeout,
        )


def deploy(fleet: Fleet, name: str) -> Workload:
    target: NfsTarget = fleet.nfs_target(name)
    assert fleet.ganesha is not None
    volume = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"pv-{name}"},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "mountOptions": [f"port={target.port}"],
            "nfs": {"server": target.server, "path": target.path},
        },
    }
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "volumeName": f"pv-{name}",
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }
    writer = container("writer", WRITER, volumeMounts=[{"name": "data", "mountPath": "/data"}])
    rc = {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"app": name},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [writer],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": name}}],
                },
            },
        },
    }
    fleet.apply("\n---\n".join(json.dumps(doc) for doc in (volume, claim, rc)))
    return Workload(fleet, name, fleet.ganesha.export_dir / name)


def writers(lines: list[str]) -> list[str]:
    """The pods that wrote the file, in the order their runs of lines follow each other."""
    runs: list[str] = []
    for line in lines:
        match = LINE.match(line)
        assert match, f"a torn or foreign line in the heartbeat file: {line!r}"
        if not runs or runs[-1] != match.group(1):
            runs.append(match.group(1))
    return runs


def assert_one_writer_at_a_time(lines: list[str]) -> None:
    runs = writers(lines)
    assert len(runs) == len(set(runs)), f"two pods wrote the volume at the same time (runs of lines: {runs})"


def container_ids(fleet: Fleet, node: str, pod: str) -> dict[str, str]:
    return {c.name: c.container_id for c in fleet.containers_of(node, pod) if c.state == "running"}


def measured(what: str, since: float) -> None:
    print(f"\n{what}: {time.monotonic() - since:.1f}s")


def test_a_dead_node_is_replaced_elsewhere_after_its_lease_ran_out_and_never_alongside_it(fleet: Fleet) -> None:
    work = deploy(fleet, "dead")
    old = work.running()
    victim, old_name = node_of(old), old["metadata"]["name"]
    holder = work.lease()
    assert holder is not None and holder.holder == victim, "the node running the pod holds the lease"

    faulted = time.monotonic()
    fleet.kill_agent(victim)  # the node dies: agent, containers and link
    fleet.podman[victim].podman("kill", "--all")
    fleet.cut(victim)
    before = work.lines()
    new = work.running(avoid=victim)
    measured("node dead -> replacement writing", faulted)

    assert new["metadata"]["name"] != old_name
    after = work.lines()
    assert after[: len(before)] == before, "every line written before the fault is still there"
    assert_one_writer_at_a_time(after)
    assert writers(after)[-1] == new["metadata"]["name"]
    lease = work.lease()
    assert lease is not None and (lease.holder, lease.term) == (node_of(new), holder.term + 1)


def test_a_frozen_agents_pod_is_stopped_by_the_fence_keeper_before_another_node_takes_the_volume(
    fleet: Fleet,
) -> None:
    work = deploy(fleet, "frozen")
    old = work.running()
    victim, old_name, old_uid = node_of(old), old["metadata"]["name"], uid_of(old)

    faulted = time.monotonic()
    fleet.stop_agent(victim)  # SIGSTOP: the agent can neither renew nor stop its pod, whose container runs on
    new = work.running(avoid=victim)
    measured("agent frozen -> replacement writing", faulted)

    assert fleet.agents[victim].stopped, "the agent was frozen all along"
    assert not container_ids(fleet, victim, old_name), "the keeper stopped the frozen agent's container"
    log = (fleet.root / "logs" / f"{victim}.log").read_text(errors="replace")
    assert f"fence keeper: stopped pod {old_uid}: the lease of volume pv-frozen ran out" in log
    lines = work.lines()
    assert_one_writer_at_a_time(lines)
    assert writers(lines) == [old_name, new["metadata"]["name"]]


def test_a_node_cut_from_the_master_only_hands_the_volume_over_and_its_pod_is_stopped(fleet: Fleet) -> None:
    work = deploy(fleet, "cut-master")
    old = work.running()
    victim, old_name, old_uid = node_of(old), old["metadata"]["name"], uid_of(old)

    faulted = time.monotonic()
    fleet.cut_master(victim)  # the victim still reaches NFS, and Podman; only the broker is cut off
    new = work.running(avoid=victim)
    measured("node cut from master -> replacement writing", faulted)

    assert not [p for p in fleet.pods_on(victim) if p.uid == old_uid], "the cut-off node removed its pod (fenced)"
    log = (fleet.root / "logs" / f"{victim}.log").read_text(errors="replace")
    assert f"released the lease of volume pv-cut-master to {node_of(new)}" in log, "handed over on request"
    lines = work.lines()
    assert_one_writer_at_a_time(lines)
    assert writers(lines) == [old_name, new["metadata"]["name"]]
    lease = work.lease()
    assert lease is not None and lease.holder == node_of(new) and not lease.released


def test_a_node_cut_from_nfs_only_stops_its_pod_and_runs_it_again_once_it_holds_the_lease(fleet: Fleet) -> None:
    work = deploy(fleet, "cut-nfs")
    pod = work.running()
    node, name, uid = node_of(pod), pod["metadata"]["name"], uid_of(pod)
    first_ids = container_ids(fleet, node, name)

    faulted = time.monotonic()
    fleet.cut_nfs(node)  # its agent cannot renew; Podman's mount (on the host) could still write: fencing must stop it
    wait_for(f"{name} stopped on {node}", lambda: not container_ids(fleet, node, name), timeout=60)
    measured("node cut from NFS -> pod stopped", faulted)

    def waiting() -> bool:
        (now,) = fleet.api.pods(work.selector)
        states = [c["state"] for c in now["status"].get("containerStatuses", [])]
        messages = [s.get("waiting", {}).get("message", "") for s in states]
        return phase(now) == "Pending" and all("ReadWriteOnce lease" in m for m in messages)

    wait_for("the pod waiting for its lease, reported to the master", waiting, timeout=30)
    stopped_at = len(work.lines())
    (still,) = fleet.api.pods(work.selector)
    assert (uid_of(still), node_of(still)) == (uid, node), "the node is Ready: its pod is not moved, it waits"

    restored = time.monotonic()
    fleet.reconnect(node)
    again = work.running()
    work.wait_written_by(name, after=stopped_at)
    measured("NFS back -> pod writing again", restored)
    assert (uid_of(again), node_of(again)) == (uid, node)
    assert container_ids(fleet, node, name) != first_ids, "the pod was stopped and created again"
    lines = work.lines()
    assert_one_writer_at_a_time(lines)
    lease = work.lease()
    assert lease is not None and lease.holder == node


def test_an_nfs_server_restart_shorter_than_the_lease_stops_nothing_though_renewals_failed(fleet: Fleet) -> None:
    assert fleet.ganesha is not None
    work = deploy(fleet, "nfs-restart")
    pod = work.running()
    node, name = node_of(pod), pod["metadata"]["name"]
    ids = container_ids(fleet, node, name)
    starts = fleet.container_starts(node, uid_of(pod), "writer")

    fleet.ganesha.stop()
    time.sleep(1.0)  # down for 1 s plus its start: the holder's renewals fail meanwhile (its log says so)
    fleet.ganesha.start()
    before = len(work.lines())
    work.wait_written_by(name, after=before)
    time.sleep(LEASE_SECONDS)  # a whole lease later nothing was fenced either

    log = (fleet.root / "logs" / f"{node}.log").read_text(errors="replace")
    assert "cannot read the lease of volume pv-nfs-restart" in log, "the outage was long enough to be seen"

    assert container_ids(fleet, node, name) == ids, "the same container runs on"
    assert fleet.container_starts(node, uid_of(pod), "writer") == starts, "and was never started again"
    (now,) = fleet.api.pods(work.selector)
    assert uid_of(now) == uid_of(pod) and phase(now) == "Running" and not terminating(now)
    assert writers(work.lines()) == [name]


def test_a_master_outage_longer_than_the_lease_stops_nothing(fleet: Fleet) -> None:
    work = deploy(fleet, "master-down")
    pod = work.running()
    node, name = node_of(pod), pod["metadata"]["name"]
    ids = container_ids(fleet, node, name)
    starts = fleet.container_starts(node, uid_of(pod), "writer")

    fleet.stop_master(kill=True)
    before = len(work.lines())
    time.sleep(2 * LEASE_SECONDS)  # the agents renew on their own: the master has no part in the lease
    work.wait_written_by(name, after=before)
    fleet.start_master()

    assert container_ids(fleet, node, name) == ids, "the same container runs on"
    assert fleet.container_starts(node, uid_of(pod), "writer") == starts
    (now,) = fleet.wait_replicas(work.selector, 1)
    assert uid_of(now) == uid_of(pod) and node_of(now) == node
    assert writers(work.lines()) == [name]
