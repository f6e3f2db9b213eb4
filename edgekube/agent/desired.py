"""The node's desired state: accepts newer generations only, and keeps a local copy so pods survive a lost master.

With two masters (docs/ha.md) each message also carries its master's term: the highest term accepted is kept with
the local copy, and a message of a lower term (a deposed master) is refused whatever its generation.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekube.agent.reconcile import DesiredPod, spec_hash
from edgekube.model.config import CONFIG_KEY, WAIT_ENV, ResolvedConfig
from edgekube.model.errors import ValidationError
from edgekube.model.lenient import decode_stored
from edgekube.model.names import PodUID
from edgekube.model.pod import Pod
from edgekube.model.storage import RESOLVED_VOLUMES_KEY, ResolvedVolume
from edgekube.model.wire import NodeDesired

log = logging.getLogger(__name__)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so a power cut leaves the old or the new file, never a torn one."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


#: The end of the Warning event of a pod the agent cannot read (reason FailedToDecode).
KEPT = "the running pod is kept as it is until the master sends a spec this agent can read"


@dataclass
class DesiredState:
    """Current desired set. Only written when a new generation is accepted (rare), never on heartbeats."""

    path: Path | None = None
    epoch: str = ""
    generation: int = -1
    #: The highest master term accepted (0: masters without terms); kept on disk inside the local copy.
    term: int = 0
    pods: list[DesiredPod] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    #: Pods of the message that cannot be read even leniently, by uid: a running one is kept, never removed
    #: for that alone (as a kubelet keeps a pod whose object it cannot decode); the agent reports why.
    undecodable: dict[PodUID, tuple[str, str, str]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> DesiredState:
        state = cls(path=path)
        if path.exists():
            try:
                message = NodeDesired.decode(path.read_bytes(), what=str(path))
                state._adopt(message)
                log.info("loaded desired state generation %s from %s", state.generation, path)
            except ValidationError as exc:
                log.error("ignoring unreadable local desired state: %s", exc)
        return state

    def stale(self, message: NodeDesired) -> bool:
        """The message comes from a master of an older term than one this node accepted: it must be refused."""
        return message.term < self.term

    def offer(self, message: NodeDesired, raw: bytes) -> bool:
        """Take a newer desired state; duplicates, stale generations (same epoch) and older terms return False.

        A higher term is taken whatever its epoch and generation (a new active master); within one term the
        epoch and generation decide. The generation loaded from disk is taken again when it came without its
        Secret values (without_secrets): the master's retained copy of it has them.
        """
        if self.stale(message):
            return False
        newer_term = message.term > self.term
        if not newer_term and message.epoch == self.epoch and message.generation <= self.generation:
            if not (message.generation == self.generation and self._without_secrets()):
                return False
            self._adopt(message)
            return True  # the local copy already holds this generation (without the values)
        self._adopt(message)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path, without_secrets(raw))
        return True

    def _without_secrets(self) -> bool:
        return any(d.config is not None and d.config.waiting == SECRETS_NOT_KEPT for d in self.pods)

    def _adopt(self, message: NodeDesired) -> None:
        pods: list[DesiredPod] = []
        rejected: dict[str, str] = {}
        undecodable: dict[PodUID, tuple[str, str, str]] = {}
        for i, item in enumerate(message.pods):
            raw = dict(item)
            sources = raw.pop(RESOLVED_VOLUMES_KEY, None)
            config_raw = raw.pop(CONFIG_KEY, None)
            try:
                # Read back, not re-validated: a pod accepted before an upgrade's new rules is still desired.
                pod = decode_stored(Pod, raw, what="pod")
                volumes = _volume_sources(pod, sources)
                config = None if config_raw is None else ResolvedConfig.from_dict(config_raw)
            except ValidationError as exc:
                # One bad pod must not stop the node from running the others.
                meta = raw.get("metadata")
                meta = meta if isinstance(meta, dict) else {}
                name = meta.get("name")
                rejected[str(name or f"pods[{i}]")] = str(exc)
                if meta.get("uid"):
                    where = (str(meta.get("namespace") or "default"), str(name), str(exc))
                    undecodable[PodUID(str(meta["uid"]))] = where
                continue
            uid = pod.metadata.uid or ""
            if not uid:
                rejected[pod.metadata.name] = "metadata.uid: Required value"
                continue
            identity = {name: v.to_dict() for name, v in sorted(volumes.items())}
            pods.append(DesiredPod(PodUID(uid), pod, spec_hash(uid, pod.spec.to_dict(), identity), volumes, config))
        for name, why in rejected.items():
            log.error("desired pod %s rejected: %s", name, why)
        self.epoch, self.generation, self.pods, self.rejected = message.epoch, message.generation, pods, rejected
        self.undecodable = undecodable
        self.term = message.term


#: What a pod that uses Secrets carries in the local copy instead: after a reboot it waits for the master.
SECRETS_NOT_KEPT = "secret values are kept in memory only: waiting for the master to send them again"


def without_secrets(raw: bytes) -> bytes:
    """The desired state as kept on local disk: a pod's Secret-derived values never reach the SD card.

    Its resolved config is replaced by a wait (CreateContainerConfigError), so a node rebooted without its master
    does not start it with values it no longer has, as a kubelet cannot fetch a Secret without its API server.
    """
    if b'"secret":true' not in raw:
        return raw
    data = json.loads(raw)
    for pod in data.get("pods") or ():
        config = pod.get(CONFIG_KEY) if isinstance(pod, dict) else None
        if isinstance(config, dict) and config.get("secret"):
            pod[CONFIG_KEY] = {"waiting": SECRETS_NOT_KEPT, "reason": WAIT_ENV, "secret": True}
    return json.dumps(data, separators=(",", ":")).encode()


def _volume_sources(pod: Pod, raw: Any) -> dict[str, ResolvedVolume]:
    """The pod's `volumeSources`: a ResolvedVolume per persistentVolumeClaim volume; ValidationError names the entry.

    A claim volume with no entry is fine here (the pod waits in ContainerCreating until the master sends one).
    """
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValidationError(f"{RESOLVED_VOLUMES_KEY}: Invalid value: must be a mapping of volume name to source")
    claims = {v.name: v.persistent_volume_claim for v in pod.spec.volumes if v.persistent_volume_claim is not None}
    out: dict[str, ResolvedVolume] = {}
    for name, value in raw.items():
        where = f"{RESOLVED_VOLUMES_KEY}[{name}]"
        claim = claims.get(str(name))
        if claim is None:
            raise ValidationError(f"{where}: Not found: no persistentVolumeClaim volume {name!r} in spec.volumes")
        if not isinstance(value, dict):
            raise ValidationError(f"{where}: Invalid value: must be a ResolvedVolume mapping")
        try:
            resolved = ResolvedVolume.from_dict(value)
        except ValidationError as exc:
            raise ValidationError(f"{where}: {exc}") from None
        if resolved.claim_name != claim.claim_name:
            raise ValidationError(
                f"{where}.claimName: Invalid value: {resolved.claim_name!r}: the volume mounts claim "
                f"{claim.claim_name!r}"
            )
        if resolved.nfs is None and resolved.host_path is None:
            raise ValidationError(f"{where}: Required value: a source (nfs or hostPath)")
        out[str(name)] = resolved
    return out
