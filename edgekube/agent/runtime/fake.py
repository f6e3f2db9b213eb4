"""FakeRuntime: an in-memory PodRuntime for unit tests of the agent's reconciler (no Podman needed)."""

from __future__ import annotations

import hashlib
import io
import itertools
import math
import tarfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from edgekube.agent.runtime.protocol import (
    LABEL_POD_UID,
    LABEL_PV,
    LABEL_VOLUME_KIND,
    MAX_EXEC_OUTPUT,
    ContainerRunState,
    ContainerStats,
    ImageFailure,
    LogWindow,
    ObservedContainer,
    ObservedPod,
    RuntimeInfo,
    TtySession,
    never_pull,
)
from edgekube.agent.runtime.volumes import (
    MountPlan,
    VolumeKind,
    VolumePlan,
    check_volumes,
    claim_labels,
    failed_mount,
    sub_dir,
    volumes_in_use,
)
from edgekube.model.errors import NotFoundError, RuntimeFailure, ValidationError
from edgekube.model.lifecycle import LifecycleHandler, restored, stored
from edgekube.model.names import NodeName, PodUID
from edgekube.model.pod import Container, Pod, PullPolicy
from edgekube.model.registryauth import RegistryCredential, lookup
from edgekube.model.security import NON_ROOT_REASON, effective, non_root_error
from edgekube.model.storage import ResolvedVolume

FAKE_NODE = NodeName("fake-node")


