"""NFS volumes through a real master: real Mosquitto, real TinyDB store, real NFS-Ganesha for the provisioner.

First the contract: the unit tests' in-memory share (FakeShares) and the master's real NfsShareFs answer the same
operations the same way on a real export. Then the master, built by master.wiring and driven over MQTT as ekctl
does, provisions a sub-directory on Ganesha for a claim, binds a volume to it, archives or removes it when the
claim goes, and keeps answering while a server does not.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.local.broker import Mosquitto
from edgekube.local.nfs import Ganesha
from edgekube.master.app import Master
from edgekube.master.config import MasterConfig
from edgekube.master.controllers.volumes.nfsio import Job, Share, ShareFs
from edgekube.master.nfsshare import NfsShareFs
from edgekube.master.wiring import build_master
from edgekube.model.errors import StorageError
from edgekube.model.wire import ApiRequest, ApiResponse, Verb
from tests.support.cluster import ApiClient, wait_for
from tests.support.nfs import running_ganesha
from tests.unit.test_volume_master import FakeShares

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ganesha() -> Iterator[Ganesha]:
    with running_ganesha() as server:
        yield server


def share_of(server: Ganesha) -> Share:
    return Share("127.0.0.1", "/export", server.port)


def exercise(fs: ShareFs, share: Share, name: str) -> list[Any]:
    """One run of every operation the provisioner uses; what each answered (or the error class it raised)."""
    seen: list[Any] = []
    fs.makedirs(share, name)
    fs.makedirs(share, name)  # exists already: fine
    seen.append(fs.exists(share, name))
    Job("k", share, "archive", name).run(fs)
    seen += [fs.exists(share, name), fs.exists(share, f"archived-{name}")]
    fs.makedirs(share, name)
    Job("k", share, "archive", name).run(fs)  # an older archive of the same name is replaced
    Job("k", share, "archive", name).run(fs)  # nothing left to archive: fine
    seen.append(fs.exists(share, f"archived-{name}"))
    fs.rmtree(share, f"archived-{name}")
    fs.rmtree(share, f"archived-{name}")  # missing: fine
    seen.append(fs.exists(share, f"archived-{name}"))
    try:
        fs.rename(share, "missing", "other")
        seen.append("renamed")
    except StorageError:
        seen.append(StorageError)
    return seen


def test_the_fake_share_answers_as_the_real_one_does_on_ganesha(ganesha: Ganesha) -> None:
    share = share_of(ganesha)
    real = exercise(NfsShareFs(timeout=5.0), share, "default-data-pvc-1")
    assert real == exercise(FakeShares(), share, "default-data-pvc-1")
    assert real == [True, False, True, True, False, StorageError]
    assert sorted(p.name for p in ganesha.export_dir.iterdir()) == []


def test_the_real_share_fails_with_a_storage_error_naming_a_server_that_is_not_there() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StorageError) as caught:
        NfsShareFs(timeout=2.0).makedirs(Share("127.0.0.1", "/export", port), "x")
    assert "127.0.0.1" in str(caught.value)


# -- the master --------------------------------------------------------------------------------------------------
CLASS = """
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: %s
  annotations: {storageclass.kubernetes.io/is-default-class: "%s"}
provisioner: edgekube.io/nfs
parameters: {server: 127.0.0.1, share: /export, port: "%d", archiveOnDelete: "true"}
"""
CLAIM = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: %s}
spec:
  accessModes: [ReadWriteMany]
  storageClassName: %s
  resources: {requests: {storage: 100Mi}}
"""


class Env:
    def __init__(self, master: Master, client: ApiClient) -> None:
        self.master, self.client = master, client

    def call(self, **fields: Any) -> ApiResponse:
        response = self.client.call(ApiRequest(**fields))
        assert response.ok, response.error
        return response

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        response = self.client.call(ApiRequest(verb=Verb.GET, kind=kind, name=name))
        return response.object if response.ok else None

    def phase(self, kind: str, name: str) -> str | None:
        obj = self.get(kind, name)
        return None if obj is None else str(obj["status"]["phase"])

    def events(self, reason: str) -> list[str]:
        return [e["message"] for e in self.call(verb=Verb.LIST, kind="Event").items or [] if e["reason"] == reason]


@pytest.fixture
def env(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Env]:
    config = MasterConfig(
        mqtt_port=mosquitto.port,
        data_dir=tmp_path / "master",
        resync_interval=0.2,
        volume_retry_base=0.5,
        volume_retry_max=1.0,
        nfs_timeout=2.0,
    )
    master = build_master(config).start(wait=10)
    client = ApiClient(mosquitto.port)
    try:
        yield Env(master, client)
    finally:
        client.close()
        master.stop()


def test_a_claim_gets_a_directory_on_ganesha_and_a_bound_volume_archived_when_the_claim_goes(
    env: Env, ganesha: Ganesha
) -> None:
    env.call(verb=Verb.APPLY, manifest=CLASS % ("nfs", "true", ganesha.port) + "---" + CLAIM % ("data", "nfs"))
    wait_for("the claim Bound", lambda: env.phase("PersistentVolumeClaim", "data") == "Bound")
    claim = env.get("PersistentVolumeClaim", "data") or {}
    volume = claim["spec"]["volumeName"]
    directory = f"default-data-{volume}"
    assert (ganesha.export_dir / directory).is_dir()
    pv = env.get("PersistentVolume", volume) or {}
    assert pv["spec"]["nfs"] == {"server": "127.0.0.1", "path": f"/export/{directory}"}
    assert pv["spec"]["mountOptions"] == [f"port={ganesha.port}"]
    (ganesha.export_dir / directory / "kept.txt").write_text("data\n", encoding="utf-8")
    env.call(verb=Verb.DELETE, kind="PersistentVolumeClaim", name="data")
    wait_for("the volume gone", lambda: env.get("PersistentVolume", volume) is None)
    assert not (ganesha.export_dir / directory).exists()
    archived = ganesha.export_dir / f"archived-{directory}" / "kept.txt"
    assert archived.read_text(encoding="utf-8") == "data\n"


def test_a_server_that_does_not_answer_leaves_the_claim_pending_with_provisioning_failed_and_the_master_serving(
    env: Env,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there
    env.call(verb=Verb.APPLY, manifest=CLASS % ("gone", "false", port) + "---" + CLAIM % ("data", "gone"))
    failed = wait_for("ProvisioningFailed", lambda: env.events("ProvisioningFailed"))
    assert failed[0].startswith(
        f'failed to provision volume with StorageClass "gone": nfs server 127.0.0.1:{port} (share /export): '
    )
    assert env.phase("PersistentVolumeClaim", "data") == "Pending"
    assert env.call(verb=Verb.LIST, kind="StorageClass").items  # the master answers meanwhile
    uid = (env.get("PersistentVolumeClaim", "data") or {})["metadata"]["uid"]

    def failures() -> int:
        result = env.master.volumes.worker.result(f"provision/{uid}")
        return 0 if result is None else result.failures

    wait_for("a second failed attempt (retried after the back-off)", lambda: failures() >= 2)
    assert env.phase("PersistentVolumeClaim", "data") == "Pending"
