"""Samples a rollout from the master's cache for the Deployment tests: (pods, Ready pods, images) after each write."""

from __future__ import annotations

import threading
from typing import Any

from edgekube.master.controllers.replication.plan import is_ready

Sample = tuple[int, int, frozenset[str]]


class Sampler:
    """Every Pod write of the master's cache (a `store.listen("Pod", ...)` listener, called on the master's thread):
    the `app=web` pods' count and Ready count after each, and their images."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.samples: list[Sample] = []
        self.lock = threading.Lock()

    def __call__(self, key: tuple[str, str], pod: dict[str, Any] | None) -> None:
        with self.lock:
            if pod is None or (pod["metadata"].get("labels") or {}).get("app") != "web":
                self.pods.pop(key, None)
            else:
                self.pods[key] = pod
            ready = sum(1 for p in self.pods.values() if is_ready(p))
            images = frozenset(p["spec"]["containers"][0]["image"] for p in self.pods.values())
            self.samples.append((len(self.pods), ready, images))

    def mark(self) -> int:
        with self.lock:
            return len(self.samples)

    def since(self, mark: int) -> list[Sample]:
        with self.lock:
            return self.samples[mark:]
