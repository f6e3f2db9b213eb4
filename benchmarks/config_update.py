"""Benchmark: how fast a ConfigMap update reaches a running pod's file, and what sealing a Secret costs the master.

Run: .venv/bin/python benchmarks/config_update.py [--trials 20]

1. On real parts (Mosquitto, the master with its TinyDB store, one agent on Podman): a pod mounts a ConfigMap;
   the ConfigMap is applied `--trials` times with a new value, each time timing apply → the new content in the
   file on the node (the agent's `..data` swap), then once through `podman exec cat` inside the container.
2. AES-GCM seal + open of a small Secret's data (store/sealed.py), in microseconds.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere: tests.support

from edgekube.local.broker import Mosquitto
from edgekube.local.images import ensure_demo_image
from edgekube.local.podman_service import PodmanService
from edgekube.model.names import PodUID
from edgekube.store.sealed import Keyring, new_key_file
from tests.support.cluster import ApiClient, start_agent, start_master, wait_for


def config_map(value: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bench"}, "data": {"v": value}}


def update_latency(trials: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="ek-bench-config-", dir="/tmp"))
    volumes = Path(tempfile.mkdtemp(prefix="ek-bench-config-", dir="/dev/shm"))
    service = PodmanService(work / "podman")
    service.start()
    try:
        image = ensure_demo_image(service)
        with Mosquitto(workdir=work / "mosquitto") as broker:
            master = start_master(broker.port, work / "master")
            agent = start_agent(broker.port, "bench", service, work / "agent", device_dir="", fence_dir="",
                                config_volume_dir=str(volumes))  # fmt: skip
            client = ApiClient(broker.port)
            try:
                container = {"name": "app", "image": image, "command": ["sleep", "600"],
                             "volumeMounts": [{"name": "c", "mountPath": "/c"}]}  # fmt: skip
                spec = {"terminationGracePeriodSeconds": 0, "containers": [container],
                        "volumes": [{"name": "c", "configMap": {"name": "bench"}}]}  # fmt: skip
                pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bench"}, "spec": spec}
                client.apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": [config_map("0"), pod]}))
                wait_for("the pod running", lambda: client.pod("bench").get("status", {}).get("phase") == "Running")
                uid = client.pod("bench")["metadata"]["uid"]
                target = volumes / uid / "c" / "v"
                times = []
                for i in range(1, trials + 1):
                    start = time.monotonic()
                    assert client.apply(json.dumps(config_map(str(i)))).ok
                    while not (target.exists() and target.read_text() == str(i)):
                        time.sleep(0.001)
                    times.append(time.monotonic() - start)
                start = time.monotonic()
                client.apply(json.dumps(config_map("inside")))

                def inside() -> bool:
                    return agent.runtime.exec(PodUID(uid), "app", ["cat", "/c/v"], timeout=5)[1].strip() == "inside"

                wait_for("the value inside the container", inside, interval=0.01)
                seen_inside = time.monotonic() - start
            finally:
                client.close()
                master.stop()
                for observed in agent.runtime.list_pods():
                    agent.runtime.remove_pod(observed.uid, 0)
                agent.stop()
    finally:
        service.destroy()
        shutil.rmtree(volumes, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    times.sort()
    print(f"ConfigMap apply -> new file content on the node: p50 {statistics.median(times) * 1000:.0f} ms, "
          f"max {times[-1] * 1000:.0f} ms ({trials} trials)")  # fmt: skip
    print(f"ConfigMap apply -> new content read inside the container (podman exec): {seen_inside * 1000:.0f} ms")


def seal_cost() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        new_key_file(Path(tmp) / "key.yaml")
        ring = Keyring.load(Path(tmp) / "key.yaml")
    plain = json.dumps({"password": "aGVsbG8=", "user": "YWRtaW4="}).encode()
    n = 20_000
    sealed = ring.seal(plain, "secrets/default/db")
    assert sealed is not None, "the key file has a key"

    def round_trip() -> bytes:
        return ring.open(ring.seal(plain, "secrets/default/db") or sealed, "secrets/default/db")

    spent = timeit.timeit(round_trip, number=n)
    print(f"seal + open of a small Secret's data (AES-256-GCM): {spent / n * 1e6:.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    seal_cost()
    update_latency(args.trials)


if __name__ == "__main__":
    main()
