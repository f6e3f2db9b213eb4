"""The observe step of PodmanRuntime: this node's pods and containers as ObservedPod, engine info, logs, exits."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from edgekube.agent.runtime.podman.naming import LABEL_CONTAINER_INDEX, LABEL_INIT, of_pod, owned, run_state
from edgekube.agent.runtime.podman.transport import PodmanTransport, demux, raise_http
from edgekube.agent.runtime.protocol import (
    LABEL_CONTAINER,
    LABEL_DEVICES,
    LABEL_GRACE,
    LABEL_NODE,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    LABEL_PRE_STOP,
    LABEL_SPEC_HASH,
    ContainerRunState,
    LogWindow,
    ObservedContainer,
    ObservedPod,
    RuntimeInfo,
)
from edgekube.model.errors import NotFoundError, RuntimeFailure
from edgekube.model.lifecycle import restored
from edgekube.model.names import NodeName, PodUID

Entry = dict[str, Any]


class Observer:
    """Reads this node's pods back from Podman by label: what a new agent process adopts.

    Two list calls answer for every pod; an inspect is paid only once per infra start (the pod IP) and once
    per failed exit (OOM or start error), and remembered.
    """

    def __init__(self, transport: PodmanTransport, node: NodeName) -> None:
        self.transport = transport
        self.node = node
        #: infra container id → (its pid, its IP): the IP only changes when the infra container restarts.
        self._ips: dict[str, tuple[int, str | None]] = {}
        #: (container id, finished at) → why it exited: one inspect per exit, not one per resync.
        self._exit_errors: dict[tuple[str, str | None], str | None] = {}

    def info(self) -> RuntimeInfo:
        data = self.transport.json("get", "/version", what="podman version") or {}
        version = str(data.get("Version", ""))
        api_version = version
        for component in data.get("Components") or []:
            if component.get("Name") == "Podman Engine":
                version = str(component.get("Version", version))
                api_version = str((component.get("Details") or {}).get("APIVersion", version))
        return RuntimeInfo(name="podman", version=version, api_version=api_version)

    def list_pods(self) -> list[ObservedPod]:
        pods = self.transport.json("get", "/pods/json", what="list pods", params=owned(self.node)) or []
        containers = self.transport.list_containers(owned(self.node))
        by_pod: dict[str, list[Entry]] = {}
        for entry in containers:
            by_pod.setdefault(str(entry.get("Pod", "")), []).append(entry)
        result = []
        for entry in pods:
            labels = entry.get("Labels") or {}
            if LABEL_POD_UID not in labels:
                continue
            pod_id = str(entry["Id"])
            result.append(self.observed(pod_id, labels, by_pod.get(pod_id, [])))
        result.sort(key=lambda p: (p.namespace, p.name, p.uid))
        ids = {str(c["Id"]) for c in containers}
        self._ips = {k: v for k, v in self._ips.items() if k in ids}
        self._exit_errors = {k: v for k, v in self._exit_errors.items() if k[0] in ids}
        return result

    def find_pod(self, uid: PodUID) -> ObservedPod | None:
        """The pod of `uid` from one list call (its containers carry the pod's labels, the infra one too)."""
        containers = self.transport.list_containers(of_pod(self.node, uid))
        labelled = next((c for c in containers if (c.get("Labels") or {}).get(LABEL_POD_UID) == uid), None)
        if labelled is None:
            return None
        pod_id = str(labelled.get("Pod", ""))
        return self.observed(pod_id, labelled["Labels"], [c for c in containers if c.get("Pod") == pod_id])

    def containers(self, uid: PodUID, **labels: str) -> list[Entry]:
        """The app containers (not the infra one) of a pod, optionally narrowed by more labels."""
        found = self.transport.list_containers(owned(self.node, **{LABEL_POD_UID: uid, **labels}))
        return [c for c in found if not c.get("IsInfra")]

    def observed(self, pod_id: str, labels: dict[str, str], containers: list[Entry]) -> ObservedPod:
        # Podman 4.3 copies pod labels onto the infra container, so IsInfra (not the labels) tells them apart.
        named = [c for c in containers if not c.get("IsInfra") and LABEL_CONTAINER in (c.get("Labels") or {})]
        named.sort(key=lambda c: (_int(c["Labels"].get(LABEL_CONTAINER_INDEX)), c["Labels"][LABEL_CONTAINER]))
        apps = [c for c in named if LABEL_INIT not in c["Labels"]]
        inits = [c for c in named if LABEL_INIT in c["Labels"]]
        infra = next((c for c in containers if c.get("IsInfra")), None)
        infra_running = infra is not None and run_state(infra.get("State")) is ContainerRunState.RUNNING
        return ObservedPod(
            uid=PodUID(labels.get(LABEL_POD_UID, "")),
            namespace=labels.get(LABEL_POD_NAMESPACE, ""),
            name=labels.get(LABEL_POD_NAME, ""),
            spec_hash=labels.get(LABEL_SPEC_HASH, ""),
            pod_id=pod_id,
            containers=tuple(self._container(c) for c in apps),
            ip=self._infra_ip(infra) if infra is not None and infra_running else None,
            infra_running=infra_running,
            grace_seconds=_grace(labels.get(LABEL_GRACE)),
            init_containers=tuple(self._container(c) for c in inits),
        )

    def logs(self, uid: PodUID, container: str, tail: int | None, window: LogWindow | None = None) -> str:
        pod = self.find_pod(uid)
        if pod is None:
            raise NotFoundError(f"pod {uid} not found on node {self.node}")
        match = next((c for c in (*pod.init_containers, *pod.containers) if c.name == container), None)
        if match is None:
            raise NotFoundError(f"container {container!r} not found in pod {pod.namespace}/{pod.name}")
        params = {"stdout": "true", "stderr": "true", "tail": "all" if tail is None else str(max(tail, 0))}
        if window is not None:  # libpod takes Unix seconds for since/until and filters the log file's timestamps
            if window.since is not None:
                params["since"] = f"{window.since:.9f}"
            if window.until is not None:
                params["until"] = f"{window.until:.9f}"
            if window.timestamps:
                params["timestamps"] = "true"
        what = f"logs of {pod.namespace}/{pod.name}/{container}"
        response = self.transport.request("get", f"/containers/{match.container_id}/logs", what=what, params=params)
        if response.status_code == 404:
            raise NotFoundError(f"container {container!r} not found in pod {pod.namespace}/{pod.name}")
        if response.status_code >= 400:
            raise_http(response, what, "RuntimeError")
        return demux(response.content).decode("utf-8", errors="replace")

    def wait_for_exit(self, timeout: float) -> bool:
        """Follow Podman's event stream (`died` events of this node's containers) for up to `timeout`."""
        deadline = time.monotonic() + timeout
        filters = {"type": ["container"], "event": ["died"], "label": [f"{LABEL_NODE}={self.node}"]}
        params = {"stream": "true", "filters": json.dumps(filters)}
        try:
            response = self.transport.request(
                "get", "/events", what="watch container exits", params=params, timeout=(5.0, max(timeout, 0.1)),
                stream=True,
            )  # fmt: skip
        except RuntimeFailure:  # an unreachable engine is waited out, never raised
            time.sleep(max(deadline - time.monotonic(), 0.0))
            return False
        try:
            if response.status_code >= 400:
                time.sleep(max(deadline - time.monotonic(), 0.0))
                return False
            return _any_line(response.iter_lines(), deadline)
        except (OSError, http.client.HTTPException):
            return False  # the read timed out: nothing exited
        finally:
            response.close()

    def _container(self, entry: Entry) -> ObservedContainer:
        state = run_state(entry.get("State"))
        exit_code: int | None = None
        finished: str | None = None
        error: str | None = None
        if state is ContainerRunState.EXITED:
            exit_code = int(entry.get("ExitCode") or 0)
            finished = rfc3339(entry.get("ExitedAt"))
            if exit_code != 0:
                error = self._exit_error(str(entry["Id"]), finished)
        return ObservedContainer(
            name=entry["Labels"][LABEL_CONTAINER],
            container_id=str(entry["Id"]),
            image=str(entry.get("Image", "")),
            state=state,
            exit_code=exit_code,
            started_at=rfc3339(entry.get("StartedAt")) if state is not ContainerRunState.CREATED else None,
            finished_at=finished,
            error=error,
            devices=tuple(d for d in entry["Labels"].get(LABEL_DEVICES, "").split(",") if d),
            sidecar=entry["Labels"].get(LABEL_INIT) == "sidecar",
            pre_stop=restored(entry["Labels"].get(LABEL_PRE_STOP)),
        )

    def _exit_error(self, container_id: str, finished: str | None) -> str | None:
        key = (container_id, finished)
        if key not in self._exit_errors:
            self._exit_errors = {k: v for k, v in self._exit_errors.items() if k[0] != container_id}
            self._exit_errors[key] = self._inspect_exit(container_id)
        return self._exit_errors[key]

    def _inspect_exit(self, container_id: str) -> str | None:
        # The list endpoint has no OOM flag; only failed containers pay for the extra inspect.
        what = "inspect container"
        data = self.transport.json("get", f"/containers/{container_id}/json", what=what, ok_missing=True)
        if not data:
            return None
        state = data.get("State") or {}
        if state.get("OOMKilled"):
            return "OOMKilled"
        return str(state.get("Error") or "") or None

    def _infra_ip(self, infra: Entry) -> str | None:
        """The pod's IP on its first network; inspected once per infra start (the list endpoint lacks it)."""
        infra_id, pid = str(infra["Id"]), int(infra.get("Pid") or 0)
        cached = self._ips.get(infra_id)
        if cached is not None and cached[0] == pid:
            return cached[1]
        what = "inspect infra container"
        data = self.transport.json("get", f"/containers/{infra_id}/json", what=what, ok_missing=True)
        settings = (data or {}).get("NetworkSettings") or {}
        ip = settings.get("IPAddress") or next(
            (n.get("IPAddress") for n in (settings.get("Networks") or {}).values() if n.get("IPAddress")), None
        )
        self._ips[infra_id] = (pid, str(ip) if ip else None)
        return str(ip) if ip else None


def _any_line(lines: Iterable[bytes], deadline: float) -> bool:
    for line in lines:
        if line:
            return True
        if time.monotonic() > deadline:
            break
    return False


def rfc3339(value: Any) -> str | None:
    """Podman's list times (Unix seconds) as RFC 3339 UTC; Go's zero time (year 1) means "never"."""
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        return None
    if seconds <= 0:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 1 << 30


def _grace(value: str | None) -> int | None:
    """The grace label as a number of seconds (None when missing or not a number: the default applies)."""
    try:
        return max(int(value), 0) if value is not None else None
    except ValueError:
        return None
