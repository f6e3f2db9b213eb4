"""Unit tests of ekctl for storage: pv/pvc/sc names, kubectl's tables and describe views, pod volumes, node NFS."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edgekube.cli import output
from edgekube.cli.config import Connection
from edgekube.cli.describe import Writer
from edgekube.cli.describe_container import volumes
from edgekube.cli.describe_node import describe_node
from edgekube.cli.describe_storage import describe_pv, describe_pvc, describe_sc
from edgekube.cli.kinds import PV, PVC, SC, resource, resources, split_multi
from edgekube.cli.main import run
from edgekube.model.storage import NfsServer
from edgekube.model.types import Obj
from edgekube.model.wire import ApiRequest, ApiResponse, ErrorInfo, Outcome, Verb
from tests.support.apiserver import ApiServer

Capture = pytest.CaptureFixture[str]
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def volume(name: str = "pvc-1234", **changes: Any) -> Obj:
    obj: Obj = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": name,
            "creationTimestamp": "2024-05-01T11:55:00Z",
            "finalizers": ["kubernetes.io/pv-protection"],
            "annotations": {"pv.kubernetes.io/provisioned-by": "edgekube.io/nfs"},
        },
        "spec": {
            "capacity": {"storage": "100Mi"},
            "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": "nfs",
            "volumeMode": "Filesystem",
            "claimRef": {"kind": "PersistentVolumeClaim", "namespace": "default", "name": "data"},
            "nfs": {"server": "10.0.0.5", "path": "/export/default-data-pvc-1234"},
        },
        "status": {"phase": "Bound"},
    }
    obj.update(changes)
    return obj


def claim(name: str = "data", namespace: str = "default", *, bound: bool = True) -> Obj:
    spec: Obj = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "100Mi"}},
        "storageClassName": "nfs",
        "volumeMode": "Filesystem",
    }
    status: Obj = {"phase": "Pending"}
    if bound:
        spec["volumeName"] = "pvc-1234"
        status = {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "128Mi"}}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "creationTimestamp": "2024-05-01T11:55:00Z",
            "finalizers": ["kubernetes.io/pvc-protection"],
        },
        "spec": spec,
        "status": status,
    }


def storage_class(name: str = "nfs", *, default: bool = True, **fields: Any) -> Obj:
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name, "creationTimestamp": "2024-05-01T10:00:00Z", "annotations": annotations},
        "provisioner": "edgekube.io/nfs",
        "parameters": {"server": "10.0.0.5", "share": "/export"},
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
        **fields,
    }


def pod_with_claim(name: str, claim_name: str, namespace: str = "default") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "containers": [{"name": "app", "image": "busybox"}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}],
        },
    }


def terminating(obj: Obj) -> Obj:
    changed = copy.deepcopy(obj)
    changed["metadata"]["deletionTimestamp"] = "2024-05-01T11:59:30Z"
    return changed


# -- names -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("persistentvolumes", PV),
        ("persistentvolume", PV),
        ("pv", PV),
        ("PV", PV),
        ("persistentvolumeclaims", PVC),
        ("persistentvolumeclaim", PVC),
        ("pvc", PVC),
        ("storageclasses", SC),
        ("storageclass", SC),
        ("sc", SC),
        ("sc.storage.k8s.io", SC),
    ],
)
def test_storage_type_names_and_aliases_are_kubectls(typed: str, expected: Any) -> None:
    assert resource(typed) == expected


def test_storage_kinds_are_sent_as_the_masters_kind_names() -> None:
    assert [r.kind for r in resources("pv,pvc,sc")] == ["PersistentVolume", "PersistentVolumeClaim", "StorageClass"]
    assert (PV.namespaced, PVC.namespaced, SC.namespaced) == (False, True, False)


def test_a_storage_class_is_qualified_by_its_api_group_like_kubectl() -> None:
    assert (PV.qualified, PVC.qualified, SC.qualified) == (
        "persistentvolume",
        "persistentvolumeclaim",
        "storageclass.storage.k8s.io",
    )
    assert split_multi(["pvc/data", "pv/pvc-1234"]) == [(PVC, ["data"]), (PV, ["pvc-1234"])]


# -- tables ------------------------------------------------------------------------------------------------


def test_get_pv_pvc_sc_prints_one_table_per_kind_with_kind_prefixes_and_blank_lines() -> None:
    text = output.render_groups([(PV, [volume()]), (PVC, [claim()]), (SC, [storage_class()])], None, now=NOW)
    assert text == (
        "NAME                        CAPACITY   ACCESS MODES   RECLAIM POLICY   STATUS   CLAIM          STORAGECLASS"
        "   VOLUMEATTRIBUTESCLASS   REASON   AGE\n"
        "persistentvolume/pvc-1234   100Mi      RWO,RWX        Delete           Bound    default/data   nfs         "
        "   <unset>                          5m\n"
        "\n"
        "NAME                         STATUS   VOLUME     CAPACITY   ACCESS MODES   STORAGECLASS"
        "   VOLUMEATTRIBUTESCLASS   AGE\n"
        "persistentvolumeclaim/data   Bound    pvc-1234   128Mi      RWO            nfs            <unset>            "
        "     5m\n"
        "\n"
        "NAME                                        PROVISIONER       RECLAIMPOLICY   VOLUMEBINDINGMODE"
        "   ALLOWVOLUMEEXPANSION   AGE\n"
        "storageclass.storage.k8s.io/nfs (default)   edgekube.io/nfs   Delete          Immediate           false"
        "                  120m\n"
    )


def rows(text: str) -> list[list[str]]:
    """Cells of a table, split on runs of 3+ spaces (so `ACCESS MODES` stays one cell)."""
    return [re.split(r" {3,}", line.rstrip()) for line in text.splitlines()]


def test_a_volume_without_claim_has_an_empty_claim_and_access_modes_in_kubectls_order() -> None:
    free = volume(name="pv1")
    free["spec"].pop("claimRef")
    free["spec"]["accessModes"] = ["ReadWriteOncePod"]
    free["status"] = {"phase": "Available"}
    [header, row] = output.render(PV, [free], None, now=NOW).splitlines()
    assert header.split()[:4] == ["NAME", "CAPACITY", "ACCESS", "MODES"]
    cells = row.split()
    assert cells[:5] == ["pv1", "100Mi", "RWOP", "Delete", "Available"]
    assert cells[5] == "nfs"  # CLAIM empty, so STORAGECLASS follows STATUS


def test_a_claim_shows_capacity_and_access_modes_only_once_bound() -> None:
    table = rows(output.render(PVC, [claim("waiting", bound=False)], None, now=NOW))
    assert table[1] == ["waiting", "Pending", "nfs", "<unset>", "5m"]  # VOLUME, CAPACITY, ACCESS MODES empty


def test_a_claim_or_volume_being_deleted_shows_terminating() -> None:
    assert rows(output.render(PVC, [terminating(claim())], None, now=NOW))[1][1] == "Terminating"
    assert rows(output.render(PV, [terminating(volume())], None, now=NOW))[1][4] == "Terminating"


def test_claims_across_namespaces_get_a_namespace_column_volumes_do_not() -> None:
    claims = rows(output.render(PVC, [claim("a", "lab"), claim("b")], None, all_namespaces=True, now=NOW))
    assert [r[:2] for r in claims] == [["NAMESPACE", "NAME"], ["lab", "a"], ["default", "b"]]
    volumes_table = rows(output.render(PV, [volume()], None, all_namespaces=True, now=NOW))
    assert volumes_table[0][0] == "NAME"


def test_wide_adds_volumemode_to_volumes_and_claims_and_nothing_to_classes() -> None:
    assert rows(output.render(PV, [volume()], "wide", now=NOW))[0][-1] == "VOLUMEMODE"
    assert rows(output.render(PVC, [claim()], "wide", now=NOW))[1][-1] == "Filesystem"
    assert rows(output.render(SC, [storage_class()], "wide", now=NOW))[0][-1] == "AGE"


def test_only_the_default_class_gets_default_after_its_name_and_expansion_is_shown() -> None:
    table = rows(
        output.render(
            SC,
            [storage_class(), storage_class("static", default=False, allowVolumeExpansion=True)],
            None,
            now=NOW,
        )
    )
    assert [r[0] for r in table[1:]] == ["nfs (default)", "static"]
    assert [r[4] for r in table[1:]] == ["false", "true"]


def test_name_output_qualifies_each_kind() -> None:
    text = output.render_groups([(PV, [volume()]), (PVC, [claim()]), (SC, [storage_class()])], "name")
    assert text == "persistentvolume/pvc-1234\npersistentvolumeclaim/data\nstorageclass.storage.k8s.io/nfs\n"


# -- describe ----------------------------------------------------------------------------------------------


def test_describe_pvc_shows_binding_and_the_pods_using_the_claim_in_its_namespace() -> None:
    pods = [
        pod_with_claim("writer", "data"),
        pod_with_claim("other", "logs"),
        pod_with_claim("elsewhere", "data", namespace="lab"),
        pod_with_claim("reader", "data"),
    ]
    assert describe_pvc(claim(), pods, [], NOW) == (
        "Name:          data\n"
        "Namespace:     default\n"
        "StorageClass:  nfs\n"
        "Status:        Bound\n"
        "Volume:        pvc-1234\n"
        "Labels:        <none>\n"
        "Annotations:   <none>\n"
        "Finalizers:    [kubernetes.io/pvc-protection]\n"
        "Capacity:      128Mi\n"
        "Access Modes:  RWO\n"
        "VolumeMode:    Filesystem\n"
        "Used By:       reader\n"
        "               writer\n"
        "Events:        <none>\n"
    )


def test_describe_pvc_being_deleted_says_how_long_it_has_been_terminating() -> None:
    text = describe_pvc(terminating(claim(bound=False)), [], None, NOW)
    lines = text.splitlines()
    assert "Status:        Terminating (lasts 30s)" in lines
    assert "Used By:       <none>" in lines
    assert "Capacity:" in lines and "Volume:" in lines  # empty until bound
    assert not any(line.startswith("Events") for line in lines)  # events could not be listed


def test_describe_pv_shows_claim_and_nfs_source() -> None:
    assert describe_pv(volume(), [], NOW) == (
        "Name:            pvc-1234\n"
        "Labels:          <none>\n"
        "Annotations:     pv.kubernetes.io/provisioned-by: edgekube.io/nfs\n"
        "Finalizers:      [kubernetes.io/pv-protection]\n"
        "StorageClass:    nfs\n"
        "Status:          Bound\n"
        "Claim:           default/data\n"
        "Reclaim Policy:  Delete\n"
        "Access Modes:    RWO,RWX\n"
        "VolumeMode:      Filesystem\n"
        "Capacity:        100Mi\n"
        "Node Affinity:   <none>\n"
        "Message:\n"
        "Source:\n"
        "    Type:      NFS (an NFS mount that lasts the lifetime of a pod)\n"
        "    Server:    10.0.0.5\n"
        "    Path:      /export/default-data-pvc-1234\n"
        "    ReadOnly:  false\n"
        "Events:        <none>\n"
    )


def test_describe_pv_with_a_host_path_source() -> None:
    local = volume(name="local")
    local["spec"].pop("nfs")
    local["spec"]["hostPath"] = {"path": "/srv/data", "type": "DirectoryOrCreate"}
    text = describe_pv(local, None, NOW)
    assert text.endswith(
        "Source:\n"
        "    Type:          HostPath (bare host directory volume)\n"
        "    Path:          /srv/data\n"
        "    HostPathType:  DirectoryOrCreate\n"
    )


def test_describe_sc_like_kubectl() -> None:
    sc = storage_class(mountOptions=["nfsvers=4.1", "port=2050"])
    assert describe_sc(sc, [], NOW) == (
        "Name:                  nfs\n"
        "IsDefaultClass:        Yes\n"
        "Annotations:           storageclass.kubernetes.io/is-default-class=true\n"
        "Provisioner:           edgekube.io/nfs\n"
        "Parameters:            server=10.0.0.5,share=/export\n"
        "AllowVolumeExpansion:  <unset>\n"
        "MountOptions:\n"
        "  nfsvers=4.1\n"
        "  port=2050\n"
        "ReclaimPolicy:      Delete\n"  # a block of its own after the options, as Go's tabwriter aligns it
        "VolumeBindingMode:  Immediate\n"
        "Events:             <none>\n"
    )


def test_describe_sc_not_default_without_options() -> None:
    lines = describe_sc(storage_class(default=False, allowVolumeExpansion=False), None, NOW).splitlines()
    assert "IsDefaultClass:        No" in lines
    assert "Annotations:           <none>" in lines
    assert "AllowVolumeExpansion:  False" in lines
    assert "MountOptions:          <none>" in lines


def test_pod_volumes_of_every_type_in_kubectls_words() -> None:
    w = Writer()
    volumes(
        w,
        [
            {"name": "share", "nfs": {"server": "10.0.0.5", "path": "/export", "readOnly": True}},
            {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "dev", "hostPath": {"path": "/dev/i2c-1", "type": "CharDevice"}},
            {"name": "untyped", "hostPath": {"path": "/srv"}},
            {"name": "scratch", "emptyDir": {}},
        ],
    )
    assert w.text() == (
        "Volumes:\n"
        "  share:\n"
        "    Type:      NFS (an NFS mount that lasts the lifetime of a pod)\n"
        "    Server:    10.0.0.5\n"
        "    Path:      /export\n"
        "    ReadOnly:  true\n"
        "  data:\n"
        "    Type:       PersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)\n"
        "    ClaimName:  data\n"
        "    ReadOnly:   false\n"
        "  dev:\n"
        "    Type:          HostPath (bare host directory volume)\n"
        "    Path:          /dev/i2c-1\n"
        "    HostPathType:  CharDevice\n"
        "  untyped:\n"
        "    Type:          HostPath (bare host directory volume)\n"
        "    Path:          /srv\n"
        "    HostPathType:  <none>\n"
        "  scratch:\n"
        "    Type:       EmptyDir (a temporary directory that shares a pod's lifetime)\n"
        "    Medium:\n"
        "    SizeLimit:  <unset>\n"
    )


def node_with_nfs(servers: list[Obj]) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "pi-1", "creationTimestamp": "2024-05-01T10:00:00Z"},
        "status": {"nfsServers": servers},
    }


def test_describe_node_shows_each_nfs_server_reachable_or_why_not() -> None:
    node = node_with_nfs(
        [
            {"server": "10.0.0.5", "port": 2049, "reachable": True, "lastProbeTime": "2024-05-01T11:59:50Z"},
            {
                "server": "nas.local",
                "port": 2050,
                "reachable": False,
                "message": "connection refused",
                "lastProbeTime": "2024-05-01T11:59:51Z",
            },
        ]
    )
    text = describe_node(node, [], None, NOW)
    section = text.split("NFS Servers:\n", 1)[1].split("Capacity", 1)[0].split("System Info", 1)[0]
    assert section.splitlines() == [
        "  Server          Reachable  LastProbeTime                    Message",
        "  ------          ---------  -------------                    -------",
        "  10.0.0.5        True       Wed, 01 May 2024 11:59:50 +0000",
        "  nas.local:2050  False      Wed, 01 May 2024 11:59:51 +0000  connection refused",
    ]


def test_describe_node_without_nfs_servers_has_no_such_section() -> None:
    assert "NFS Servers" not in describe_node(node_with_nfs([]), [], None, NOW)


# -- commands on a fake master -----------------------------------------------------------------------------


class FakeMaster:
    """Answers ekctl's requests from a fixed set of objects; `requests` are what ekctl sent."""

    def __init__(self, objects: list[Obj]) -> None:
        self.objects = objects
        self.requests: list[ApiRequest] = []

    def connect(self, _connection: Connection, _timeout: float) -> FakeMaster:
        return self

    def _matches(self, obj: Obj, request: ApiRequest) -> bool:
        if obj["kind"] != request.kind:
            return False
        namespace = obj["metadata"].get("namespace")
        return not namespace or request.namespace is None or namespace == request.namespace

    def call(self, request: ApiRequest, timeout: float | None = None) -> ApiResponse:
        self.requests.append(request)
        found = [o for o in self.objects if self._matches(o, request)]
        if request.verb is Verb.LIST:
            return ApiResponse(ok=True, items=found)
        named = [o for o in found if o["metadata"]["name"] == request.name]
        if not named:
            message = f"{request.kind} {request.name} not found"
            return ApiResponse(ok=False, error=ErrorInfo(reason="NotFound", message=message))
        if request.verb is Verb.GET:
            return ApiResponse(ok=True, object=named[0])
        outcome = Outcome(kind=str(request.kind), namespace="", name=str(request.name), action="deleted")
        return ApiResponse(ok=True, outcomes=[outcome])

    def close(self) -> None:
        pass


