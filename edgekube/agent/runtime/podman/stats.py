"""Container resource use for PodmanRuntime.stats: one list of this node's running containers, one libpod stats call.

Called by the agent's telemetry sampler on its own thread (never by the loop). libpod's
`GET /containers/stats?stream=false` answers one reading per container: cumulative CPU nanoseconds, the cgroup's
memory usage and limit, network and block I/O byte counters and the number of processes.
"""

from __future__ import annotations

import json
from typing import Any

from edgekube.agent.runtime.podman.naming import owned
from edgekube.agent.runtime.podman.transport import PodmanTransport, message
from edgekube.agent.runtime.protocol import (
    LABEL_CONTAINER,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    ContainerStats,
)
from edgekube.model.errors import RuntimeFailure
from edgekube.model.names import NodeName, PodUID

#: Podman reports "no limit" as the node's memory (the sampler drops that) or as a value this large.
_NO_LIMIT = 1 << 60


def _int(value: Any) -> int:
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0


def container_stats(transport: PodmanTransport, node: NodeName) -> list[ContainerStats]:
    """Stats of this node's running app containers; a container that stopped in between is left out."""
    params = owned(node)
    filters = json.loads(params["filters"])
    filters["status"] = ["running"]
    listed = transport.json("get", "/containers/json", what="list running containers",
                            params={"filters": json.dumps(filters)}) or []  # fmt: skip
    apps = {str(c["Id"]): c.get("Labels") or {} for c in listed if not c.get("IsInfra")}
    apps = {cid: labels for cid, labels in apps.items() if LABEL_CONTAINER in labels}
    if not apps:
        return []
    what = "container stats"
    response = transport.request(
        "get", "/containers/stats", what=what, params={"stream": "false", "containers": sorted(apps)}
    )
    if response.status_code >= 400:
        # One container stopped between the two calls: ask for every running one and keep ours.
        response = transport.request("get", "/containers/stats", what=what, params={"stream": "false"})
        if response.status_code >= 400:
            raise RuntimeFailure(f"{what}: {message(response)}", reason="RuntimeError")
    try:
        data = response.json()
    except ValueError as exc:
        raise RuntimeFailure(f"{what}: podman sent invalid JSON: {exc}", reason="RuntimeError") from exc
    out = []
    for entry in (data or {}).get("Stats") or []:
        labels = apps.get(str(entry.get("ContainerID", "")))
        if labels is None:
            continue
        limit = _int(entry.get("MemLimit"))
        out.append(
            ContainerStats(
                uid=PodUID(labels.get(LABEL_POD_UID, "")),
                namespace=labels.get(LABEL_POD_NAMESPACE, ""),
                pod=labels.get(LABEL_POD_NAME, ""),
                container=labels[LABEL_CONTAINER],
                container_id=str(entry["ContainerID"]),
                cpu_seconds=_int(entry.get("CPUNano")) / 1e9,
                memory_bytes=_int(entry.get("MemUsage")),
                memory_limit_bytes=limit if 0 < limit < _NO_LIMIT else None,
                rx_bytes=_int(entry.get("NetInput")),
                tx_bytes=_int(entry.get("NetOutput")),
                read_bytes=_int(entry.get("BlockInput")),
                write_bytes=_int(entry.get("BlockOutput")),
                pids=_int(entry.get("PIDs")),
            )
        )
    out.sort(key=lambda s: (s.namespace, s.pod, s.container))
    return out
