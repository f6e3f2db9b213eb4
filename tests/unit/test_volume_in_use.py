"""node.status.volumesInUse: the agent lists the claim volumes it still holds; the master waits for them to go.

Agent side on FakeRuntime (and PodmanRuntime's listing schedule with its engine calls counted); master side as
pure plans (pvc-protection, the provisioner's reclaim) and through a master on the in-memory broker.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.runtime.fake import FakeRuntime
from edgekube.agent.runtime.podman import PodmanRuntime
from edgekube.agent.runtime.protocol import LABEL_POD_UID, LABEL_PV, LABEL_PVC, LABEL_VOLUME_KIND
from edgekube.agent.runtime.volumes import plan_volumes, volumes_in_use
from edgekube.bus import topics
from edgekube.master.controllers.volumes import inuse, protection, provisioner
from edgekube.master.controllers.volumes.actions import SetFinalizers, Submit
from edgekube.master.controllers.volumes.nfsio import NoShareFs
from edgekube.master.controllers.volumes.users import ClaimUsers
from edgekube.master.controllers.volumes.worker import VolumeWorker
from edgekube.model.names import NodeName, PodUID
from edgekube.model.node import Node as NodeModel
from edgekube.model.storage import PVC_PROTECTION
from edgekube.model.wire import NodeReport, Verb
from edgekube.store.state import TinyStateStore
from tests.unit.test_runtime_contract import make_pod, new_uid, nfs_claim
from tests.unit.test_volume_master import Cluster, FakeShares, claim, nfs_class, pod
from tests.unit.test_volumes_agent import NFS_SOURCE, NODE, Node, desired_pod, resolved

# -- agent: labels and the list --------------------------------------------------------------------------------


def test_a_claims_volume_is_labelled_with_its_persistent_volume_and_namespaced_claim(tmp_path: Path) -> None:
    runtime = FakeRuntime(NODE)
    uid = new_uid()
    spec = make_pod(
        "p", "img", {"name": "main", "image": "img", "volumeMounts": [{"name": "d", "mountPath": "/d"},
                                                                     {"name": "e", "mountPath": "/e"}]},
        volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}, {"name": "e", "emptyDir": {}}],
    )  # fmt: skip
    runtime.create_pod(spec, uid, "h", {"d": nfs_claim("10.0.0.5", 2049)})
    labels = {name: dict(v) for (_, name), v in runtime.engine.volumes.items()}
    prefix = f"ek_default_p_{uid[:8]}"
    assert labels == {
        f"{prefix}_d": {LABEL_POD_UID: uid, LABEL_VOLUME_KIND: "nfs", LABEL_PV: "pv-1", LABEL_PVC: "default/data"},
        f"{prefix}_e": {LABEL_POD_UID: uid, LABEL_VOLUME_KIND: "emptyDir"},
    }


def test_volumes_in_use_are_the_nfs_claim_volumes_sorted_once_each_hostpath_claims_and_empty_dirs_not() -> None:
    found = volumes_in_use(
        [
            {LABEL_PV: "pv-b", LABEL_VOLUME_KIND: "nfs"},
            {LABEL_PV: "pv-a", LABEL_VOLUME_KIND: "nfs"},
            {LABEL_PV: "pv-b", LABEL_VOLUME_KIND: "nfs"},  # a second pod, or a subPath volume, of the same claim
            {LABEL_PV: "pv-h", LABEL_VOLUME_KIND: "hostPath"},
            {LABEL_VOLUME_KIND: "emptyDir"},
        ]
    )
    assert found == ["edgekube.io/nfs/pv-a", "edgekube.io/nfs/pv-b"]


def test_a_claim_plan_names_the_persistent_volume_it_is_bound_to() -> None:
    spec = make_pod("p", "img", volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}])
    plans, _ = plan_volumes(spec, {"d": nfs_claim("10.0.0.5", 2049)})
    assert (plans["d"].claim, plans["d"].pv) == ("data", "pv-1")


def test_the_node_status_field_is_kubernetes_volumes_in_use() -> None:
    node = NodeModel.from_dict({"metadata": {"name": "n"}, "status": {"volumesInUse": ["edgekube.io/nfs/pv-1"]}})
    assert node.status is not None and node.status.volumes_in_use == ["edgekube.io/nfs/pv-1"]
    assert node.to_dict()["status"]["volumesInUse"] == ["edgekube.io/nfs/pv-1"]


# -- agent: what it reports ------------------------------------------------------------------------------------


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path / "agent")
    yield n
    n.agent.prober.stop()


def reported(n: Node) -> list[list[str] | None]:
    """volumesInUse of every Node object the agent published, in order."""
    reports = [NodeReport.decode(m.payload) for m in n.broker.published(topics.node_status(NODE))]
    return [r.node_object["status"].get("volumesInUse") for r in reports]


def test_the_agent_reports_its_nfs_claim_volumes_and_sends_a_change_at_once(node: Node) -> None:
    node.want(desired_pod("a", {"d": resolved(**NFS_SOURCE).to_dict()}))
    node.settle()
    assert reported(node)[-1] == ["edgekube.io/nfs/pv-1"]
    sent = len(reported(node))
    node.want()
    node.settle()
    assert reported(node)[-1] == []
    assert len(reported(node)) == sent + 1  # sent with the pass that saw it, no periodic resend needed


def test_a_volume_left_behind_by_a_pod_no_longer_desired_is_still_reported(node: Node) -> None:
    node.want(desired_pod("a", {"d": resolved(**NFS_SOURCE).to_dict()}))
    node.settle()
    node.runtime.engine.stuck_volumes.add("pv-1")
    node.want()
    node.settle()
    assert node.runtime.list_pods() == []
    assert reported(node)[-1] == ["edgekube.io/nfs/pv-1"]
    node.runtime.engine.stuck_volumes.clear()
    node.runtime.remove_pod(PodUID("uid-a"))  # what an operator (or a later removal) finally manages
    node.settle()
    assert reported(node)[-1] == []


# -- agent: PodmanRuntime lists off the loop -------------------------------------------------------------------


class Listing:
    """Stands in for PodmanRuntime's volume listing: counts calls, answers `current`."""

    def __init__(self) -> None:
        self.calls = 0
        self.current: list[str] = []

    def __call__(self) -> list[str]:
        self.calls += 1
        return list(self.current)


