"""ConfigMap, Secret and downward API volumes on the node: files written like the kubelet's AtomicWriter; PodActions.

Each config volume of a pod is a directory `<root>/<pod uid>/<volume>` (root on tmpfs: secrets never touch the SD
card) holding a timestamped directory with the files, a `..data` symlink to it, and one symlink per top-level
name pointing through `..data`. An update writes a new timestamped directory and swaps `..data` with one
rename, so a reader sees the old set or the new one, never a mix; the old directory is then removed. The pod is
created with each config volume as a read-only bind of its directory (`prepare` returns the Pod rewritten so,
with env resolved), which is how updates reach a running pod's files without a restart while its env stays.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from edgekube.model.config import ProjectedFile, ResolvedConfig
from edgekube.model.errors import RuntimeFailure
from edgekube.model.names import PodUID
from edgekube.model.pod import CONFIG_SOURCES, Container, EnvVar, Pod, Volume

log = logging.getLogger(__name__)

DATA_DIR = "..data"
_DATA_TMP = "..data_tmp"


def _digest(files: Sequence[ProjectedFile]) -> str:
    blob = "\n".join(f"{f.path}\0{f.mode}\0{f.data}" for f in sorted(files, key=lambda f: f.path))
    return hashlib.sha256(blob.encode()).hexdigest()


class AtomicWriter:
    """Writes a set of files into `target` as the kubelet's pkg/volume/util/atomic_writer.go does."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def current(self) -> dict[str, tuple[int, bytes]]:
        """{path: (mode, content)} of what `..data` points to now ({} if nothing was written)."""
        data = self.target / DATA_DIR
        if not data.is_symlink():
            return {}
        root = self.target / os.readlink(data)
        out: dict[str, tuple[int, bytes]] = {}
        for dirpath, _dirs, names in os.walk(root):
            for name in names:
                path = Path(dirpath) / name
                out[str(path.relative_to(root))] = (path.stat().st_mode & 0o777, path.read_bytes())
        return out

    def write(self, files: Sequence[ProjectedFile], *, now: float | None = None) -> bool:
        """Make the directory hold exactly `files`; False (nothing touched) if it already does."""
        wanted = {f.path: (f.mode, base64.b64decode(f.data)) for f in files}
        if (self.target / DATA_DIR).is_symlink() and self.current() == wanted:
            return False
        self.target.mkdir(parents=True, exist_ok=True)
        os.chmod(self.target, 0o755)
        stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime(now if now is not None else time.time()))
        fresh = self.target / f"..{stamp}.{os.urandom(5).hex()}"
        fresh.mkdir(mode=0o755)
        os.chmod(fresh, 0o755)
        for path, (mode, content) in wanted.items():
            dest = fresh / path
            dest.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, content)
            finally:
                os.close(fd)
            os.chmod(
                dest, mode
            )  # after the write: the mode (0400 say) may forbid writing, and umask must not narrow it
        old = os.readlink(self.target / DATA_DIR) if (self.target / DATA_DIR).is_symlink() else None
        tmp = self.target / _DATA_TMP
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(fresh.name, tmp)
        os.replace(tmp, self.target / DATA_DIR)  # the one atomic step: readers now see the new set
        tops = {Path(p).parts[0] for p in wanted}
        for top in tops:
            link = self.target / top
            if not link.is_symlink():
                os.symlink(f"{DATA_DIR}/{top}", link)
        for entry in self.target.iterdir():
            if entry.name.startswith(".."):
                continue
            if entry.is_symlink() and entry.name not in tops:
                entry.unlink()  # a key that is gone
        if old is not None and old != fresh.name:
            shutil.rmtree(self.target / old, ignore_errors=True)
        return True


