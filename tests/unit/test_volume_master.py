"""Persistent volumes through the master: API rules, binding, NFS provisioning and reclaiming, scheduling, dispatch.

A master on the in-memory broker (as test_master_loop) with an in-memory NFS share (`FakeShares`); the test runs
the passes (`reconcile`) and the volume worker's jobs (`run_jobs`) itself, so every step is deterministic.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.bus import topics
from edgekube.master.app import Master
from edgekube.master.cache import CachedStore
from edgekube.master.config import MasterConfig
from edgekube.master.controllers.volumes.nfsio import Share
from edgekube.master.wiring import master_will
from edgekube.model.errors import StorageError
from edgekube.model.storage import RESOLVED_VOLUMES_KEY
from edgekube.model.wire import ApiRequest, ApiResponse, NodeDesired, NodeReport, Presence, Verb
from edgekube.store.state import TinyStateStore
from tests.support.membus import MemoryBroker

NODES = ("n1", "n2", "n3")
NFS_CLASS = """
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: nfs
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: edgekube.io/nfs
parameters: {server: 10.0.0.5, share: /export%s}
reclaimPolicy: %s
volumeBindingMode: %s
"""


def nfs_class(params: str = "", reclaim: str = "Delete", mode: str = "Immediate") -> str:
    return NFS_CLASS % (params, reclaim, mode)


def claim(name: str = "data", size: str = "1Gi", modes: str = "[ReadWriteOnce]", **spec: str) -> str:
    extra = "".join(f"\n  {k}: {v}" for k, v in spec.items())
    return f"""
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {name}}}
spec:
  accessModes: {modes}
  resources: {{requests: {{storage: {size}}}}}{extra}
"""


def volume(name: str, size: str = "1Gi", modes: str = "[ReadWriteOnce]", labels: str = "{}", **spec: str) -> str:
    extra = "".join(f"\n  {k}: {v}" for k, v in spec.items())
    if "nfs" not in spec and "hostPath" not in spec:
        extra += f"\n  nfs: {{server: 10.0.0.7, path: /static/{name}}}"
    return f"""
apiVersion: v1
kind: PersistentVolume
metadata: {{name: {name}, labels: {labels}}}
spec:
  capacity: {{storage: {size}}}
  accessModes: {modes}{extra}
"""


def pod(name: str, claim_name: str = "data", read_only: bool = False, node: str = "") -> str:
    selector = f"\n  nodeSelector: {{kubernetes.io/hostname: {node}}}" if node else ""
    ro = str(read_only).lower()
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  containers: [{{name: c, image: busybox:1.36, volumeMounts: [{{name: d, mountPath: /data}}]}}]
  volumes: [{{name: d, persistentVolumeClaim: {{claimName: {claim_name}, readOnly: {ro}}}}}]{selector}
"""


class FakeShares:
    """In-memory NFS shares: directories per (server, port, share path); servers in `down` refuse every call."""

    def __init__(self) -> None:
        self.dirs: dict[tuple[str, int, str], set[str]] = {}
        self.down: set[str] = set()
        self.threads: set[str] = set()

    def _dirs(self, share: Share) -> set[str]:
        self.threads.add(threading.current_thread().name)
        if share.server in self.down:
            raise StorageError(f"nfs server {share.address()}: connection refused")
        return self.dirs.setdefault((share.server, share.port, share.path), set())

    def makedirs(self, share: Share, path: str) -> None:
        self._dirs(share).add(path)

    def rmtree(self, share: Share, path: str) -> None:
        self._dirs(share).discard(path)

    def rename(self, share: Share, old: str, new: str) -> None:
        dirs = self._dirs(share)
        if old not in dirs:
            raise StorageError(f"nfs server {share.address()}: rename {share.path}/{old}: No such file or directory")
        dirs.remove(old)
        dirs.add(new)

    def exists(self, share: Share, path: str) -> bool:
        return path in self._dirs(share)

    def at(self, server: str = "10.0.0.5", share: str = "/export", port: int = 2049) -> set[str]:
        return self.dirs.get((server, port, share), set())


