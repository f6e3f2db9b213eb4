"""The controllers the master runs, in the order of a pass; a new controller is one new file and one line here.

Each entry builds a controller (controllers.base.Controller) from the master's Setup; master.app builds them all
at start and, every pass, applies each one's plan before planning the next.
"""

from __future__ import annotations

from edgekube.master.controllers.base import ControllerFactory
from edgekube.master.controllers.deployment.controller import DeploymentController
from edgekube.master.controllers.endpoints import EndpointsController
from edgekube.master.controllers.nodelifecycle import NodeLifecycle
from edgekube.master.controllers.podcidr import PodCIDRAllocator
from edgekube.master.controllers.replication.controller import ReplicationManager
from edgekube.master.controllers.volumes.binder import VolumeBinder
from edgekube.master.controllers.volumes.protection import ClaimProtection
from edgekube.master.controllers.volumes.provisioner import NfsProvisioner

CONTROLLERS: tuple[ControllerFactory, ...] = (
    NodeLifecycle.build,  # first: its evictions are replaced by the controllers after it, in the same pass
    DeploymentController.build,  # before replication: the ReplicaSets it scales get their pods in the same pass
    ReplicationManager.build,
    EndpointsController.build,  # after the lifecycle and replication: evicted pods have left, new ones are in
    ClaimProtection.build,  # a claim whose last pod went is gone before the binder looks at it
    VolumeBinder.build,
    NfsProvisioner.build,  # after the binder: only claims no existing volume fits are provisioned for
    PodCIDRAllocator.build,  # each node's spec.podCIDR (docs/networking.md)
)
