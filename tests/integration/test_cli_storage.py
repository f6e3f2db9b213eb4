"""ekctl for storage end to end: a real Mosquitto and an in-process master bind a claim, ekctl shows and deletes it.

A StorageClass without a provisioner, a static hostPath volume, a claim on the default class and a pod using the
claim: `get pv,pvc,sc`, `describe pvc` (bound, used by the pod), `delete pvc` (Terminating while the pod uses it,
gone once the pod is), `delete pv` / `delete sc` in kubectl's words.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgekube.cli.main import main
from edgekube.local.broker import Mosquitto
from edgekube.master.app import Master, MasterConfig
from edgekube.master.wiring import build_master

pytestmark = pytest.mark.integration

Capture = pytest.CaptureFixture[str]
STORAGE = """\
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: manual
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
reclaimPolicy: Retain
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: local, labels: {tier: slow}}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: manual
  hostPath: {path: /srv/edgekube/local, type: DirectoryOrCreate}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 500Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: writer}
spec:
  containers: [{name: app, image: busybox:1.36}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: data}}]
"""


@pytest.fixture
def master(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Master]:
    m = build_master(MasterConfig(mqtt_host="127.0.0.1", mqtt_port=mosquitto.port, data_dir=tmp_path / "master"))
    m.start(wait=5)
    yield m
    m.stop()


@pytest.fixture
def ekctl(master: Master, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    work = tmp_path / "work"
    (work / ".edgekube").mkdir(parents=True)
    (work / ".edgekube" / "cluster.json").write_text(
        json.dumps({"mqtt_host": "127.0.0.1", "mqtt_port": mosquitto.port})
    )
    monkeypatch.chdir(work)
    monkeypatch.delenv("EDGEKUBE_MQTT_HOST", raising=False)
    monkeypatch.delenv("EDGEKUBE_MQTT_PORT", raising=False)
    return ["--timeout", "5"]


def eventually(check: Callable[[], bool], limit: float = 60.0) -> bool:
    """Poll `check` until it holds; False after `limit` seconds (a guard against hanging, not a timing claim)."""
    pause = threading.Event()
    for _ in range(int(limit / 0.1)):
        if check():
            return True
        pause.wait(0.1)
    return check()


def first_column(text: str) -> list[str]:
    return [line.split()[0] if line else "" for line in text.splitlines()]


def cells(text: str, name: str) -> list[str]:
    [row] = [line.split() for line in text.splitlines() if line.split() and line.split()[0] == name]
    return row


def test_storage_round_trip(ekctl: list[str], tmp_path: Path, capsys: Capture) -> None:
    path = tmp_path / "storage.yaml"
    path.write_text(STORAGE)
    assert main([*ekctl, "apply", "-f", str(path)]) == 0
    assert capsys.readouterr().out == (
        "storageclass.storage.k8s.io/manual created\n"
        "persistentvolume/local created\n"
        "persistentvolumeclaim/data created\n"
        "pod/writer created\n"
    )

    def claim_phase() -> str:
        main([*ekctl, "get", "pvc", "data", "-o", "json"])
        return str(json.loads(capsys.readouterr().out).get("status", {}).get("phase"))

    assert eventually(lambda: claim_phase() == "Bound")

    assert main([*ekctl, "get", "pv,pvc,sc"]) == 0
    out = capsys.readouterr().out
    assert first_column(out) == [
        "NAME",
        "persistentvolume/local",
        "",
        "NAME",
        "persistentvolumeclaim/data",
        "",
        "NAME",
        "storageclass.storage.k8s.io/manual",
    ]
    assert cells(out, "persistentvolume/local")[:7] == [
        "persistentvolume/local",
        "1Gi",
        "RWO",
        "Retain",
        "Bound",
        "default/data",
        "manual",
    ]
    assert cells(out, "persistentvolumeclaim/data")[:6] == [
        "persistentvolumeclaim/data",
        "Bound",
        "local",
        "1Gi",
        "RWO",
        "manual",
    ]
    assert cells(out, "storageclass.storage.k8s.io/manual")[:3] == [
        "storageclass.storage.k8s.io/manual",
        "(default)",
        "kubernetes.io/no-provisioner",
    ]

    assert main([*ekctl, "describe", "pvc", "data"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for expected in (
        "Name:          data",
        "StorageClass:  manual",
        "Status:        Bound",
        "Volume:        local",
        "Finalizers:    [kubernetes.io/pvc-protection]",
        "Access Modes:  RWO",
        "Used By:       writer",
    ):
        assert expected in lines

    assert main([*ekctl, "describe", "pv", "local"]) == 0
    out = capsys.readouterr().out
    assert "Claim:           default/data" in out
    assert "    Type:          HostPath (bare host directory volume)" in out

    # The pod still uses the claim: deletion waits on pvc-protection and the claim shows Terminating.
    assert main([*ekctl, "delete", "pvc", "data"]) == 0
    assert capsys.readouterr().out == 'persistentvolumeclaim "data" deleted\n'
    assert main([*ekctl, "get", "pvc"]) == 0
    assert cells(capsys.readouterr().out, "data")[1] == "Terminating"
    assert main([*ekctl, "describe", "pvc", "data"]) == 0
    assert any(line.startswith("Status:        Terminating (lasts ") for line in capsys.readouterr().out.splitlines())

    assert main([*ekctl, "delete", "pod", "writer"]) == 0
    capsys.readouterr()

    def claim_gone() -> bool:
        main([*ekctl, "get", "pvc"])
        return capsys.readouterr().err == "No resources found in default namespace.\n"

    assert eventually(claim_gone)

    assert main([*ekctl, "delete", "sc", "manual"]) == 0
    assert capsys.readouterr().out == 'storageclass.storage.k8s.io "manual" deleted\n'


def test_a_missing_volume_is_one_line_and_a_hint(ekctl: list[str], capsys: Capture) -> None:
    assert main([*ekctl, "get", "pv", "nothere"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        'error: persistentvolumes "nothere" not found',
        "hint: list them with `ekctl get persistentvolumes`",
    ]
    assert main([*ekctl, "delete", "pvc", "nothere"]) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        'error: persistentvolumeclaims "nothere" not found in namespace "default"'
    )
