"""What a pod's volumes need from a node, shared by every runtime: plans, hostPath checks, subPaths, NFS mode, du.

`plan_volumes` (pure) turns a Pod and its claims' ResolvedVolumes into one VolumePlan per volume and one MountPlan
per container mount (subPathExpr expanded); `check_host_path` and `sub_dir` do Kubernetes' host-side checks before a
pod starts. Every refusal is a RuntimeFailure with reason `FailedMount` worded as the kubelet's
`MountVolume.SetUp failed for volume "x" : ...`, so the pod waits in ContainerCreating and is retried.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from edgekube.agent.runtime.protocol import LABEL_PV, LABEL_PVC, LABEL_VOLUME_KIND
from edgekube.model.errors import RuntimeFailure, ValidationError
from edgekube.model.node import NFS_VOLUME_IN_USE
from edgekube.model.pod import Container, HostPathType, Pod, check_descending_path
from edgekube.model.storage import ResolvedVolume, mount_port

#: The reason of every volume refusal (an event of that name; the pod's containers wait in ContainerCreating).
FAILED_MOUNT = "FailedMount"
#: The port of an inline `nfs:` volume (no mount options to name another).
NFS_PORT = 2049


class NfsMode(StrEnum):
    """How a node mounts NFS: the kernel's client (`type=nfs`) or edgekube's FUSE helper (`type=fuse`)."""

    KERNEL = "kernel"
    USERSPACE = "userspace"


#: The agent setting `nfs_client`: a mode, or `auto` (kernel when the kernel knows nfs4, else userspace).
NFS_CLIENT_SETTINGS = ("auto", "kernel", "userspace")


def nfs_mode(setting: str, filesystems: Path = Path("/proc/filesystems")) -> NfsMode:
    """The NfsMode for the agent setting `nfs_client` (`auto` reads `filesystems` for nfs4)."""
    if setting == "auto":
        try:
            known = {line.split()[-1] for line in filesystems.read_text().splitlines() if line.split()}
        except OSError:
            known = set()
        return NfsMode.KERNEL if "nfs4" in known else NfsMode.USERSPACE
    try:
        return NfsMode(setting)
    except ValueError:
        raise RuntimeFailure(
            f"nfs_client: Unsupported value: {setting!r}: supported values: {', '.join(NFS_CLIENT_SETTINGS)}",
            reason="InvalidConfig",
        ) from None


class VolumeKind(StrEnum):
    EMPTY_DIR = "emptyDir"  # on disk: a Podman named volume
    MEMORY = "memory"  # emptyDir medium Memory: a tmpfs named volume
    NFS = "nfs"  # inline nfs, or a claim bound to an nfs volume
    HOST_PATH = "hostPath"  # inline hostPath, or a claim bound to a hostPath volume


@dataclass(frozen=True)
class NfsExport:
    """Where an NFS volume lives; `mount_options` as the PersistentVolume gives them (port=N among them)."""

    server: str
    path: str
    port: int = NFS_PORT
    mount_options: tuple[str, ...] = ()

    def address(self) -> str:
        return self.server if self.port == NFS_PORT else f"{self.server}:{self.port}"


@dataclass(frozen=True)
class VolumePlan:
    """One volume of a pod as the node provides it."""

    name: str
    kind: VolumeKind
    read_only: bool = False  # the source (nfs readOnly, claim readOnly, ReadOnlyMany volume) says read-only
    size_limit: int | None = None  # emptyDir sizeLimit in bytes
    size_limit_text: str = ""  # ... as the manifest wrote it (the eviction message quotes it)
    nfs: NfsExport | None = None
    host_path: str = ""
    host_type: HostPathType = HostPathType.UNSET
    claim: str = ""  # the claim it came from, if any
    pv: str = ""  # ... and the PersistentVolume that claim is bound to


@dataclass(frozen=True)
class MountPlan:
    """One volumeMount of one container: subPath already expanded; read-only if the mount or its volume says so."""

    container: str
    volume: str
    dest: str
    sub_path: str = ""
    read_only: bool = False


def failed_mount(volume: str, why: str) -> RuntimeFailure:
    """The kubelet's words for a volume that cannot be set up; the pod waits and is retried."""
    return RuntimeFailure(f'MountVolume.SetUp failed for volume "{volume}" : {why}', reason=FAILED_MOUNT)


_VAR = re.compile(r"\$\$|\$\(([^)]*)\)")


