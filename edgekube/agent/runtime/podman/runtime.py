"""PodmanRuntime, the agent's PodRuntime over Podman's REST socket: a thin facade over transport/create/observe/stop."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from edgekube.agent.runtime.podman import archive
from edgekube.agent.runtime.podman.create import PodCreator
from edgekube.agent.runtime.podman.diskusage import DiskUsage
from edgekube.agent.runtime.podman.exec import Executor
from edgekube.agent.runtime.podman.images import image_exists
from edgekube.agent.runtime.podman.network import PodNetwork
from edgekube.agent.runtime.podman.network import ensure as ensure_network
from edgekube.agent.runtime.podman.observe import Observer
from edgekube.agent.runtime.podman.stats import container_stats
from edgekube.agent.runtime.podman.stop import PodStopper
from edgekube.agent.runtime.podman.transport import PodmanTransport
from edgekube.agent.runtime.podman.ttyexec import open_tty
from edgekube.agent.runtime.protocol import (
    MAX_EXEC_OUTPUT,
    ContainerRunState,
    ContainerStats,
    LogWindow,
    ObservedPod,
    RuntimeInfo,
    TtySession,
)
from edgekube.agent.runtime.volumes import nfs_mode
from edgekube.model.errors import EdgekubeError, NotFoundError, RuntimeFailure
from edgekube.model.names import NodeName, PodUID
from edgekube.model.pod import Pod
from edgekube.model.registryauth import RegistryCredential
from edgekube.model.storage import ResolvedVolume

log = logging.getLogger(__name__)

#: Podman's word for a name taken by an object left over from a create that died half-way.
_TAKEN = "already exists"


class PodmanRuntime:
    """PodRuntime on a Podman API socket (`unix:///…/podman.sock`) for node `node`.

    All state is read back from Podman by label, so a new instance adopts pods an earlier process created.
    emptyDir and NFS volumes are Podman named volumes `<podname>_<volume>` (medium Memory → tmpfs; NFS through
    the kernel or edgekube's FUSE helper, per `nfs_client`), removed with the pod; hostPaths and subPaths of
    disk volumes are binds (see podman/volumes.py). `nfs_timeout` bounds the wait for an NFS server's answer.
    The claim volumes it holds (volumes_in_use) are listed again after every create and removal, and at least
    every `volume_refresh` seconds by wait_for_exit (the agent's watch thread), never by the loop's calls.
    """

    def __init__(
        self,
        socket_url: str,
        node: NodeName,
        *,
        timeout: float = 60.0,
        pull_timeout: float = 120.0,
        nfs_client: str = "auto",
        nfs_timeout: float = 5.0,
        volume_refresh: float = 10.0,
    ) -> None:
        self.socket_url = socket_url
        self.node = node
        self.transport = PodmanTransport(socket_url, timeout=timeout)
        self._observer = Observer(self.transport, node)
        self.nfs_mode = nfs_mode(nfs_client)
        self._creator = PodCreator(self.transport, node, pull_timeout, nfs_mode=self.nfs_mode, nfs_timeout=nfs_timeout)
        self._stopper = PodStopper(self.transport, node)
        self._executor = Executor(self.transport, self._observer)
        self._disk = DiskUsage(self.transport, node)
        self.volume_refresh = volume_refresh
        self._listing = threading.Lock()  # one listing at a time, so an older answer never replaces a newer one
        self._in_use: list[str] | None = None
        self._listed_at = 0.0
        self._creating: set[str] = set()  # uids whose create is in flight: their volumes exist before their pod
        self._touched: set[str] = set()  # uids whose create was in flight at some time since the sweep began

    def close(self) -> None:
        self.transport.close()

    def use_pod_network(self, network: PodNetwork | None, *, required: bool = True) -> None:
        """Create pods on `network` from now on (made in Podman first); `required`: refuse pods while it is None."""
        if network is not None:
            ensure_network(self.transport, network)
        self._creator.network = network
        self._creator.network_required = required

    def use_service_env(self, env: Callable[[str], dict[str, str]] | None) -> None:
        """New containers get `env(namespace)` (Kubernetes' service variables) under their own env."""
        self._creator.service_env = env

    def info(self) -> RuntimeInfo:
        return self._observer.info()

    def list_pods(self) -> list[ObservedPod]:
        pods = self._observer.list_pods()
        self._executor.retain({str(p.uid) for p in pods})
        if self._in_use is None:
            # Once per process: an agent that restarts must not report no volumes while it still holds some.
            self._list_volumes()
        return pods

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
        """Create and start the pod (see PodRuntime); repeating the call returns the pod already there.

        If a pod for `uid` exists but with another spec hash or with containers missing (an agent that died
        mid-create), it is removed and created afresh, so the result always matches the arguments. The happy
        path costs one lookup, one call per object created or started, and one read-back.
        """
        existing = self._observer.find_pod(uid)
        if existing is not None:
            names = {c.name for c in (*existing.init_containers, *existing.containers)}
            if existing.spec_hash == spec_hash and names == {c.name for c in pod.spec.all_containers()}:
                return existing
            self.remove_pod(uid, grace_seconds=pod.spec.termination_grace_period_seconds)
        with self._listing:
            self._creating.add(uid)
            self._touched.add(uid)
        try:
            self._create(pod, uid, spec_hash, volumes, devices, credentials=credentials)
        except RuntimeFailure as exc:
            if _TAKEN not in str(exc):
                raise
            # Leftovers of a crashed create (a volume, a pod without containers) hold the names: clear, retry.
            self._create(pod, uid, spec_hash, volumes, devices, credentials=credentials)
        finally:
            with self._listing:
                self._creating.discard(uid)
            self._list_volumes()
        observed = self._observer.find_pod(uid)
        if observed is None:
            raise RuntimeFailure(f"pod {pod.metadata.name} vanished right after it was started", reason="RuntimeError")
        return observed

    def _create(
        self,
        pod: Pod,
        uid: PodUID,
        spec_hash: str,
        volumes: Mapping[str, ResolvedVolume] | None,
        devices: Mapping[str, Sequence[str]] | None = None,
        *,
        credentials: Sequence[RegistryCredential] = (),
    ) -> None:
        try:
            self._creator.create(pod, uid, spec_hash, volumes, devices, credentials=credentials)
        except BaseException:
            with contextlib.suppress(EdgekubeError):
                self._stopper.purge(uid)
            raise

    def remove_pod(self, uid: PodUID, grace_seconds: int = 10) -> None:
        try:
            running = self._stopper.running(uid)
            if running:
                self._stop_in_order(uid, running, grace_seconds)
            self._stopper.purge(uid)
        finally:
            self._list_volumes()

    def _stop_in_order(self, uid: PodUID, running: set[str], grace_seconds: int) -> None:
        """App containers first, then the running sidecars last one first (the kubelet's order), in one grace."""
        pod = self._observer.find_pod(uid)
        sidecars = [c.container_id for c in reversed(pod.init_containers) if c.container_id in running] if pod else []
        if not sidecars:
            self._stopper.stop(uid, running, grace_seconds)
            return
        deadline = time.monotonic() + max(grace_seconds, 0)
        apps = running - set(sidecars)
        if apps:
            self._stopper.stop(uid, apps, grace_seconds, wait_killed=True)
        for container_id in sidecars:
            self._stopper.stop(uid, {container_id}, int(max(deadline - time.monotonic(), 0)), wait_killed=True)

    def start_containers(self, uid: PodUID, names: Sequence[str]) -> ObservedPod:
        pod = self._observer.find_pod(uid)
        if pod is None:
            raise NotFoundError(f"pod {uid} not found on node {self.node}")
        ids = {c.name: c.container_id for c in (*pod.init_containers, *pod.containers)}
        missing = [n for n in names if n not in ids]
        if missing:
            raise NotFoundError(f"container {missing[0]!r} not found in pod {pod.namespace}/{pod.name}")
        self._creator.start(pod.pod_id, f"{pod.namespace}/{pod.name}", [ids[n] for n in names])
        started = self._observer.find_pod(uid)
        if started is None:
            raise RuntimeFailure(f"pod {pod.namespace}/{pod.name} vanished while starting", reason="RuntimeError")
        return started

    def stop_containers(self, uid: PodUID, names: Sequence[str], grace_seconds: int = 10) -> None:
        pod = self._observer.find_pod(uid)
        if pod is None:
            raise NotFoundError(f"pod {uid} not found on node {self.node}")
        running = {
            c.name: c.container_id
            for c in (*pod.init_containers, *pod.containers)
            if c.state is ContainerRunState.RUNNING
        }
        deadline = time.monotonic() + max(grace_seconds, 0)
        for name in names:
            if name in running:
                grace = int(max(deadline - time.monotonic(), 0))
                self._stopper.stop(uid, {running[name]}, grace, wait_killed=True)

    def stop_pod(self, uid: PodUID, grace_seconds: int = 10) -> None:
        self._stop_running(uid, grace_seconds)

    def restart_pod(self, uid: PodUID, grace_seconds: int = 10) -> ObservedPod:
        """Stop what runs, then start the infra container (if it stopped), stopped sidecars, every app container."""
        pod = self._stop_running(uid, grace_seconds)
        name = f"{pod.namespace}/{pod.name}"
        sidecars = [c for c in pod.init_containers if c.sidecar and c.state is not ContainerRunState.RUNNING]
        for sidecar in sidecars:  # in order, before the app containers, as when the pod first started
            self._creator.start(pod.pod_id, name, [sidecar.container_id])
        self._creator.start(pod.pod_id, name, [c.container_id for c in pod.containers])
        restarted = self._observer.find_pod(uid)
        if restarted is None:
            raise RuntimeFailure(f"pod {pod.namespace}/{pod.name} vanished while restarting", reason="RuntimeError")
        return restarted

    def _stop_running(self, uid: PodUID, grace_seconds: int) -> ObservedPod:
        pod = self._observer.find_pod(uid)
        if pod is None:
            raise NotFoundError(f"pod {uid} not found on node {self.node}")
        running = {c.container_id for c in pod.containers if c.state is ContainerRunState.RUNNING}
        if running:
            self._stopper.stop(uid, running, grace_seconds, wait_killed=True)
        return pod

    def exec(
        self, uid: PodUID, container: str, command: list[str], timeout: float, max_output: int = MAX_EXEC_OUTPUT
    ) -> tuple[int, str]:
        return self._executor.exec(uid, container, command, timeout, max_output)

    def copy_from(self, uid: PodUID, container: str, path: str, limit: int) -> bytes:
        return archive.copy_from(self.transport, self._observer, uid, container, path=path, limit=limit)

    def copy_to(self, uid: PodUID, container: str, directory: str, tar: bytes) -> None:
        archive.copy_to(self.transport, self._observer, uid, container, directory=directory, tar=tar)

    def exec_tty(self, uid: PodUID, container: str, command: list[str], rows: int, cols: int) -> TtySession:
        return open_tty(self.transport, self._observer, uid, container, command, size=(rows, cols))

    def wait_for_exit(self, timeout: float) -> bool:
        """Podman's exit events (see Observer); first, when due, the claim volumes are listed: True if they changed."""
        if time.monotonic() - self._listed_at >= self.volume_refresh:
            self._sweep()
            if self._list_volumes():
                return True
        return self._observer.wait_for_exit(timeout)

    def has_image(self, image: str) -> bool:
        return image_exists(self.transport, image)

    def logs(self, uid: PodUID, container: str, tail: int | None = None, window: LogWindow | None = None) -> str:
        return self._observer.logs(uid, container, tail, window)

    def volume_usage(self, uid: PodUID) -> dict[str, int]:
        return self._creator.volumes.usage(uid)

    def container_usage(self, uid: PodUID) -> dict[str, int]:
        return self._disk.of_pod(uid)

    def stats(self) -> list[ContainerStats]:
        return container_stats(self.transport, self.node)

    def volumes_in_use(self) -> list[str] | None:
        """The claim volumes as last listed (no call to Podman); None before the first listing."""
        found = self._in_use
        return None if found is None else list(found)

    def _sweep(self) -> None:
        """Remove volumes left by pods that are gone (a removal Podman refused while it still counted a user)."""
        with self._listing:
            self._touched = set(self._creating)

        def keep() -> set[str]:
            with self._listing:
                return self._touched | self._creating

        try:
            removed = self._stopper.sweep_orphans(keep)
        except EdgekubeError as exc:
            log.warning("sweeping leftover volumes failed: %s", exc)
            return
        for name in removed:
            log.info("removed leftover volume %s (its pod is gone)", name)

    def _list_volumes(self) -> bool:
        """List this node's claim volumes now; True if that changed what volumes_in_use answers.

        An engine that does not answer leaves the last list as it was (and the next call tries again).
        """
        with self._listing:
            try:
                found = self._creator.volumes.in_use()
            except EdgekubeError as exc:
                log.warning("listing volumes in use failed: %s", exc)
                return False
            changed, self._in_use, self._listed_at = found != self._in_use, found, time.monotonic()
        if changed:
            log.info("volumes in use: %s", ", ".join(found) or "none")
        return changed
