"""Crash-test writer spawned by test_store_crash.py: changes Pods in a loop and acknowledges each change.

Usage: store_writer.py DIR SEED COMPACTION_MIN_BYTES COMPACTION_RATIO

Before each change it prints {"intent": step, "op", "name"}; after the store returned it prints
{"ack": step, "op", "name", "rv", "uid"}.  Both lines are flushed, so every ack the parent reads is a
write the store acknowledged.  Pod content is a pure function of (name, step), so the parent can tell
exactly what an acknowledged Pod must look like.  It runs until it is killed.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

from edgekube.store import TinyStateStore

NAMES = [f"pod-{number:02d}" for number in range(40)]


def pod(name: str, step: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"step": step, "image": f"registry.local/{name}:{step}", "padding": name * (10 + step % 40)},
    }


def say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> None:
    directory, seed = Path(sys.argv[1]), int(sys.argv[2])
    rng = random.Random(seed)
    store = TinyStateStore(directory, compaction_min_bytes=int(sys.argv[3]), compaction_ratio=float(sys.argv[4]))
    current = {obj["metadata"]["name"]: obj for obj in store.list("Pod", "default")}
    say({"ready": True})
    step = seed * 1_000_000
    while True:
        step += 1
        name = rng.choice(NAMES)
        op = "create" if name not in current else "delete" if rng.random() < 0.25 else "update"
        say({"intent": step, "op": op, "name": name})
        if op == "delete":
            version = current.pop(name)["metadata"]["resourceVersion"]
            store.delete("Pod", "default", name, resource_version=version)
            say({"ack": step, "op": op, "name": name})
            continue
        obj = pod(name, step)
        if op == "update":
            obj["metadata"]["resourceVersion"] = current[name]["metadata"]["resourceVersion"]
            result = store.update(obj)
        else:
            result = store.create(obj)
        current[name] = result
        metadata = result["metadata"]
        say({"ack": step, "op": op, "name": name, "rv": metadata["resourceVersion"], "uid": metadata["uid"]})


if __name__ == "__main__":
    main()
