"""Service (v1) with Kubernetes' defaults and validation (validation.go ValidateService); used by manifest and master.

Defaults are SetDefaults_Service's: type ClusterIP, sessionAffinity None (ClientIP's timeout 10800 s), each port's
protocol TCP and targetPort its port. The clusterIP and nodePorts are the master's to allocate (master.services):
the model checks their form only, the master checks them against `--service-cidr` and the node-port range.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, StrictBool, StrictInt, model_validator

from edgekube.model.base import K8sModel
from edgekube.model.errors import ValidationError
from edgekube.model.fielderrors import Problems, duplicate, forbidden, invalid, not_supported, required
from edgekube.model.meta import ObjectMeta, check_label_map
from edgekube.model.names import dns1123_label_errors, port_name_errors, port_num_errors, regex_error

CLUSTER_IP_NONE = "None"
#: Service types edgekube runs; Kubernetes' LoadBalancer and ExternalName are refused as not supported.
SERVICE_TYPES = ("ClusterIP", "NodePort")
PROTOCOLS = ("SCTP", "TCP", "UDP")  # supportedPortProtocols, listed sorted as Kubernetes does
AFFINITIES = ("ClientIP", "None")
#: DefaultClientIPServiceAffinitySeconds and MaxClientIPServiceAffinitySeconds (pkg/apis/core/types.go).
DEFAULT_AFFINITY_SECONDS = 10800
MAX_AFFINITY_SECONDS = 86400
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL = re.compile(f"^{_DNS1035_LABEL_FMT}$")


def dns1035_label_errors(value: str) -> list[str]:
    """Apimachinery IsDNS1035Label (ValidateServiceName = NameIsDNS1035Label), with Kubernetes' wording."""
    errs = ["must be no more than 63 characters"] if len(value) > 63 else []
    if not _DNS1035_LABEL.match(value):
        errs.append(
            regex_error(
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                "alphabetic character, and end with an alphanumeric character",
                _DNS1035_LABEL_FMT,
                "my-name",
                "abc-123",
            )
        )
    return errs


def target_port_errors(path: str, value: int | str) -> list[str]:
    """validation.go ValidatePortNumOrName: a port number, or an IANA_SVC_NAME (IsValidPortName)."""
    if isinstance(value, int):
        return [invalid(path, value, m) for m in port_num_errors(value)]
    return [invalid(path, value, m) for m in port_name_errors(value)]


class ServicePort(K8sModel):
    name: str | None = None
    protocol: str = "TCP"
    port: StrictInt
    #: A number or a container port's name; unset (or 0, "") it is the port (SetDefaults_Service).
    target_port: StrictInt | str | None = None
    #: Allocated by the master for NodePort services (30000-32767) when not given.
    node_port: StrictInt | None = None

    @model_validator(mode="after")
    def _defaults(self) -> ServicePort:
        if self.target_port in (None, 0, ""):
            self.target_port = self.port
        if self.node_port == 0:
            self.node_port = None
        return self


class ClientIPConfig(K8sModel):
    timeout_seconds: StrictInt | None = None


class SessionAffinityConfig(K8sModel):
    client_ip: ClientIPConfig | None = Field(default=None, alias="clientIP")


def _port_errors(i: int, port: ServicePort, require_name: bool, names: set[str]) -> list[str]:
    """validation.go validateServicePort: name (several ports: required, unique), port, protocol, targetPort."""
    at = f"ports[{i}]"
    errs: list[str] = []
    if require_name and not port.name:
        errs.append(required(f"{at}.name"))
    elif port.name:
        errs += [invalid(f"{at}.name", port.name, m) for m in dns1123_label_errors(port.name)]
        if port.name in names:
            errs.append(duplicate(f"{at}.name", port.name))
        names.add(port.name)
    errs += [invalid(f"{at}.port", port.port, m) for m in port_num_errors(port.port)]
    if not port.protocol:
        errs.append(required(f"{at}.protocol"))
    elif port.protocol not in PROTOCOLS:
        errs.append(not_supported(f"{at}.protocol", port.protocol, PROTOCOLS))
    if port.target_port is not None:
        errs += target_port_errors(f"{at}.targetPort", port.target_port)
    if port.node_port is not None:
        errs += [invalid(f"{at}.nodePort", port.node_port, m) for m in port_num_errors(port.node_port)]
    return errs