def expand_sub_path_expr(expr: str, env: Mapping[str, str]) -> str:
    """Expand `$(VAR)` from `env` as Kubernetes does: unknown names become "", `$$` is a literal `$`."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), "")

    return _VAR.sub(one, expr)


def _sub_path(container: Container, index: int, volume: str) -> str:
    mount = container.volume_mounts[index]
    if not mount.sub_path_expr:
        return mount.sub_path
    expanded = expand_sub_path_expr(mount.sub_path_expr, {e.name: e.value for e in container.env})
    try:
        return check_descending_path(expanded, "subPathExpr")
    except ValidationError as exc:  # the expanded path leaves the volume
        raise failed_mount(volume, f"subPathExpr {mount.sub_path_expr!r} of container {container.name}: {exc}") from exc


def plan_volumes(
    pod: Pod, resolved: Mapping[str, ResolvedVolume] | None = None
) -> tuple[dict[str, VolumePlan], list[MountPlan]]:
    """Each volume of the pod (claims through `resolved`), and each container mount in spec order.

    FailedMount for a claim with no resolved source yet, or a subPathExpr that expands out of its volume.
    """
    resolved = resolved or {}
    volumes: dict[str, VolumePlan] = {}
    for volume in pod.spec.volumes:
        volumes[volume.name] = _plan(volume.name, pod, resolved)
    mounts = [
        MountPlan(
            container=c.name,
            volume=m.name,
            dest=m.container_path(),
            sub_path=_sub_path(c, j, m.name).strip("/"),
            read_only=m.read_only or volumes[m.name].read_only,
        )
        for c in pod.spec.all_containers()
        for j, m in enumerate(c.volume_mounts)
    ]
    return volumes, mounts


def _plan(name: str, pod: Pod, resolved: Mapping[str, ResolvedVolume]) -> VolumePlan:
    volume = next(v for v in pod.spec.volumes if v.name == name)
    if volume.nfs is not None:
        export = NfsExport(volume.nfs.server, volume.nfs.path)
        return VolumePlan(name, VolumeKind.NFS, read_only=volume.nfs.read_only, nfs=export)
    if volume.host_path is not None:
        return VolumePlan(name, VolumeKind.HOST_PATH, host_path=volume.host_path.path, host_type=volume.host_path.type)
    claim = volume.persistent_volume_claim
    if claim is not None:
        source = resolved.get(name)
        if source is None or (source.nfs is None and source.host_path is None):
            raise failed_mount(name, f'persistentVolumeClaim "{claim.claim_name}" has no bound volume on this node yet')
        read_only = claim.read_only or source.read_only
        if source.nfs is not None:
            options = tuple(source.mount_options)
            export = NfsExport(source.nfs.server, source.nfs.path, mount_port(list(options)), options)
            return VolumePlan(
                name, VolumeKind.NFS, read_only=read_only or source.nfs.read_only, nfs=export, claim=claim.claim_name,
                pv=source.volume_name,
            )  # fmt: skip
        assert source.host_path is not None
        return VolumePlan(
            name, VolumeKind.HOST_PATH, read_only=read_only, host_path=source.host_path.path,
            host_type=source.host_path.type, claim=claim.claim_name, pv=source.volume_name,
        )  # fmt: skip
    empty = volume.empty_dir
    assert empty is not None  # the model defaults a source-less volume to an emptyDir
    kind = VolumeKind.MEMORY if empty.medium == "Memory" else VolumeKind.EMPTY_DIR
    text = "" if empty.size_limit is None else str(empty.size_limit)
    return VolumePlan(name, kind, size_limit=empty.limit_bytes(), size_limit_text=text)


def claim_labels(plan: VolumePlan, namespace: str) -> dict[str, str]:
    """The labels naming the PersistentVolume and the claim (`<namespace>/<name>`) a volume serves; {} if no claim."""
    if not plan.claim:
        return {}
    return {LABEL_PV: plan.pv, LABEL_PVC: f"{namespace}/{plan.claim}"}


def volumes_in_use(labelled: Iterable[Mapping[str, str]]) -> list[str]:
    """node.status.volumesInUse from the labels of the volumes a node has: `edgekube.io/nfs/<pv>`, sorted, once each.

    Only NFS-backed claim volumes count (a hostPath claim is a bind, no volume of its own).
    """
    return sorted(
        {
            f"{NFS_VOLUME_IN_USE}{labels[LABEL_PV]}"
            for labels in labelled
            if labels.get(LABEL_PV) and labels.get(LABEL_VOLUME_KIND) == VolumeKind.NFS.value
        }
    )


# -- host side (runs in PodActions' workers, never on the agent's loop) ------------------------------------------


def check_volumes(
    pod: Pod, resolved: Mapping[str, ResolvedVolume] | None = None
) -> tuple[dict[str, VolumePlan], list[MountPlan]]:
    """plan_volumes plus the checks every runtime makes on the host before it creates anything.

    hostPath types (creating what *OrCreate asks for), and no subPath on a tmpfs emptyDir: Podman 4.3 mounts no
    volume subpath, and a tmpfs volume is only mounted on the host while a container uses it, so no bind can
    reach into it beforehand.
    """
    plans, mounts = plan_volumes(pod, resolved)
    for plan in plans.values():
        if plan.kind is VolumeKind.HOST_PATH:
            check_host_path(plan.name, plan.host_path, plan.host_type)
    for mount in mounts:
        if mount.sub_path and plans[mount.volume].kind is VolumeKind.MEMORY:
            raise failed_mount(
                mount.volume,
                f"subPath {mount.sub_path!r} on a medium: Memory emptyDir is not supported on this node "
                "(Podman 4.3 mounts no volume subpath)",
            )
    return plans, mounts


def check_host_path(volume: str, path: str, kind: HostPathType) -> None:
    """Kubernetes' hostPath type check: create what *OrCreate asks for (0755 dir / 0644 file), else FailedMount."""
    target = Path(path)
    try:
        if kind is HostPathType.UNSET:
            return
        if kind is HostPathType.DIRECTORY_OR_CREATE and not os.path.lexists(target):
            target.mkdir(mode=0o755, parents=True, exist_ok=True)
            os.chmod(target, 0o755)  # the agent's umask (0027 under systemd) must not narrow it
        if kind is HostPathType.FILE_OR_CREATE and not os.path.lexists(target):
            fd = os.open(target, os.O_CREAT | os.O_WRONLY, 0o644)
            os.close(fd)
            os.chmod(target, 0o644)
    except OSError as exc:
        raise failed_mount(volume, f"hostPath type check failed: cannot create {path}: {exc.strerror}") from exc
    mode = _mode(target)
    checks = {
        HostPathType.DIRECTORY_OR_CREATE: (stat.S_ISDIR, "a directory"),
        HostPathType.DIRECTORY: (stat.S_ISDIR, "a directory"),
        HostPathType.FILE_OR_CREATE: (stat.S_ISREG, "a file"),
        HostPathType.FILE: (stat.S_ISREG, "a file"),
        HostPathType.SOCKET: (stat.S_ISSOCK, "a socket file"),
        HostPathType.CHAR_DEVICE: (stat.S_ISCHR, "a character device"),
        HostPathType.BLOCK_DEVICE: (stat.S_ISBLK, "a block device"),
    }
    test, what = checks[kind]
    if mode is None or not test(mode):
        raise failed_mount(volume, f"hostPath type check failed: {path} is not {what}")