class ConfigFiles:
    """The config volumes of this node's pods under `root` (tmpfs), by pod uid; thread-safe."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._written: dict[tuple[str, str], str] = {}  # (uid, volume) -> digest of what was written last

    def volume_dir(self, uid: PodUID, volume: str) -> Path:
        return self.root / uid / volume

    def prepare(self, pod: Pod, uid: PodUID, config: ResolvedConfig | None) -> Pod:
        """Write the pod's config volumes; the Pod as the runtime should create it (binds, env resolved).

        RuntimeFailure (FailedMount / CreateContainerConfigError, the kubelet's message) while the master says a
        source is missing: the pod waits in ContainerCreating and is retried.
        """
        if config is None:
            return pod
        if config.waiting:
            if config.volume:
                raise RuntimeFailure(
                    f'MountVolume.SetUp failed for volume "{config.volume}" : {config.waiting}', reason=config.reason
                )
            raise RuntimeFailure(config.waiting, reason=config.reason)
        self.sync(uid, config)
        volumes = []
        for volume in pod.spec.volumes:
            if volume.source_kind() in CONFIG_SOURCES:
                source = {"path": str(self.volume_dir(uid, volume.name)), "type": "Directory"}
                volumes.append(Volume.model_validate({"name": volume.name, "hostPath": source}))
            else:
                volumes.append(volume)
        config_volumes = {v.name for v in pod.spec.volumes if v.source_kind() in CONFIG_SOURCES}

        def configured(container: Container) -> Container:
            mounts = [
                m.model_copy(update={"read_only": True}) if m.name in config_volumes else m
                for m in container.volume_mounts
            ]
            update: dict[str, object] = {"volume_mounts": mounts}
            if container.name in config.env:
                env = config.env[container.name]
                update.update(env=[EnvVar(name=k, value=v) for k, v in env.items()], env_from=None)
            return container.model_copy(update=update)

        update: dict[str, object] = {"volumes": volumes, "containers": [configured(c) for c in pod.spec.containers]}
        if pod.spec.init_containers:
            update["init_containers"] = [configured(c) for c in pod.spec.init_containers]
        spec = pod.spec.model_copy(update=update)
        return pod.model_copy(update={"spec": spec})

    def sync(self, uid: PodUID, config: ResolvedConfig) -> bool:
        """Bring the pod's volume directories to `config` (an update swaps `..data`); True if any changed."""
        if config.waiting:
            return False  # keep what the pod has until the master has all of it again (the kubelet does too)
        changed = False
        for volume, files in config.files.items():
            key = (uid, volume)
            digest = _digest(files)
            with self._lock:
                if self._written.get(key) == digest:
                    continue
            try:
                changed |= AtomicWriter(self.volume_dir(uid, volume)).write(files)
            except OSError as exc:
                raise RuntimeFailure(
                    f'MountVolume.SetUp failed for volume "{volume}" : cannot write its files: {exc}',
                    reason="FailedMount",
                ) from exc
            with self._lock:
                self._written[key] = digest
        return changed

    def update_running(self, pods: Iterable[tuple[PodUID, ResolvedConfig | None]]) -> list[PodUID]:
        """Write new values into running pods' volumes (their files change, their env does not); the uids updated."""
        updated = []
        for uid, config in pods:
            if config is None or not config.files:
                continue
            try:
                if self.sync(uid, config):
                    updated.append(uid)
            except RuntimeFailure as exc:
                log.warning("pod %s: %s", uid, exc)
        return updated

    def remove(self, uid: PodUID) -> None:
        """Remove the pod's directories (after its containers are gone)."""
        shutil.rmtree(self.root / uid, ignore_errors=True)
        with self._lock:
            for key in [k for k in self._written if k[0] == uid]:
                del self._written[key]

    def sweep(self, keep: Mapping[PodUID, object] | set[PodUID]) -> None:
        """Remove the directories of pods neither desired nor present (a restarted agent finds them)."""
        with contextlib.suppress(FileNotFoundError):
            for entry in self.root.iterdir():
                if entry.name not in keep:
                    self.remove(PodUID(entry.name))
