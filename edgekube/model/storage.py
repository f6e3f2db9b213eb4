"""PersistentVolume, PersistentVolumeClaim (v1) and StorageClass (storage.k8s.io/v1), and what a node is told of them.

Shapes and rules follow Kubernetes (pkg/apis/core/validation: ValidatePersistentVolume*, pkg/apis/storage/validation).
The sources edgekube mounts are NFS exports (and hostPath, for one-node volumes); `ResolvedVolume` is what the master
sends a node for each claim a pod uses, so agents never read the store.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, StrictBool, StrictInt, field_validator, model_validator

from edgekube.model.base import K8sModel
from edgekube.model.controllers import LabelSelector
from edgekube.model.errors import ValidationError
from edgekube.model.meta import ObjectMeta
from edgekube.model.pod import HostPathVolumeSource, NFSVolumeSource
from edgekube.model.quantity import Quantity, memory_bytes

#: The annotation that makes a StorageClass the one claims without `storageClassName` get.
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
#: edgekube's own dynamic NFS provisioner; csi-driver-nfs' name is accepted as the same thing.
NFS_PROVISIONER = "edgekube.io/nfs"
NFS_PROVISIONERS = frozenset({NFS_PROVISIONER, "nfs.csi.k8s.io", "k8s-sigs.io/nfs-subdir-external-provisioner"})
#: A class with this provisioner only matches pre-made (static) volumes.
NO_PROVISIONER = "kubernetes.io/no-provisioner"
#: The finalizer that keeps a claim (or a volume) while pods use it; the master removes it when they are gone.
PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"
#: Annotations the binder and provisioner leave on what they made, as Kubernetes does.
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"


class AccessMode(StrEnum):
    READ_WRITE_ONCE = "ReadWriteOnce"
    READ_ONLY_MANY = "ReadOnlyMany"
    READ_WRITE_MANY = "ReadWriteMany"
    READ_WRITE_ONCE_POD = "ReadWriteOncePod"


#: kubectl's short names, for the ACCESS MODES column.
ACCESS_MODE_SHORT = {
    AccessMode.READ_WRITE_ONCE: "RWO",
    AccessMode.READ_ONLY_MANY: "ROX",
    AccessMode.READ_WRITE_MANY: "RWX",
    AccessMode.READ_WRITE_ONCE_POD: "RWOP",
}


class ReclaimPolicy(StrEnum):
    RETAIN = "Retain"
    DELETE = "Delete"


class VolumePhase(StrEnum):
    PENDING = "Pending"
    AVAILABLE = "Available"
    BOUND = "Bound"
    RELEASED = "Released"
    FAILED = "Failed"


class ClaimPhase(StrEnum):
    PENDING = "Pending"
    BOUND = "Bound"
    LOST = "Lost"


def _storage(value: Quantity, field: str) -> Quantity:
    if memory_bytes(value, field) <= 0:
        raise ValidationError(f"{field}: Invalid value: {value!r}: must be greater than zero")
    return value


def _access_modes(modes: list[AccessMode]) -> list[AccessMode]:
    if not modes:
        raise ValidationError("Required value: at least 1 access mode is required")
    if AccessMode.READ_WRITE_ONCE_POD in modes and len(modes) > 1:
        raise ValidationError("Forbidden: may not use ReadWriteOncePod with other access modes")
    return modes


class ObjectReference(K8sModel):
    """spec.claimRef of a volume: the claim it is (or is reserved to be) bound to."""

    kind: str = "PersistentVolumeClaim"
    api_version: str = "v1"
    namespace: str = "default"
    name: str
    uid: str | None = None
    resource_version: str | None = None


class PersistentVolumeSpec(K8sModel):
    capacity: dict[Literal["storage"], Quantity]
    access_modes: list[AccessMode]
    persistent_volume_reclaim_policy: ReclaimPolicy = ReclaimPolicy.RETAIN
    storage_class_name: str = ""
    mount_options: list[str] = Field(default_factory=list)
    volume_mode: Literal["Filesystem"] = "Filesystem"
    claim_ref: ObjectReference | None = None
    nfs: NFSVolumeSource | None = None
    host_path: HostPathVolumeSource | None = None

    @field_validator("capacity")
    @classmethod
    def _capacity(cls, value: dict[Literal["storage"], Quantity]) -> dict[Literal["storage"], Quantity]:
        if "storage" not in value:
            raise ValidationError("storage: Required value")
        _storage(value["storage"], "storage")
        return value

    @field_validator("access_modes")
    @classmethod
    def _modes(cls, value: list[AccessMode]) -> list[AccessMode]:
        return _access_modes(value)

    @model_validator(mode="after")
    def _one_source(self) -> PersistentVolumeSpec:
        sources = [s for s in (self.nfs, self.host_path) if s is not None]
        if not sources:
            raise ValidationError("must specify a volume type (supported: nfs, hostPath)")
        if len(sources) > 1:
            raise ValidationError("may not specify more than 1 volume type")
        if self.mount_options and self.host_path is not None:
            raise ValidationError("mountOptions: Forbidden: may not specify mount options for this volume type")
        return self

    def capacity_bytes(self) -> int:
        return memory_bytes(self.capacity["storage"], "capacity.storage")


class PersistentVolumeStatus(K8sModel):
    phase: VolumePhase = VolumePhase.PENDING
    message: str | None = None
    reason: str | None = None
    last_phase_transition_time: str | None = None


class PersistentVolume(K8sModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["PersistentVolume"] = "PersistentVolume"
    metadata: ObjectMeta
    spec: PersistentVolumeSpec
    status: PersistentVolumeStatus | None = None


class VolumeResourceRequirements(K8sModel):
    requests: dict[Literal["storage"], Quantity] = Field(default_factory=dict)
    limits: dict[Literal["storage"], Quantity] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _storage(self) -> VolumeResourceRequirements:
        if "storage" not in self.requests:
            raise ValidationError("requests.storage: Required value")
        _storage(self.requests["storage"], "requests.storage")
        if "storage" in self.limits:
            _storage(self.limits["storage"], "limits.storage")
        return self


class PersistentVolumeClaimSpec(K8sModel):
    access_modes: list[AccessMode]
    resources: VolumeResourceRequirements
    #: None: the default StorageClass; "": only volumes without a class.
    storage_class_name: str | None = None
    selector: LabelSelector | None = None
    #: Pre-binding to a named volume.
    volume_name: str = ""
    volume_mode: Literal["Filesystem"] = "Filesystem"

    @field_validator("access_modes")
    @classmethod
    def _modes(cls, value: list[AccessMode]) -> list[AccessMode]:
        return _access_modes(value)

    @model_validator(mode="after")
    def _selector(self) -> PersistentVolumeClaimSpec:
        if self.selector is not None:
            self.selector.to_selector(path="selector")
        return self

    def request_bytes(self) -> int:
        return memory_bytes(self.resources.requests["storage"], "resources.requests.storage")


class PersistentVolumeClaimStatus(K8sModel):
    phase: ClaimPhase = ClaimPhase.PENDING
    access_modes: list[AccessMode] = Field(default_factory=list)
    capacity: dict[Literal["storage"], Quantity] = Field(default_factory=dict)


class PersistentVolumeClaim(K8sModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["PersistentVolumeClaim"] = "PersistentVolumeClaim"
    metadata: ObjectMeta
    spec: PersistentVolumeClaimSpec
    status: PersistentVolumeClaimStatus | None = None


class StorageClass(K8sModel):
    """storage.k8s.io/v1 StorageClass: top-level fields, no spec (as in Kubernetes).

    For the NFS provisioner, `parameters` are `server`, `share` (the export path to make sub-directories in),
    optional `port`, `archiveOnDelete` ("true": rename to `archived-…` instead of removing on Delete) and
    `onDelete` (`delete` | `retain` | `archive`, overrides archiveOnDelete), as csi-driver-nfs and
    nfs-subdir-external-provisioner spell them.
    """

    api_version: Literal["storage.k8s.io/v1"] = "storage.k8s.io/v1"
    kind: Literal["StorageClass"] = "StorageClass"
    metadata: ObjectMeta
    provisioner: str
    parameters: dict[str, str] = Field(default_factory=dict)
    reclaim_policy: ReclaimPolicy = ReclaimPolicy.DELETE
    mount_options: list[str] = Field(default_factory=list)
    allow_volume_expansion: StrictBool | None = None
    volume_binding_mode: Literal["Immediate", "WaitForFirstConsumer"] = "Immediate"

    @field_validator("provisioner")
    @classmethod
    def _provisioner(cls, value: str) -> str:
        if not value:
            raise ValidationError("Required value")
        if value not in NFS_PROVISIONERS and value != NO_PROVISIONER:
            known = ", ".join(sorted(NFS_PROVISIONERS | {NO_PROVISIONER}))
            raise ValidationError(f"Unsupported value: {value!r}: supported values: {known}")
        return value

    @model_validator(mode="after")
    def _parameters(self) -> StorageClass:
        if self.provisioner in NFS_PROVISIONERS:
            for key in ("server", "share"):
                if not self.parameters.get(key):
                    raise ValidationError(f"parameters.{key}: Required value for provisioner {self.provisioner}")
            share = self.parameters["share"]
            if not share.startswith("/"):
                raise ValidationError(f"parameters.share: Invalid value: {share!r}: must be an absolute path")
            port = self.parameters.get("port")
            if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
                raise ValidationError(f"parameters.port: Invalid value: {port!r}: must be a port number 1-65535")
            on_delete = self.parameters.get("onDelete")
            if on_delete is not None and on_delete not in ("delete", "retain", "archive"):
                raise ValidationError(
                    f"parameters.onDelete: Unsupported value: {on_delete!r}: supported values: delete, retain, archive"
                )
            archive = self.parameters.get("archiveOnDelete")
            if archive is not None and archive.lower() not in ("true", "false"):
                raise ValidationError(f"parameters.archiveOnDelete: Invalid value: {archive!r}: must be true or false")
        return self

    def is_default(self) -> bool:
        return self.metadata.annotations.get(DEFAULT_CLASS_ANNOTATION, "").lower() == "true"


class ResolvedVolume(K8sModel):
    """Master → node, per persistentVolumeClaim volume of a pod: the source of the volume its claim is bound to."""

    claim_name: str
    volume_name: str
    access_modes: list[AccessMode]
    #: The claim's or the pod's readOnly, or a volume only ReadOnlyMany: mount read-only.
    read_only: StrictBool = False
    nfs: NFSVolumeSource | None = None
    host_path: HostPathVolumeSource | None = None
    mount_options: list[str] = Field(default_factory=list)

    def exclusive(self) -> bool:
        """ReadWriteOnce / ReadWriteOncePod written by this node: it must hold the volume's lease (fencing)."""
        if self.read_only or self.nfs is None:
            return False
        return bool({AccessMode.READ_WRITE_ONCE, AccessMode.READ_WRITE_ONCE_POD} & set(self.access_modes)) and (
            AccessMode.READ_WRITE_MANY not in self.access_modes
        )


class NfsServer(K8sModel):
    """An NFS server the cluster's volumes live on: agents probe each one and report it in the node's status."""

    server: str
    port: StrictInt = Field(default=2049, ge=1, le=65535)

    def address(self) -> str:
        return self.server if self.port == 2049 else f"{self.server}:{self.port}"


def mount_port(mount_options: list[str]) -> int:
    """The NFS port a volume's mount options name (`port=N`), else 2049."""
    for option in mount_options:
        for part in option.split(","):
            key, _, value = part.partition("=")
            if key.strip() == "port" and value.strip().isdigit():
                return int(value)
    return 2049


#: The key, beside `metadata` and `spec`, under which a desired pod (NodeDesired.pods) carries its claims' volumes:
#: `{volume name: ResolvedVolume}` for each persistentVolumeClaim volume (master.dispatch fills it, agents read it).
RESOLVED_VOLUMES_KEY = "volumeSources"