@dataclass
class FakeEngine:
    """What a fake "host" holds; several FakeRuntime instances can share one to model an agent restart."""

    pods: dict[tuple[NodeName, PodUID], ObservedPod] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)  # container_id -> text
    #: container_id -> {path: content}: the files `cp` reads and writes
    files: dict[str, dict[str, bytes]] = field(default_factory=dict)
    #: container_id -> (Unix time, line) of what write_log wrote, for LogWindow (as Podman's log file keeps them)
    log_times: dict[str, list[tuple[float, str]]] = field(default_factory=dict)
    images: set[str] = field(default_factory=set)  # present locally
    unpullable: set[str] = field(default_factory=set)
    ids: itertools.count[int] = field(default_factory=itertools.count)
    #: (uid, container) → what exec answers there; otherwise `false` exits 1 and any other command 0.
    exec_results: dict[tuple[PodUID, str], tuple[int, str]] = field(default_factory=dict)
    #: The credential a pull of each image was given (registryauth.lookup's first), by image.
    pull_credentials: dict[str, RegistryCredential] = field(default_factory=dict)
    addresses: itertools.count[int] = field(default_factory=lambda: itertools.count(2))
    exits: threading.Event = field(default_factory=threading.Event)  # set whenever a container exits
    #: NFS servers ("host" or "host:port") that do not answer: a pod mounting one fails FailedMount naming it.
    unreachable_nfs: set[str] = field(default_factory=set)
    #: What each pod's containers mount (subPaths expanded, read-only resolved), as create_pod planned it.
    mounts: dict[PodUID, list[MountPlan]] = field(default_factory=dict)
    #: Bytes used per (pod, disk emptyDir volume), set by tests (fill_volume); volume_usage answers from it.
    usage: dict[tuple[PodUID, str], int] = field(default_factory=dict)
    #: Bytes each (pod, container) holds on disk, set by tests (fill_container); container_usage answers from it.
    container_disk: dict[tuple[PodUID, str], int] = field(default_factory=dict)
    #: The runtime volumes each node holds (emptyDirs, NFS; not hostPaths), by (node, name): their labels.
    volumes: dict[tuple[NodeName, str], dict[str, str]] = field(default_factory=dict)
    #: PersistentVolumes whose runtime volumes refuse removal (a mount that will not let go): remove_pod fails.
    stuck_volumes: set[str] = field(default_factory=set)
    #: Resource use per (pod, container) set by tests (set_stats); a running container without any uses 1 MiB.
    stats: dict[tuple[PodUID, str], dict[str, float]] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeRuntime:
    """In-memory PodRuntime. Containers start running at once; tests drive them with the helper methods.

    Every image can be pulled unless `make_image_missing()` was called for it; `calls` records what the
    reconciler asked for, as ("create"|"remove"|"stop"|"restart", uid) pairs (exec is not recorded).
    """

    def __init__(self, node: NodeName = FAKE_NODE, *, engine: FakeEngine | None = None) -> None:
        self.node = node
        self.engine = engine if engine is not None else FakeEngine()
        self.calls: list[tuple[str, PodUID]] = []
        self.fail_next_create: RuntimeFailure | None = None

    def reopen(self, node: NodeName | None = None) -> FakeRuntime:
        """Return a new runtime on the same engine, as a restarted agent would get."""
        return FakeRuntime(node or self.node, engine=self.engine)

    # -- PodRuntime ---------------------------------------------------------------------------------------

    def info(self) -> RuntimeInfo:
        return RuntimeInfo(name="fake", version="0.0.0", api_version="0.0.0")

    def list_pods(self) -> list[ObservedPod]:
        mine = [p for (node, _), p in self.engine.pods.items() if node == self.node]
        return sorted(mine, key=lambda p: (p.namespace, p.name, p.uid))

    def create_pod(
        self,
        pod: Pod,
        uid: PodUID,
        spec_hash: str,
        volumes: Mapping[str, ResolvedVolume] | None = None,
        devices: Mapping[str, Sequence[str]] | None = None,
        *,
        credentials: Sequence[RegistryCredential] = (),
    ) -> ObservedPod:
        self.calls.append(("create", uid))
        for image in dict.fromkeys(c.image for c in pod.spec.all_containers()):
            found = lookup(image, credentials)
            if found:  # what a pull of the image would send (first match), for tests
                self.engine.pull_credentials[image] = found[0]
        if self.fail_next_create is not None:
            failure, self.fail_next_create = self.fail_next_create, None
            raise failure
        existing = self.engine.pods.get((self.node, uid))
        if existing is not None:
            if existing.spec_hash == spec_hash:
                return existing
            self.remove_pod(uid)
        plans, mounts = self._volumes(pod, volumes)
        for container in pod.spec.all_containers():
            self._ensure_image(container.image, container.pull_policy())
            # The fake's images name no USER, so they run as root, as the demo image does on Podman.
            sc = effective(pod.spec.security_context, container.security_context)
            error = non_root_error(sc, "", f"{pod.metadata.name}_{pod.metadata.namespace}({uid})", container.name)
            if error:
                raise RuntimeFailure(error, reason=NON_ROOT_REASON)
        podname = f"ek_{pod.metadata.namespace}_{pod.metadata.name}_{uid[:8]}"
        for plan in plans.values():
            if plan.kind is not VolumeKind.HOST_PATH:
                labels = {LABEL_POD_UID: uid, LABEL_VOLUME_KIND: plan.kind.value}
                labels.update(claim_labels(plan, pod.metadata.namespace))
                self.engine.volumes[(self.node, f"{podname}_{plan.name}")] = labels
        observed = ObservedPod(
            uid=uid,
            namespace=pod.metadata.namespace,
            name=pod.metadata.name,
            spec_hash=spec_hash,
            grace_seconds=pod.spec.termination_grace_period_seconds,
            pod_id=self._new_id(podname),
            ip=self._new_ip(),
            containers=tuple(
                ObservedContainer(
                    name=c.name,
                    container_id=self._new_id(f"{podname}_{c.name}"),
                    image=c.image,
                    state=ContainerRunState.RUNNING,
                    started_at=_now(),
                    devices=tuple((devices or {}).get(c.name, ())),
                    pre_stop=_pre_stop(c),
                )
                for c in pod.spec.containers
            ),
        )
        if pod.spec.init_containers:  # every container created, none started: the agent runs them in order
            observed = replace(
                observed,
                containers=tuple(
                    replace(c, state=ContainerRunState.CREATED, started_at=None) for c in observed.containers
                ),
                init_containers=tuple(
                    ObservedContainer(
                        name=c.name, container_id=self._new_id(f"{podname}_{c.name}"), image=c.image,
                        state=ContainerRunState.CREATED, sidecar=c.restart_policy == "Always",
                        pre_stop=c.lifecycle.pre_stop if c.lifecycle else None,
                        devices=tuple((devices or {}).get(c.name, ())),
                    )
                    for c in pod.spec.init_containers
                ),
            )  # fmt: skip
        self.engine.pods[(self.node, uid)] = observed
        self.engine.mounts[uid] = mounts
        return observed

    def _volumes(
        self, pod: Pod, volumes: Mapping[str, ResolvedVolume] | None
    ) -> tuple[dict[str, VolumePlan], list[MountPlan]]:
        """The same checks as PodmanRuntime, on the real host (hostPaths, their subPaths); NFS is simulated."""
        plans, mounts = check_volumes(pod, volumes)
        for plan in plans.values():
            if plan.nfs is not None and plan.nfs.address() in self.engine.unreachable_nfs:
                raise failed_mount(plan.name, f"nfs server {plan.nfs.address()} is not reachable: no answer")
        for mount in mounts:
            plan = plans[mount.volume]
            if plan.kind is VolumeKind.HOST_PATH:
                sub_dir(mount.volume, plan.host_path, mount.sub_path)
        return plans, mounts

    def remove_pod(self, uid: PodUID, grace_seconds: int = 10) -> None:
        self.calls.append(("remove", uid))
        removed = self.engine.pods.pop((self.node, uid), None)
        if removed is not None:
            self.engine.mounts.pop(uid, None)
            for key in [k for k in self.engine.usage if k[0] == uid]:
                del self.engine.usage[key]
            for key in [k for k in self.engine.container_disk if k[0] == uid]:
                del self.engine.container_disk[key]
            for container in removed.containers:
                self.engine.logs.pop(container.container_id, None)
        volumes = self.engine.volumes
        mine = [k for k, labels in volumes.items() if k[0] == self.node and labels[LABEL_POD_UID] == uid]
        held = [k for k in mine if volumes[k].get(LABEL_PV) in self.engine.stuck_volumes]
        for volume in mine:
            if volume not in held:
                del volumes[volume]
        if held:
            raise RuntimeFailure(f"remove volume {held[0][1]}: volume is being used", reason="RemovePodError")

    def stop_pod(self, uid: PodUID, grace_seconds: int = 10) -> None:
        self.calls.append(("stop", uid))
        pod = self._pod(uid)
        self._set(pod, tuple(self._stopped(c) for c in pod.containers))

    def restart_pod(self, uid: PodUID, grace_seconds: int = 10) -> ObservedPod:
        self.calls.append(("restart", uid))
        pod = self._pod(uid)
        started = _now()
        inits = tuple(
            replace(c, state=ContainerRunState.RUNNING, exit_code=None, started_at=started, finished_at=None,
                    error=None) if c.sidecar and c.state is not ContainerRunState.RUNNING else c
            for c in pod.init_containers
        )  # fmt: skip
        pod = replace(pod, init_containers=inits)
        containers = tuple(
            replace(self._stopped(c), state=ContainerRunState.RUNNING, exit_code=None, started_at=started,
                    finished_at=None, error=None)
            for c in pod.containers
        )  # fmt: skip
        ip = pod.ip if pod.infra_running else self._new_ip()
        return self._set(replace(pod, infra_running=True, ip=ip), containers)

    def start_containers(self, uid: PodUID, names: Sequence[str]) -> ObservedPod:
        self.calls.append(("start", uid))
        pod = self._pod(uid)
        for name in names:
            self._container(uid, name)
        started = _now()

        def start(c: ObservedContainer) -> ObservedContainer:
            if c.name not in names or c.state is ContainerRunState.RUNNING:
                return c
            return replace(c, state=ContainerRunState.RUNNING, exit_code=None, started_at=started, finished_at=None,
                           error=None)  # fmt: skip

        updated = replace(
            pod, infra_running=True, ip=pod.ip if pod.infra_running else self._new_ip(),
            init_containers=tuple(start(c) for c in pod.init_containers),
            containers=tuple(start(c) for c in pod.containers),
        )  # fmt: skip
        self.engine.pods[(self.node, uid)] = updated
        return updated

    def stop_containers(self, uid: PodUID, names: Sequence[str], grace_seconds: int = 10) -> None:
        self.calls.append(("stop-containers", uid))
        pod = self._pod(uid)
        stop = set(names)
        self.engine.pods[(self.node, uid)] = replace(
            pod,
            init_containers=tuple(self._stopped(c) if c.name in stop else c for c in pod.init_containers),
            containers=tuple(self._stopped(c) if c.name in stop else c for c in pod.containers),
        )

    def exec(
        self, uid: PodUID, container: str, command: list[str], timeout: float, max_output: int = MAX_EXEC_OUTPUT
    ) -> tuple[int, str]:
        found = self._container(uid, container)
        if found.state is not ContainerRunState.RUNNING:
            raise RuntimeFailure(f"container {container!r} is not running", reason="ContainerNotRunning")
        if command[:1] == ["sleep"] and float(command[1]) > timeout:
            raise RuntimeFailure(f"command {command} timed out after {timeout:g}s", reason="Timeout")
        if (uid, container) in self.engine.exec_results:
            code, output = self.engine.exec_results[(uid, container)]
            return code, output[:max_output]
        return (1 if command[:1] == ["false"] else 0), ""

    def copy_from(self, uid: PodUID, container: str, path: str, limit: int) -> bytes:
        found = self._container(uid, container)
        files = self.engine.files.get(found.container_id, {})
        if path not in files:
            raise NotFoundError(f"{path}: no such file or directory in container {container!r}")
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as tar:
            info = tarfile.TarInfo(path.rstrip("/").rsplit("/", 1)[-1])
            info.size = len(files[path])
            tar.addfile(info, io.BytesIO(files[path]))
        if len(out.getvalue()) > limit:
            raise ValidationError(f"cp: {path} is more than the {limit} bytes (as tar) one copy carries")
        return out.getvalue()

    def copy_to(self, uid: PodUID, container: str, directory: str, tar: bytes) -> None:
        found = self._container(uid, container)
        files = self.engine.files.setdefault(found.container_id, {})
        with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
            for member in archive.getmembers():
                data = archive.extractfile(member)
                if data is not None:
                    files[f"{directory.rstrip('/')}/{member.name}"] = data.read()

    def exec_tty(self, uid: PodUID, container: str, command: list[str], rows: int, cols: int) -> TtySession:
        found = self._container(uid, container)
        if found.state is not ContainerRunState.RUNNING:
            raise RuntimeFailure(f"container {container!r} is not running", reason="ContainerNotRunning")
        return FakeTty(rows, cols)

    def wait_for_exit(self, timeout: float) -> bool:
        exited = self.engine.exits.wait(timeout)
        self.engine.exits.clear()
        return exited

    def has_image(self, image: str) -> bool:
        return image in self.engine.images

    def logs(self, uid: PodUID, container: str, tail: int | None = None, window: LogWindow | None = None) -> str:
        found = self._container(uid, container)
        text = self.engine.logs.get(found.container_id, "")
        if window is not None:
            text = self._window(found.container_id, text, window)
        if tail is None:
            return text
        lines = text.splitlines(keepends=True)
        return "".join(lines[-tail:]) if tail > 0 else ""

    def volume_usage(self, uid: PodUID) -> dict[str, int]:
        if (self.node, uid) not in self.engine.pods:
            return {}
        return {volume: used for (owner, volume), used in self.engine.usage.items() if owner == uid}

    def container_usage(self, uid: PodUID) -> dict[str, int]:
        pod = self.engine.pods.get((self.node, uid))
        if pod is None:
            return {}
        return {c.name: self.engine.container_disk.get((uid, c.name), 0) for c in pod.containers}

    def stats(self) -> list[ContainerStats]:
        out = []
        for (node, uid), pod in self.engine.pods.items():
            if node != self.node:
                continue
            for c in pod.containers:
                if c.state is not ContainerRunState.RUNNING:
                    continue
                given = self.engine.stats.get((uid, c.name), {})
                out.append(
                    ContainerStats(
                        uid=uid, namespace=pod.namespace, pod=pod.name, container=c.name, container_id=c.container_id,
                        cpu_seconds=float(given.get("cpu_seconds", 0.0)),
                        memory_bytes=int(given.get("memory_bytes", 1 << 20)),
                        memory_limit_bytes=int(given["memory_limit_bytes"]) if "memory_limit_bytes" in given else None,
                        rx_bytes=int(given.get("rx_bytes", 0)), tx_bytes=int(given.get("tx_bytes", 0)),
                        read_bytes=int(given.get("read_bytes", 0)), write_bytes=int(given.get("write_bytes", 0)),
                        pids=int(given.get("pids", 1)),
                    )
                )  # fmt: skip
        return sorted(out, key=lambda s: (s.namespace, s.pod, s.container))

    def volumes_in_use(self) -> list[str] | None:
        return volumes_in_use(labels for (node, _), labels in self.engine.volumes.items() if node == self.node)

    # -- test helpers -------------------------------------------------------------------------------------

    def make_image_missing(self, image: str) -> None:
        """Make the image neither present nor pullable (create_pod fails: ErrImagePull/ErrImageNeverPull)."""
        self.engine.images.discard(image)
        self.engine.unpullable.add(image)

    def add_image(self, image: str) -> None:
        self.engine.images.add(image)
        self.engine.unpullable.discard(image)

    def exit_container(self, uid: PodUID, container: str, exit_code: int = 0, error: str | None = None) -> None:
        """Mark a container exited, as if its process ended with `exit_code` (error e.g. "OOMKilled")."""
        pod = self._pod(uid)
        self._container(uid, container)

        def exit_(c: ObservedContainer) -> ObservedContainer:
            if c.name != container:
                return c
            return replace(c, state=ContainerRunState.EXITED, exit_code=exit_code, finished_at=_now(), error=error)

        self.engine.pods[(self.node, uid)] = replace(
            pod, containers=tuple(map(exit_, pod.containers)), init_containers=tuple(map(exit_, pod.init_containers))
        )
        self.engine.exits.set()

    def kill_container(self, uid: PodUID, container: str) -> None:
        """`podman kill` one container: it exits 137 (SIGKILL)."""
        self.exit_container(uid, container, 137)

    def power_off(self) -> None:
        """What a reboot (or `podman pod stop -a`) leaves: every container and infra container stopped."""
        for key, pod in list(self.engine.pods.items()):
            if key[0] == self.node:
                stopped = replace(pod, infra_running=False, ip=None)
                self.engine.pods[key] = replace(
                    stopped, containers=tuple(self._stopped(c) for c in pod.containers),
                    init_containers=tuple(self._stopped(c) for c in pod.init_containers),
                )  # fmt: skip
        self.engine.exits.set()

    def set_stats(self, uid: PodUID, container: str, **values: float) -> None:
        """What stats() answers for one container (cpu_seconds, memory_bytes, rx_bytes, ...)."""
        self.engine.stats[(uid, container)] = {**self.engine.stats.get((uid, container), {}), **values}

    def fill_container(self, uid: PodUID, container: str, used: int) -> None:
        """Make a container of the pod hold `used` bytes on disk (what container_usage then reports)."""
        self.engine.container_disk[(uid, container)] = used

    def fill_volume(self, uid: PodUID, volume: str, used: int) -> None:
        """Make a disk emptyDir of the pod use `used` bytes (what volume_usage then reports)."""
        self.engine.usage[(uid, volume)] = used

    def set_exec_result(self, uid: PodUID, container: str, exit_code: int, output: str = "") -> None:
        """Make every exec in that container answer `exit_code` and `output`."""
        self.engine.exec_results[(uid, container)] = (exit_code, output)

    def write_log(self, uid: PodUID, container: str, text: str, at: float | None = None) -> None:
        """Append to a container's log, its lines written at Unix time `at` (default now)."""
        found = self._container(uid, container)
        self.engine.logs[found.container_id] = self.engine.logs.get(found.container_id, "") + text
        when = time.time() if at is None else at
        lines = self.engine.log_times.setdefault(found.container_id, [])
        lines += [(when, line) for line in text.splitlines(keepends=True)]

    def _window(self, container_id: str, text: str, window: LogWindow) -> str:
        timed = self.engine.log_times.get(container_id) or [(0.0, line) for line in text.splitlines(keepends=True)]
        low = -math.inf if window.since is None else window.since
        high = math.inf if window.until is None else window.until
        kept = [(t, line) for t, line in timed if low <= t <= high]
        if window.timestamps:
            return "".join(f"{rfc3339_nano(t)} {line}" for t, line in kept)
        return "".join(line for _t, line in kept)

    # -- internals ----------------------------------------------------------------------------------------

    def _new_ip(self) -> str:
        n = next(self.engine.addresses)
        return f"10.88.{n // 254 % 256}.{n % 254 + 1}"

    @staticmethod
    def _stopped(container: ObservedContainer) -> ObservedContainer:
        if container.state is not ContainerRunState.RUNNING:
            return container
        # SIGTERM ends it: 128 + 15, as a shell without a trap reports it.
        return replace(container, state=ContainerRunState.EXITED, exit_code=143, finished_at=_now())

    def _set(self, pod: ObservedPod, containers: tuple[ObservedContainer, ...]) -> ObservedPod:
        updated = replace(pod, containers=containers)
        self.engine.pods[(self.node, pod.uid)] = updated
        return updated

    def _new_id(self, seed: str) -> str:
        return hashlib.sha256(f"{seed}#{next(self.engine.ids)}".encode()).hexdigest()

    def _ensure_image(self, image: str, policy: PullPolicy) -> None:
        present = image in self.engine.images
        if policy != PullPolicy.ALWAYS and present:
            return
        if policy == PullPolicy.NEVER:
            raise never_pull(image)
        if image in self.engine.unpullable:
            raise ImageFailure(image, "not found")
        self.engine.images.add(image)

    def _pod(self, uid: PodUID) -> ObservedPod:
        pod = self.engine.pods.get((self.node, uid))
        if pod is None:
            raise NotFoundError(f"pod {uid} not found on node {self.node}")
        return pod

    def _container(self, uid: PodUID, name: str) -> ObservedContainer:
        pod = self._pod(uid)
        for container in (*pod.init_containers, *pod.containers):
            if container.name == name:
                return container
        raise NotFoundError(f"container {name!r} not found in pod {pod.namespace}/{pod.name}")