class Wall:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Cluster:
    def __init__(self, tmp: Path, store: TinyStateStore, shares: FakeShares) -> None:
        self.broker = MemoryBroker(inline=True)
        self.wall = Wall()
        self.shares = shares
        config = MasterConfig(data_dir=tmp, node_timeout=2.0, volume_retry_base=10.0, volume_retry_max=40.0)
        bus = self.broker.client(config.client_id, will=master_will(), persistent=True)
        self.master = Master(
            config, bus=bus, store=CachedStore(store), clock=lambda: 1000.0, wall=self.wall, share_fs=shares
        )
        self.master.start(loop=False)
        self.nodes = self.broker.client("nodes").start()
        for node in NODES:
            self.node_up(node)

    def node_up(
        self, node: str, nfs: list[dict[str, Any]] | None = None, volumes_in_use: list[str] | None = None
    ) -> None:
        self.nodes.publish(topics.node_online(node), Presence(online=True, boot_id="b").encode(), retain=True)
        status: dict[str, Any] = {"allocatable": {"cpu": "4", "memory": "4Gi", "pods": 110}}
        if nfs is not None:
            status["nfsServers"] = nfs
        if volumes_in_use is not None:
            status["volumesInUse"] = volumes_in_use
        node_object = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": node, "labels": {"kubernetes.io/hostname": node}},
            "status": status,
        }
        report = NodeReport(node=node, boot_id="b", node_object=node_object)
        self.nodes.publish(topics.node_status(node), report.encode())

    def call(self, **fields: Any) -> ApiResponse:
        answer = self.master.api.handle(ApiRequest(**fields))
        self.settle()
        return answer

    def apply(self, manifest: str) -> ApiResponse:
        answer = self.call(verb=Verb.APPLY, manifest=manifest)
        assert answer.ok, answer.error
        return answer

    def settle(self) -> None:
        """Passes and worker jobs until neither has anything left to do."""
        for _ in range(20):
            wrote = self.master.reconcile()
            ran = self.master.volumes.worker.run_pending()
            if not wrote and not ran:
                return

    def get(self, kind: str, name: str, namespace: str = "default") -> dict[str, Any]:
        ns = "" if kind in ("PersistentVolume", "StorageClass") else namespace
        return self.master.store.get(kind, ns, name)

    def exists(self, kind: str, name: str) -> bool:
        ns = "" if kind in ("PersistentVolume", "StorageClass") else "default"
        return (ns, name) in self.master.store.objects(kind)

    def events(self, reason: str) -> list[str]:
        return [e["message"] for e in self.master.events.list() if e["reason"] == reason]

    def desired(self, node: str) -> NodeDesired:
        return NodeDesired.decode(self.broker.published(topics.node_desired(node))[-1].payload)


@pytest.fixture
def shares() -> FakeShares:
    return FakeShares()


@pytest.fixture
def cluster(tmp_path: Path, shares: FakeShares) -> Iterator[Cluster]:
    store = TinyStateStore(None)
    yield Cluster(tmp_path, store, shares)
    store.close()


def phase(obj: dict[str, Any]) -> str:
    return str(obj["status"]["phase"])


# -- dynamic provisioning ---------------------------------------------------------------------------------------
def test_a_claim_without_a_class_gets_the_default_class_and_a_provisioned_sub_directory_and_volume(
    cluster: Cluster, shares: FakeShares
) -> None:
    cluster.apply(nfs_class(", port: '2050'"))
    cluster.apply(claim())
    data = cluster.get("PersistentVolumeClaim", "data")
    uid = data["metadata"]["uid"]
    assert data["spec"]["storageClassName"] == "nfs"
    assert phase(data) == "Bound"
    assert data["spec"]["volumeName"] == f"pvc-{uid}"
    assert data["status"]["capacity"] == {"storage": "1Gi"}
    assert shares.at(port=2050) == {f"default-data-pvc-{uid}"}
    pv = cluster.get("PersistentVolume", f"pvc-{uid}")
    assert phase(pv) == "Bound"
    assert pv["spec"]["nfs"] == {"server": "10.0.0.5", "path": f"/export/default-data-pvc-{uid}"}
    assert pv["spec"]["mountOptions"] == ["port=2050"]
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert pv["spec"]["claimRef"]["uid"] == uid
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == "edgekube.io/nfs"
    assert cluster.events("ProvisioningSucceeded") == [f"Successfully provisioned volume pvc-{uid}"]


