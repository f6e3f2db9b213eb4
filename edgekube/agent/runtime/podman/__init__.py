"""PodmanRuntime, the PodRuntime over Podman's REST socket, split the way podman-py splits its domain.

`transport` (the API client; errors and timeouts → RuntimeFailure), `naming` (names, labels, states),
`specgen` (pure create documents), `images` (pull policy), `create` (volumes, pod, containers, start),
`observe` (list, inspect, logs, exit events), `exec`, `stop` (signals, removal) — and `runtime`, the facade.
"""

from edgekube.agent.runtime.podman.naming import container_name, pod_name, volume_name
from edgekube.agent.runtime.podman.runtime import PodmanRuntime

__all__ = ["PodmanRuntime", "container_name", "pod_name", "volume_name"]
