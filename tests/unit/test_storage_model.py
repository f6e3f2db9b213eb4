"""PersistentVolume, PersistentVolumeClaim, StorageClass and pod volume sources: Kubernetes' shapes and rules."""

from __future__ import annotations

from typing import Any

import pytest

from edgekube.model.manifest import ManifestError, parse_object
from edgekube.model.pod import Pod
from edgekube.model.storage import (
    AccessMode,
    NfsServer,
    PersistentVolume,
    PersistentVolumeClaim,
    ResolvedVolume,
    StorageClass,
    mount_port,
)


def problems(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_object(doc)
    return info.value.problems


def pv(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "capacity": {"storage": "1Gi"},
        "accessModes": ["ReadWriteOnce"],
        "nfs": {"server": "10.0.0.5", "path": "/srv/pv1"},
    }
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv1"}, "spec": {**base, **spec}}


def pvc(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"}, "spec": {**base, **spec}}


def sc(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"provisioner": "edgekube.io/nfs", "parameters": {"server": "nas", "share": "/export"}}
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "nfs"}, **base, **fields}


def test_a_persistent_volume_is_cluster_scoped_and_retained_by_default() -> None:
    volume = parse_object(pv())
    assert isinstance(volume, PersistentVolume)
    assert volume.metadata.namespace == ""
    assert volume.spec.persistent_volume_reclaim_policy == "Retain"
    assert volume.spec.capacity_bytes() == 1 << 30


def test_a_claim_is_namespaced_and_asks_for_the_default_class_when_it_names_none() -> None:
    claim = parse_object(pvc())
    assert isinstance(claim, PersistentVolumeClaim)
    assert claim.metadata.namespace == "default"
    assert claim.spec.storage_class_name is None
    assert claim.spec.request_bytes() == 1 << 30


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        (pv(capacity={}), "spec.capacity.storage: Required value"),
        (pv(capacity={"storage": "lots"}), "spec.capacity.storage: 'lots'"),
        (pv(accessModes=[]), "spec.accessModes: Required value: at least 1 access mode is required"),
        (pv(accessModes=["ReadWriteOncePod", "ReadOnlyMany"]), "spec.accessModes: Forbidden: may not use Read"),
        (pv(accessModes=["WriteSometimes"]), "spec.accessModes[0]: Unsupported value"),
        (pv(nfs=None), "spec: must specify a volume type (supported: nfs, hostPath)"),
        (pv(persistentVolumeReclaimPolicy="Recycle"), "spec.persistentVolumeReclaimPolicy: Unsupported value"),
        (pv(nfs={"server": "nas", "path": "rel"}), 'spec.nfs.path: Invalid value: "rel": must be an absolute path'),
        (pvc(resources={"requests": {}}), "spec.resources.requests.storage: Required value"),
        (pvc(resources={"requests": {"storage": "1Gb"}}), "spec.resources.requests.storage: '1Gb'"),
        (pvc(resources={"requests": {"storage": "0"}}), "must be greater than zero"),
        (pvc(accessModes=[]), "spec.accessModes: Required value"),
        (sc(provisioner="example.com/magic"), "provisioner: Unsupported value: 'example.com/magic'"),
        (sc(parameters={"server": "nas"}), "parameters.share: Required value"),
        (sc(parameters={"server": "nas", "share": "/e", "onDelete": "shred"}), "parameters.onDelete: Unsupported"),
        (sc(reclaimPolicy="Recycle"), "reclaimPolicy: Unsupported value"),
    ],
)
def test_a_bad_storage_object_names_the_field_and_the_rule(doc: dict[str, Any], problem: str) -> None:
    found = problems(doc)
    assert len(found) == 1
    assert problem in found[0]


def test_a_storage_class_marked_default_is_the_default() -> None:
    annotated = sc(metadata={"name": "nfs", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}})
    klass = parse_object(annotated)
    assert isinstance(klass, StorageClass)
    assert klass.is_default()
    assert klass.metadata.namespace == ""
    assert klass.reclaim_policy == "Delete"


@pytest.mark.parametrize(
    ("volume", "kind"),
    [
        ({"name": "v"}, "emptyDir"),
        ({"name": "v", "nfs": {"server": "nas", "path": "/srv"}}, "nfs"),
        ({"name": "v", "persistentVolumeClaim": {"claimName": "data"}}, "persistentVolumeClaim"),
        ({"name": "v", "hostPath": {"path": "/var/log", "type": "Directory"}}, "hostPath"),
    ],
)
def test_each_volume_source_is_accepted_and_one_without_a_source_is_an_empty_dir(
    volume: dict[str, Any], kind: str
) -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}], "volumes": [volume]},
    }
    pod = parse_object(doc)
    assert isinstance(pod, Pod)
    assert pod.spec.volumes[0].source_kind() == kind


@pytest.mark.parametrize(
    ("mount", "problem"),
    [
        ({"subPath": "/abs"}, 'subPath: Invalid value: "/abs": must be a relative path'),
        ({"subPath": "a/../b"}, "subPath: Invalid value: \"a/../b\": must not contain '..'"),
        ({"subPath": "a", "subPathExpr": "$(X)"}, "subPathExpr and subPath are mutually exclusive"),
    ],
)
def test_a_bad_sub_path_is_rejected_with_the_rule(mount: dict[str, Any], problem: str) -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {
            "containers": [
                {"name": "c", "image": "busybox", "volumeMounts": [{"name": "v", "mountPath": "/d", **mount}]}
            ],
            "volumes": [{"name": "v"}],
        },
    }
    found = problems(doc)
    assert len(found) == 1
    assert problem in found[0]


def test_only_a_writable_nfs_volume_without_read_write_many_is_exclusive() -> None:
    nfs = {"server": "nas", "path": "/srv"}
    rwo = ResolvedVolume.model_validate(
        {"claimName": "c", "volumeName": "v", "accessModes": ["ReadWriteOnce"], "nfs": nfs}
    )
    assert rwo.exclusive()
    assert not rwo.model_copy(update={"read_only": True}).exclusive()
    assert not rwo.model_copy(
        update={"access_modes": [AccessMode.READ_WRITE_ONCE, AccessMode.READ_WRITE_MANY]}
    ).exclusive()


def test_the_nfs_port_comes_from_the_mount_options() -> None:
    assert mount_port(["nfsvers=4.1", "port=20490"]) == 20490
    assert mount_port(["hard,port=3049"]) == 3049
    assert mount_port([]) == 2049
    assert NfsServer(server="nas").address() == "nas"
    assert NfsServer(server="nas", port=3049).address() == "nas:3049"
