"""The node's desired state: accepts newer generations only, and keeps a local copy so pods survive a lost master."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from edgekube.agent.reconcile import DesiredPod, spec_hash
from edgekube.model.errors import ValidationError
from edgekube.model.names import PodUID
from edgekube.model.pod import Pod
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


@dataclass
class DesiredState:
    """Current desired set. Only written when a new generation is accepted (rare), never on heartbeats."""

    path: Path | None = None
    epoch: str = ""
    generation: int = -1
    pods: list[DesiredPod] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)

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

    def offer(self, message: NodeDesired, raw: bytes) -> bool:
        """Take a newer desired state; duplicates and stale generations (same epoch) return False."""
        if message.epoch == self.epoch and message.generation <= self.generation:
            return False
        self._adopt(message)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path, raw)
        return True

    def _adopt(self, message: NodeDesired) -> None:
        pods: list[DesiredPod] = []
        rejected: dict[str, str] = {}
        for i, raw in enumerate(message.pods):
            try:
                pod = Pod.from_dict(raw)
            except ValidationError as exc:
                # One bad pod must not stop the node from running the others.
                meta = raw.get("metadata")
                name = meta.get("name") if isinstance(meta, dict) else None
                rejected[str(name or f"pods[{i}]")] = str(exc)
                continue
            uid = pod.metadata.uid or ""
            if not uid:
                rejected[pod.metadata.name] = "metadata.uid: Required value"
                continue
            pods.append(DesiredPod(PodUID(uid), pod, spec_hash(uid, pod.spec.to_dict())))
        for name, why in rejected.items():
            log.error("desired pod %s rejected: %s", name, why)
        self.epoch, self.generation, self.pods, self.rejected = message.epoch, message.generation, pods, rejected
