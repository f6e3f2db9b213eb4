"""What a pod's volumes ask of scheduling: whether it may be placed at all, which NFS servers and which node it needs.

Kubernetes' VolumeBinding / VolumeRestrictions plugins, for edgekube's volumes: a pod whose claim is missing,
being deleted or not bound yet waits (`persistentvolumeclaim "x" not found`, `... is being deleted`, `pod has
unbound immediate PersistentVolumeClaims`; a WaitForFirstConsumer claim is bound because the pod uses it, see
`VolumeGate.unbound`); a ReadWriteOncePod claim serves one pod, a ReadWriteOnce claim the
pods of one node; the NFS servers of its volumes (the bound volume's, port from its mountOptions, and inline
`nfs` volumes) must be reachable from the node (scheduler.static_reason reads node status nfsServers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edgekube.master.controllers.base import StoreView
from edgekube.master.controllers.volumes import facts
from edgekube.master.controllers.volumes.facts import ClaimKey
from edgekube.master.controllers.volumes.users import ClaimUsers
from edgekube.model.errors import NotFoundError
from edgekube.model.storage import NO_PROVISIONER, AccessMode

RWOP_CONFLICT = "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode"
UNBOUND = "pod has unbound immediate PersistentVolumeClaims"
NO_VOLUME_TO_BIND = "node(s) didn't find available persistent volumes to bind"


@dataclass(frozen=True)
class VolumeCheck:
    """The verdict on one pod's volumes; `blocked` (None: it may be placed) is said for every node when `per_node`."""

    blocked: str | None = None
    per_node: bool = False
    servers: frozenset[tuple[str, int]] = frozenset()
    #: (node, claim): a ReadWriteOnce claim already in use on that node.
    pin: tuple[str, str] | None = None
    #: ReadWriteOnce(Pod) claims in use by no placed pod: one pod per claim may be placed in a pass.
    exclusive: tuple[ClaimKey, ...] = ()
    #: Not placed yet, and nothing to say: a WaitForFirstConsumer claim of the pod is being provisioned.
    waiting: bool = False


def _blocked(message: str, *, per_node: bool = False) -> VolumeCheck:
    return VolumeCheck(blocked=message, per_node=per_node)


class VolumeGate:
    """Checks pods against the stored claims and volumes (read through the cache) and the claims' users."""

    def __init__(self, store: StoreView, users: ClaimUsers) -> None:
        self.store = store
        self.users = users

    def check(self, pod: Mapping[str, Any]) -> VolumeCheck:
        namespace = pod["metadata"].get("namespace") or "default"
        pod_uid = pod["metadata"].get("uid") or ""
        servers = {(s.server, s.port) for s in facts.inline_servers(pod)}
        pin: tuple[str, str] | None = None
        exclusive: list[ClaimKey] = []
        for _, claim_name, _ in facts.pod_claims(pod):
            try:
                claim = self.store.peek("PersistentVolumeClaim", namespace, claim_name)
            except NotFoundError:
                return _blocked(f'persistentvolumeclaim "{claim_name}" not found')
            if facts.deleting(claim):
                return _blocked(f'persistentvolumeclaim "{claim_name}" is being deleted')
            volume_name = claim["spec"].get("volumeName")
            if not volume_name or (claim.get("status") or {}).get("phase") != "Bound":
                return self.unbound(claim)
            try:
                volume = self.store.peek("PersistentVolume", "", volume_name)
            except NotFoundError:
                return _blocked(
                    f'persistentvolumeclaim "{claim_name}" is bound to persistentvolume "{volume_name}", '
                    "which is not found"
                )
            server = facts.volume_server(volume)
            if server is not None:
                servers.add((server.server, server.port))
            modes = facts.access_modes(claim)
            others = {u.node for k, u in self.users.users(namespace, claim_name).items() if u.uid != pod_uid}
            placed = sorted(n for n in others if n)
            if AccessMode.READ_WRITE_ONCE_POD in modes:
                if placed:
                    return _blocked(RWOP_CONFLICT, per_node=True)
                exclusive.append((namespace, claim_name))
            elif AccessMode.READ_WRITE_ONCE in modes:
                if placed:
                    if pin is not None and pin[0] != placed[0]:
                        return _blocked(
                            f'ReadWriteOnce persistentvolumeclaims "{pin[1]}" and "{claim_name}" are in use on '
                            f"different nodes ({pin[0]}, {placed[0]})"
                        )
                    pin = (placed[0], claim_name)
                else:
                    exclusive.append((namespace, claim_name))
        return VolumeCheck(servers=frozenset(servers), pin=pin, exclusive=tuple(exclusive))

    def unbound(self, claim: Mapping[str, Any]) -> VolumeCheck:
        """The verdict on a pod whose claim is not bound yet.

        An Immediate claim should be bound already: `pod has unbound immediate PersistentVolumeClaims`. A
        WaitForFirstConsumer claim is bound because this pod uses it (binder and provisioner act once any pod
        does), so the pod waits, unremarked, while the class's provisioner makes its volume, as Kubernetes'
        scheduler waits in PreBind; it is placed the pass after the claim is Bound. A class that provisions
        nothing (kubernetes.io/no-provisioner) with no volume that fits (the binder, earlier in the pass,
        would have bound one): `N node(s) didn't find available persistent volumes to bind`.
        """
        class_name = facts.claim_class(claim)
        try:
            storage_class = self.store.peek("StorageClass", "", class_name) if class_name else None
        except NotFoundError:
            storage_class = None
        if storage_class is None or facts.binding_mode(storage_class) != "WaitForFirstConsumer":
            return _blocked(UNBOUND)
        if storage_class.get("provisioner") == NO_PROVISIONER:
            return _blocked(NO_VOLUME_TO_BIND, per_node=True)
        return VolumeCheck(waiting=True)
