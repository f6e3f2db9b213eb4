"""Benchmark: the master's cost of one endpoint change — endpoints plan, ServiceTable build and encode.

Run: .venv/bin/python benchmarks/service_table.py [--services 100] [--pods 10] [--runs 5]

An in-memory store (TinyDB's MemoryStorage behind the master's cache) with `--services` Services of `--pods`
ready pods each; after the first full pass, one pod turns not ready per run: the time of the endpoints
controller's plan (only the Services that pod touched), of applying it, of the ServiceTable publisher's build
(only the changed entry) and of encoding the whole table. Prints the median of `--runs` and the table's size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from edgekube.master.api import Api
from edgekube.master.cache import CachedStore
from edgekube.master.controllers.base import Effects, Snapshot, apply
from edgekube.master.controllers.endpoints import EndpointsController
from edgekube.master.eventlog import EventLog
from edgekube.master.servicetable import ServiceTablePublisher
from edgekube.store.state import TinyStateStore


def populate(store: CachedStore, services: int, pods: int) -> None:
    items = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"s{s}"},
         "spec": {"selector": {"app": f"a{s}"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
        for s in range(services)
    ]  # fmt: skip
    Api(store, lambda n: n).apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    for s in range(services):
        for p in range(pods):
            store.create({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"p{s}-{p}", "namespace": "default", "labels": {"app": f"a{s}"}},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x",
                                                            "ports": [{"name": "http", "containerPort": 8080}]}]},
                "status": {"phase": "Running", "podIP": f"10.42.{s % 250}.{p + 2}",
                           "conditions": [{"type": "Ready", "status": "True"}]},
            })  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--pods", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with TinyStateStore(None) as backing:
        store = CachedStore(backing)
        populate(store, args.services, args.pods)
        controller = EndpointsController(store, resync=3600.0)
        publisher = ServiceTablePublisher(store, time.time)
        effects = Effects(store, EventLog())
        apply(controller.plan(Snapshot(store, 0.0)), effects)
        apply(controller.plan(Snapshot(store, 0.0)), effects)  # its own writes, planned once more
        table = publisher.flush()
        assert table is not None
        timings: dict[str, list[float]] = {"plan": [], "apply": [], "build": [], "encode": []}
        size = 0
        for run in range(args.runs):
            pod = store.get("Pod", "default", f"p{run % args.services}-0")
            pod["status"]["conditions"][0]["status"] = "False"
            store.update(pod)
            t0 = time.perf_counter()
            actions = controller.plan(Snapshot(store, 1.0 + run))
            t1 = time.perf_counter()
            apply(actions, effects)
            t2 = time.perf_counter()
            table = publisher.flush()
            t3 = time.perf_counter()
            assert table is not None
            size = len(table.encode())
            t4 = time.perf_counter()
            for key, value in zip(timings, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                timings[key].append(value * 1000)
            apply(controller.plan(Snapshot(store, 1.5 + run)), effects)  # the Endpoints write, planned again
    shown = ", ".join(f"{k} {statistics.median(v):.2f} ms" for k, v in timings.items())
    print(f"{args.services} services x {args.pods} pods, one pod not ready: {shown}; table {size} bytes")


if __name__ == "__main__":
    main()
