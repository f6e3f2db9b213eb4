"""The stop and remove step of PodmanRuntime: SIGTERM, one shared grace period, SIGKILL; removal by label."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection

from edgekube.agent.runtime.podman.naming import of_pod, owned, owned_labels, run_state
from edgekube.agent.runtime.podman.transport import PodmanTransport, raise_http
from edgekube.agent.runtime.protocol import LABEL_POD_UID, ContainerRunState
from edgekube.model.names import NodeName, PodUID

log = logging.getLogger(__name__)


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
        for entry in self.transport.list_containers(selected):  # leftovers of a crashed create, outside any pod
            self._remove_container(str(entry["Id"]))
        if not volumes:
            return
        for entry in self.transport.list_volumes(
            owned_labels(self.node, **{LABEL_POD_UID: uid}), f"list volumes of {uid}"
        ):
            self.remove_volume(str(entry["Name"]))

    def _remove_container(self, container_id: str) -> None:
        self.transport.json(
            "delete", f"/containers/{container_id}", what=f"remove container {container_id[:12]}",
            reason="RemovePodError", params={"force": "true", "v": "true"}, ok_missing=True,
        )  # fmt: skip

    def remove_volume(self, name: str) -> bool:
        """Remove one volume, never by force: True if it is gone, False if Podman still counts a user of it.

        A forced `volume rm` also removes every container using the volume; when the label filter of Podman 4.3
        (ORed on volumes, see transport.list_volumes) made a purge list other pods' volumes, that removed a pod
        being started and deadlocked the whole service (each call waiting on the other's lock; every later API
        call hung). The pod's containers are removed just before, so a volume still in use is left to the
        sweep (sweep_orphans) of a later pass.
        """
        response = self.transport.request("delete", f"/volumes/{name}", what=f"remove volume {name}")
        try:
            if response.status_code == 409:
                log.info("volume %s is still in use; removed by a later sweep", name)
                return False
            if response.status_code >= 400 and response.status_code != 404:
                raise_http(response, f"remove volume {name}", "RemovePodError")
            return True
        finally:
            response.close()

    def sweep_orphans(self, keep: Callable[[], Collection[str]]) -> list[str]:
        """Remove this node's volumes whose pod is gone (no container with its uid, and not kept).

        `keep()` is asked after the containers were listed: the uids of pods whose create was in flight at any
        time since the sweep began (a create makes its volumes before its containers). Returns the volumes removed.
        """
        volumes = self.transport.list_volumes(owned_labels(self.node))
        if not volumes:
            return []
        alive = {
            str((c.get("Labels") or {}).get(LABEL_POD_UID, ""))
            for c in self.transport.list_containers(owned(self.node))
        }
        alive |= set(keep())
        removed = []
        for entry in volumes:
            uid = str((entry.get("Labels") or {}).get(LABEL_POD_UID, ""))
            if uid and uid not in alive and self.remove_volume(str(entry["Name"])):
                removed.append(str(entry["Name"]))
        return removed