def _mode(path: Path) -> int | None:
    try:
        return path.stat().st_mode
    except OSError:
        return None


def sub_dir(volume: str, root: str, sub: str) -> str:
    """`root/sub`, created (0755) if missing as the kubelet does; FailedMount if it escapes `root` by a symlink.

    An existing file is bound as it is (a config volume's key mounted by subPath, e.g. one nginx.conf).
    """
    if not sub:
        return root
    target = os.path.join(root, sub)
    try:
        if os.path.isfile(target):
            real_root, real = os.path.realpath(root), os.path.realpath(target)
            if not real.startswith(real_root.rstrip("/") + "/"):
                raise failed_mount(volume, f"subPath {sub!r} resolves to {real}, outside the volume {root}")
            return target
        os.makedirs(target, mode=0o755, exist_ok=True)
        real_root, real = os.path.realpath(root), os.path.realpath(target)
    except OSError as exc:
        raise failed_mount(volume, f"cannot create subPath {sub!r}: {exc.strerror}") from exc
    if real != real_root and not real.startswith(real_root.rstrip("/") + "/"):
        raise failed_mount(volume, f"subPath {sub!r} resolves to {real}, outside the volume {root}")
    if not os.path.isdir(real):
        raise failed_mount(volume, f"subPath {sub!r} is not a directory")
    return target


def disk_usage(path: str) -> int:
    """Bytes `du` counts under `path` (allocated blocks, each hard-linked inode once); 0 if it is gone."""
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [path]
    while stack:
        current = stack.pop()
        with contextlib.suppress(OSError), os.scandir(current) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    info = entry.stat(follow_symlinks=False)
                    key = (info.st_dev, info.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                    total += info.st_blocks * 512
                    if stat.S_ISDIR(info.st_mode):
                        stack.append(entry.path)
    return total


# -- sizeLimit (the kubelet's local-storage eviction of emptyDir) -------------------------------------------------


def measured_volumes(pod: Pod) -> dict[str, VolumePlan]:
    """The pod's disk emptyDirs with a sizeLimit: what the agent measures (tmpfs ones are sized by tmpfs itself)."""
    out = {}
    for volume in pod.spec.volumes:
        empty = volume.empty_dir
        if empty is not None and empty.medium != "Memory" and empty.size_limit is not None:
            out[volume.name] = VolumePlan(
                volume.name, VolumeKind.EMPTY_DIR, size_limit=empty.limit_bytes(), size_limit_text=str(empty.size_limit)
            )
    return out


def over_limit(pod: Pod, usage: Mapping[str, int]) -> str | None:
    """The kubelet's eviction message if a disk emptyDir of the pod uses more than its sizeLimit, else None."""
    for name, plan in measured_volumes(pod).items():
        used = usage.get(name)
        if used is not None and plan.size_limit is not None and used > plan.size_limit:
            return f'Usage of EmptyDir volume "{name}" exceeds the limit "{plan.size_limit_text}".'
    return None