def test_nfs_work_runs_on_the_worker_thread_and_a_hung_server_leaves_the_pass_free(
    tmp_path: Path,
) -> None:
    release = threading.Event()

    class Hanging(FakeShares):
        def makedirs(self, share: Share, path: str) -> None:
            self.threads.add(threading.current_thread().name)
            release.wait()
            super().makedirs(share, path)

    shares = Hanging()
    store = TinyStateStore(None)
    c = Cluster(tmp_path, store, shares)
    c.master.volumes.worker.start()
    try:
        c.apply(nfs_class())
        c.master.api.handle(ApiRequest(verb=Verb.APPLY, manifest=claim()))
        c.master.reconcile()  # submits the job; the server does not answer
        c.master.reconcile()
        assert phase(c.get("PersistentVolumeClaim", "data")) == "Pending"
        release.set()
    finally:
        release.set()
        c.master.volumes.worker.stop()
        store.close()
    assert shares.threads == {"master-volumes"}


def test_a_server_that_refuses_leaves_the_claim_pending_with_provisioning_failed_and_it_is_retried_after_back_off(
    cluster: Cluster, shares: FakeShares
) -> None:
    shares.down.add("10.0.0.5")
    cluster.apply(nfs_class())
    cluster.apply(claim())
    assert phase(cluster.get("PersistentVolumeClaim", "data")) == "Pending"
    failed = cluster.events("ProvisioningFailed")
    assert failed == [
        'failed to provision volume with StorageClass "nfs": nfs server 10.0.0.5 (share /export): '
        "nfs server 10.0.0.5: connection refused"
    ]
    shares.down.clear()
    cluster.wall.now += 9  # the back-off (10 s) has not passed
    cluster.settle()
    assert phase(cluster.get("PersistentVolumeClaim", "data")) == "Pending"
    cluster.wall.now += 1
    cluster.settle()
    assert phase(cluster.get("PersistentVolumeClaim", "data")) == "Bound"


def test_wait_for_first_consumer_provisions_only_once_a_pod_uses_the_claim(
    cluster: Cluster, shares: FakeShares
) -> None:
    cluster.apply(nfs_class(mode="WaitForFirstConsumer"))
    cluster.apply(claim())
    assert phase(cluster.get("PersistentVolumeClaim", "data")) == "Pending"
    assert shares.at() == set()
    assert cluster.events("WaitForFirstConsumer") == ["waiting for first consumer to be created before binding"]
    cluster.apply(pod("p"))
    assert phase(cluster.get("PersistentVolumeClaim", "data")) == "Bound"
    assert cluster.get("Pod", "p")["spec"].get("nodeName") in NODES


def test_a_pod_whose_wait_for_first_consumer_claim_is_being_provisioned_waits_unremarked_then_is_placed(
    cluster: Cluster, shares: FakeShares
) -> None:
    shares.down.add("10.0.0.5")  # provisioning fails until the server answers
    cluster.apply(nfs_class(mode="WaitForFirstConsumer"))
    cluster.apply(claim() + "---" + pod("p"))
    waiting = cluster.get("Pod", "p")
    assert not waiting["spec"].get("nodeName")
    assert "message" not in waiting["status"]
    assert cluster.events("FailedScheduling") == []
    assert cluster.events("ProvisioningFailed")[0].startswith('failed to provision volume with StorageClass "nfs"')
    shares.down.clear()
    cluster.wall.now += 60
    cluster.settle()
    assert phase(cluster.get("PersistentVolumeClaim", "data")) == "Bound"
    assert cluster.get("Pod", "p")["spec"].get("nodeName") in NODES
    assert cluster.events("FailedScheduling") == []


LOCAL_CLASS = """
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
"""


def test_a_wait_for_first_consumer_claim_no_volume_fits_and_nothing_provisions_leaves_every_node_without_a_volume(
    cluster: Cluster,
) -> None:
    cluster.apply(LOCAL_CLASS)
    cluster.apply(claim(storageClassName="local") + "---" + pod("p"))
    assert cluster.get("Pod", "p")["status"]["message"] == (
        "0/3 nodes are available: 3 node(s) didn't find available persistent volumes to bind."
    )
    cluster.apply(volume("pv-local", storageClassName="local"))
    assert phase(cluster.get("PersistentVolumeClaim", "data")) == "Bound"
    assert cluster.get("Pod", "p")["spec"].get("nodeName") in NODES


