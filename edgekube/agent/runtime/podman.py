"""PodmanRuntime, the agent's PodRuntime over Podman's REST socket (podman-py): one Podman pod per pod."""

from __future__ import annotations

import contextlib
import json
import resource
import struct
import threading
import time
from datetime import UTC, datetime
from typing import Any, NoReturn

import requests
from podman import PodmanClient
from podman.api.uds import UDSSocket
from podman.errors import APIError, PodmanError

from edgekube.agent.runtime.protocol import (
    LABEL_CONTAINER,
    LABEL_MANAGED,
    LABEL_NODE,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    LABEL_SPEC_HASH,
    MAX_EXEC_OUTPUT,
    ContainerRunState,
    ObservedContainer,
    ObservedPod,
    RuntimeInfo,
)
from edgekube.model.errors import EdgekubeError, NotFoundError, RuntimeFailure
from edgekube.model.names import NodeName, PodUID
from edgekube.model.pod import Container, Pod, PullPolicy
from edgekube.model.quantity import cpu_millis, memory_bytes

#: Private label: the container's position in spec.containers, so list_pods can return them in spec order.
LABEL_CONTAINER_INDEX = "io.edgekube.container.index"

_CPU_PERIOD_US = 100_000
#: The kernel rejects CFS quotas under 1 ms; Kubernetes clamps to the same floor.
_MIN_CPU_QUOTA_US = 1_000
_MAX_HOSTNAME = 63

_STATE_MAP = {
    "created": ContainerRunState.CREATED,
    "configured": ContainerRunState.CREATED,
    "initialized": ContainerRunState.CREATED,
    "running": ContainerRunState.RUNNING,
    "paused": ContainerRunState.RUNNING,
    "stopping": ContainerRunState.RUNNING,
    "exited": ContainerRunState.EXITED,
    "stopped": ContainerRunState.EXITED,
}


def pod_name(namespace: str, name: str, uid: str) -> str:
    """Deterministic Podman pod name; the uid suffix keeps a re-created pod clear of its predecessor."""
    return f"ek_{namespace}_{name}_{uid[:8]}"


def container_name(podname: str, container: str) -> str:
    return f"{podname}_{container}"


def volume_name(podname: str, volume: str) -> str:
    return f"{podname}_{volume}"


