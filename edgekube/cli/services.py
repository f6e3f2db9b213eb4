"""`ekctl get svc|ep` rows and `ekctl describe svc`: kubectl's printService, printEndpoints and describeService."""

from __future__ import annotations

from datetime import datetime

from edgekube.cli.describe import Writer
from edgekube.cli.status import NONE, items, section
from edgekube.cli.timefmt import age
from edgekube.model.types import Obj

SERVICE_HEADER = ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
ENDPOINTS_HEADER = ["NAME", "ENDPOINTS", "AGE"]
SLICE_HEADER = ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"]
#: formatEndpoints shows this many addresses, then `+ N more...`.
MAX_SHOWN = 3


def ports_text(spec: Obj) -> str:
    """The PORT(S) column (kubectl's makePortString): `80/TCP`, `80:30080/TCP` with a nodePort, joined by commas."""
    shown = []
    for port in items(spec, "ports"):
        protocol = port.get("protocol") or "TCP"
        node_port = port.get("nodePort")
        shown.append(f"{port.get('port')}:{node_port}/{protocol}" if node_port else f"{port.get('port')}/{protocol}")
    return ",".join(shown) or NONE


def selector_text(spec: Obj) -> str:
    selector = section(spec, "selector")
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or NONE


def service_row(svc: Obj, *, wide: bool, now: datetime | None = None) -> list[str]:
    spec = section(svc, "spec")
    row = [
        str(section(svc, "metadata").get("name", "")),
        str(spec.get("type") or "ClusterIP"),
        str(spec.get("clusterIP") or NONE),
        NONE,  # no LoadBalancer, no externalIPs
        ports_text(spec),
        age(section(svc, "metadata").get("creationTimestamp"), now),
    ]
    if wide:
        row.append(selector_text(spec))
    return row


def endpoints_text(endpoints: Obj) -> str:
    """The ENDPOINTS column (kubectl's formatEndpoints): ready `ip:port`s, 3 at most, `+ N more...`."""
    subsets = items(endpoints, "subsets")
    if not subsets:
        return NONE
    shown: list[str] = []
    count = 0
    for subset in subsets:
        addresses = [str(a.get("ip", "")) for a in items(subset, "addresses")]
        ports = items(subset, "ports")
        entries = addresses if not ports else [f"{ip}:{p.get('port')}" for p in ports for ip in addresses]
        for entry in entries:
            if len(shown) < MAX_SHOWN:
                shown.append(entry)
            count += 1
    text = ",".join(shown)
    return f"{text} + {count - MAX_SHOWN} more..." if count > MAX_SHOWN else text


def endpoints_row(endpoints: Obj, *, wide: bool, now: datetime | None = None) -> list[str]:
    meta = section(endpoints, "metadata")
    return [str(meta.get("name", "")), endpoints_text(endpoints), age(meta.get("creationTimestamp"), now)]


def slice_row(endpoint_slice: Obj, *, wide: bool, now: datetime | None = None) -> list[str]:
    """Kubectl's printEndpointSlice: port numbers, then every endpoint's addresses (3 at most, `+ N more...`)."""
    meta = section(endpoint_slice, "metadata")
    ports = ",".join(str(p.get("port", "<unset>")) for p in items(endpoint_slice, "ports")) or "<unset>"
    addresses = [str(a) for e in items(endpoint_slice, "endpoints") for a in e.get("addresses") or ()]
    shown = ",".join(addresses[:MAX_SHOWN]) or NONE
    if len(addresses) > MAX_SHOWN:
        shown += f" + {len(addresses) - MAX_SHOWN} more..."
    return [
        str(meta.get("name", "")),
        str(endpoint_slice.get("addressType") or "IPv4"),
        ports,
        shown,
        age(meta.get("creationTimestamp"), now),
    ]


def describe_service(
    svc: Obj, endpoints: Obj | None, events: list[Obj] | None = None, now: datetime | None = None
) -> str:
    """The text of kubectl's describeService, for the fields edgekube has (single-stack IPv4, no load balancer)."""
    meta, spec = section(svc, "metadata"), section(svc, "spec")
    w = Writer()
    w.field(0, "Name", meta.get("name", ""))
    w.field(0, "Namespace", meta.get("namespace", ""))
    w.mapping(0, "Labels", section(meta, "labels"))
    w.mapping(0, "Annotations", section(meta, "annotations"), sep=": ")
    w.field(0, "Selector", selector_text(spec))
    w.field(0, "Type", spec.get("type") or "ClusterIP")
    w.field(0, "IP Family Policy", "SingleStack")
    w.field(0, "IP Families", "IPv4")
    cluster_ip = str(spec.get("clusterIP") or "")
    w.field(0, "IP", cluster_ip or NONE)
    w.field(0, "IPs", ",".join(spec.get("clusterIPs") or ([cluster_ip] if cluster_ip else [])) or NONE)
    for port in items(spec, "ports"):
        name = str(port.get("name") or "<unset>")
        protocol = port.get("protocol") or "TCP"
        w.field(0, "Port", f"{name}  {port.get('port')}/{protocol}")
        w.field(0, "TargetPort", f"{port.get('targetPort', port.get('port'))}/{protocol}")
        if port.get("nodePort"):
            w.field(0, "NodePort", f"{name}  {port['nodePort']}/{protocol}")
        w.field(0, "Endpoints", _port_endpoints(endpoints, port))
    w.field(0, "Session Affinity", spec.get("sessionAffinity") or "None")
    if spec.get("type") == "NodePort":
        w.field(0, "External Traffic Policy", "Cluster")
    w.events(events, now)
    return w.text()


def _port_endpoints(endpoints: Obj | None, port: Obj) -> str:
    """The Endpoints line of one Service port (by name): formatEndpoints over that port only, as describeService."""
    if endpoints is None:
        return "<none>"
    name = str(port.get("name") or "")
    chosen = []
    for subset in items(endpoints, "subsets"):
        ports = [p for p in items(subset, "ports") if str(p.get("name") or "") == name]
        if ports:
            chosen.append({**subset, "ports": ports})
    text = endpoints_text({"subsets": chosen})
    return text or "<none>"