# -- reclaiming ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "left"),
    [("", set()), (", archiveOnDelete: 'true'", {"archived-{}"}), (", onDelete: retain", {"{}"})],
)
def test_deleting_a_provisioned_claim_removes_archives_or_keeps_its_directory_and_the_volume_goes(
    cluster: Cluster, shares: FakeShares, params: str, left: set[str]
) -> None:
    cluster.apply(nfs_class(params))
    cluster.apply(claim())
    pv = cluster.get("PersistentVolumeClaim", "data")["spec"]["volumeName"]
    directory = f"default-data-{pv}"
    cluster.call(verb=Verb.DELETE, kind="PersistentVolumeClaim", name="data")
    assert not cluster.exists("PersistentVolumeClaim", "data")
    assert not cluster.exists("PersistentVolume", pv)
    assert shares.at() == {d.format(directory) for d in left}


def test_a_retained_provisioned_volume_is_released_and_keeps_its_directory(
    cluster: Cluster, shares: FakeShares
) -> None:
    cluster.apply(nfs_class(reclaim="Retain"))
    cluster.apply(claim())
    pv = cluster.get("PersistentVolumeClaim", "data")["spec"]["volumeName"]
    cluster.call(verb=Verb.DELETE, kind="PersistentVolumeClaim", name="data")
    assert phase(cluster.get("PersistentVolume", pv)) == "Released"
    assert len(shares.at()) == 1


def test_a_failed_delete_is_reported_with_the_server_and_retried(cluster: Cluster, shares: FakeShares) -> None:
    cluster.apply(nfs_class())
    cluster.apply(claim())
    pv = cluster.get("PersistentVolumeClaim", "data")["spec"]["volumeName"]
    shares.down.add("10.0.0.5")
    cluster.call(verb=Verb.DELETE, kind="PersistentVolumeClaim", name="data")
    assert phase(cluster.get("PersistentVolume", pv)) == "Released"
    assert cluster.events("VolumeFailedDelete") == [
        f"nfs server 10.0.0.5: cannot remove /export/default-data-{pv}: nfs server 10.0.0.5: connection refused"
    ]
    shares.down.clear()
    cluster.wall.now += 10
    cluster.settle()
    assert not cluster.exists("PersistentVolume", pv)
    assert shares.at() == set()


def test_a_static_volume_with_delete_policy_that_cannot_be_deleted_fails(cluster: Cluster) -> None:
    cluster.apply(volume("pv1", persistentVolumeReclaimPolicy="Delete", storageClassName='""'))
    cluster.apply(claim(storageClassName='""'))
    cluster.call(verb=Verb.DELETE, kind="PersistentVolumeClaim", name="data")
    pv = cluster.get("PersistentVolume", "pv1")
    assert phase(pv) == "Failed"
    assert cluster.events("VolumeFailedDelete") == [
        'error getting deleter volume plugin for volume "pv1": no deletable volume plugin matched'
    ]


# -- static binding ------------------------------------------------------------------------------------------------
def test_a_claim_binds_the_smallest_volume_with_its_class_modes_size_and_labels(cluster: Cluster) -> None:
    cluster.apply(
        "---".join(
            [
                volume("big", "10Gi", labels="{tier: fast}", storageClassName="slow"),
                volume("small", "2Gi", labels="{tier: fast}", storageClassName="slow"),
                volume("tiny", "500Mi", labels="{tier: fast}", storageClassName="slow"),
                volume("rox", "1Gi", modes="[ReadOnlyMany]", labels="{tier: fast}", storageClassName="slow"),
                volume("unlabelled", "1Gi", storageClassName="slow"),
                volume("other-class", "1Gi", labels="{tier: fast}", storageClassName="gold"),
                """
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: slow}
provisioner: kubernetes.io/no-provisioner
""",
                claim(storageClassName="slow", selector="{matchLabels: {tier: fast}}"),
            ]
        )
    )
    data = cluster.get("PersistentVolumeClaim", "data")
    assert data["spec"]["volumeName"] == "small"
    assert phase(data) == "Bound"
    small = cluster.get("PersistentVolume", "small")
    assert phase(small) == "Bound"
    assert small["spec"]["claimRef"]["name"] == "data"
    assert {phase(cluster.get("PersistentVolume", n)) for n in ("big", "tiny", "rox", "unlabelled")} == {"Available"}