@pytest.fixture
def fake() -> FakeMaster:
    return FakeMaster(
        [
            volume(),
            claim(),
            claim("data", "lab"),
            storage_class(),
            pod_with_claim("writer", "data"),
            pod_with_claim("other", "data", namespace="lab"),
        ]
    )


def test_get_pv_pvc_sc_lists_each_kind_and_claims_in_the_namespace_only(fake: FakeMaster, capsys: Capture) -> None:
    assert run(["get", "pv,pvc,sc"], connector=fake.connect) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] if line else "" for line in out.splitlines()] == [
        "NAME",
        "persistentvolume/pvc-1234",
        "",
        "NAME",
        "persistentvolumeclaim/data",
        "",
        "NAME",
        "storageclass.storage.k8s.io/nfs",
    ]
    assert [(r.kind, r.namespace) for r in fake.requests] == [
        ("PersistentVolume", None),
        ("PersistentVolumeClaim", "default"),
        ("StorageClass", None),
    ]


def test_get_pvc_all_namespaces(fake: FakeMaster, capsys: Capture) -> None:
    assert run(["get", "pvc", "-A", "-o", "name"], connector=fake.connect) == 0
    assert capsys.readouterr().out == "persistentvolumeclaim/data\npersistentvolumeclaim/data\n"
    assert fake.requests[0].namespace is None