@pytest.fixture
def podman(monkeypatch: pytest.MonkeyPatch) -> tuple[PodmanRuntime, Listing]:
    runtime = PodmanRuntime("unix:///nonexistent/podman.sock", NodeName("n"), volume_refresh=10.0)
    listing = Listing()
    monkeypatch.setattr(runtime._creator.volumes, "in_use", listing)
    monkeypatch.setattr(runtime._observer, "list_pods", list)
    monkeypatch.setattr(runtime._observer, "wait_for_exit", lambda timeout: False)
    monkeypatch.setattr(runtime._stopper, "running", lambda uid: set())
    monkeypatch.setattr(runtime._stopper, "purge", lambda uid: None)
    return runtime, listing


def test_podman_volumes_in_use_never_calls_the_engine_only_the_first_list_pods_and_removals_do(
    podman: tuple[PodmanRuntime, Listing],
) -> None:
    runtime, listing = podman
    assert runtime.volumes_in_use() is None
    runtime.list_pods()
    runtime.list_pods()
    assert listing.calls == 1
    listing.current = ["edgekube.io/nfs/pv-1"]
    for _ in range(3):
        assert runtime.volumes_in_use() == []
    assert listing.calls == 1
    runtime.remove_pod(new_uid())
    assert (listing.calls, runtime.volumes_in_use()) == (2, ["edgekube.io/nfs/pv-1"])


