"""ReadWriteOnce fencing, the agent's side: lease workers of two nodes on one shared directory, with short durations."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from edgekube.agent.events import EventRecorder
from edgekube.agent.fencing import DirLeaseFiles, Fencing, Outcome, exclusive_volumes, take
from edgekube.agent.fencing_plan import LEASE_FILE, REQUEST_FILE, Gate, Lease, Node, Take, Timing
from edgekube.agent.reconcile import DesiredPod, spec_hash
from edgekube.model.names import PodUID
from edgekube.model.pod import Pod
from edgekube.model.storage import ResolvedVolume
from edgekube.nfs.target import NfsTarget

FAST = Timing(duration=1.2, renew=0.3, margin=0.4, poll=0.05)


def rwo_pod(uid: str, *, modes: tuple[str, ...] = ("ReadWriteOnce",), read_only: bool = False) -> DesiredPod:
    pod = Pod.from_dict(
        {
            "metadata": {"name": f"p-{uid}", "namespace": "default", "uid": uid},
            "spec": {
                "containers": [{"name": "c", "image": "busybox"}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
            },
        }
    )
    volume = ResolvedVolume.from_dict(
        {
            "claimName": "data",
            "volumeName": "pv-data",
            "accessModes": list(modes),
            "readOnly": read_only,
            "nfs": {"server": "10.0.0.1", "path": "/exports/data"},
            "mountOptions": ["port=2050"],
        }
    )
    return DesiredPod(PodUID(uid), pod, spec_hash(uid, pod.spec.to_dict()), {"data": volume})


def fencing(node: str, root: Path, grace: float = 0.0) -> tuple[Fencing, EventRecorder]:
    events = EventRecorder(node)
    fenced = Fencing(
        Node(node, f"boot-{node}"), FAST, events, files=lambda target: DirLeaseFiles(root), startup_grace=grace
    )
    return fenced, events


def until(what: str, check: Callable[[], Gate | bool | None], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def reasons(events: EventRecorder) -> list[str]:
    return [e["reason"] for e in events.events()]


def test_only_written_read_write_once_nfs_volumes_need_the_lease_keyed_by_their_directory() -> None:
    (volume,) = exclusive_volumes(rwo_pod("a"))
    assert volume.key == NfsTarget("10.0.0.1", "/exports/data", 2050).source() and volume.name == "pv-data"
    assert exclusive_volumes(rwo_pod("b", modes=("ReadWriteOncePod",)))
    assert not exclusive_volumes(rwo_pod("c", modes=("ReadWriteMany",)))
    assert not exclusive_volumes(rwo_pod("d", read_only=True))


def test_of_two_takers_of_the_same_content_exactly_one_wins(tmp_path: Path) -> None:
    files = DirLeaseFiles(tmp_path)
    outcomes: list[Outcome] = []
    start = threading.Barrier(8)

    def taker(i: int) -> None:
        start.wait()
        lease = Lease(f"node-{i}", "b", term=1, counter=0, duration=15.0)
        outcomes.append(take(files, Take(None, lease), time.monotonic)[0])

    threads = [threading.Thread(target=taker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(Outcome.WON) == 1, outcomes
    assert not [p.name for p in tmp_path.iterdir() if p.name != LEASE_FILE], "markers and temporary files are gone"


def test_a_node_takes_a_free_lease_and_another_waits_with_a_multi_attach_event_until_it_runs_out(
    tmp_path: Path,
) -> None:
    a, a_events = fencing("node-a", tmp_path)
    b, b_events = fencing("node-b", tmp_path)
    pa, pb = rwo_pod("pa"), rwo_pod("pb")
    try:
        assert a.sync([pa], [], connected=True).blocked, "nothing is created before the lease is held"
        until("node-a holding the lease", lambda: not a.sync([pa], [], connected=True).blocked)
        assert "SuccessfulAttachVolume" in reasons(a_events)
        until(
            "node-b waiting on node-a",
            lambda: "held by node-a" in b.sync([pb], [], connected=True).blocked.get(pb.uid, ""),
        )
        assert "FailedAttachVolume" in reasons(b_events)
        assert (tmp_path / REQUEST_FILE).exists(), "the waiting node asks for a hand-over"
        time.sleep(FAST.duration * 2)
        assert b.sync([pb], [], connected=True).blocked, "a connected holder that still runs the pod keeps the lease"
        a.stop()  # the holder's agent is gone: nobody renews
        until("node-b taking over", lambda: not b.sync([pb], [], connected=True).blocked)
        lease = Lease.decode((tmp_path / LEASE_FILE).read_bytes())
        assert lease is not None and lease.holder == "node-b" and lease.term == 2
    finally:
        a.stop()
        b.stop()


def test_a_holder_cut_from_the_master_stops_its_pod_and_hands_the_lease_to_the_requester(tmp_path: Path) -> None:
    a, a_events = fencing("node-a", tmp_path)
    b, _ = fencing("node-b", tmp_path)
    pa, pb = rwo_pod("pa"), rwo_pod("pb")
    try:
        until("node-a holding the lease", lambda: not a.sync([pa], [pa.uid], connected=True).blocked)
        until("node-b waiting", lambda: "held by node-a" in b.sync([pb], [], connected=True).blocked.get(pb.uid, ""))
        until("node-a fencing its pod", lambda: pa.uid in a.sync([pa], [pa.uid], connected=False).fence)
        assert "Fenced" in reasons(a_events)
        assert pb.uid in b.sync([pb], [], connected=True).blocked, "no hand-over while node-a's pod is present"
        a.sync([pa], [], connected=False)  # its pod is gone now
        until("node-b holding the lease", lambda: not b.sync([pb], [], connected=True).blocked)
        lease = Lease.decode((tmp_path / LEASE_FILE).read_bytes())
        assert lease is not None and lease.holder == "node-b"
        assert pa.uid in a.sync([pa], [], connected=False).blocked, "node-a does not take it back"
    finally:
        a.stop()
        b.stop()


def test_a_holder_that_cannot_renew_is_fenced_by_the_loop_clock_and_takes_its_unchanged_lease_back(
    tmp_path: Path,
) -> None:
    share = tmp_path / "share"
    share.mkdir()
    a, a_events = fencing("node-a", share)
    pa = rwo_pod("pa")
    try:
        until("node-a holding the lease", lambda: not a.sync([pa], [pa.uid], connected=True).blocked)
        share.rename(tmp_path / "away")  # the server is gone
        until("node-a fencing its pod", lambda: pa.uid in a.sync([pa], [pa.uid], connected=True).fence)
        assert "Fenced" in reasons(a_events)
        (tmp_path / "away").rename(share)
        until("node-a holding it again", lambda: not a.sync([pa], [], connected=True).blocked, timeout=FAST.poll * 40)
    finally:
        a.stop()


def test_a_volume_no_pod_uses_any_more_is_released_to_anyone(tmp_path: Path) -> None:
    a, _ = fencing("node-a", tmp_path)
    pa = rwo_pod("pa")
    try:
        until("node-a holding the lease", lambda: not a.sync([pa], [pa.uid], connected=True).blocked)
        a.sync([], [pa.uid], connected=True)
        time.sleep(FAST.renew)
        lease = Lease.decode((tmp_path / LEASE_FILE).read_bytes())
        assert lease is not None and not lease.released, "released only once its pod is gone"

        def released() -> bool:
            a.sync([], [], connected=True)
            now = Lease.decode((tmp_path / LEASE_FILE).read_bytes())
            return now is not None and now.released and now.to == ""

        until("the lease released", released)
    finally:
        a.stop()


def test_a_restarted_agent_keeps_the_pods_its_former_self_left_running(tmp_path: Path) -> None:
    first, _ = fencing("node-a", tmp_path)
    pa = rwo_pod("pa")
    until("holding the lease", lambda: not first.sync([pa], [pa.uid], connected=True).blocked)
    first.stop()
    again = Fencing(
        Node("node-a", "new-boot"), FAST, EventRecorder("node-a"), files=lambda target: DirLeaseFiles(tmp_path)
    )
    gates: list[Gate] = []

    def held() -> bool:
        gates.append(again.sync([pa], [pa.uid], connected=True))
        return not gates[-1].blocked

    try:
        until("held by the new agent", held)
        assert not any(g.fence for g in gates), "never fenced while the new agent took the lease back"
    finally:
        again.stop()


class CountingFiles(DirLeaseFiles):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.markers = 0

    def create_marker(self, name: str) -> bool:
        self.markers += 1
        return super().create_marker(name)


def test_a_marker_left_by_a_dead_taker_is_removed_after_a_whole_wait_at_the_poll_rate(tmp_path: Path) -> None:
    stale = Lease("node-b", "boot-b", term=1, counter=3, duration=FAST.duration)
    (tmp_path / LEASE_FILE).write_bytes(stale.encode())
    (tmp_path / Take(stale.encode(), stale).marker).mkdir()  # node-c died halfway through its take
    files = CountingFiles(tmp_path)
    a = Fencing(Node("node-a", "a"), FAST, EventRecorder("node-a"), files=lambda target: files)
    pa = rwo_pod("pa")
    try:
        started = time.monotonic()
        until("node-a holding the lease", lambda: not a.sync([pa], [], connected=True).blocked)
        waited = time.monotonic() - started
        assert waited >= 2 * FAST.waits_for(FAST.duration), "one wait for the lease, another for the marker"
        assert files.markers <= waited / FAST.poll + 2, "one attempt per poll, not a busy loop"
        lease = Lease.decode((tmp_path / LEASE_FILE).read_bytes())
        assert lease is not None and (lease.holder, lease.term) == ("node-a", 2)
    finally:
        a.stop()


def test_an_agent_just_started_counts_as_connected_and_keeps_its_volume_despite_a_request(tmp_path: Path) -> None:
    a, _ = fencing("node-a", tmp_path, grace=3600.0)
    b, _ = fencing("node-b", tmp_path)
    pa, pb = rwo_pod("pa"), rwo_pod("pb")
    try:
        until("node-a holding the lease", lambda: not a.sync([pa], [pa.uid], connected=False).blocked)

        def asking() -> bool:
            b.sync([pb], [], connected=True)
            return (tmp_path / REQUEST_FILE).exists()

        until("node-b asking for the volume", asking)
        time.sleep(FAST.renew * 2)  # node-a has read the request meanwhile
        assert not a.sync([pa], [pa.uid], connected=False).fence, "no hand-over before its first connection"
    finally:
        a.stop()
        b.stop()
