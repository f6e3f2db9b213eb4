"""The volume step of PodmanRuntime's create: host checks, NFS sub-directories, Podman volumes, each mount resolved.

Runs in PodActions' workers (create_pod is never called on the agent's loop). Podman 4.3.1 has no volume
`subpath` (`--mount type=volume,subpath=` is "invalid mount option"), so a subPath is: on NFS, a volume of its own
on the child directory (created on the server first); on a disk emptyDir or a hostPath, a bind of the
sub-directory on the host. A tmpfs emptyDir is only mounted on the host while a container uses it, so a subPath on
one is refused rather than bound to the empty directory beneath it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from edgekube.agent.runtime.podman import specgen
from edgekube.agent.runtime.podman.naming import LABEL_VOLUME, owned_labels, volume_name
from edgekube.agent.runtime.podman.specgen import ContainerMount
from edgekube.agent.runtime.podman.transport import PodmanTransport
from edgekube.agent.runtime.protocol import LABEL_POD_UID, LABEL_VOLUME_KIND
from edgekube.agent.runtime.volumes import (
    NfsExport,
    NfsMode,
    VolumeKind,
    VolumePlan,
    check_volumes,
    claim_labels,
    disk_usage,
    failed_mount,
    sub_dir,
    volumes_in_use,
)
from edgekube.model.errors import StorageError
from edgekube.model.names import NodeName, PodUID
from edgekube.model.pod import Pod
from edgekube.model.storage import ResolvedVolume
from edgekube.nfs.client import NfsClient
from edgekube.nfs.mount import helper_path, source_of
from edgekube.nfs.probe import probe
from edgekube.nfs.target import NfsTarget


def _target(volume: str, export: NfsExport, sub: str = "") -> NfsTarget:
    try:
        target = NfsTarget(export.server, export.path, export.port)
        return target.child(sub) if sub else target
    except StorageError as exc:
        raise failed_mount(volume, str(exc)) from exc


class VolumeSetup:
    """Makes a pod's volumes ready on this node and says what each container mounts."""

    def __init__(self, transport: PodmanTransport, node: NodeName, mode: NfsMode, nfs_timeout: float) -> None:
        self.transport = transport
        self.node = node
        self.mode = mode
        self.nfs_timeout = nfs_timeout

    def prepare(
        self, pod: Pod, podname: str, labels: dict[str, str], resolved: Mapping[str, ResolvedVolume] | None
    ) -> dict[str, list[ContainerMount]]:
        """Check, then create; returns each container's mounts.

        FailedMount, before anything is created, if a hostPath check fails, a claim has no source or an NFS
        server does not answer.
        """
        plans, mounts = check_volumes(pod, resolved)
        for plan in plans.values():
            if plan.nfs is not None:
                # A server that does not answer fails this pod now, naming it, rather than hanging its mount.
                why = probe(_target(plan.name, plan.nfs), self.nfs_timeout)
                if why is not None:
                    raise failed_mount(plan.name, why)
        subs = {(m.volume, m.sub_path) for m in mounts if m.sub_path and plans[m.volume].kind is VolumeKind.NFS}
        for volume, sub in sorted(subs):
            self._nfs_makedirs(plans[volume], sub)
        mountpoints: dict[str, str] = {}
        namespace = pod.metadata.namespace
        fs_group = pod.spec.security_context.fs_group if pod.spec.security_context else None
        for plan in plans.values():
            if plan.kind is not VolumeKind.HOST_PATH:
                labels_of = {**labels, **claim_labels(plan, namespace)}
                mountpoints[plan.name] = self._create(podname, plan, labels_of, fs_group=fs_group)
        for volume, sub in sorted(subs):
            plan = plans[volume]
            self._create(podname, plan, {**labels, **claim_labels(plan, namespace)}, sub)
        out: dict[str, list[ContainerMount]] = {c.name: [] for c in pod.spec.all_containers()}
        for m in mounts:
            plan = plans[m.volume]
            if plan.kind is VolumeKind.HOST_PATH:
                source = sub_dir(m.volume, plan.host_path, m.sub_path)
                out[m.container].append(ContainerMount(m.dest, m.read_only, source=source))
            elif plan.kind is VolumeKind.EMPTY_DIR and m.sub_path:
                source = sub_dir(m.volume, mountpoints[m.volume], m.sub_path)
                out[m.container].append(ContainerMount(m.dest, m.read_only, source=source))
            else:
                name = volume_name(podname, m.volume, m.sub_path if plan.kind is VolumeKind.NFS else "")
                out[m.container].append(ContainerMount(m.dest, m.read_only, volume=name))
        return out

    def _nfs_makedirs(self, plan: VolumePlan, sub: str) -> None:
        assert plan.nfs is not None
        try:
            with NfsClient(_target(plan.name, plan.nfs), timeout=self.nfs_timeout) as client:
                client.makedirs(sub)
        except StorageError as exc:
            raise failed_mount(
                plan.name, f"cannot create subPath {sub!r} on nfs server {plan.nfs.address()}: {exc}"
            ) from exc

    def _create(
        self, podname: str, plan: VolumePlan, labels: dict[str, str], sub: str = "", *, fs_group: int | None = None
    ) -> str:
        """Create one Podman volume (the NFS ones on `sub` of the export); returns its mountpoint on the host.

        `labels` are the pod's, and for a claim's volume the PersistentVolume's and the claim's (claim_labels).
        """
        name = volume_name(podname, plan.name, sub)
        options = None
        if plan.nfs is not None:
            helper = source = ""
            if self.mode is NfsMode.USERSPACE:
                try:
                    helper = helper_path()
                except StorageError as exc:
                    raise failed_mount(plan.name, str(exc)) from exc
                source = source_of(_target(plan.name, plan.nfs, sub))
            export = NfsExport(plan.nfs.server, _join(plan.nfs.path, sub), plan.nfs.port, plan.nfs.mount_options)
            options = specgen.nfs_volume_options(self.mode, export, plan.read_only, helper, source)
        body = specgen.plan_volume_spec(
            name, plan, {**labels, LABEL_VOLUME: plan.name, LABEL_VOLUME_KIND: plan.kind.value},
            nfs_options=options, fs_group=fs_group,
        )  # fmt: skip
        created = self.transport.json(
            "post", "/volumes/create", what=f"create volume {name}", reason="CreateVolumeError", body=body
        )
        mountpoint = str((created or {}).get("Mountpoint") or "")
        if fs_group is not None and plan.kind is VolumeKind.EMPTY_DIR and mountpoint:
            # Podman has no mode option for a plain volume; its directory is on this node, set it here.
            try:
                os.chmod(mountpoint, specgen.FS_GROUP_MODE)
            except OSError as exc:
                raise failed_mount(plan.name, f"cannot apply fsGroup {fs_group}: {exc}") from exc
        return mountpoint

    def usage(self, uid: PodUID) -> dict[str, int]:
        """Bytes used by each disk emptyDir of the pod (du of its mountpoint), by volume name."""
        what = f"list volumes of {uid}"
        entries = self.transport.list_volumes(owned_labels(self.node, **{LABEL_POD_UID: uid}), what=what)
        out: dict[str, int] = {}
        for entry in entries or []:
            labels = entry.get("Labels") or {}
            if labels.get(LABEL_VOLUME_KIND) == VolumeKind.EMPTY_DIR.value and entry.get("Mountpoint"):
                out[str(labels.get(LABEL_VOLUME))] = disk_usage(str(entry["Mountpoint"]))
        return out

    def in_use(self) -> list[str]:
        """node.status.volumesInUse as Podman has it: every claim volume of this node, of any pod (one list call)."""
        entries = self.transport.list_volumes(owned_labels(self.node))
        return volumes_in_use(entry.get("Labels") or {} for entry in entries or [])


def _join(path: str, sub: str) -> str:
    return path if not sub else f"{path.rstrip('/')}/{sub}"
