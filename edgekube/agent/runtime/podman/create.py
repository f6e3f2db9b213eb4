"""The create step of PodmanRuntime: images per pull policy, volumes (podman/volumes.py), the pod, containers, start."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from edgekube.agent.runtime.podman import dns, images, specgen
from edgekube.agent.runtime.podman.naming import LABEL_INIT, pod_labels, pod_name
from edgekube.agent.runtime.podman.network import NETWORK_NOT_READY, PodNetwork
from edgekube.agent.runtime.podman.specgen import ContainerMount
from edgekube.agent.runtime.podman.transport import PodmanTransport, error_body, message, raise_http
from edgekube.agent.runtime.podman.volumes import VolumeSetup
from edgekube.agent.runtime.sctp import SANDBOX_FAILED, kernel_has_sctp, sctp_host_port_error
from edgekube.agent.runtime.volumes import NfsMode
from edgekube.model.errors import RuntimeFailure
from edgekube.model.names import NodeName, PodUID
from edgekube.model.pod import Container, Pod, Protocol, PullPolicy
from edgekube.model.registryauth import RegistryCredential
from edgekube.model.security import NON_ROOT_REASON, effective, non_root_error
from edgekube.model.storage import ResolvedVolume

IF_NOT_PRESENT = PullPolicy.IF_NOT_PRESENT
#: Podman's `cause` when a container is created from an image the store does not hold.
_NO_IMAGE = "image not known"


class PodCreator:
    """Creates and starts one pod in few API calls: one per object created or started, and one for the infra id.

    Images are not looked up beforehand: a container is created from what the store holds, and only when
    Podman answers "image not known" is the image pulled (IfNotPresent) or the pod refused (Never). Always
    pulls first. The caller removes whatever a failed create left behind.
    """

    def __init__(
        self,
        transport: PodmanTransport,
        node: NodeName,
        pull_timeout: float,
        *,
        nfs_mode: NfsMode = NfsMode.USERSPACE,
        nfs_timeout: float = 5.0,
    ) -> None:
        self.transport = transport
        self.node = node
        self.pull_timeout = pull_timeout
        self.volumes = VolumeSetup(transport, node, nfs_mode, nfs_timeout)
        #: Whether the kernel has SCTP (an SCTP hostPort is refused without it: runtime/sctp.py); tests replace it.
        self.has_sctp: Callable[[], bool] = kernel_has_sctp
        #: The node's pod network (podman/network.py), once known; with `network_required` a pod waits for it.
        self.network: PodNetwork | None = None
        self.network_required = False
        #: A namespace's Services as environment variables (`<SVC>_SERVICE_HOST`...), set with the pod network.
        self.service_env: Callable[[str], dict[str, str]] | None = None

    def create(
        self,
        pod: Pod,
        uid: PodUID,
        spec_hash: str,
        volumes: Mapping[str, ResolvedVolume] | None = None,
        devices: Mapping[str, Sequence[str]] | None = None,
        *,
        credentials: Sequence[RegistryCredential] = (),
    ) -> tuple[str, list[str]]:
        """Create and start the pod; returns the Podman pod id and its app container ids in spec order.

        Volumes come first: a hostPath check, an unresolved claim or a silent NFS server fails the pod
        (FailedMount) before any image is pulled. A pod with init containers gets them created too (labelled
        LABEL_INIT), and only its infra container started: the agent runs them, then the app containers.
        `credentials` (its imagePullSecrets' entries): a pod with them has its missing images pulled with them
        first (IfNotPresent: one existence check per image), so no later pull goes without.
        """
        podname = pod_name(pod.metadata.namespace, pod.metadata.name, uid)
        labels = pod_labels(self.node, pod, uid, spec_hash)
        sctp = sctp_host_port_error(pod.spec, self.has_sctp()) if _has_sctp_port(pod) else None
        if sctp is not None:
            raise RuntimeFailure(sctp, reason=SANDBOX_FAILED)
        mounts = self.volumes.prepare(pod, podname, labels, volumes)
        everyone = pod.spec.all_containers()
        for image in dict.fromkeys(c.image for c in everyone if c.pull_policy() is PullPolicy.ALWAYS):
            images.pull(self.transport, image, self.pull_timeout, credentials)
        for image in dict.fromkeys(c.image for c in everyone if credentials and c.pull_policy() is IF_NOT_PRESENT):
            if not images.image_exists(self.transport, image):
                images.pull(self.transport, image, self.pull_timeout, credentials)
        users = {c.name: self._check_user(pod, uid, c) for c in everyone}
        body = specgen.pod_spec(pod, podname, labels, dns.read_host() if dns.custom(pod.spec) else None)
        if self.network is not None:
            body.update(self.network.pod_options(pod))
        elif self.network_required and not pod.spec.host_network:
            raise RuntimeFailure("network is not ready: no podCIDR from the master yet", reason=NETWORK_NOT_READY)
        created = self.transport.json(
            "post", "/pods/create", what=f"create pod {podname}", reason="CreatePodError", body=body
        )
        pod_id = str(created["Id"])
        for index, container in enumerate(pod.spec.init_containers or []):
            kind = "sidecar" if container.restart_policy == "Always" else "init"
            init_labels = {**labels, LABEL_INIT: kind}
            self._create_container(
                pod, container, index, podname, init_labels, mounts[container.name],
                (devices or {}).get(container.name, ()), users[container.name],
            )  # fmt: skip
        ids = [
            self._create_container(
                pod,
                container,
                index,
                podname,
                labels,
                mounts[container.name],
                (devices or {}).get(container.name, ()),
                users[container.name],
            )
            for index, container in enumerate(pod.spec.containers)
        ]
        self.start(pod_id, podname, [] if pod.spec.init_containers else ids)
        return pod_id, ids

    def _create_container(  # noqa: PLR0917 - one call site, each argument a part of the document
        self,
        pod: Pod,
        container: Container,
        index: int,
        podname: str,
        labels: dict[str, str],
        mounts: Sequence[ContainerMount],
        devices: Sequence[str] = (),
        image_user: str = "",
    ) -> str:
        host_dns = dns.read_host() if pod.spec.host_network and dns.custom(pod.spec) else None
        body = specgen.container_spec(
            pod, container, index, podname, labels, mounts=mounts, devices=devices, image_user=image_user,
            host_dns=host_dns,
        )  # fmt: skip
        if self.service_env is not None and pod.spec.enable_service_links is not False:
            body["env"] = {**self.service_env(pod.metadata.namespace or "default"), **body.get("env", {})}
        if self.network is not None:
            body.update(self.network.host_network_dns(pod))  # ClusterFirstWithHostNet: per container, as host_dns
        what = f"create container {body['name']} ({container.image})"
        response = self.transport.request("post", "/containers/create", what=what, body=body)
        if response.status_code >= 400 and error_body(response).get("cause") == _NO_IMAGE:
            if container.pull_policy() is PullPolicy.NEVER:
                raise images.not_present(container.image, self.node)
            images.pull(self.transport, container.image, self.pull_timeout)
            response = self.transport.request("post", "/containers/create", what=what, body=body)
        if response.status_code >= 400:
            raise_http(response, what, "CreateContainerError")
        return str(response.json()["Id"])

    def _check_user(self, pod: Pod, uid: PodUID, container: Container) -> str:
        """The image's USER when the securityContext needs it; refuses runAsNonRoot on root as the kubelet does.

        Only a container with runAsNonRoot or runAsGroup but no runAsUser costs an image inspect (pulled first
        when absent, per its pull policy). A refusal is RuntimeFailure `CreateContainerConfigError`.
        """
        sc = effective(pod.spec.security_context, container.security_context)
        image_user = ""
        if sc.run_as_user is None and (sc.run_as_non_root or sc.run_as_group is not None):
            image_user = self._image_user(container)
        ref = f"{pod.metadata.name}_{pod.metadata.namespace}({uid})"
        error = non_root_error(sc, image_user, ref, container.name)
        if error:
            raise RuntimeFailure(error, reason=NON_ROOT_REASON)
        return image_user

    def _image_user(self, container: Container) -> str:
        what = f"inspect image {container.image}"
        data: Any = self.transport.json("get", f"/images/{container.image}/json", what=what, ok_missing=True)
        if data is None:
            if container.pull_policy() is PullPolicy.NEVER:
                raise images.not_present(container.image, self.node)
            images.pull(self.transport, container.image, self.pull_timeout)
            data = self.transport.json("get", f"/images/{container.image}/json", what=what)
        return str(((data or {}).get("Config") or {}).get("User") or "")

    def start(self, pod_id: str, podname: str, containers: list[str]) -> None:
        """Start the pod: its infra container (network namespace) first, then every app container at once.

        `POST /pods/{id}/start` would do the same one container after another; side by side, a two-container
        pod runs ~60 ms sooner on two cores. A container that fails to start is RunContainerError.
        """
        self._start_infra(pod_id, podname)
        if not containers:
            return
        if len(containers) == 1:
            errors = [self._start_container(containers[0])]
        else:
            with ThreadPoolExecutor(max_workers=len(containers), thread_name_prefix="podstart") as pool:
                errors = list(pool.map(self._start_container, containers))
        failed = [e for e in errors if e]
        if failed:
            raise RuntimeFailure(f"start pod {podname}: {'; '.join(failed)}", reason="RunContainerError")

    def _start_infra(self, pod_id: str, podname: str) -> None:
        data: Any = self.transport.json("get", f"/pods/{pod_id}/json", what=f"inspect pod {podname}")
        infra = str((data or {}).get("InfraContainerID") or "")
        if not infra:
            return  # a pod without infra: its containers keep their own namespaces
        error = self._start_container(infra)
        if error:
            raise RuntimeFailure(f"start pod {podname}: infra container: {error}", reason="RunContainerError")

    def _start_container(self, container_id: str) -> str | None:
        """Start one container; None if it runs (or already ran), else Podman's reason."""
        response = self.transport.request(
            "post", f"/containers/{container_id}/start", what=f"start {container_id[:12]}"
        )
        try:
            if response.status_code in (204, 304):
                return None
            return message(response)
        finally:
            response.close()


def _has_sctp_port(pod: Pod) -> bool:
    return any(p.protocol is Protocol.SCTP for c in pod.spec.all_containers() for p in c.ports)
