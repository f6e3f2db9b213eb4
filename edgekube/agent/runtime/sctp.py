"""Whether this node's kernel speaks SCTP, and the refusal of an SCTP hostPort without it; for the Podman create step.

Podman accepts an `sctp` port mapping and starts the pod even when the kernel has no SCTP (no `sctp` module): the
mapping then forwards nothing, silently. The kubelet would fail the sandbox when its CNI port mapping fails; here the
create is refused first, with a message that says why (FailedCreatePodSandBox, retried with back-off, so loading
the module lets the pod start). A containerPort without hostPort needs no mapping and is never refused: the app
finds out itself when it opens its socket.
"""

from __future__ import annotations

import functools
import socket

from edgekube.model.pod import PodSpec, Protocol

#: The create failure's reason: the kubelet's event when a pod's sandbox (its network) cannot be set up.
SANDBOX_FAILED = "FailedCreatePodSandBox"


@functools.cache
def kernel_has_sctp() -> bool:
    """True when an SCTP socket can be opened (the sctp module is loaded or built in); asked once per process."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_SCTP):
            return True
    except OSError:
        return False


def sctp_host_port_error(spec: PodSpec, has_sctp: bool) -> str | None:
    """Why the pod's SCTP hostPorts cannot be mapped on this node (None: none, or the kernel has SCTP)."""
    if has_sctp or spec.host_network:
        return None
    for container in spec.all_containers():
        for port in container.ports:
            if port.protocol is Protocol.SCTP and port.host_port is not None:
                return (
                    f"Failed to create pod sandbox: hostPort {port.host_port}/SCTP of container {container.name!r} "
                    "cannot be mapped: this node's kernel has no SCTP support (load it with `modprobe sctp`)"
                )
    return None
