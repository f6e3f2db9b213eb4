"""Restart counts, last terminations and finished pods, kept in `state_dir/restarts.json`; owned by Agent."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekube.agent.desired import write_atomically
from edgekube.model.names import PodUID

log = logging.getLogger(__name__)

_FORMAT = "edgekube/agent-restarts/v1"


@dataclass
class PodRecord:
    """What outlives a container restart; bound to one Podman pod (a re-created pod starts from zero)."""

    pod_id: str
    restart_count: dict[str, int] = field(default_factory=dict)  # container → restarts
    last_state: dict[str, dict[str, Any]] = field(default_factory=dict)  # container → {"terminated": {...}}
    finished: str | None = None  # "Succeeded" / "Failed" once the pod ended for good
    message: str = ""  # why it finished

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"podId": self.pod_id, "restartCount": self.restart_count}
        if self.last_state:
            out["lastState"] = self.last_state
        if self.finished:
            out["finished"] = self.finished
            out["message"] = self.message
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PodRecord:
        counts = data.get("restartCount") or {}
        last = data.get("lastState") or {}
        return cls(
            pod_id=str(data["podId"]),
            restart_count={str(k): int(v) for k, v in counts.items()},
            last_state={str(k): dict(v) for k, v in last.items() if isinstance(v, dict)},
            finished=str(data["finished"]) if data.get("finished") else None,
            message=str(data.get("message") or ""),
        )


class RestartLedger:
    """Per-pod records, saved atomically on every change; thread-safe (background restarts write too).

    Written only when a pod restarts or finishes (never per heartbeat or resync: SD cards wear out), so
    counts survive an agent restart or a reboot, and a finished job is not started again after one.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._pods: dict[PodUID, PodRecord] = {}
        self._lock = threading.Lock()
        self.writes = 0  # how often the file was written (tests check the SD-card promise)

    @classmethod
    def load(cls, path: Path) -> RestartLedger:
        ledger = cls(path)
        if not path.exists():
            return ledger
        try:
            data = json.loads(path.read_bytes())
            if data.get("format") != _FORMAT:
                raise ValueError(f"format {data.get('format')!r} is not {_FORMAT!r}")
            ledger._pods = {PodUID(uid): PodRecord.from_json(rec) for uid, rec in (data.get("pods") or {}).items()}
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            # Losing counts is better than refusing to run the node's pods.
            log.error("ignoring unreadable restart ledger %s: %s", path, exc)
        return ledger

    def get(self, uid: PodUID, pod_id: str) -> PodRecord | None:
        """The record of `uid` if it belongs to the Podman pod `pod_id` (else it is a predecessor's)."""
        with self._lock:
            record = self._pods.get(uid)
            if record is None or record.pod_id != pod_id:
                return None
            return PodRecord.from_json(record.to_json())  # a copy: background restarts change the original

    def restarted(
        self, uid: PodUID, pod_id: str, containers: Iterable[str], last_state: Mapping[str, dict[str, Any]]
    ) -> PodRecord:
        """Count one restart of every container in `containers` and keep their previous terminations."""
        with self._lock:
            record = self._current(uid, pod_id)
            for name in containers:
                record.restart_count[name] = record.restart_count.get(name, 0) + 1
            record.last_state.update({k: dict(v) for k, v in last_state.items()})
            record.finished, record.message = None, ""
            self._save()
            return record

    def finished(self, uid: PodUID, pod_id: str, phase: str, message: str) -> None:
        """The pod ended for good (Succeeded/Failed): it is not restarted, not even after a reboot."""
        with self._lock:
            record = self._current(uid, pod_id)
            if record.finished == phase and record.message == message:
                return
            record.finished, record.message = phase, message
            self._save()

    def retain(self, uids: Iterable[PodUID]) -> None:
        """Forget pods that are no longer on this node (writes only if something was dropped)."""
        keep = set(uids)
        with self._lock:
            gone = [uid for uid in self._pods if uid not in keep]
            for uid in gone:
                del self._pods[uid]
            if gone:
                self._save()

    def _current(self, uid: PodUID, pod_id: str) -> PodRecord:
        record = self._pods.get(uid)
        if record is None or record.pod_id != pod_id:
            record = self._pods[uid] = PodRecord(pod_id=pod_id)
        return record

    def _save(self) -> None:
        self.writes += 1
        if self.path is None:
            return
        data = {"format": _FORMAT, "pods": {uid: rec.to_json() for uid, rec in sorted(self._pods.items())}}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(self.path, json.dumps(data, sort_keys=True, separators=(",", ":")).encode())
        except OSError as exc:
            log.error("cannot save restart ledger %s: %s", self.path, exc)
