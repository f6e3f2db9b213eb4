"""The data path's wire tables, published retained by the master and read by every agent: RouteTable, ServiceTable."""

from __future__ import annotations

import ipaddress
import json
from typing import Any, Literal

import pydantic
from pydantic import Field, StrictBool, StrictInt, StrictStr, field_validator

from edgekube.model import jsoncodec
from edgekube.model.wire import MAX_PAYLOAD_BYTES, WireModel

#: `Node.spec.podCIDR`s are cut from this range, one /24 per node, as K3s does (master `--cluster-cidr`).
DEFAULT_CLUSTER_CIDR = "10.42.0.0/16"
DEFAULT_NODE_MASK = 24
#: Service virtual IPs come from here (master `--service-cidr`, K3s' default).
DEFAULT_SERVICE_CIDR = "10.43.0.0/16"
#: The Podman network every pod of a node joins (its subnet: the node's podCIDR, gateway its first address).
POD_NETWORK = "edgekube"
CLUSTER_DOMAIN = "cluster.local"

L4Protocol = Literal["TCP", "UDP", "SCTP"]


def _network(value: str, field: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError:
        raise ValueError(f"{field}: must be a valid CIDR (e.g. 10.42.1.0/24), got {value!r}") from None


def _address(value: str, field: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{field}: must be a valid IP address, got {value!r}") from None


class RouteEntry(WireModel):
    """One node of the pod network: its pod CIDR, reached through its node IP (host-gw)."""

    schema_: Literal["edgekube/v1"] = Field(default="edgekube/v1", alias="schema", exclude=True)
    name: StrictStr
    pod_cidr: StrictStr = Field(alias="podCIDR")
    node_ip: StrictStr = Field(default="", alias="nodeIP")
    ready: StrictBool = False

    @field_validator("pod_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        return _network(value, "podCIDR")

    @field_validator("node_ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        return _address(value, "nodeIP") if value else value


class RouteTable(WireModel):
    """Topic `edgekube/v1/routes`, retained: every node that holds a pod CIDR (the whole table each time)."""

    generation: StrictInt = 0
    nodes: list[RouteEntry] = Field(default_factory=list)

    def entry(self, node: str) -> RouteEntry | None:
        return next((n for n in self.nodes if n.name == node), None)


class ServicePortEntry(WireModel):
    schema_: Literal["edgekube/v1"] = Field(default="edgekube/v1", alias="schema", exclude=True)
    name: StrictStr = ""
    protocol: L4Protocol = "TCP"
    port: StrictInt
    node_port: StrictInt | None = None


class EndpointEntry(WireModel):
    """One backend: its pod IP, node, readiness and, per service port name, the resolved target port."""

    schema_: Literal["edgekube/v1"] = Field(default="edgekube/v1", alias="schema", exclude=True)
    ip: StrictStr
    node: StrictStr = ""
    ready: StrictBool = True
    ports: dict[str, StrictInt] = Field(default_factory=dict)

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        return _address(value, "ip")


class ServiceEntry(WireModel):
    schema_: Literal["edgekube/v1"] = Field(default="edgekube/v1", alias="schema", exclude=True)
    namespace: StrictStr
    name: StrictStr
    #: "" for a headless service (`clusterIP: None`).
    cluster_ip: StrictStr = Field(default="", alias="clusterIP")
    type: Literal["ClusterIP", "NodePort"] = "ClusterIP"
    session_affinity: Literal["None", "ClientIP"] = "None"
    affinity_timeout_seconds: StrictInt = 10800
    ports: list[ServicePortEntry] = Field(default_factory=list)
    endpoints: list[EndpointEntry] = Field(default_factory=list)

    @field_validator("cluster_ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        return _address(value, "clusterIP") if value else value

    @property
    def headless(self) -> bool:
        return not self.cluster_ip


class ServiceTable(WireModel):
    """Topic `edgekube/v1/services`, retained: every Service with its endpoints (the whole table each time)."""

    generation: StrictInt = 0
    services: list[ServiceEntry] = Field(default_factory=list)


class ServiceTableDecoder:
    """Decodes successive ServiceTables (an agent's), validating only the Services whose JSON differs from the last.

    One endpoint changing in a table of 100 Services x 10 endpoints re-validates one entry, not a thousand (the
    whole table: ~9 ms on a development machine, several times that on a Pi); the entries of unchanged Services
    are the previous table's objects. A payload that does not decode this way is decoded whole, so the errors
    are ServiceTable.decode's, naming the field.
    """

    def __init__(self) -> None:
        self._last: dict[tuple[object, object], tuple[dict[str, Any], ServiceEntry]] = {}

    def decode(self, payload: bytes) -> ServiceTable:
        try:
            data = jsoncodec.loads(payload) if len(payload) <= MAX_PAYLOAD_BYTES else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            data = None
        raw = data.get("services") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(raw, list) or not all(isinstance(s, dict) for s in raw):
            return self._whole(payload)
        entries, seen = [], {}
        for item in raw:
            key = (item.get("namespace"), item.get("name"))
            kept = self._last.get(key)
            if kept is not None and kept[0] == item:
                entry = kept[1]
            else:
                try:
                    entry = ServiceEntry.model_validate(item)
                except pydantic.ValidationError:
                    return self._whole(payload)
            entries.append(entry)
            seen[key] = (item, entry)
        table = ServiceTable.decode(jsoncodec.dumpb({**data, "services": []}))  # the envelope's own checks
        table.services = entries
        self._last = seen
        return table

    def _whole(self, payload: bytes) -> ServiceTable:
        table = ServiceTable.decode(payload)
        self._last = {}
        return table
