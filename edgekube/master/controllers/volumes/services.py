"""What the volume controllers share, built once by the master: the claim-users index and the NFS worker."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgekube.master.controllers.volumes.nfsio import NoShareFs
from edgekube.master.controllers.volumes.users import ClaimUsers
from edgekube.master.controllers.volumes.worker import VolumeWorker


@dataclass(frozen=True)
class VolumeServices:
    """`users` must be fed every Pod write (the master has the cache call `users.observe`)."""

    users: ClaimUsers = field(default_factory=ClaimUsers)
    worker: VolumeWorker = field(default_factory=lambda: VolumeWorker(NoShareFs()))
