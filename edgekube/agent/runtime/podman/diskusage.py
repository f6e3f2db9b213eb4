"""What each container of a pod holds on the node's disk (writable layer + log file); for PodmanRuntime.container_usage.

The kubelet's eviction manager counts a container's rootfs (its writable layer) and its logs against the
container's ephemeral-storage limit. Podman sizes the writable layers in one list call (`size=true`: `rwSize`,
a walk of each container's upper directory); the log file's path comes from an inspect, remembered per
container id, and its size from a stat. Nothing here writes.
"""

from __future__ import annotations

import os
import threading

from edgekube.agent.runtime.podman.naming import of_pod
from edgekube.agent.runtime.podman.transport import PodmanTransport
from edgekube.agent.runtime.protocol import LABEL_CONTAINER
from edgekube.model.names import NodeName, PodUID


class DiskUsage:
    """Measures the app containers of one pod at a time (infra containers, labelled with no container, are left out)."""

    def __init__(self, transport: PodmanTransport, node: NodeName) -> None:
        self.transport = transport
        self.node = node
        self._lock = threading.Lock()
        self._log_paths: dict[str, str] = {}  # container id → its k8s-file log

    def of_pod(self, uid: PodUID) -> dict[str, int]:
        """Bytes of writable layer plus log file, by container name; {} for a pod that is gone."""
        what = f"measure the containers of {uid}"
        entries = self.transport.json(
            "get", "/containers/json", what=what, params={"all": "true", "size": "true", **of_pod(self.node, uid)}
        )
        out: dict[str, int] = {}
        for entry in entries or []:
            name = (entry.get("Labels") or {}).get(LABEL_CONTAINER)
            if not name:
                continue
            size = entry.get("Size") or {}
            out[str(name)] = int(size.get("rwSize") or 0) + self._log_size(str(entry["Id"]))
        return out

    def _log_size(self, container_id: str) -> int:
        with self._lock:
            path = self._log_paths.get(container_id)
        if path is None:
            info = self.transport.json(
                "get", f"/containers/{container_id}/json", what=f"inspect container {container_id}", ok_missing=True
            )
            path = str(((info or {}).get("HostConfig") or {}).get("LogConfig", {}).get("Path") or "")
            with self._lock:
                if len(self._log_paths) > 1024:  # ids of removed containers: start over rather than grow
                    self._log_paths.clear()
                self._log_paths[container_id] = path
        if not path:
            return 0  # journald or none: nothing on this filesystem
        try:
            return os.stat(path).st_size
        except OSError:
            return 0
