"""Kubernetes' service environment variables (`<SVC>_SERVICE_HOST`, docker links) for a new pod; used by create.

The kubelet's getServiceEnvVarMap/FromServices: every Service of the pod's namespace with a clusterIP (not
headless), as the ServiceTable holds it when the pod's containers are created; the container's own `env` wins.
"""

from __future__ import annotations

from edgekube.model.netstate import ServiceEntry, ServiceTable


def _prefix(name: str) -> str:
    return name.upper().replace("-", "_")


def service_env(svc: ServiceEntry) -> dict[str, str]:
    """One Service's variables, in the kubelet's order."""
    if svc.headless or not svc.ports:
        return {}
    prefix = _prefix(svc.name)
    env = {f"{prefix}_SERVICE_HOST": svc.cluster_ip, f"{prefix}_SERVICE_PORT": str(svc.ports[0].port)}
    for port in svc.ports:
        if port.name:
            env[f"{prefix}_SERVICE_PORT_{_prefix(port.name)}"] = str(port.port)
    for index, port in enumerate(svc.ports):
        proto = port.protocol.lower()
        url = f"{proto}://{svc.cluster_ip}:{port.port}"
        if index == 0:
            env[f"{prefix}_PORT"] = url
        link = f"{prefix}_PORT_{port.port}_{port.protocol.upper()}"
        env.update({link: url, f"{link}_PROTO": proto, f"{link}_PORT": str(port.port), f"{link}_ADDR": svc.cluster_ip})
    return env


def namespace_env(table: ServiceTable, namespace: str) -> dict[str, str]:
    """Every variable for a pod in `namespace`, Services by name (a later one never hides an earlier one's)."""
    env: dict[str, str] = {}
    for svc in sorted(table.services, key=lambda s: s.name):
        if svc.namespace == namespace:
            env.update(service_env(svc))
    return env