def test_podman_wait_for_exit_lists_when_the_last_listing_is_old_and_wakes_on_a_change(
    podman: tuple[PodmanRuntime, Listing], monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime, listing = podman
    now = [100.0]
    monkeypatch.setattr("edgekube.agent.runtime.podman.runtime.time.monotonic", lambda: now[0])
    assert runtime.wait_for_exit(0.1) is True  # never listed: lists, and None → [] is a change
    assert runtime.wait_for_exit(0.1) is False
    assert listing.calls == 1
    listing.current = ["edgekube.io/nfs/pv-1"]  # changed behind the agent's back
    now[0] += 10.0
    assert runtime.wait_for_exit(0.1) is True
    assert (listing.calls, runtime.volumes_in_use()) == (2, ["edgekube.io/nfs/pv-1"])


# -- master: which volumes the nodes hold ----------------------------------------------------------------------


def node_obj(name: str, in_use: list[Any], ready: str = "True") -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": ready}]
    return {"metadata": {"name": name}, "status": {"conditions": conditions, "volumesInUse": in_use}}


def test_held_volumes_are_every_stored_nodes_nfs_entries_not_ready_nodes_included() -> None:
    nodes = [
        node_obj("a", ["edgekube.io/nfs/pv-1", "kubernetes.io/csi/x^y", 7]),
        node_obj("b", ["edgekube.io/nfs/pv-2"], ready="Unknown"),
        {"metadata": {"name": "c"}},
    ]
    assert inuse.held(nodes) == {"pv-1", "pv-2"}


def claim_obj(name: str = "data", volume: str = "pv-1", deleting: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "uid": f"u-{name}", "finalizers": [PVC_PROTECTION]}
    if deleting:
        meta["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    return {"kind": "PersistentVolumeClaim", "metadata": meta, "spec": {"volumeName": volume}}


def users_of(*pods: tuple[str, str]) -> ClaimUsers:
    """Claim users: (pod name, node) pairs, each using claim `data`."""
    users = ClaimUsers()
    for name, node_name in pods:
        spec = {"nodeName": node_name, "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}
        users.observe(("default", name), {"metadata": {"uid": f"u-{name}"}, "spec": spec})
    return users


@pytest.mark.parametrize(
    ("pods", "held", "released"),
    [
        pytest.param((), frozenset(), True, id="no-pod-no-node"),
        pytest.param((), frozenset({"pv-1"}), False, id="a-node-holds-its-volume"),
        pytest.param((("p", "n1"),), frozenset(), False, id="a-pod-uses-it"),
        pytest.param((("p", ""),), frozenset(), False, id="a-pending-pod-uses-it"),
        pytest.param((), frozenset({"pv-2"}), True, id="a-node-holds-another-volume"),
    ],
)
def test_the_protection_finalizer_goes_only_when_no_pod_uses_the_claim_and_no_node_holds_its_volume(
    pods: tuple[tuple[str, str], ...], held: frozenset[str], released: bool
) -> None:
    data = claim_obj()
    actions = protection.plan({("default", "data"): data}, users_of(*pods), held)
    assert actions == ([SetFinalizers(data, ())] if released else [])


def released_volume(name: str = "pv-1") -> dict[str, Any]:
    return {
        "kind": "PersistentVolume",
        "metadata": {"name": name, "uid": "v1", "annotations": {"pv.kubernetes.io/provisioned-by": "edgekube.io/nfs"}},
        "spec": {
            "persistentVolumeReclaimPolicy": "Delete",
            "nfs": {"server": "10.0.0.5", "path": f"/export/default-data-{name}"},
            "claimRef": {"namespace": "default", "name": "data", "uid": "u-data"},
        },
        "status": {"phase": "Released"},
    }


NEW_CLAIM = {("default", "data"): claim_obj("data", "pv-9", deleting=False)}


@pytest.mark.parametrize(
    ("pods", "claims", "held", "reclaimed"),
    [
        pytest.param((), {}, frozenset(), True, id="nothing-holds-it"),
        pytest.param((), {}, frozenset({"pv-1"}), False, id="a-node-holds-it"),
        pytest.param((("p", "n1"),), {}, frozenset(), False, id="a-placed-pod-names-its-claim"),
        pytest.param((("p", ""),), {}, frozenset(), True, id="a-pending-pod-mounts-nothing"),
        pytest.param((("p", "n1"),), NEW_CLAIM, frozenset(), True, id="the-pod-uses-a-new-claim-of-that-name"),
    ],
)
def test_a_delete_reclaim_waits_until_no_node_holds_the_volume_and_no_placed_pod_names_its_claim(
    pods: tuple[tuple[str, str], ...], claims: dict[Any, Any], held: frozenset[str], reclaimed: bool
) -> None:
    worker = VolumeWorker(NoShareFs())
    volume = released_volume()
    actions, keys = provisioner.plan(claims, {("", "pv-1"): volume}, {}, users_of(*pods), worker, now=0.0, held=held)
    submitted = [a.job for a in actions if isinstance(a, Submit)]
    assert [(j.operation, j.directory) for j in submitted] == ([("remove", "default-data-pv-1")] if reclaimed else [])
    assert bool(keys) is reclaimed


# -- master: end to end on the in-memory broker ------------------------------------------------------------------


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[Cluster, FakeShares]]:
    shares = FakeShares()
    store = TinyStateStore(None)
    yield Cluster(tmp_path, store, shares), shares
    store.close()


def test_deleting_pod_and_claim_back_to_back_keeps_claim_and_directory_until_the_node_lets_the_volume_go(
    cluster: tuple[Cluster, FakeShares],
) -> None:
    c, shares = cluster
    c.apply(nfs_class())
    c.apply(claim() + "---" + pod("p"))
    pv = c.get("PersistentVolumeClaim", "data")["spec"]["volumeName"]
    where = c.get("Pod", "p")["spec"]["nodeName"]
    c.node_up(where, volumes_in_use=[f"edgekube.io/nfs/{pv}"])
    c.call(verb=Verb.DELETE, kind="Pod", name="p")
    c.call(verb=Verb.DELETE, kind="PersistentVolumeClaim", name="data")
    assert c.get("PersistentVolumeClaim", "data")["metadata"]["finalizers"] == [PVC_PROTECTION]
    assert shares.at() == {f"default-data-{pv}"}
    c.master.liveness.clock = lambda: 1010.0  # no heartbeat for 10 s
    c.settle()
    assert not c.master.liveness.ready(where)  # NotReady: its pods may still write, so its word stands
    assert c.exists("PersistentVolumeClaim", "data") and shares.at() == {f"default-data-{pv}"}
    c.node_up(where, volumes_in_use=[])
    c.settle()
    assert not c.exists("PersistentVolumeClaim", "data")
    assert not c.exists("PersistentVolume", pv)
    assert shares.at() == set()


def test_a_node_deleted_from_the_cluster_no_longer_holds_a_claim(cluster: tuple[Cluster, FakeShares]) -> None:
    c, shares = cluster
    c.apply(nfs_class())
    c.apply(claim())
    pv = c.get("PersistentVolumeClaim", "data")["spec"]["volumeName"]
    c.node_up("n2", volumes_in_use=[f"edgekube.io/nfs/{pv}"])
    c.call(verb=Verb.DELETE, kind="PersistentVolumeClaim", name="data")
    assert c.exists("PersistentVolumeClaim", "data")
    assert c.call(verb=Verb.DELETE, kind="Node", name="n2").ok
    assert not c.exists("PersistentVolumeClaim", "data")
    assert shares.at() == set()
