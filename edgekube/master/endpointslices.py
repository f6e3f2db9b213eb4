"""The read-only `discovery.k8s.io/v1 EndpointSlice` view of the stored Endpoints; served by master.api get and list.

Nothing is stored: each Endpoints subset (addresses with the same ports) is shown as one slice named
`<service>-<n>`, labelled `kubernetes.io/service-name` as the EndpointSlice controller labels its slices, so
`ekctl get endpointslices -l kubernetes.io/service-name=web` works as with kubectl.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from edgekube.model.types import Obj

SERVICE_NAME = "kubernetes.io/service-name"
MANAGED_BY = "endpointslice.kubernetes.io/managed-by"


def _endpoint(address: Mapping[str, Any], ready: bool) -> Obj:
    entry: Obj = {
        "addresses": [address["ip"]],
        "conditions": {"ready": ready, "serving": ready, "terminating": False},
    }
    if address.get("nodeName"):
        entry["nodeName"] = address["nodeName"]
    if address.get("targetRef"):
        entry["targetRef"] = dict(address["targetRef"])
    return entry


def slices(endpoints: Mapping[str, Any]) -> list[Obj]:
    """The slices of one Endpoints object (none when it has no subsets)."""
    meta = endpoints["metadata"]
    name = meta["name"]
    found: list[Obj] = []
    for i, subset in enumerate(endpoints.get("subsets") or ()):
        found.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{name}-{i}",
                    "namespace": meta.get("namespace", "default"),
                    "labels": {**(meta.get("labels") or {}), SERVICE_NAME: name, MANAGED_BY: "edgekube-master"},
                    "creationTimestamp": meta.get("creationTimestamp"),
                    "resourceVersion": meta.get("resourceVersion"),
                },
                "addressType": "IPv4",
                "endpoints": [_endpoint(a, True) for a in subset.get("addresses") or ()]
                + [_endpoint(a, False) for a in subset.get("notReadyAddresses") or ()],
                "ports": [dict(p) for p in subset.get("ports") or ()],
            }
        )
    return found


def all_slices(endpoints: Iterable[Mapping[str, Any]]) -> list[Obj]:
    return [s for e in endpoints for s in slices(e)]
