"""Benchmark: what affinity and spreading cost the pure scheduler — one `schedule_all` pass, per pod placed.

Run: .venv/bin/python benchmarks/affinity.py [--pods 500] [--nodes 50]

Places `--pods` pods of 10 ReplicationControllers (their replicas alike) on `--nodes` empty 4-core nodes spread
over 4 zones, once per kind of pod: plain (the O(log nodes) path), required node affinity (`Gt` on a label: still
that path), required pod anti-affinity on kubernetes.io/hostname, and a DoNotSchedule spread constraint over
zones (both the full scan of scheduling.topology). Prints the best of 3 runs, in ms per pass and µs per pod.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from edgekube.master.scheduling.scheduler import NodeView, Request, schedule_all
from edgekube.model.names import NodeName
from edgekube.model.pod import PodSpec

HOST = "kubernetes.io/hostname"


def request(i: int, **spec: Any) -> Request:
    app = {"app": f"a{i % 10}"}
    pod = PodSpec.model_validate(
        {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "5m"}}}], **spec}
    )
    return Request.of(pod, owner=f"rc{i % 10}", namespace="default", labels=app)


KINDS: dict[str, Callable[[int], Request]] = {
    "plain": request,
    "node affinity Gt": lambda i: request(
        i,
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "edgekube.io/ram-gb", "operator": "Gt", "values": ["2"]}]}
                    ]
                }
            }
        },
    ),
    "anti-affinity (host)": lambda i: request(
        i,
        affinity={
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": f"a{i % 10}"}}, "topologyKey": HOST}
                ]
            }
        },
    ),
    "spread (zone)": lambda i: request(
        i,
        topologySpreadConstraints=[
            {
                "maxSkew": 1,
                "topologyKey": "zone",
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": f"a{i % 10}"}},
            }
        ],
    ),
}


def nodes(count: int) -> list[NodeView]:
    return [
        NodeView(
            name=NodeName(f"pi-{i:03}"),
            ready=True,
            labels={HOST: f"pi-{i:03}", "zone": f"z{i % 4}", "edgekube.io/ram-gb": str(2 + 2 * (i % 4))},
            cpu_millis=4000,
            memory_bytes=4 * 2**30,
        )
        for i in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=500)
    parser.add_argument("--nodes", type=int, default=50)
    args = parser.parse_args()
    views = nodes(args.nodes)
    print(f"{args.pods} pods (10 controllers) on {args.nodes} nodes, one schedule_all pass, best of 3:")
    for name, make in KINDS.items():
        requests = [make(i) for i in range(args.pods)]
        best = float("inf")
        placed = 0
        for _ in range(3):
            start = time.perf_counter()
            placements = schedule_all(requests, views)
            best = min(best, time.perf_counter() - start)
            placed = sum(p.node is not None for p in placements)
        print(f"  {name:<22} {best * 1000:8.1f} ms  {best / args.pods * 1e6:8.1f} µs/pod  ({placed} placed)")


if __name__ == "__main__":
    main()