def test_describe_pvc_lists_the_pods_of_its_namespace(fake: FakeMaster, capsys: Capture) -> None:
    assert run(["describe", "pvc", "data", "-n", "lab"], connector=fake.connect) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "Namespace:     lab" in lines
    assert "Used By:       other" in lines
    assert ("Pod", "lab") in [(r.kind, r.namespace) for r in fake.requests]


def test_describe_pv_and_sc_by_type_and_name(fake: FakeMaster, capsys: Capture) -> None:
    assert run(["describe", "pv/pvc-1234", "sc/nfs"], connector=fake.connect) == 0
    out = capsys.readouterr().out
    assert "Claim:           default/data" in out and "IsDefaultClass:        Yes" in out


@pytest.mark.parametrize(
    ("argv", "kind", "said"),
    [
        (["delete", "pvc", "data"], "PersistentVolumeClaim", 'persistentvolumeclaim "data" deleted\n'),
        (["delete", "pv", "pvc-1234"], "PersistentVolume", 'persistentvolume "pvc-1234" deleted\n'),
        (["delete", "sc", "nfs"], "StorageClass", 'storageclass.storage.k8s.io "nfs" deleted\n'),
    ],
)
def test_delete_storage_objects_sends_their_kind(
    fake: FakeMaster, argv: list[str], kind: str, said: str, capsys: Capture
) -> None:
    assert run(argv, connector=fake.connect) == 0
    assert capsys.readouterr().out == said
    assert [(r.verb, r.kind) for r in fake.requests] == [(Verb.DELETE, kind)]


