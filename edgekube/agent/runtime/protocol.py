"""The PodRuntime protocol the agent's reconciler drives, and the observed-state records runtimes return."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from edgekube.model.errors import RuntimeFailure
from edgekube.model.lifecycle import LifecycleHandler
from edgekube.model.names import PodUID
from edgekube.model.pod import Pod
from edgekube.model.registryauth import RegistryCredential
from edgekube.model.storage import ResolvedVolume

#: The kubelet's waiting reasons of a container whose image cannot be had (the pod stays Pending, retried).
ERR_IMAGE_PULL = "ErrImagePull"
IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"


class ImageFailure(RuntimeFailure):
    """A create that failed for want of `image`: ErrImagePull (`detail`: the runtime's error) or ErrImageNeverPull."""

    def __init__(self, image: str, detail: str, *, reason: str = ERR_IMAGE_PULL) -> None:
        message = f"failed to pull image {image!r}: {detail}" if reason == ERR_IMAGE_PULL else detail
        super().__init__(message, reason=reason)
        self.image = image
        self.detail = detail


def never_pull(image: str) -> ImageFailure:
    """The kubelet's ErrImageNeverPull: the image is absent and imagePullPolicy is Never."""
    message = f'Container image "{image}" is not present with pull policy of Never'
    return ImageFailure(image, message, reason=ERR_IMAGE_NEVER_PULL)


#: Labels put on every Podman object edgekube creates, so a restarted agent can find and adopt them.
LABEL_MANAGED = "io.edgekube.managed"
LABEL_NODE = "io.edgekube.node"
LABEL_POD_UID = "io.edgekube.pod.uid"
LABEL_POD_NAME = "io.edgekube.pod.name"
LABEL_POD_NAMESPACE = "io.edgekube.pod.namespace"
LABEL_SPEC_HASH = "io.edgekube.spec-hash"
#: The pod's terminationGracePeriodSeconds: a pod removed after it left the desired state keeps its own grace.
LABEL_GRACE = "io.edgekube.grace-seconds"
LABEL_CONTAINER = "io.edgekube.container"
#: A container's preStop hook (model.lifecycle.stored): run before it is stopped, even once its pod left the spec.
LABEL_PRE_STOP = "io.edgekube.pre-stop"
#: The host device nodes mapped into a container (comma-separated): how a restarted agent knows which are taken.
LABEL_DEVICES = "io.edgekube.devices"
#: Labels of the volumes of a pod's persistentVolumeClaim volumes: the PersistentVolume and the claim
#: (`<namespace>/<name>`) each serves, whatever pod it belonged to: what node.status.volumesInUse is made of.
LABEL_PV = "edgekube.io/pv"
LABEL_PVC = "edgekube.io/pvc"
#: The kind of volume (runtime.volumes.VolumeKind) a runtime volume is.
LABEL_VOLUME_KIND = "io.edgekube.volume.kind"

#: exec output kept for a probe message (Kubernetes keeps 10 KiB too).
MAX_EXEC_OUTPUT = 10 * 1024


class ContainerRunState(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ObservedContainer:
    """One app container of a pod as the runtime sees it (the infra container is not listed)."""

    name: str
    container_id: str
    image: str
    state: ContainerRunState
    exit_code: int | None = None
    started_at: str | None = None  # RFC 3339 UTC
    finished_at: str | None = None
    error: str | None = None
    #: Host device nodes mapped into it (its extended resources, e.g. `/dev/ttyUSB0` for edgekube.io/serial).
    devices: tuple[str, ...] = ()
    #: An init container with `restartPolicy: Always` (a sidecar); only ever True in ObservedPod.init_containers.
    sidecar: bool = False
    #: Its preStop hook, as the runtime recorded it when creating it (None: it has none).
    pre_stop: LifecycleHandler | None = None


@dataclass(frozen=True)
class ObservedPod:
    """One edgekube pod found on the runtime, identified by the labels the agent put on it."""

    uid: PodUID
    namespace: str
    name: str
    spec_hash: str
    pod_id: str
    containers: tuple[ObservedContainer, ...] = field(default_factory=tuple)
    #: The pod's address on the runtime's default network (the infra container's); None while it is stopped.
    ip: str | None = None
    #: False once the infra container (network namespace) stopped: a reboot or `podman pod stop`, never the agent.
    infra_running: bool = True
    #: The pod's terminationGracePeriodSeconds as created (None: a pod created before the agent recorded it).
    grace_seconds: int | None = None
    #: Its init containers (sidecars among them) in spec order. One that ran to completion stays here, exited 0,
    #: for the pod's life: that is how a restarted agent knows not to run it again.
    init_containers: tuple[ObservedContainer, ...] = ()


@dataclass(frozen=True, slots=True)
class ContainerStats:
    """One running app container's resource use as the engine counts it (cumulative since the container started).

    Containers of a pod share its network namespace, so each reports the pod's network traffic.
    """

    uid: PodUID
    namespace: str
    pod: str
    container: str
    container_id: str
    cpu_seconds: float  # CPU time used (user + system)
    memory_bytes: int  # memory in use (the cgroup's usage as the engine reports it)
    memory_limit_bytes: int | None  # None: no limit below the node's memory
    rx_bytes: int
    tx_bytes: int
    read_bytes: int  # block I/O
    write_bytes: int
    pids: int


@dataclass(frozen=True)
class RuntimeInfo:
    name: str  # "podman"
    version: str  # "4.3.1"
    api_version: str


@dataclass(frozen=True)
class LogWindow:
    """Which of a container's log lines `logs` returns (`ekctl logs --since/--previous/--timestamps`)."""

    since: float | None = None  # Unix seconds
    until: float | None = None
    timestamps: bool = False


class TtySession(Protocol):
    """An interactive command with a terminal (`ekctl exec -it`): its output, its input, its size, its end."""

    def read(self) -> bytes:
        """The next output, blocking; b"" once the command ended."""
        ...

    def write(self, data: bytes) -> None: ...

    def resize(self, rows: int, cols: int) -> None: ...

    def exit_code(self) -> int:
        """After read() returned b"": the command's exit code."""
        ...

    def close(self) -> None:
        """Hang up (the command gets SIGHUP)."""
        ...


class PodRuntime(Protocol):
    """What the agent needs from a container engine. Every method is idempotent and safe to repeat."""

    def info(self) -> RuntimeInfo:
        """Engine name and version (for Node.status.nodeInfo)."""
        ...

    def list_pods(self) -> list[ObservedPod]:
        """Every pod this agent's node created (label io.edgekube.node == node), running or not."""
        ...

    def create_pod(
        self,
        pod: Pod,
        uid: PodUID,
        spec_hash: str,
        volumes: Mapping[str, ResolvedVolume] | None = None,
        devices: Mapping[str, Sequence[str]] | None = None,
        *,
        credentials: Sequence[RegistryCredential] = (),
    ) -> ObservedPod:
        """Create and start the pod: infra container (shared localhost), its volumes, then its containers.

        A pod with init containers has every container created (init ones too) but only its infra container
        started: the agent starts them one by one (start_containers), as its plan decides.

        `volumes` are the sources of its persistentVolumeClaim volumes, by volume name; `devices` the host device
        nodes mapped into each container (by container name, at the same path, without privileges), which
        list_pods shows again in ObservedContainer.devices. Volumes are checked
        first (hostPath types, subPaths, claims, NFS servers): a refusal is RuntimeFailure `FailedMount` with the
        kubelet's `MountVolume.SetUp failed for volume "x" : ...`, before anything is created. Images are pulled
        per the container's pull policy, with `credentials` (the pod's imagePullSecrets' entries) where one matches
        the image's registry (model.registryauth.lookup). Raises RuntimeFailure with `reason` set (`ErrImagePull`,
        `ErrImageNeverPull` (ImageFailure, naming the image), `CreateContainerError`, ...) and leaves nothing
        half-created behind.
        """
        ...

    def remove_pod(self, uid: PodUID, grace_seconds: int = 10) -> None:
        """Stop (SIGTERM, then SIGKILL after the grace) and remove the pod, its containers and emptyDir volumes.

        Removing a pod that does not exist is not an error.
        """
        ...

    def stop_pod(self, uid: PodUID, grace_seconds: int = 10) -> None:
        """Stop the pod's app containers (SIGTERM, SIGKILL after the grace) and wait until they have exited.

        The pod, its containers, volumes and infra container (so its IP) remain: `restart_pod` starts the
        same containers again. Stopping a stopped pod is a no-op; NotFoundError if there is no such pod.
        """
        ...

    def restart_pod(self, uid: PodUID, grace_seconds: int = 10) -> ObservedPod:
        """Restart the pod as a unit, keeping pod and container IDs: stop what still runs, then start them all.

        A stopped infra container is started first, then the sidecars not running, then the app containers;
        completed init containers are not run again (running sidecars are left alone). RuntimeFailure
        (`RunContainerError`) if Podman cannot start a container; NotFoundError if there is no such pod.
        """
        ...

    def start_containers(self, uid: PodUID, names: Sequence[str]) -> ObservedPod:
        """Start the named containers of the pod (init or app; an exited one runs again), side by side.

        The infra container is started first if it is stopped. RuntimeFailure (`RunContainerError`) if one cannot
        start; NotFoundError if there is no such pod or container.
        """
        ...

    def stop_containers(self, uid: PodUID, names: Sequence[str], grace_seconds: int = 10) -> None:
        """Stop the named running containers one after another, in the order given, within one shared grace.

        Used for the sidecars of a pod that ended (last one first). NotFoundError if there is no such pod.
        """
        ...

    def exec(
        self, uid: PodUID, container: str, command: list[str], timeout: float, max_output: int = MAX_EXEC_OUTPUT
    ) -> tuple[int, str]:
        """Run `command` in a running container; (exit code, stdout+stderr cut to `max_output` characters).

        RuntimeFailure with reason `Timeout` if it did not finish within `timeout` seconds; NotFoundError if
        the pod or container does not exist; RuntimeFailure if the container is not running.
        """
        ...

    def copy_from(self, uid: PodUID, container: str, path: str, limit: int) -> bytes:
        """A tar of `path` in the container, its last component at the top.

        ValidationError past `limit` bytes; NotFoundError if the pod, container or path does not exist.
        """
        ...

    def copy_to(self, uid: PodUID, container: str, directory: str, tar: bytes) -> None:
        """Unpack `tar` into `directory` of the container; NotFoundError if the directory does not exist."""
        ...

    def exec_tty(self, uid: PodUID, container: str, command: list[str], rows: int, cols: int) -> TtySession:
        """Start `command` in a running container with a terminal of rows x cols, stdin attached.

        NotFoundError if the pod or container does not exist; RuntimeFailure if it is not running.
        """
        ...

    def wait_for_exit(self, timeout: float) -> bool:
        """Block until a container of this node exits (True) or `timeout` seconds pass (False).

        Lets the agent react at once rather than on its next resync; it may also return early, so callers
        re-read list_pods() either way. Never raises: an unreachable engine is waited out.
        """
        ...

    def has_image(self, image: str) -> bool:
        """True if `image` is present on the node (no pull needed under imagePullPolicy IfNotPresent)."""
        ...

    def logs(self, uid: PodUID, container: str, tail: int | None = None, window: LogWindow | None = None) -> str:
        """stdout+stderr of one container; NotFoundError names the pod or container that is missing.

        `window`: only lines written in [since, until] (Unix seconds), each prefixed with its RFC 3339 time when
        `timestamps`; the runtime keeps a container's lines across its restarts, so a window picks one run.
        """
        ...

    def stats(self) -> list[ContainerStats]:
        """Resource use of every running app container of this node (infra containers left out).

        Sorted by namespace, pod and container; [] when none runs. RuntimeFailure if the engine cannot be asked.
        """
        ...

    def volume_usage(self, uid: PodUID) -> dict[str, int]:
        """Bytes each disk emptyDir of the pod uses (du), by volume name; {} for a pod that has none or is gone."""
        ...

    def container_usage(self, uid: PodUID) -> dict[str, int]:
        """Bytes each app container of the pod holds on the node's disk, its writable layer plus its log, by name.

        What the kubelet's local-storage eviction counts per container; {} for a pod that is gone. Reads only.
        """
        ...

    def volumes_in_use(self) -> list[str] | None:
        """node.status.volumesInUse: `edgekube.io/nfs/<pv>` for each NFS claim volume the engine holds, sorted.

        Every volume of this node counts, of desired pods or not, running or not, until it is removed (a volume
        whose removal failed keeps its claim's directory on the server). Never a call to the engine, so the
        loop may ask every pass: the answer is what was last listed, refreshed off the loop (before create_pod
        and remove_pod return, and by wait_for_exit when the last listing is older than the runtime's refresh
        interval, returning True when it changed). None while nothing has been listed yet.
        """
        ...
