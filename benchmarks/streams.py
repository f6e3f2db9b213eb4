"""Benchmark: the latency of ekctl's streams over MQTT — a watch event, an exec round trip, a terminal keystroke.

Run:
    .venv/bin/python benchmarks/streams.py [--samples 30]

A real Mosquitto, a master and one agent in this process on a private Podman service (tests/support), busybox pods:

1. watch: a client opens a watch on pods (verb watch, as `ekctl get -w`), then `--samples` times labels one pod;
   the sample is the time from sending the label request to the WatchEvent arriving on the client's stream (the
   master's group commit included).
2. exec: `--samples` round trips of `exec POD -- true` (ekctl → master → agent → Podman exec → answer).
3. exec -it: one terminal (`sh`) opened as `ekctl exec -it` does; the sample is the time from sending one
   keystroke request to its echo arriving on the stream (master forwarding, agent, Podman's TTY, back).

Reported: p50 and p95 (nearest rank) of each, in milliseconds.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import queue
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere: tests.support

from edgekube.bus import topics
from edgekube.cli.client import BusSession, Client
from edgekube.cli.config import Connection
from edgekube.cli.kinds import POD
from edgekube.local.broker import Mosquitto
from edgekube.local.images import DEMO_IMAGE, ensure_demo_image
from edgekube.local.podman_service import PodmanService
from edgekube.model.watch import LogChunk
from edgekube.model.wire import ApiRequest, Verb
from tests.support.cluster import start_agent, start_master, stop_agent, wait_for


def rank(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ek-streams-", dir="/tmp"))
    service = PodmanService(work / "podman")
    service.start()
    broker = Mosquitto(workdir=work / "mqtt")
    broker.start()
    master = start_master(broker.port, work / "master")
    agent = start_agent(broker.port, f"node-{uuid.uuid4().hex[:6]}", service, work / "agent")
    session = BusSession(Connection("127.0.0.1", broker.port, "bench"), timeout=10)
    client = Client(session)
    results: dict[str, dict[str, float]] = {}
    try:
        ensure_demo_image(service)
        client.apply(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: bench}\nspec:\n  containers:\n"
            f"    - {{name: c, image: {DEMO_IMAGE}, command: [sh, -c, 'sleep 3600']}}\n"
        )
        wait_for("bench running", lambda: client.get(POD, "default", "bench")["status"].get("phase") == "Running")

        events: queue.Queue[float] = queue.Queue()
        session.subscribe(topics.client_stream(session.client_id, "w"), lambda _m: events.put(time.perf_counter()))
        client.watch(ApiRequest(verb=Verb.WATCH, kind="Pod", namespace="default", stream="w"))
        watch = []
        for i in range(args.samples):
            while not events.empty():
                events.get()
            started = time.perf_counter()
            client.relabel(Verb.LABEL, POD, "default", "bench", {"n": str(i)}, overwrite=True)
            arrived = events.get(timeout=10)
            watch.append(arrived - started)
        results["watch event"] = {"p50_ms": rank(watch, 0.5), "p95_ms": rank(watch, 0.95)}

        exec_rtt = []
        for _ in range(args.samples):
            started = time.perf_counter()
            client.exec("default", "bench", "c", ["true"], 10)
            exec_rtt.append(time.perf_counter() - started)
        results["exec round trip"] = {"p50_ms": rank(exec_rtt, 0.5), "p95_ms": rank(exec_rtt, 0.95)}

        chunks: queue.Queue[tuple[float, str]] = queue.Queue()
        session.subscribe(
            topics.client_stream(session.client_id, "t"),
            lambda m: chunks.put((time.perf_counter(), LogChunk.decode(m.payload).text)),
        )
        base = ApiRequest(verb=Verb.EXEC, kind="Pod", namespace="default", name="bench", container="c", tty=True)
        base = base.model_copy(update={"stream": "t"})
        client.follow(base.model_copy(update={"command": ["sh"], "rows": 24, "cols": 80}))
        time.sleep(1.0)  # the prompt
        while not chunks.empty():
            chunks.get()
        keys = []
        for i in range(args.samples):
            key = "abcdefghijklmnopqrstuvwxyz"[i % 26]
            started = time.perf_counter()
            client.follow(base.model_copy(update={"stdin": base64.b64encode(key.encode()).decode(), "ack": i + 1}))
            while True:
                arrived, text = chunks.get(timeout=10)
                if key in text:
                    break
            keys.append(arrived - started)
        results["exec -it keystroke echo"] = {"p50_ms": rank(keys, 0.5), "p95_ms": rank(keys, 0.95)}
        client.follow(base.model_copy(update={"stdin": base64.b64encode(b"\x15exit\r").decode(), "ack": 10**6}))
    finally:
        client.close()
        stop_agent(agent)
        master.stop()
        broker.stop()
        service.destroy()
    print(json.dumps({"samples": args.samples, **results}, indent=2))


if __name__ == "__main__":
    main()
