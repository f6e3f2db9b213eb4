"""The stop and remove step of PodmanRuntime: SIGTERM, one shared grace period, SIGKILL; force-removal by label."""

from __future__ import annotations

import time

from edgekube.agent.runtime.podman.naming import of_pod, run_state
from edgekube.agent.runtime.podman.transport import PodmanTransport
from edgekube.agent.runtime.protocol import ContainerRunState
from edgekube.model.names import NodeName, PodUID


class PodStopper:
    """Stops and removes a pod's objects, found by its uid label (so leftovers of a crashed create go too)."""

    def __init__(self, transport: PodmanTransport, node: NodeName) -> None:
        self.transport = transport
        self.node = node

    def running(self, uid: PodUID) -> set[str]:
        """Ids of the pod's app containers that still run."""
        return {
            str(c["Id"])
            for c in self.transport.list_containers(of_pod(self.node, uid))
            if not c.get("IsInfra") and run_state(c.get("State")) is ContainerRunState.RUNNING
        }

    def stop(self, uid: PodUID, container_ids: set[str], grace_seconds: int, *, wait_killed: bool = False) -> None:
        """SIGTERM every container, SIGKILL what still runs after the grace; `wait_killed`: until it is gone."""
        # Pod stop in Podman 4.3 is a no-op (304) once any container has exited, and a force-remove waits
        # each container's stop timeout in turn; signalling ourselves gives one shared grace period.
        for container_id in container_ids:
            self.signal(container_id, "SIGTERM")
        deadline = time.monotonic() + max(grace_seconds, 0)
        remaining = set(container_ids)
        while remaining and time.monotonic() < deadline:
            time.sleep(0.1)
            remaining &= self.running(uid)
        for container_id in remaining:
            self.signal(container_id, "SIGKILL")
        # A restart must not find a container still dying; a removal force-removes them anyway.
        deadline = time.monotonic() + 5.0
        while wait_killed and remaining and time.monotonic() < deadline:
            time.sleep(0.05)
            remaining &= self.running(uid)

    def signal(self, container_id: str, signal: str) -> None:
        response = self.transport.request(
            "post", f"/containers/{container_id}/kill", what=f"signal {signal} to {container_id[:12]}",
            params={"signal": signal},
        )  # fmt: skip
        # An HTTP error here means the container is already gone or stopped (Podman 4.3 says so with a 500
        # "container state improper"); the force-remove that follows is what must succeed.
        response.close()

    def purge(self, uid: PodUID, *, volumes: bool = True) -> None:
        """Force-remove every pod, container and (unless told not to) volume labelled with `uid` on this node."""
        selected = of_pod(self.node, uid)
        for entry in self.transport.json("get", "/pods/json", what=f"find pod {uid}", params=selected) or []:
            self.transport.json(
                "delete", f"/pods/{entry['Id']}", what=f"remove pod {entry.get('Name')}",
                reason="RemovePodError", params={"force": "true"}, ok_missing=True,
            )  # fmt: skip
        for entry in self.transport.list_containers(selected):
            self.transport.json(
                "delete", f"/containers/{entry['Id']}", what=f"remove container {entry['Id'][:12]}",
                reason="RemovePodError", params={"force": "true", "v": "true"}, ok_missing=True,
            )  # fmt: skip
        if not volumes:
            return
        for entry in self.transport.json("get", "/volumes/json", what=f"list volumes of {uid}", params=selected) or []:
            self.transport.json(
                "delete", f"/volumes/{entry['Name']}", what=f"remove volume {entry['Name']}",
                reason="RemovePodError", params={"force": "true"}, ok_missing=True,
            )  # fmt: skip
