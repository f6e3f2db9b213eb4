"""Which PersistentVolumes the nodes still hold (node.status.volumesInUse): a claim and its directory wait for them.

Deleting a pod takes it out of the store at once, while its node stops its containers and removes their volumes
a moment later (an NFS mount through the FUSE helper among them). As Kubernetes' kubelet, each agent lists the
volumes it still has in its Node's status.volumesInUse (`edgekube.io/nfs/<pv name>`); pvc-protection keeps a
claim, and the NFS provisioner a released volume's directory, until no node lists the volume any more.
"""

from __future__ import annotations

from collections.abc import Iterable

from edgekube.master.controllers.volumes.facts import Obj
from edgekube.model.node import NFS_VOLUME_IN_USE


def held(nodes: Iterable[Obj]) -> frozenset[str]:
    """Names of the PersistentVolumes the stored nodes list in status.volumesInUse.

    Every stored node counts, NotReady ones too: a node cut off from the master may still run its pods and
    write to the volume, so its last word stands until it reports again. A node deleted from the cluster
    (`ekctl delete node`) is no longer stored and no longer counts (were its agent still running, its next
    report registers it again, volumes and all).
    """
    out: set[str] = set()
    for node in nodes:
        for entry in (node.get("status") or {}).get("volumesInUse") or ():
            if isinstance(entry, str) and entry.startswith(NFS_VOLUME_IN_USE):
                out.add(entry.removeprefix(NFS_VOLUME_IN_USE))
    return frozenset(out)