def test_a_claim_naming_a_volume_binds_to_it(cluster: Cluster) -> None:
    cluster.apply(volume("a", "5Gi") + "---" + volume("b", "1Gi") + "---" + claim(volumeName="a"))
    assert cluster.get("PersistentVolumeClaim", "data")["spec"]["volumeName"] == "a"
    assert phase(cluster.get("PersistentVolume", "a")) == "Bound"
    assert phase(cluster.get("PersistentVolume", "b")) == "Available"


def test_a_claim_no_volume_fits_and_no_class_set_waits_with_failed_binding(cluster: Cluster) -> None:
    cluster.apply(claim())
    assert phase(cluster.get("PersistentVolumeClaim", "data")) == "Pending"
    assert "storageClassName" not in cluster.get("PersistentVolumeClaim", "data")["spec"]
    assert cluster.events("FailedBinding") == [
        "no persistent volumes available for this claim and no storage class is set"
    ]


# -- API rules -----------------------------------------------------------------------------------------------------
def test_a_claim_naming_a_missing_class_is_refused_with_the_classes_listed(cluster: Cluster) -> None:
    cluster.apply(nfs_class())
    answer = cluster.call(verb=Verb.APPLY, manifest=claim(storageClassName="gold"))
    assert answer.error is not None and answer.error.reason == "Invalid"
    assert answer.error.message == (
        'PersistentVolumeClaim "data": spec.storageClassName: Not found: "gold" (StorageClasses: nfs)'
    )
    assert not cluster.exists("PersistentVolumeClaim", "data")


def test_a_claim_may_name_a_class_of_the_same_manifest(cluster: Cluster) -> None:
    cluster.apply(claim() + "---" + nfs_class())
    assert phase(cluster.get("PersistentVolumeClaim", "data")) == "Bound"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"modes": "[ReadWriteMany]"},
            'PersistentVolumeClaim "data": spec.accessModes: Invalid value: ["ReadWriteMany"]: '
            'PersistentVolume "pv1" (spec.volumeName) offers only ["ReadWriteOnce"]',
        ),
        (
            {"size": "2Gi"},
            'PersistentVolumeClaim "data": spec.resources.requests.storage: Invalid value: "2Gi": '
            'PersistentVolume "pv1" (spec.volumeName) has a capacity of only 1Gi',
        ),
    ],
)
def test_a_claim_pre_bound_to_a_volume_that_cannot_serve_it_is_refused(
    cluster: Cluster, spec: dict[str, str], message: str
) -> None:
    cluster.apply(volume("pv1"))
    answer = cluster.call(verb=Verb.APPLY, manifest=claim(volumeName="pv1", **spec))
    assert answer.error is not None and answer.error.message == message


def test_a_classes_parameters_cannot_change_but_its_mount_options_can(cluster: Cluster) -> None:
    cluster.apply(nfs_class())
    answer = cluster.call(verb=Verb.APPLY, manifest=nfs_class(", port: '2050'"))
    assert answer.error is not None
    assert answer.error.message == 'StorageClass "nfs": parameters: Forbidden: updates to parameters are forbidden.'
    cluster.apply(nfs_class() + "mountOptions: [nfsvers=4.1]\n")
    assert cluster.get("StorageClass", "nfs")["mountOptions"] == ["nfsvers=4.1"]


def test_a_claims_spec_is_immutable_but_its_request_may_grow_and_a_reapply_keeps_the_binding(
    cluster: Cluster,
) -> None:
    cluster.apply(nfs_class())
    cluster.apply(claim())
    bound = cluster.get("PersistentVolumeClaim", "data")
    assert cluster.apply(claim()).outcomes[0].action == "unchanged"  # type: ignore[index]
    answer = cluster.call(verb=Verb.APPLY, manifest=claim(modes="[ReadWriteMany]"))
    assert answer.error is not None
    assert answer.error.message.startswith('PersistentVolumeClaim "data": spec: Forbidden: spec is immutable')
    answer = cluster.call(verb=Verb.APPLY, manifest=claim(size="500Mi"))
    assert answer.error is not None
    assert "spec.resources.requests.storage: Forbidden: field can not be less than previous value" in (
        answer.error.message
    )
    cluster.apply(claim(size="2Gi"))
    grown = cluster.get("PersistentVolumeClaim", "data")
    assert grown["spec"]["volumeName"] == bound["spec"]["volumeName"]
    assert grown["metadata"]["annotations"] == bound["metadata"]["annotations"]
    assert grown["status"] == bound["status"]