class ServiceSpec(K8sModel):
    type: str = "ClusterIP"
    #: "" (the master allocates one), "None" (headless) or an address in the service CIDR.
    cluster_ip: str = Field(default="", alias="clusterIP")
    #: Kubernetes' dual-stack list; edgekube is single-stack IPv4, so it is [clusterIP] or absent.
    cluster_ips: list[str] | None = Field(default=None, alias="clusterIPs")
    ports: list[ServicePort] = Field(default_factory=list)
    selector: dict[str, str] | None = None
    session_affinity: str = "None"
    session_affinity_config: SessionAffinityConfig | None = None
    #: Not-ready pods' addresses are published as ready (StatefulSet peers finding each other before they are ready).
    publish_not_ready_addresses: StrictBool | None = None
    #: Accepted as what `kubectl get svc -o yaml` shows of a single-stack cluster; nothing else is supported.
    ip_families: list[Literal["IPv4"]] | None = None
    ip_family_policy: Literal["SingleStack"] | None = None
    internal_traffic_policy: Literal["Cluster"] | None = None
    external_traffic_policy: Literal["Cluster"] | None = None

    @property
    def headless(self) -> bool:
        return self.cluster_ip == CLUSTER_IP_NONE

    @model_validator(mode="after")
    def _validate(self) -> ServiceSpec:
        """SetDefaults_Service, then validation.go ValidateService's spec rules, every broken one listed."""
        problems = Problems()
        if self.cluster_ips:
            if not self.cluster_ip:
                self.cluster_ip = self.cluster_ips[0]
            if self.cluster_ips != [self.cluster_ip]:
                problems.add(
                    invalid("clusterIPs", self.cluster_ips, "must hold one address, equal to `clusterIP` (IPv4 only)")
                )
        if self.type not in SERVICE_TYPES:
            problems.add(not_supported("type", self.type, SERVICE_TYPES) if self.type else required("type"))
        if not self.ports and not self.headless:
            problems.add(required("ports"))
        if self.type == "NodePort" and self.headless:
            problems.add(invalid("clusterIP", self.cluster_ip, "may not be set to 'None' for NodePort services"))
        names: set[str] = set()
        for i, port in enumerate(self.ports):
            problems.add(*_port_errors(i, port, len(self.ports) > 1, names))
        if self.selector is not None:
            problems.run("selector", lambda: check_label_map(self.selector or {}))
        self._affinity(problems)
        if self.cluster_ip and not self.headless:
            try:
                address = ipaddress.ip_address(self.cluster_ip)
            except ValueError:
                problems.add(invalid("clusterIP", self.cluster_ip, "must be empty, 'None', or a valid IP address"))
            else:
                if address.version != 4:
                    problems.add(invalid("clusterIP", self.cluster_ip, "must be an IPv4 address (single-stack)"))
        if self.type == "ClusterIP":
            for i, port in enumerate(self.ports):
                if port.node_port is not None:
                    problems.add(forbidden(f"ports[{i}].nodePort", "may not be used when `type` is 'ClusterIP'"))
        problems.add(*_duplicates(self.ports))
        problems.raise_any()
        if self.cluster_ip:
            self.cluster_ips = [self.cluster_ip] if not self.headless else [CLUSTER_IP_NONE]
        return self

    def _affinity(self, problems: Problems) -> None:
        """SetDefaults_Service's ClientIP timeout, then ValidateService's sessionAffinity rules."""
        if self.session_affinity not in AFFINITIES:
            problems.add(
                not_supported("sessionAffinity", self.session_affinity, AFFINITIES)
                if self.session_affinity
                else required("sessionAffinity")
            )
        elif self.session_affinity == "ClientIP":
            config = self.session_affinity_config or SessionAffinityConfig()
            client = config.client_ip or ClientIPConfig()
            if client.timeout_seconds is None:
                client.timeout_seconds = DEFAULT_AFFINITY_SECONDS
            config.client_ip = client
            self.session_affinity_config = config
            if not 0 < client.timeout_seconds <= MAX_AFFINITY_SECONDS:
                problems.add(
                    invalid(
                        "sessionAffinityConfig.clientIP.timeoutSeconds",
                        client.timeout_seconds,
                        f"must be greater than 0 and less than {MAX_AFFINITY_SECONDS}",
                    )
                )
        elif self.session_affinity_config is not None:
            problems.add(forbidden("sessionAffinityConfig", "must not be set when session affinity is None"))

    def affinity_timeout(self) -> int:
        """Seconds a client sticks to its endpoint (0: no affinity)."""
        if self.session_affinity != "ClientIP" or self.session_affinity_config is None:
            return 0
        client = self.session_affinity_config.client_ip
        return int(client.timeout_seconds or 0) if client is not None else 0


def _duplicates(ports: list[ServicePort]) -> list[str]:
    """ValidateService's duplicate (protocol, nodePort) and (protocol, port) pairs."""
    errs: list[str] = []
    node_ports: set[tuple[str, int]] = set()
    pairs: set[tuple[str, int]] = set()
    for i, port in enumerate(ports):
        if port.node_port is not None:
            key = (port.protocol, port.node_port)
            if key in node_ports:
                errs.append(duplicate(f"ports[{i}].nodePort", port.node_port))
            node_ports.add(key)
        pair = (port.protocol, port.port)
        if pair in pairs:
            errs.append(duplicate(f"ports[{i}]", f"{port.port}/{port.protocol}"))
        pairs.add(pair)
    return errs


class Service(K8sModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["Service"] = "Service"
    metadata: ObjectMeta
    spec: ServiceSpec = Field(default_factory=ServiceSpec)
    #: The server's (loadBalancer: {}); a manifest's is dropped unread (manifest.STATUS_IGNORED).
    status: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _name(self) -> Service:
        """ValidateObjectMeta with ValidateServiceName: a DNS-1035 label (a Service name is a DNS name)."""
        if self.metadata.name:
            errs = dns1035_label_errors(self.metadata.name)
            if errs:
                raise ValidationError("\n".join(invalid("metadata.name", self.metadata.name, m) for m in errs))
        return self


def resolve_target_port(port: Mapping[str, Any], pod: Mapping[str, Any]) -> int | None:
    """The pod's port number a Service port sends to (podutil.FindPort); None: the pod has no such port.

    A number is taken as is; a name is the first container port of that name and the Service port's protocol.
    """
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int):
        return target
    protocol = port.get("protocol") or "TCP"
    for container in (pod.get("spec") or {}).get("containers") or ():
        for cport in container.get("ports") or ():
            if cport.get("name") == target and (cport.get("protocol") or "TCP") == protocol:
                return int(cport["containerPort"])
    return None
