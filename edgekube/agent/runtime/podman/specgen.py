"""Podman create documents (volume, pod, container specgen) from a Pod: pure, used by the runtime's create step."""

from __future__ import annotations

import resource
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgekube.agent.runtime.podman import dns
from edgekube.agent.runtime.podman.dns import ResolvConf
from edgekube.agent.runtime.podman.naming import LABEL_CONTAINER_INDEX, container_name, volume_name
from edgekube.agent.runtime.protocol import LABEL_CONTAINER, LABEL_DEVICES, LABEL_PRE_STOP
from edgekube.agent.runtime.volumes import NfsExport, NfsMode, VolumeKind, VolumePlan
from edgekube.model.expansion import expand
from edgekube.model.lifecycle import stored
from edgekube.model.pod import Container, Pod, PodSpec, Volume
from edgekube.model.podresources import pod_level_requests, pod_limits
from edgekube.model.quantity import cpu_millis, memory_bytes
from edgekube.model.security import SeccompProfileType, effective, sysctl_dots

_CPU_PERIOD_US = 100_000
#: The kernel rejects CFS quotas under 1 ms; Kubernetes clamps to the same floor.
_MIN_CPU_QUOTA_US = 1_000
_MAX_HOSTNAME = 63
#: Podman turns stop_timeout into a time.Duration (int64 nanoseconds); terminationGracePeriodSeconds has no upper
#: bound (as in Kubernetes), so a longer grace is capped here (136 years). The agent's own stop waits the full grace.
MAX_STOP_TIMEOUT = 2**32 - 1
#: The NFS version the kernel client is asked for (NFSv4.1: sessions, no rpcbind, one TCP port).
NFS_VERSION = "4.1"
#: An emptyDir's mode under fsGroup: the kubelet's 0777 plus setgid, so files created in it get the fsGroup.
FS_GROUP_MODE = 0o2777
#: Where seccompProfile `Localhost` profiles live on a node (the kubelet's <root-dir>/seccomp).
SECCOMP_DIR = "/var/lib/edgekube/seccomp"


def volume_spec(podname: str, volume: Volume, labels: dict[str, str]) -> dict[str, Any]:
    """`POST /volumes/create` body of one emptyDir (medium Memory → tmpfs, sizeLimit → its size)."""
    body: dict[str, Any] = {"Name": volume_name(podname, volume.name), "Label": labels}
    source = volume.empty_dir
    if source is not None and source.medium == "Memory":
        body["Options"] = _tmpfs_options(source.limit_bytes())
    return body