def test_a_missing_claim_is_one_line_and_a_hint(fake: FakeMaster, capsys: Capture) -> None:
    assert run(["get", "pvc", "nothere"], connector=fake.connect) == 1
    assert capsys.readouterr().err.splitlines() == [
        'error: persistentvolumeclaims "nothere" not found in namespace "default"',
        "hint: list them with `ekctl get persistentvolumeclaims`",
    ]


# -- through the master and an agent -----------------------------------------------------------------------

NFS_VOLUME = """\
apiVersion: v1
kind: PersistentVolume
metadata: {name: shared}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteMany]
  mountOptions: [port=2050]
  nfs: {server: 10.0.0.5, path: /export/shared}
"""


def test_describe_node_shows_the_nfs_reachability_its_agent_reported(tmp_path: Path, capsys: Capture) -> None:
    with ApiServer(tmp_path / "cluster") as server:
        agent = server.add_node("pi-1")
        manifest = tmp_path / "pv.yaml"
        manifest.write_text(NFS_VOLUME)
        assert server.ekctl("apply", "-f", str(manifest)) == 0
        assert agent.nfs.servers == [NfsServer(server="10.0.0.5", port=2050)]  # the master named it
        agent.nfs.probe = lambda _server, _timeout: "cannot reach nfs server 10.0.0.5:2050: Connection refused"
        agent.nfs.probe_round()
        agent.reconcile()
        capsys.readouterr()
        assert server.ekctl("describe", "node", "pi-1") == 0
        lines = capsys.readouterr().out.splitlines()
    [condition] = [line.split()[:2] for line in lines if line.strip().startswith("NFSReachable")]
    assert condition == ["NFSReachable", "False"]
    at = lines.index("NFS Servers:")
    assert lines[at + 3].split()[:2] == ["10.0.0.5:2050", "False"]
    assert lines[at + 3].endswith("cannot reach nfs server 10.0.0.5:2050: Connection refused")