def _pre_stop(container: Container) -> LifecycleHandler | None:
    """The container's preStop hook as Podman's label gives it back (named ports resolved)."""
    hook = container.lifecycle.pre_stop if container.lifecycle else None
    if hook is None:
        return None
    return restored(stored(hook, {p.name: p.container_port for p in container.ports if p.name}))


def rfc3339_nano(at: float) -> str:
    """Podman's `--timestamps` prefix: RFC 3339 with nanoseconds, UTC."""
    stamp = datetime.fromtimestamp(at, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond * 1000:09d}Z"


class FakeTty:
    """A terminal that echoes its input; `exit N` (a line) ends it with code N. Its size is kept for tests."""

    def __init__(self, rows: int, cols: int) -> None:
        self.size = (rows, cols)
        self._out: list[bytes] = []
        self._code: int | None = None
        self._ready = threading.Condition()

    def read(self) -> bytes:
        with self._ready:
            while not self._out and self._code is None:
                self._ready.wait()
            return self._out.pop(0) if self._out else b""

    def write(self, data: bytes) -> None:
        with self._ready:
            self._out.append(data)
            text = data.decode(errors="replace").strip()
            if text.startswith("exit"):
                self._code = int(text.split()[1]) if len(text.split()) > 1 else 0
            self._ready.notify_all()

    def resize(self, rows: int, cols: int) -> None:
        self.size = (rows, cols)

    def exit_code(self) -> int:
        return self._code or 0

    def close(self) -> None:
        with self._ready:
            self._code = 129 if self._code is None else self._code  # hung up: 128 + SIGHUP
            self._ready.notify_all()
