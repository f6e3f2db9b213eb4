"""The node's pod network in Podman: the `edgekube` bridge on the node's podCIDR, pods' network and DNS; for create.

`ensure` makes the network (netavark bridge, gateway the CIDR's first address, Podman's own DNS off: the node's
responder answers on the gateway). A network of that name on another subnet is replaced when no container uses
it, else kept and reported (pods already on it keep running; docs/networking.md). Pods the agent created before
the pod network existed stay on Podman's default network until they are recreated: their spec hash does not
depend on the network, so an upgraded agent adopts them rather than restarting them.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Any

from edgekube.agent.runtime.podman import dns
from edgekube.agent.runtime.podman.transport import PodmanTransport
from edgekube.model.dns import DNSPolicy
from edgekube.model.errors import RuntimeFailure
from edgekube.model.netstate import CLUSTER_DOMAIN, POD_NETWORK
from edgekube.model.pod import Pod

log = logging.getLogger(__name__)

#: The kubelet's reason while the pod network is not configured (a create fails and is retried with back-off).
NETWORK_NOT_READY = "NetworkNotReady"
#: Kubernetes' `ndots` for ClusterFirst pods: a name with fewer dots is tried with the search path first.
NDOTS = 5


@dataclass(frozen=True)
class PodNetwork:
    """The node's pod subnet; `dns_server` the cluster DNS address for ClusterFirst pods ("": none)."""

    subnet: str
    name: str = POD_NETWORK
    dns_server: str = ""
    domain: str = CLUSTER_DOMAIN

    @property
    def gateway(self) -> str:
        return str(next(ipaddress.ip_network(self.subnet).hosts()))

    def pod_options(self, pod: Pod, host: dns.ResolvConf | None = None) -> dict[str, Any]:
        """`POST /pods/create` fields: the pod on this network; ClusterFirst pods resolve through the cluster DNS."""
        spec = pod.spec
        if spec.host_network:
            return {}
        body: dict[str, Any] = {"netns": {"nsmode": "bridge"}, "networks": {self.name: {}}}
        policy = spec.dns_policy or DNSPolicy.CLUSTER_FIRST
        if self.dns_server and policy in (DNSPolicy.CLUSTER_FIRST, DNSPolicy.CLUSTER_FIRST_WITH_HOST_NET):
            body.update(self.cluster_dns(pod, host if host is not None else dns.read_host()))
        return body

    def host_network_dns(self, pod: Pod, host: dns.ResolvConf | None = None) -> dict[str, Any]:
        """A hostNetwork pod's container DNS fields: the cluster DNS for ClusterFirstWithHostNet, else {}."""
        if not (self.dns_server and pod.spec.host_network):
            return {}
        if pod.spec.dns_policy is not DNSPolicy.CLUSTER_FIRST_WITH_HOST_NET:
            return {}
        return self.cluster_dns(pod, host if host is not None else dns.read_host())

    def cluster_dns(self, pod: Pod, host: dns.ResolvConf) -> dict[str, Any]:
        """The kubelet's ClusterFirst resolv.conf: the cluster server, its search path, `ndots:5`.

        Searches: `<ns>.svc.<domain> svc.<domain> <domain>` then the node's; a dnsConfig is appended to that as to
        the node's (podman/dns.py).
        """
        ns = pod.metadata.namespace or "default"
        base = dns.ResolvConf(
            [self.dns_server],
            [f"{ns}.svc.{self.domain}", f"svc.{self.domain}", self.domain, *host.searches],
            [f"ndots:{NDOTS}"],
        )
        if pod.spec.dns_config is not None:
            return dns.pod_options(pod.spec, base)
        return {"dns_server": base.nameservers, "dns_search": base.searches, "dns_option": base.options}


def ensure(transport: PodmanTransport, network: PodNetwork) -> None:
    """Make the pod network exist on `network.subnet` (idempotent); RuntimeFailure if Podman refuses."""
    what = f"network {network.name}"
    found: Any = transport.json("get", f"/networks/{network.name}/json", what=f"inspect {what}", ok_missing=True)
    if found is not None:
        subnets = [s.get("subnet") for s in found.get("subnets") or []]
        if subnets == [network.subnet]:
            return
        users: Any = transport.json(
            "get", "/containers/json", what="list containers", params={"all": "true", "filters": _on(network.name)}
        )
        if users:
            raise RuntimeFailure(
                f"{what} is on {subnets} but this node's podCIDR is {network.subnet}; {len(users)} containers still "
                "use it: remove their pods (or the network) to move it",
                reason=NETWORK_NOT_READY,
            )
        log.warning("%s is on %s, not on this node's podCIDR %s: made again", what, subnets, network.subnet)
        transport.request("delete", f"/networks/{network.name}", what=f"remove {what}").close()
    body = {
        "name": network.name,
        "driver": "bridge",
        "subnets": [{"subnet": network.subnet, "gateway": network.gateway}],
        "dns_enabled": False,
        "labels": {"io.edgekube.network": "pod"},
    }
    transport.json("post", "/networks/create", what=f"create {what}", reason=NETWORK_NOT_READY, body=body)
    log.info("%s created on %s (gateway %s)", what, network.subnet, network.gateway)


def _on(name: str) -> str:
    return '{"network":["%s"]}' % name  # noqa: UP031 - a JSON literal, braces and all