class PodmanRuntime:
    """PodRuntime on a Podman API socket (`unix:///…/podman.sock`) for node `node`.

    All state is read back from Podman by label, so a new instance adopts pods an earlier process created.
    emptyDir volumes are Podman named volumes `<podname>_<volume>` (medium Memory → tmpfs), removed with
    the pod.
    """

    def __init__(
        self,
        socket_url: str,
        node: NodeName,
        *,
        timeout: float = 60.0,
        pull_timeout: float = 120.0,
    ) -> None:
        self.socket_url = socket_url
        self.node = node
        self.timeout = timeout
        self.pull_timeout = pull_timeout
        self._client: PodmanClient | None = None
        self._client_lock = threading.Lock()  # the loop, removals and probe workers share one client
        #: infra container id → (its pid, its IP): the IP only changes when the infra container restarts.
        self._ips: dict[str, tuple[int, str | None]] = {}
        #: (container id, finished at) → why it exited: one inspect per exit, not one per resync.
        self._exit_errors: dict[tuple[str, str | None], str | None] = {}
        #: exec sessions that outlived their timeout, per (uid, container, command): never more than one each.
        self._hung_execs: dict[tuple[str, str, tuple[str, ...]], str] = {}

    # -- plumbing -----------------------------------------------------------------------------------------

    @property
    def client(self) -> PodmanClient:
        with self._client_lock:
            if self._client is None:
                try:
                    self._client = PodmanClient(base_url=self.socket_url, timeout=self.timeout)
                except (PodmanError, ValueError) as exc:
                    raise RuntimeFailure(
                        f"cannot use podman socket {self.socket_url}: {exc}", reason="RuntimeUnavailable"
                    ) from exc
            return self._client

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.api.close()
                self._client = None

    def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: dict[str, Any] | None = None,
        body: Any = None,
        timeout: float | tuple[float, float] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """One API call; transport failures become RuntimeFailure, HTTP errors are left to the caller."""
        api = self.client.api
        kwargs: dict[str, Any] = {"params": params, "timeout": timeout or self.timeout, "stream": stream}
        if body is not None:
            kwargs["data"] = json.dumps(body)
            kwargs["headers"] = {"content-type": "application/json"}
        try:
            response: requests.Response = getattr(api, method)(path, **kwargs)
        except APIError as exc:  # podman-py wraps every OSError (requests' included) in APIError
            _close_failed_sockets(exc)
            cause = exc.__cause__ or exc
            if isinstance(cause, requests.Timeout):
                raise RuntimeFailure(f"{what}: podman did not answer in time ({cause})", reason="Timeout") from exc
            raise RuntimeFailure(
                f"{what}: cannot reach podman at {self.socket_url}: {cause}", reason="RuntimeUnavailable"
            ) from exc
        except (requests.RequestException, PodmanError, OSError) as exc:
            raise RuntimeFailure(f"{what}: {exc}", reason="RuntimeUnavailable") from exc
        return response

    def _json(
        self,
        method: str,
        path: str,
        *,
        what: str,
        reason: str = "RuntimeError",
        ok_missing: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Call and decode JSON; a 404 returns None if `ok_missing`, any other error raises RuntimeFailure."""
        response = self._request(method, path, what=what, **kwargs)
        if response.status_code == 404 and ok_missing:
            return None
        if response.status_code >= 400:
            _raise_http(response, what, reason)
        if response.status_code in (204, 304) or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise RuntimeFailure(f"{what}: podman sent invalid JSON: {exc}", reason=reason) from exc

    @staticmethod
    def _label_filter(**extra: str) -> dict[str, str]:
        return {"filters": json.dumps({"label": [f"{k}={v}" for k, v in extra.items()]})}

    def _labels(self, pod: Pod, uid: PodUID, spec_hash: str) -> dict[str, str]:
        return {
            LABEL_MANAGED: "true",
            LABEL_NODE: self.node,
            LABEL_POD_UID: uid,
            LABEL_POD_NAME: pod.metadata.name,
            LABEL_POD_NAMESPACE: pod.metadata.namespace,
            LABEL_SPEC_HASH: spec_hash,
        }

    def _owned(self, **extra: str) -> dict[str, str]:
        return self._label_filter(**{LABEL_MANAGED: "true", LABEL_NODE: self.node, **extra})

    # -- PodRuntime -----------------------------------------------------------------------------------------

    def info(self) -> RuntimeInfo:
        data = self._json("get", "/version", what="podman version") or {}
        version = str(data.get("Version", ""))
        api_version = version
        for component in data.get("Components") or []:
            if component.get("Name") == "Podman Engine":
                version = str(component.get("Version", version))
                api_version = str((component.get("Details") or {}).get("APIVersion", version))
        return RuntimeInfo(name="podman", version=version, api_version=api_version)

    def list_pods(self) -> list[ObservedPod]:
        pods = self._json("get", "/pods/json", what="list pods", params=self._owned()) or []
        containers = self._list_containers(self._owned())
        by_pod: dict[str, list[dict[str, Any]]] = {}
        for entry in containers:
            by_pod.setdefault(str(entry.get("Pod", "")), []).append(entry)
        result = []
        for entry in pods:
            labels = entry.get("Labels") or {}
            if LABEL_POD_UID not in labels:
                continue
            pod_id = str(entry["Id"])
            result.append(self._observed(pod_id, labels, by_pod.get(pod_id, [])))
        result.sort(key=lambda p: (p.namespace, p.name, p.uid))
        ids = {str(c["Id"]) for c in containers}
        self._ips = {k: v for k, v in self._ips.items() if k in ids}
        self._exit_errors = {k: v for k, v in self._exit_errors.items() if k[0] in ids}
        uids = {str(p.uid) for p in result}
        self._hung_execs = {k: v for k, v in self._hung_execs.items() if k[0] in uids}
        return result

    def create_pod(self, pod: Pod, uid: PodUID, spec_hash: str) -> ObservedPod:
        """Create and start the pod (see PodRuntime); repeating the call returns the pod already there.

        If a pod for `uid` exists but with another spec hash or with containers missing (an agent that died
        mid-create), it is removed and created afresh, so the result always matches the arguments.
        """
        existing = self._find_pod(uid)
        if existing is not None:
            if existing.spec_hash == spec_hash and {c.name for c in existing.containers} == {
                c.name for c in pod.spec.containers
            }:
                return existing
            self.remove_pod(uid, grace_seconds=pod.spec.termination_grace_period_seconds)
        else:
            # Leftovers of a crashed create (volumes, stray containers) would make the names below collide.
            self._purge(uid)

        for image in dict.fromkeys(c.image for c in pod.spec.containers):
            policy = next(c for c in pod.spec.containers if c.image == image).pull_policy()
            self._ensure_image(image, policy)

        podname = pod_name(pod.metadata.namespace, pod.metadata.name, uid)
        labels = self._labels(pod, uid, spec_hash)
        try:
            self._create_volumes(pod, podname, labels)
            pod_id = self._create_podman_pod(pod, podname, labels)
            for index, container in enumerate(pod.spec.containers):
                self._create_container(pod, container, index, podname, labels)
            self._start_pod(pod_id, podname)
        except BaseException:
            with contextlib.suppress(EdgekubeError):
                self._purge(uid)
            raise
        observed = self._find_pod(uid)
        if observed is None:
            raise RuntimeFailure(f"pod {podname} vanished right after it was started", reason="RuntimeError")
        return observed

    def remove_pod(self, uid: PodUID, grace_seconds: int = 10) -> None:
        containers = [c for c in self._list_containers(self._owned(**{LABEL_POD_UID: uid})) if not c.get("IsInfra")]
        running = [c for c in containers if _STATE_MAP.get(str(c.get("State"))) == ContainerRunState.RUNNING]
        if running:
            self._stop_gracefully(uid, [str(c["Id"]) for c in running], grace_seconds)
        self._purge(uid)

    def stop_pod(self, uid: PodUID, grace_seconds: int = 10) -> None:
        self._stop_running(uid, grace_seconds)

    def restart_pod(self, uid: PodUID, grace_seconds: int = 10) -> ObservedPod:
        """Stop what runs, then `POST /pods/{id}/start`: it starts the infra and every stopped container."""
        pod = self._stop_running(uid, grace_seconds)
        self._start_pod(pod.pod_id, pod_name(pod.namespace, pod.name, uid))
        restarted = self._find_pod(uid)
        if restarted is None:
            raise RuntimeFailure(f"pod {pod.namespace}/{pod.name} vanished while restarting", reason="RuntimeError")
        return restarted

    def _stop_running(self, uid: PodUID, grace_seconds: int) -> ObservedPod:
        pod = self._find_pod(uid)
        if pod is None:
            raise NotFoundError(f"pod {uid} not found on node {self.node}")
        running = [c.container_id for c in pod.containers if c.state == ContainerRunState.RUNNING]
        if running:
            self._stop_gracefully(uid, running, grace_seconds, wait_killed=True)
        return pod

    def exec(self, uid: PodUID, container: str, command: list[str], timeout: float) -> tuple[int, str]:
        """Create an exec session, start it attached, then inspect it for the exit code (as `podman exec`)."""
        what = f"exec {command[:1]} in {container} of pod {uid}"
        found = [
            c
            for c in self._list_containers(self._owned(**{LABEL_POD_UID: uid, LABEL_CONTAINER: container}))
            if not c.get("IsInfra")
        ]
        if not found:
            raise NotFoundError(f"container {container!r} of pod {uid} not found on node {self.node}")
        entry = found[0]
        if _STATE_MAP.get(str(entry.get("State", "")).lower()) != ContainerRunState.RUNNING:
            raise RuntimeFailure(f"{what}: container is not running", reason="ContainerNotRunning")
        key = (str(uid), container, tuple(command))
        hung = self._hung_execs.get(key)
        if hung is not None:
            # Podman cannot kill an exec session: never pile up another copy of a command that hangs.
            state = self._json("get", f"/exec/{hung}/json", what=what, ok_missing=True) or {}
            if state.get("Running"):
                raise RuntimeFailure(f"{what}: the previous run has not finished yet", reason="Timeout")
            self._hung_execs.pop(key, None)
        body = {"Cmd": command, "AttachStdout": True, "AttachStderr": True}
        created = self._json("post", f"/containers/{entry['Id']}/exec", what=what, reason="ExecError", body=body)
        exec_id = str(created["Id"])
        output = self._exec_output(exec_id, what, timeout)
        if output is None:
            self._hung_execs[key] = exec_id
            raise RuntimeFailure(f"{what}: timed out after {timeout:g}s", reason="Timeout")
        deadline = time.monotonic() + 2.0
        while True:  # the stream can end a moment before Podman records the exit code
            state = self._json("get", f"/exec/{exec_id}/json", what=what, reason="ExecError") or {}
            if not state.get("Running") or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        return int(state.get("ExitCode") or 0), output

    def wait_for_exit(self, timeout: float) -> bool:
        """Follow Podman's event stream (`died` events of this node's containers) for up to `timeout`."""
        deadline = time.monotonic() + timeout
        filters = {"type": ["container"], "event": ["died"], "label": [f"{LABEL_NODE}={self.node}"]}
        params = {"stream": "true", "filters": json.dumps(filters)}
        try:
            response = self._request(
                "get", "/events", what="watch container exits", params=params, timeout=(5.0, max(timeout, 0.1)),
                stream=True,
            )  # fmt: skip
        except RuntimeFailure:
            time.sleep(max(deadline - time.monotonic(), 0.0))
            return False
        try:
            if response.status_code >= 400:
                time.sleep(max(deadline - time.monotonic(), 0.0))
                return False
            for line in response.iter_lines():
                if line:
                    return True
                if time.monotonic() > deadline:
                    break
        except (requests.RequestException, OSError):
            pass  # the read timed out: nothing exited
        finally:
            response.close()
        return False

    def has_image(self, image: str) -> bool:
        return self._image_exists(image)

    def logs(self, uid: PodUID, container: str, tail: int | None = None) -> str:
        pod = self._find_pod(uid)
        if pod is None:
            raise NotFoundError(f"pod {uid} not found on node {self.node}")
        match = next((c for c in pod.containers if c.name == container), None)
        if match is None:
            raise NotFoundError(f"container {container!r} not found in pod {pod.namespace}/{pod.name}")
        params = {"stdout": "true", "stderr": "true", "tail": "all" if tail is None else str(max(tail, 0))}
        what = f"logs of {pod.namespace}/{pod.name}/{container}"
        response = self._request("get", f"/containers/{match.container_id}/logs", what=what, params=params)
        if response.status_code == 404:
            raise NotFoundError(f"container {container!r} not found in pod {pod.namespace}/{pod.name}")
        if response.status_code >= 400:
            _raise_http(response, what, "RuntimeError")
        return _demux(response.content).decode("utf-8", errors="replace")

    # -- helpers -------------------------------------------------------------------------------------------

    def _list_containers(self, params: dict[str, str]) -> list[dict[str, Any]]:
        data = self._json("get", "/containers/json", what="list containers", params={"all": "true", **params})
        return list(data or [])

    def _find_pod(self, uid: PodUID) -> ObservedPod | None:
        owned = self._owned(**{LABEL_POD_UID: uid})
        pods = self._json("get", "/pods/json", what=f"find pod {uid}", params=owned)
        if not pods:
            return None
        entry = pods[0]
        pod_id = str(entry["Id"])
        containers = [c for c in self._list_containers(owned) if c.get("Pod") == pod_id]
        return self._observed(pod_id, entry.get("Labels") or {}, containers)

    def _observed(self, pod_id: str, labels: dict[str, str], containers: list[dict[str, Any]]) -> ObservedPod:
        # Podman 4.3 copies pod labels onto the infra container, so IsInfra (not the labels) tells them apart.
        apps = [c for c in containers if not c.get("IsInfra") and LABEL_CONTAINER in (c.get("Labels") or {})]
        apps.sort(key=lambda c: (_int(c["Labels"].get(LABEL_CONTAINER_INDEX)), c["Labels"][LABEL_CONTAINER]))
        infra = next((c for c in containers if c.get("IsInfra")), None)
        infra_running = infra is not None and _STATE_MAP.get(str(infra.get("State", "")).lower()) == (
            ContainerRunState.RUNNING
        )
        return ObservedPod(
            uid=PodUID(labels.get(LABEL_POD_UID, "")),
            namespace=labels.get(LABEL_POD_NAMESPACE, ""),
            name=labels.get(LABEL_POD_NAME, ""),
            spec_hash=labels.get(LABEL_SPEC_HASH, ""),
            pod_id=pod_id,
            containers=tuple(self._observed_container(c) for c in apps),
            ip=self._infra_ip(infra) if infra is not None and infra_running else None,
            infra_running=infra_running,
        )

    def _infra_ip(self, infra: dict[str, Any]) -> str | None:
        """The pod's IP on its first network; inspected once per infra start (the list endpoint lacks it)."""
        infra_id, pid = str(infra["Id"]), int(infra.get("Pid") or 0)
        cached = self._ips.get(infra_id)
        if cached is not None and cached[0] == pid:
            return cached[1]
        data = self._json("get", f"/containers/{infra_id}/json", what="inspect infra container", ok_missing=True)
        settings = (data or {}).get("NetworkSettings") or {}
        ip = settings.get("IPAddress") or next(
            (n.get("IPAddress") for n in (settings.get("Networks") or {}).values() if n.get("IPAddress")), None
        )
        self._ips[infra_id] = (pid, str(ip) if ip else None)
        return str(ip) if ip else None

    def _exec_output(self, exec_id: str, what: str, timeout: float) -> str | None:
        """Run the exec session attached and collect its output; None if it did not end within `timeout`."""
        deadline = time.monotonic() + timeout
        try:
            response = self._request(
                "post", f"/exec/{exec_id}/start", what=what, body={"Detach": False, "Tty": False},
                timeout=(5.0, timeout), stream=True,
            )  # fmt: skip
        except RuntimeFailure as exc:
            if exc.failure == "Timeout":
                return None
            raise
        try:
            if response.status_code >= 400:
                _raise_http(response, what, "ExecError")
            chunks = bytearray()
            for chunk in response.iter_content(chunk_size=4096):
                if len(chunks) < 4 * MAX_EXEC_OUTPUT:
                    chunks += chunk
                if time.monotonic() > deadline:
                    return None
        except (requests.RequestException, OSError):
            return None  # a read timed out: the command is still running
        finally:
            response.close()
        text = _demux(bytes(chunks)).decode("utf-8", errors="replace")
        return text[:MAX_EXEC_OUTPUT]

    def _observed_container(self, entry: dict[str, Any]) -> ObservedContainer:
        state = _STATE_MAP.get(str(entry.get("State", "")).lower(), ContainerRunState.UNKNOWN)
        started = _rfc3339(entry.get("StartedAt")) if state != ContainerRunState.CREATED else None
        exit_code: int | None = None
        finished: str | None = None
        error: str | None = None
        if state == ContainerRunState.EXITED:
            exit_code = int(entry.get("ExitCode") or 0)
            finished = _rfc3339(entry.get("ExitedAt"))
            if exit_code != 0:
                key = (str(entry["Id"]), finished)
                if key not in self._exit_errors:
                    self._exit_errors = {k: v for k, v in self._exit_errors.items() if k[0] != key[0]}
                    self._exit_errors[key] = self._exit_error(key[0])
                error = self._exit_errors[key]
        return ObservedContainer(
            name=entry["Labels"][LABEL_CONTAINER],
            container_id=str(entry["Id"]),
            image=str(entry.get("Image", "")),
            state=state,
            exit_code=exit_code,
            started_at=started,
            finished_at=finished,
            error=error,
        )

    def _exit_error(self, container_id: str) -> str | None:
        # The list endpoint has no OOM flag; only failed containers pay for the extra inspect.
        data = self._json("get", f"/containers/{container_id}/json", what="inspect container", ok_missing=True)
        if not data:
            return None
        state = data.get("State") or {}
        if state.get("OOMKilled"):
            return "OOMKilled"
        return str(state.get("Error") or "") or None

    def _image_exists(self, image: str) -> bool:
        response = self._request("get", f"/images/{image}/exists", what=f"check image {image}")
        if response.status_code == 204:
            return True
        if response.status_code == 404:
            return False
        _raise_http(response, f"check image {image}", "ErrImagePull")

    def _ensure_image(self, image: str, policy: PullPolicy) -> None:
        if policy != PullPolicy.ALWAYS and self._image_exists(image):
            return
        if policy == PullPolicy.NEVER:
            raise RuntimeFailure(
                f"image {image!r} is not present on node {self.node} and imagePullPolicy is Never",
                reason="ImageNotFound",
            )
        self._pull(image)

    def _pull(self, image: str) -> None:
        what = f"pull image {image}"
        params = {"reference": image, "policy": "always", "quiet": "false"}
        try:
            response = self._request(
                "post", "/images/pull", what=what, params=params, timeout=(5.0, self.pull_timeout),
                stream=True,
            )  # fmt: skip
        except RuntimeFailure as exc:
            raise RuntimeFailure(f"failed to pull image {image!r}: {exc}", reason="ErrImagePull") from exc
        if response.status_code >= 400:
            _raise_http(response, f"failed to pull image {image!r}", "ErrImagePull")
        # libpod answers 200 and reports failure as an {"error": …} line in the progress stream.
        error: str | None = None
        pulled = False
        try:
            for line in response.iter_lines():
                if not line:
                    continue
                with contextlib.suppress(ValueError):
                    item = json.loads(line)
                    if isinstance(item, dict):
                        error = item.get("error") or error
                        pulled = pulled or bool(item.get("id") or item.get("images"))
        except (requests.RequestException, OSError) as exc:
            raise RuntimeFailure(
                f"failed to pull image {image!r}: no answer within {self.pull_timeout}s ({exc})",
                reason="ErrImagePull",
            ) from exc
        finally:
            response.close()
        if error or not pulled:
            detail = error or "podman reported no image"
            raise RuntimeFailure(f"failed to pull image {image!r}: {detail}", reason="ErrImagePull")

    def _create_volumes(self, pod: Pod, podname: str, labels: dict[str, str]) -> None:
        for volume in pod.spec.volumes:
            body: dict[str, Any] = {"Name": volume_name(podname, volume.name), "Label": labels}
            source = volume.empty_dir
            if source is not None and source.medium == "Memory":
                options = {"type": "tmpfs", "device": "tmpfs"}
                if source.size_limit is not None:
                    # Podman 4.3 takes `size=` in a volume's options as an XFS project quota and refuses
                    # it on tmpfs; tmpfs' own `nr_blocks` (pages) sets the same limit unhindered.
                    pages = -(-memory_bytes(source.size_limit) // resource.getpagesize())
                    options["o"] = f"nr_blocks={max(pages, 1)}"
                body["Options"] = options
            self._json(
                "post", "/volumes/create", what=f"create volume {body['Name']}", reason="CreateVolumeError",
                body=body,
            )  # fmt: skip

    def _create_podman_pod(self, pod: Pod, podname: str, labels: dict[str, str]) -> str:
        portmappings = [
            {
                "container_port": p.container_port,
                "host_port": p.host_port,
                "protocol": p.protocol.value.lower(),
            }
            for c in pod.spec.containers
            for p in c.ports
            if p.host_port is not None
        ]
        body = {
            "name": podname,
            "labels": labels,
            "hostname": pod.metadata.name[:_MAX_HOSTNAME].rstrip(".-"),
            "shared_namespaces": ["ipc", "net", "uts"],
            "portmappings": portmappings,
        }
        what = f"create pod {podname}"
        data = self._json("post", "/pods/create", what=what, reason="CreatePodError", body=body)
        return str(data["Id"])

    def _create_container(
        self, pod: Pod, container: Container, index: int, podname: str, labels: dict[str, str]
    ) -> None:
        limits = container.resources.limits
        cpu: dict[str, int] = {}
        if "cpu" in limits:
            cpu["quota"] = max(cpu_millis(limits["cpu"]) * _CPU_PERIOD_US // 1000, _MIN_CPU_QUOTA_US)
            cpu["period"] = _CPU_PERIOD_US
        request_millis = container.resources.request_cpu_millis()
        if request_millis:
            cpu["shares"] = max(request_millis * 1024 // 1000, 2)  # Kubernetes' milliCPUToShares
        resource_limits: dict[str, Any] = {}
        if cpu:
            resource_limits["cpu"] = cpu
        if "memory" in limits:
            resource_limits["memory"] = {"limit": memory_bytes(limits["memory"])}
        body: dict[str, Any] = {
            "name": container_name(podname, container.name),
            "pod": podname,
            "image": container.image,
            "labels": {**labels, LABEL_CONTAINER: container.name, LABEL_CONTAINER_INDEX: str(index)},
            # Restarts are the agent's job (it implements restartPolicy and back-off), never Podman's.
            "restart_policy": "no",
            "stop_timeout": pod.spec.termination_grace_period_seconds,
            "env": {e.name: e.value for e in container.env},
            # nocopy: an emptyDir starts empty, unlike a Docker volume that copies the image's directory in.
            "volumes": [
                {
                    "Name": volume_name(podname, m.name),
                    "Dest": m.mount_path,
                    "Options": ["nocopy", "ro"] if m.read_only else ["nocopy"],
                }
                for m in container.volume_mounts
            ],
        }
        # Kubernetes semantics map onto specgen exactly: command → entrypoint, args → command; an explicit
        # entrypoint makes Podman drop the image's CMD, as Kubernetes does when only `command` is given.
        if container.command is not None:
            body["entrypoint"] = container.command
        if container.args is not None:
            body["command"] = container.args
        if container.working_dir:
            body["work_dir"] = container.working_dir
        if resource_limits:
            body["resource_limits"] = resource_limits
        self._json(
            "post", "/containers/create", what=f"create container {body['name']} ({container.image})",
            reason="CreateContainerError", body=body,
        )  # fmt: skip

    def _start_pod(self, pod_id: str, podname: str) -> None:
        response = self._request("post", f"/pods/{pod_id}/start", what=f"start pod {podname}")
        if response.status_code in (200, 304):
            return
        try:
            data = response.json()
        except ValueError:
            data = {}
        errs = data.get("Errs") if isinstance(data, dict) else None
        detail = "; ".join(str(e) for e in errs) if errs else _message(response)
        raise RuntimeFailure(f"start pod {podname}: {detail}", reason="RunContainerError")

    def _stop_gracefully(
        self, uid: PodUID, container_ids: list[str], grace_seconds: int, *, wait_killed: bool = False
    ) -> None:
        # Pod stop in Podman 4.3 is a no-op (304) once any container has exited, and a force-remove waits
        # each container's stop timeout in turn; signalling ourselves gives one shared grace period.
        for container_id in container_ids:
            self._signal(container_id, "SIGTERM")
        deadline = time.monotonic() + max(grace_seconds, 0)
        remaining = set(container_ids)
        while remaining and time.monotonic() < deadline:
            time.sleep(0.1)
            running = {
                str(c["Id"])
                for c in self._list_containers(self._owned(**{LABEL_POD_UID: uid}))
                if _STATE_MAP.get(str(c.get("State"))) == ContainerRunState.RUNNING
            }
            remaining &= running
        for container_id in remaining:
            self._signal(container_id, "SIGKILL")
        # A restart must not find a container still dying; a removal force-removes them anyway.
        deadline = time.monotonic() + 5.0
        while wait_killed and remaining and time.monotonic() < deadline:
            time.sleep(0.05)
            remaining &= {
                str(c["Id"])
                for c in self._list_containers(self._owned(**{LABEL_POD_UID: uid}))
                if _STATE_MAP.get(str(c.get("State"))) == ContainerRunState.RUNNING
            }

    def _signal(self, container_id: str, signal: str) -> None:
        response = self._request(
            "post", f"/containers/{container_id}/kill", what=f"signal {signal} to {container_id[:12]}",
            params={"signal": signal},
        )  # fmt: skip
        # An HTTP error here means the container is already gone or stopped (Podman 4.3 says so with a 500
        # "container state improper"); the force-remove that follows is what must succeed.
        response.close()

    def _purge(self, uid: PodUID) -> None:
        """Force-remove every pod, container and volume labelled with `uid` on this node."""
        owned = self._owned(**{LABEL_POD_UID: uid})
        for entry in self._json("get", "/pods/json", what=f"find pod {uid}", params=owned) or []:
            self._json(
                "delete", f"/pods/{entry['Id']}", what=f"remove pod {entry.get('Name')}",
                reason="RemovePodError", params={"force": "true"}, ok_missing=True,
            )  # fmt: skip
        for entry in self._list_containers(owned):
            self._json(
                "delete", f"/containers/{entry['Id']}", what=f"remove container {entry['Id'][:12]}",
                reason="RemovePodError", params={"force": "true", "v": "true"}, ok_missing=True,
            )  # fmt: skip
        for entry in self._json("get", "/volumes/json", what=f"list volumes of {uid}", params=owned) or []:
            self._json(
                "delete", f"/volumes/{entry['Name']}", what=f"remove volume {entry['Name']}",
                reason="RemovePodError", params={"force": "true"}, ok_missing=True,
            )  # fmt: skip


def _close_failed_sockets(exc: BaseException) -> None:
    """Close the socket podman-py (5.8) leaves open when connecting to the API socket fails.

    UDSConnection.connect() drops its UDSSocket without closing it, so every failed attempt would leak a
    file descriptor until garbage collection (and trip ResourceWarning); the socket is still reachable
    from the frames in the exception chain.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        tb = current.__traceback__
        while tb is not None:
            for value in list(tb.tb_frame.f_locals.values()):
                if isinstance(value, UDSSocket):
                    value.close()
            tb = tb.tb_next
        current = current.__cause__ or current.__context__


def _message(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text.strip() or f"HTTP {response.status_code}"
    if isinstance(data, dict):
        return str(data.get("message") or data.get("cause") or data)
    return str(data)


def _raise_http(response: requests.Response, what: str, reason: str) -> NoReturn:
    raise RuntimeFailure(f"{what}: {_message(response)}", reason=reason)


def _demux(payload: bytes) -> bytes:
    """Strip the Docker stream-multiplexing headers from a non-TTY log payload."""
    out = bytearray()
    index = 0
    while index + 8 <= len(payload):
        kind, length = struct.unpack_from(">BxxxL", payload, index)
        if kind not in (0, 1, 2):
            return payload  # a TTY container's log is not multiplexed
        out += payload[index + 8 : index + 8 + length]
        index += 8 + length
    return bytes(out)


def _rfc3339(value: Any) -> str | None:
    # The list endpoint gives Unix seconds; Go's zero time (year 1) means "never".
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