def _tmpfs_options(limit: int | None) -> dict[str, str]:
    options = {"type": "tmpfs", "device": "tmpfs"}
    if limit is not None:
        # Podman 4.3 takes `size=` in a volume's options as an XFS project quota and refuses
        # it on tmpfs; tmpfs' own `nr_blocks` (pages) sets the same limit unhindered.
        pages = -(-limit // resource.getpagesize())
        options["o"] = f"nr_blocks={max(pages, 1)}"
    return options


#: Podman takes `uid=`/`gid=` out of a volume's `o` (never passed to mount) and then leaves the volume's owner alone:
#: without them it chowns the mountpoint to the container's user on first use, which an NFS export refuses (root
#: squash) and the FUSE helper answers EINVAL, failing the container's start. Kubernetes never chowns NFS either.
NO_CHOWN = "uid=0,gid=0"


def kernel_nfs_options(export: NfsExport, read_only: bool) -> dict[str, str]:
    """A `type=nfs` volume's options: `addr`, `port`, `nfsvers=4.1`, `ro`, then the volume's mountOptions.

    A mount option naming the same key (`port=`, `nfsvers=`, ...) replaces the default rather than repeating it.
    """
    options: dict[str, str | None] = {"addr": export.server, "port": str(export.port), "nfsvers": NFS_VERSION}
    if read_only:
        options["ro"] = None
    for item in export.mount_options:
        for part in item.split(","):
            key, sep, value = part.strip().partition("=")
            if key:
                options[key] = value if sep else None
    o = ",".join(k if v is None else f"{k}={v}" for k, v in options.items())
    return {"type": "nfs", "o": f"{o},{NO_CHOWN}", "device": f"{export.server}:{export.path}"}


def fuse_nfs_options(helper: str, source: str, read_only: bool) -> dict[str, str]:
    """A `type=fuse` volume's options: Podman runs `mount.fuse <helper>#<source>` when a container starts."""
    return {"type": "fuse", "o": f"ro,{NO_CHOWN}" if read_only else NO_CHOWN, "device": f"{helper}#{source}"}


def plan_volume_spec(
    name: str,
    plan: VolumePlan,
    labels: dict[str, str],
    *,
    nfs_options: dict[str, str] | None = None,
    fs_group: int | None = None,
) -> dict[str, Any]:
    """`POST /volumes/create` body of one planned volume: emptyDir, tmpfs, or NFS with `nfs_options` (see above).

    `fs_group` (the pod's fsGroup) owns an emptyDir, as the kubelet's SetVolumeOwnership makes it: group fsGroup,
    setgid; Podman then leaves the owner alone (the caller sets a disk emptyDir's mode, tmpfs takes `mode=`).
    """
    body: dict[str, Any] = {"Name": name, "Label": labels}
    owner = f"uid=0,gid={fs_group}" if fs_group is not None else ""
    if plan.kind is VolumeKind.MEMORY:
        body["Options"] = _tmpfs_options(plan.size_limit)
        if owner:
            options = body["Options"]
            options["o"] = ",".join(filter(None, (options.get("o", ""), owner, f"mode={FS_GROUP_MODE:o}")))
    elif plan.kind is VolumeKind.EMPTY_DIR and owner:
        body["Options"] = {"o": owner}
    elif plan.kind is VolumeKind.NFS:
        if nfs_options is None:
            raise ValueError(f"volume {plan.name}: an nfs volume needs its options")
        body["Options"] = nfs_options
    return body


def nfs_volume_options(mode: NfsMode, export: NfsExport, read_only: bool, helper: str, source: str) -> dict[str, str]:
    """The options of an NFS volume in `mode` (both modes are the same volume, only these differ)."""
    if mode is NfsMode.KERNEL:
        return kernel_nfs_options(export, read_only)
    return fuse_nfs_options(helper, source, read_only)


@dataclass(frozen=True)
class ContainerMount:
    """One mount of a container: a Podman named `volume`, or a host `source` path bound (subPaths, hostPath)."""

    dest: str
    read_only: bool = False
    volume: str = ""
    source: str = ""


def pod_spec(pod: Pod, podname: str, labels: dict[str, str], host_dns: ResolvConf | None = None) -> dict[str, Any]:
    """`POST /pods/create` body: shared ipc/net/uts (one localhost), host ports published on the pod.

    dnsPolicy/dnsConfig: the pod's resolv.conf from the node's (`host_dns`, its resolv.conf) as podman/dns.py says.

    hostNetwork: the node's network and UTS namespaces (its interfaces and hostname; nothing to publish).
    hostPID: the node's PID namespace; shareProcessNamespace: one PID namespace for the pod's containers.
    hostAliases: extra /etc/hosts entries.
    """
    spec = pod.spec
    body: dict[str, Any] = {"name": podname, "labels": labels}
    shared = ["ipc", "net", "uts"]
    if spec.host_network:
        body["netns"] = {"nsmode": "host"}
        body["utsns"] = {"nsmode": "host"}
    else:
        body["hostname"] = pod.metadata.name[:_MAX_HOSTNAME].rstrip(".-")
        body["portmappings"] = [
            {"container_port": p.container_port, "host_port": p.host_port, "protocol": p.protocol.value.lower()}
            for c in spec.containers
            for p in c.ports
            if p.host_port is not None
        ]
    if spec.host_pid:
        # The infra container takes the node's PID namespace; the app containers join the infra's.
        body["pidns"] = {"nsmode": "host"}
    if spec.host_pid or spec.share_process_namespace:
        shared.append("pid")
    body["shared_namespaces"] = shared
    body.update(dns.pod_options(spec, host_dns or ResolvConf()))
    hosts = [f"{name}:{alias.ip}" for alias in spec.host_aliases or () for name in alias.hostnames]
    if hosts:
        body["hostadd"] = hosts
    if spec.resources is not None:
        limits = _pod_cgroup(spec)
        if limits:
            body["resource_limits"] = limits
    return body


def _pod_cgroup(spec: PodSpec) -> dict[str, Any]:
    """Pod-level `resources` as the Podman pod's cgroup, which Podman sizes as the kubelet sizes a pod's.

    cpu quota and memory limit from the limits, cpu shares from the pod's cpu request. Every container of the
    pod runs inside that cgroup, so one without limits of its own is held to the pod's.
    """
    limits = pod_limits(spec)
    cpu: dict[str, int] = {}
    if "cpu" in limits:
        cpu["quota"] = max(limits["cpu"] * _CPU_PERIOD_US // 1000, _MIN_CPU_QUOTA_US)
        cpu["period"] = _CPU_PERIOD_US
    request_millis = pod_level_requests(spec).get("cpu", 0)
    if request_millis:
        cpu["shares"] = max(request_millis * 1024 // 1000, 2)  # Kubernetes' milliCPUToShares
    result: dict[str, Any] = {"cpu": cpu} if cpu else {}
    if "memory" in limits:
        result["memory"] = {"limit": limits["memory"]}
    return result


def capability(name: str) -> str:
    """A Kubernetes capability name as the OCI spec spells it: `NET_ADMIN` → `CAP_NET_ADMIN` (`ALL` kept)."""
    upper = name.upper()
    return upper if upper == "ALL" or upper.startswith("CAP_") else f"CAP_{upper}"


def user_spec(run_as_user: int | None, run_as_group: int | None, image_user: str = "") -> str:
    """The specgen `user`, `uid[:gid]`; a group alone keeps the image's user (root when the image names none)."""
    if run_as_user is None and run_as_group is None:
        return ""
    user = str(run_as_user) if run_as_user is not None else (image_user.split(":", 1)[0] or "0")
    return user if run_as_group is None else f"{user}:{run_as_group}"


def _security(pod: Pod, container: Container, image_user: str) -> dict[str, Any]:
    """The securityContext part of a container's specgen (effective settings: the container's over the pod's)."""
    sc = effective(pod.spec.security_context, container.security_context)
    body: dict[str, Any] = {}
    user = user_spec(sc.run_as_user, sc.run_as_group, image_user)
    if user:
        body["user"] = user
    if sc.groups:
        body["groups"] = [str(g) for g in sc.groups]
    if sc.read_only_root_filesystem:
        body["read_only_filesystem"] = True
    if sc.allow_privilege_escalation is False:
        body["no_new_privileges"] = True
    if sc.privileged:
        body["privileged"] = True
    if sc.cap_add:
        body["cap_add"] = [capability(c) for c in sc.cap_add]
    if sc.cap_drop:
        body["cap_drop"] = [capability(c) for c in sc.cap_drop]
    if sc.seccomp is not None and sc.seccomp.type is SeccompProfileType.UNCONFINED:
        body["seccomp_profile_path"] = "unconfined"
    elif sc.seccomp is not None and sc.seccomp.type is SeccompProfileType.LOCALHOST:
        body["seccomp_profile_path"] = f"{SECCOMP_DIR}/{sc.seccomp.localhost_profile}"
    sysctls = pod.spec.security_context.sysctls if pod.spec.security_context else []
    if sysctls:
        body["sysctl"] = {sysctl_dots(s.name): s.value for s in sysctls}
    return body


def _resource_limits(container: Container) -> dict[str, Any]:
    limits = container.resources.limits
    cpu: dict[str, int] = {}
    if "cpu" in limits:
        cpu["quota"] = max(cpu_millis(limits["cpu"]) * _CPU_PERIOD_US // 1000, _MIN_CPU_QUOTA_US)
        cpu["period"] = _CPU_PERIOD_US
    request_millis = container.resources.request_cpu_millis()
    if request_millis:
        cpu["shares"] = max(request_millis * 1024 // 1000, 2)  # Kubernetes' milliCPUToShares
    result: dict[str, Any] = {}
    if cpu:
        result["cpu"] = cpu
    if "memory" in limits:
        result["memory"] = {"limit": memory_bytes(limits["memory"])}
    return result


def container_spec(
    pod: Pod,
    container: Container,
    index: int,
    podname: str,
    labels: dict[str, str],
    *,
    mounts: Sequence[ContainerMount] | None = None,
    devices: Sequence[str] = (),
    image_user: str = "",
    host_dns: ResolvConf | None = None,
) -> dict[str, Any]:
    """`POST /containers/create` body (specgen) of one app container, joined to the pod `podname`.

    `mounts` are the container's volume mounts as the create step resolved them; None: each volumeMount is the
    pod's named volume `<podname>_<volume>` (emptyDirs). `devices`: host device nodes mapped in at the same path
    (the container's extended resources), named in a label so a restarted agent knows they are taken.
    `image_user`: the image's USER, needed only when runAsGroup is set without runAsUser. `host_dns`: the node's
    resolv.conf, for a hostNetwork pod's dnsPolicy/dnsConfig (others take them on the pod, pod_spec).
    """
    if mounts is None:
        mounts = [
            ContainerMount(m.container_path(), m.read_only, volume=volume_name(podname, m.name))
            for m in container.volume_mounts
        ]
    body: dict[str, Any] = {
        "name": container_name(podname, container.name),
        "pod": podname,
        "image": container.image,
        "labels": {**labels, LABEL_CONTAINER: container.name, LABEL_CONTAINER_INDEX: str(index)},
        # Restarts are the agent's job (it implements restartPolicy and back-off), never Podman's.
        "restart_policy": "no",
        "stop_timeout": min(pod.spec.termination_grace_period_seconds, MAX_STOP_TIMEOUT),
        "env": {e.name: e.value for e in container.env},
        # nocopy: a volume starts as it is (an empty emptyDir, an NFS export as the server has it), unlike a
        # Docker volume that copies the image's directory in.
        "volumes": [
            {"Name": m.volume, "Dest": m.dest, "Options": ["nocopy", "ro"] if m.read_only else ["nocopy"]}
            for m in mounts
            if m.volume
        ],
    }
    if devices:
        body["devices"] = [{"path": path} for path in devices]
        body["labels"][LABEL_DEVICES] = ",".join(devices)
    binds = [
        {"destination": m.dest, "type": "bind", "source": m.source, "options": ["rbind", "ro" if m.read_only else "rw"]}
        for m in mounts
        if not m.volume
    ]
    if binds:
        body["mounts"] = binds
    # Kubernetes semantics map onto specgen exactly: command → entrypoint, args → command; an explicit
    # entrypoint makes Podman drop the image's CMD, as Kubernetes does when only `command` is given.
    # `$(NAME)` in command and args names the container's env, as the kubelet expands them.
    env = body["env"]
    if container.command is not None:
        body["entrypoint"] = [expand(part, env) for part in container.command]
    if container.args is not None:
        body["command"] = [expand(part, env) for part in container.args]
    if container.working_dir:
        body["work_dir"] = container.working_dir
    limits = _resource_limits(container)
    if limits:
        body["resource_limits"] = limits
    body.update(_security(pod, container, image_user))
    if pod.spec.host_network:
        # Podman gives a pod in the node's network namespace the node's resolv.conf whatever the pod's options.
        body.update(dns.pod_options(pod.spec, host_dns or ResolvConf()))
    pre_stop = container.lifecycle.pre_stop if container.lifecycle else None
    if pre_stop is not None:
        body["labels"][LABEL_PRE_STOP] = stored(pre_stop, {p.name: p.container_port for p in container.ports if p.name})
    if container.stdin:
        body["stdin"] = True
    if container.tty:
        body["terminal"] = True
    return body