def test_deleting_a_bound_volume_is_refused_naming_its_claim(cluster: Cluster) -> None:
    cluster.apply(volume("pv1") + "---" + claim(volumeName="pv1"))
    answer = cluster.call(verb=Verb.DELETE, kind="PersistentVolume", name="pv1")
    assert answer.error is not None and answer.error.reason == "Conflict"
    assert answer.error.message.startswith('PersistentVolume "pv1" is bound to PersistentVolumeClaim default/data')
    assert "delete the claim first" in answer.error.hint
    assert cluster.exists("PersistentVolume", "pv1")


def test_the_storage_kinds_can_be_listed_and_labelled(cluster: Cluster) -> None:
    cluster.apply(nfs_class() + "---" + volume("pv1"))
    for kind in ("StorageClass", "PersistentVolume"):
        assert len(cluster.call(verb=Verb.LIST, kind=kind).items or []) == 1
    name = "pv1"
    answer = cluster.call(verb=Verb.LABEL, kind="PersistentVolume", name=name, labels={"tier": "fast"})
    assert answer.ok, answer.error
    assert cluster.get("PersistentVolume", name)["metadata"]["labels"] == {"tier": "fast"}


# -- protection ----------------------------------------------------------------------------------------------------
def test_a_claim_in_use_is_terminating_until_its_last_pod_is_gone_and_new_pods_are_not_scheduled(
    cluster: Cluster,
) -> None:
    cluster.apply(nfs_class())
    cluster.apply(claim() + "---" + pod("p1"))
    assert cluster.get("Pod", "p1")["spec"].get("nodeName")
    assert cluster.get("PersistentVolumeClaim", "data")["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    cluster.call(verb=Verb.DELETE, kind="PersistentVolumeClaim", name="data")
    assert cluster.get("PersistentVolumeClaim", "data")["metadata"]["deletionTimestamp"]
    cluster.apply(pod("p2"))
    p2 = cluster.get("Pod", "p2")
    assert not p2["spec"].get("nodeName")
    assert p2["status"]["message"] == '0/3 nodes are available: persistentvolumeclaim "data" is being deleted.'
    cluster.call(verb=Verb.DELETE, kind="Pod", name="p2")
    assert cluster.exists("PersistentVolumeClaim", "data")
    cluster.call(verb=Verb.DELETE, kind="Pod", name="p1")
    assert not cluster.exists("PersistentVolumeClaim", "data")


# -- scheduling ----------------------------------------------------------------------------------------------------
def test_a_pod_whose_claim_is_missing_or_unbound_is_not_scheduled(cluster: Cluster) -> None:
    cluster.apply(pod("p", claim_name="nope"))
    assert cluster.get("Pod", "p")["status"]["message"] == (
        '0/3 nodes are available: persistentvolumeclaim "nope" not found.'
    )
    cluster.apply(claim("nope"))
    assert cluster.get("Pod", "p")["status"]["message"] == (
        "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims."
    )
    assert cluster.events("FailedScheduling")[-1] == (
        "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims."
    )


def test_pods_of_a_read_write_once_claim_share_one_node(cluster: Cluster) -> None:
    cluster.apply(nfs_class())
    cluster.apply(claim() + "---" + pod("p1") + "---" + pod("p2") + "---" + pod("p3"))
    nodes = {cluster.get("Pod", p)["spec"].get("nodeName") for p in ("p1", "p2", "p3")}
    assert len(nodes) == 1 and nodes <= set(NODES)
    (where,) = nodes
    elsewhere = next(n for n in NODES if n != where)
    cluster.apply(pod("p4", node=elsewhere))
    assert cluster.get("Pod", "p4")["status"]["message"] == (
        "0/3 nodes are available: 1 node(s) had volume node affinity conflict (ReadWriteOnce "
        f"persistentvolumeclaim \"data\" is in use on node {where}), 2 node(s) didn't match Pod's node "
        "affinity/selector."
    )


def test_a_read_write_once_pod_claim_serves_one_pod(cluster: Cluster) -> None:
    cluster.apply(nfs_class())
    cluster.apply(claim(modes="[ReadWriteOncePod]") + "---" + pod("p1") + "---" + pod("p2"))
    placed = [p for p in ("p1", "p2") if cluster.get("Pod", p)["spec"].get("nodeName")]
    assert len(placed) == 1
    waiting = cluster.get("Pod", "p2" if placed == ["p1"] else "p1")
    assert waiting["status"]["message"] == (
        "0/3 nodes are available: 3 node has pod using PersistentVolumeClaim with the same name and "
        "ReadWriteOncePod access mode."
    )


def test_pods_of_a_read_write_many_claim_may_run_on_different_nodes(cluster: Cluster) -> None:
    cluster.apply(nfs_class())
    cluster.apply(claim(modes="[ReadWriteMany]") + "---" + pod("p1", node="n1") + "---" + pod("p2", node="n2"))
    assert [cluster.get("Pod", p)["spec"].get("nodeName") for p in ("p1", "p2")] == ["n1", "n2"]


def test_nodes_that_cannot_reach_the_pods_nfs_server_are_filtered(cluster: Cluster) -> None:
    down = [{"server": "10.0.0.5", "port": 2050, "reachable": False, "message": "connection refused"}]
    cluster.node_up("n1", nfs=down)
    cluster.node_up("n2", nfs=down)
    cluster.node_up("n3", nfs=[{"server": "10.0.0.5", "port": 2049, "reachable": False}])  # another port
    cluster.apply(nfs_class(", port: '2050'"))
    cluster.apply(claim() + "---" + pod("p"))
    assert cluster.get("Pod", "p")["spec"]["nodeName"] == "n3"
    cluster.node_up("n3", nfs=down)
    cluster.apply(pod("q", claim_name="other") + "---" + claim("other", modes="[ReadWriteMany]"))
    cluster.settle()
    assert cluster.get("Pod", "q")["status"]["message"] == (
        "0/3 nodes are available: 3 cannot reach nfs server 10.0.0.5:2050."
    )


# -- dispatch ------------------------------------------------------------------------------------------------------
def test_a_node_is_told_each_claims_volume_source_and_every_nfs_server(cluster: Cluster) -> None:
    cluster.apply(nfs_class(", port: '2050'"))
    cluster.apply(volume("ro", modes="[ReadOnlyMany]", storageClassName='""'))
    cluster.apply(claim() + "---" + pod("p", read_only=True) + "---")
    cluster.apply(claim("shared", modes="[ReadOnlyMany]", volumeName="ro") + "---" + pod("q", claim_name="shared"))
    data = cluster.get("PersistentVolumeClaim", "data")
    node = cluster.get("Pod", "p")["spec"]["nodeName"]
    desired = {d["metadata"]["name"]: d for d in cluster.desired(node).pods}
    assert desired["p"][RESOLVED_VOLUMES_KEY] == {
        "d": {
            "claimName": "data",
            "volumeName": data["spec"]["volumeName"],
            "accessModes": ["ReadWriteOnce"],
            "readOnly": True,
            "nfs": {
                "server": "10.0.0.5",
                "path": f"/export/default-data-{data['spec']['volumeName']}",
                "readOnly": False,
            },
            "mountOptions": ["port=2050"],
        }
    }
    q_node = cluster.get("Pod", "q")["spec"]["nodeName"]
    q = next(d for d in cluster.desired(q_node).pods if d["metadata"]["name"] == "q")
    assert q[RESOLVED_VOLUMES_KEY]["d"]["readOnly"] is True  # a volume that is only ReadOnlyMany
    for n in NODES:
        servers = [(s.server, s.port) for s in cluster.desired(n).nfs_servers]
        assert servers == [("10.0.0.5", 2050), ("10.0.0.7", 2049)]


def test_a_changed_volume_resends_its_pods_and_a_new_server_resends_every_node(cluster: Cluster) -> None:
    cluster.apply(volume("pv1", storageClassName='""') + "---" + claim(volumeName="pv1") + "---" + pod("p"))
    node = cluster.get("Pod", "p")["spec"]["nodeName"]
    before = cluster.desired(node).generation
    cluster.apply(volume("pv1", storageClassName='""', mountOptions="[nfsvers=4.1]"))
    after = cluster.desired(node)
    assert after.generation > before
    p = next(d for d in after.pods if d["metadata"]["name"] == "p")
    assert p[RESOLVED_VOLUMES_KEY]["d"]["mountOptions"] == ["nfsvers=4.1"]
    generations = {n: cluster.desired(n).generation for n in NODES}
    cluster.apply(nfs_class())
    for n in NODES:
        assert cluster.desired(n).generation > generations[n]
        assert [s.server for s in cluster.desired(n).nfs_servers] == ["10.0.0.5", "10.0.0.7"]
