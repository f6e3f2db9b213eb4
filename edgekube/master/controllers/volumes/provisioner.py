"""The NFS provisioner: a sub-directory on the class's share per claim and a volume reserved for it; reclaims them.

As nfs-subdir-external-provisioner: claim `<ns>/<name>` of an NFS class (provisioner edgekube.io/nfs, or the
names csi-driver-nfs and nfs-subdir-external-provisioner go by) gets `<share>/<ns>-<name>-pvc-<claim uid>`, and a
volume `pvc-<claim uid>` whose claimRef reserves it for the claim (the binder binds them next pass). A released
provisioned volume whose policy is Delete has its directory removed, renamed `archived-…` (archiveOnDelete=true,
onDelete=archive) or kept (onDelete=retain), then goes; not before every node has let its volume go (no pod
placed on a node uses its claim, no node lists it in status.volumesInUse: see inuse), so a directory is never
taken from under a mount. The directory work is a job for the VolumeWorker;
`plan` is pure over the snapshot and the worker's results, so a failure is reported (ProvisioningFailed,
VolumeFailedDelete, naming the server) and retried after the worker's back-off.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from edgekube.master.controllers.base import Setup, Snapshot
from edgekube.master.controllers.volumes import facts, inuse
from edgekube.master.controllers.volumes.actions import Annotate, CreateVolume, DeleteObject, Say, Submit
from edgekube.master.controllers.volumes.facts import ANN_ON_DELETE, Obj
from edgekube.master.controllers.volumes.nfsio import Job, Share
from edgekube.master.controllers.volumes.said import Said
from edgekube.master.controllers.volumes.users import ClaimUsers
from edgekube.master.controllers.volumes.worker import VolumeWorker
from edgekube.master.eventlog import ObjectRef
from edgekube.model.storage import ANN_PROVISIONED_BY, ANN_STORAGE_PROVISIONER, NFS_PROVISIONER

Action = Annotate | CreateVolume | DeleteObject | Say | Submit
COMPONENT = NFS_PROVISIONER


def volume_name(claim: Obj) -> str:
    return f"pvc-{facts.uid(claim)}"


def directory(claim: Obj) -> str:
    meta = claim["metadata"]
    return f"{meta['namespace']}-{meta['name']}-{volume_name(claim)}"


def share_of(storage_class: Obj) -> Share:
    params = storage_class.get("parameters") or {}
    return Share(str(params["server"]), str(params["share"]), int(params.get("port") or 2049))


def provision_key(claim: Obj) -> str:
    return f"provision/{facts.uid(claim)}"


def delete_key(volume: Obj) -> str:
    return f"delete/{volume['metadata']['name']}/{facts.uid(volume)}"


def new_volume(claim: Obj, storage_class: Obj) -> dict[str, Any]:
    """The PersistentVolume for a provisioned directory, reserved for the claim (claimRef with its uid)."""
    share = share_of(storage_class)
    meta = claim["metadata"]
    options = list(storage_class.get("mountOptions") or ())
    if share.port != 2049 and not any(o.split("=")[0].strip() == "port" for o in options):
        options.append(f"port={share.port}")
    spec: dict[str, Any] = {
        "capacity": {"storage": claim["spec"]["resources"]["requests"]["storage"]},
        "accessModes": list(claim["spec"]["accessModes"]),
        "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy") or "Delete",
        "storageClassName": storage_class["metadata"]["name"],
        "volumeMode": "Filesystem",
        "claimRef": {
            "kind": "PersistentVolumeClaim",
            "apiVersion": "v1",
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
        },
        "nfs": {"server": share.server, "path": f"{share.path.rstrip('/')}/{directory(claim)}"},
    }
    if options:
        spec["mountOptions"] = options
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": volume_name(claim),
            "namespace": "",
            "annotations": {
                ANN_PROVISIONED_BY: str(storage_class["provisioner"]),
                ANN_ON_DELETE: facts.on_delete(storage_class),
            },
        },
        "spec": spec,
        "status": {"phase": "Pending"},
    }


def _failed_provisioning(class_name: str, job: Job, error: str) -> str:
    return (
        f'failed to provision volume with StorageClass "{class_name}": nfs server {job.share.address()} '
        f"(share {job.share.path}): {error}"
    )


def plan(
    claims: Mapping[Any, Obj],
    volumes: Mapping[Any, Obj],
    classes: Mapping[Any, Obj],
    users: ClaimUsers,
    worker: VolumeWorker,
    *,
    now: float,
    held: Collection[str] = (),
) -> tuple[list[Action], set[str]]:
    """Jobs to submit, volumes to create or delete, events; and the job keys whose results still matter.

    `held`: the volumes nodes still list in status.volumesInUse (a released one waits for them, see `still_used`).
    """
    actions: list[Action] = []
    keys: set[str] = set()
    names = {v["metadata"]["name"] for v in volumes.values()}
    for claim in claims.values():
        storage_class = classes.get(("", facts.claim_class(claim))) if facts.claim_class(claim) else None
        if storage_class is None or not facts.is_nfs_class(storage_class) or facts.deleting(claim):
            continue
        if claim["spec"].get("volumeName") or volume_name(claim) in names:
            continue  # bound, or its volume is made and waits for the binder
        meta = claim["metadata"]
        if facts.binding_mode(storage_class) == "WaitForFirstConsumer" and not users.in_use(
            meta["namespace"], meta["name"]
        ):
            continue
        key = provision_key(claim)
        keys.add(key)
        actions += _provision(claim, storage_class, key, worker, now)
    for volume in volumes.values():
        if facts.provisioned(volume) and _released(volume) and volume["spec"].get("nfs"):
            if still_used(volume, claims, users, held):
                continue
            key = delete_key(volume)
            keys.add(key)
            actions += _reclaim(volume, key, worker, now)
    return actions, keys


def _provision(claim: Obj, storage_class: Obj, key: str, worker: VolumeWorker, now: float) -> list[Action]:
    ref = ObjectRef.of(claim)
    provisioner = str(storage_class["provisioner"])
    out: list[Action] = []
    if (claim["metadata"].get("annotations") or {}).get(ANN_STORAGE_PROVISIONER) != provisioner:
        out.append(Annotate(claim, {ANN_STORAGE_PROVISIONER: provisioner}))
    job = Job(key, share_of(storage_class), "create", directory(claim))
    result = worker.result(key)
    if result is not None and result.error is None and result.job == job:
        message = f"Successfully provisioned volume {volume_name(claim)}"
        return [
            *out,
            CreateVolume(new_volume(claim, storage_class)),
            Say(ref, "ProvisioningSucceeded", message, COMPONENT),
        ]
    if result is not None and result.error is not None:
        message = _failed_provisioning(storage_class["metadata"]["name"], result.job, result.error)
        out.append(Say(ref, "ProvisioningFailed", message, COMPONENT, warning=True, instance=str(result.finished)))
        if not worker.due(result, now):
            return out
    if not worker.busy(key):
        meta = claim["metadata"]
        message = f'External provisioner is provisioning volume for claim "{meta["namespace"]}/{meta["name"]}"'
        out += [Say(ref, "Provisioning", message, COMPONENT), Submit(job, worker)]
    return out


def _released(volume: Obj) -> bool:
    return (volume.get("status") or {}).get("phase") == "Released" and (
        volume["spec"].get("persistentVolumeReclaimPolicy") == "Delete"
    )


def still_used(volume: Obj, claims: Mapping[Any, Obj], users: ClaimUsers, held: Collection[str]) -> bool:
    """Whether a released volume must wait: a node holds it, or a pod placed on a node still names its claim.

    Pods count only while no new claim of that name exists (theirs would be the new claim's volume) and once
    placed (a pending pod mounts nothing).
    """
    if volume["metadata"]["name"] in held:
        return True
    key = facts.claim_ref_key(volume)
    if key is None or key in claims:
        return False
    return any(use.node for use in users.users(*key).values())


def _reclaim(volume: Obj, key: str, worker: VolumeWorker, now: float) -> list[Action]:
    server = facts.volume_server(volume)
    assert server is not None  # an NFS volume (checked by the caller)
    share_path, name = facts.split_dir(volume)
    mode = (volume["metadata"].get("annotations") or {}).get(ANN_ON_DELETE) or "delete"
    if mode == "retain":
        return [DeleteObject(volume)]
    job = Job(key, Share(server.server, share_path, server.port), "archive" if mode == "archive" else "remove", name)
    result = worker.result(key)
    if result is not None and result.error is None and result.job == job:
        return [DeleteObject(volume)]
    out: list[Action] = []
    if result is not None and result.error is not None:
        message = f"nfs server {job.share.address()}: cannot {job.operation} {share_path}/{name}: {result.error}"
        ref = ObjectRef.of(volume)
        out.append(Say(ref, "VolumeFailedDelete", message, COMPONENT, warning=True, instance=str(result.finished)))
        if not worker.due(result, now):
            return out
    if not worker.busy(key):
        out.append(Submit(job, worker))
    return out


class NfsProvisioner:
    """The controller: `plan` over the snapshot and the worker's results, remembering the events it raised."""

    name = "nfs-provisioner"

    def __init__(self, users: ClaimUsers, worker: VolumeWorker) -> None:
        self.users = users
        self.worker = worker
        self.said = Said()

    @classmethod
    def build(cls, setup: Setup) -> NfsProvisioner:
        return cls(setup.volumes.users, setup.volumes.worker)

    def plan(self, snapshot: Snapshot) -> list[Action]:
        store = snapshot.store
        claims, volumes = store.objects("PersistentVolumeClaim"), store.objects("PersistentVolume")
        held = inuse.held(store.objects("Node").values())
        actions, keys = plan(
            claims, volumes, store.objects("StorageClass"), self.users, self.worker, now=snapshot.now, held=held
        )
        self.worker.keep(keys)
        self.said.forget_except({facts.uid(o) for o in (*claims.values(), *volumes.values())})
        return self.said.filter(actions)
