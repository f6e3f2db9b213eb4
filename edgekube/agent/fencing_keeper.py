"""The fence keeper: a small process beside the agent that stops pods whose ReadWriteOnce lease ran out.

The agent stops such pods itself — if it runs. A frozen or crashed agent cannot, while its containers (under conmon)
keep writing; after `duration + margin` another node takes the lease over. So for each exclusive volume it holds with
pods present, the agent keeps an *order* in a directory on tmpfs (`<key>.fence`: the deadline on CLOCK_MONOTONIC,
which every process of the host shares, and the pods), rewritten after every renewal. The keeper, its own process
(own session: a SIGSTOP or SIGKILL of the agent leaves it alone), reads the orders every `interval` and stops the
pods of every order past its deadline through Podman, then deletes that order. One keeper per directory (flock);
it exits once no order has been pending for `idle_exit` seconds. `python -m edgekube.agent.fencing_keeper`.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from edgekube.model.errors import NotFoundError

log = logging.getLogger(__name__)

SUFFIX = ".fence"
LOCK = "keeper.lock"


@dataclass(frozen=True)
class Order:
    """Stop `pods` at `deadline` (time.monotonic) unless a newer order replaces this one."""

    volume: str
    deadline: float
    pods: tuple[str, ...]

    def encode(self) -> bytes:
        return json.dumps({"volume": self.volume, "deadline": self.deadline, "pods": list(self.pods)}).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Order | None:
        try:
            body = json.loads(raw)
            return cls(str(body["volume"]), float(body["deadline"]), tuple(str(p) for p in body["pods"]))
        except (ValueError, TypeError, KeyError):
            return None


def file_name(key: str) -> str:
    """The order file of a volume key (an nfs:// source): safe as a file name."""
    return hashlib.sha256(key.encode()).hexdigest()[:24] + SUFFIX


def write_order(directory: Path, key: str, order: Order | None) -> None:
    """Replace (or, with None, remove) the volume's order; atomic, so the keeper never reads half of one."""
    path = directory / file_name(key)
    if order is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    directory.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(order.encode())
    tmp.replace(path)


def due(orders: Mapping[str, Order], now: float) -> dict[str, Order]:
    """The orders whose deadline has come (pure)."""
    return {name: order for name, order in orders.items() if order.pods and now >= order.deadline}


def read_orders(directory: Path) -> dict[str, tuple[bytes, Order]]:
    found: dict[str, tuple[bytes, Order]] = {}
    with contextlib.suppress(FileNotFoundError):
        for path in directory.glob(f"*{SUFFIX}"):
            with contextlib.suppress(OSError):
                raw = path.read_bytes()
                order = Order.decode(raw)
                if order is not None:
                    found[path.name] = (raw, order)
    return found


def keep(
    directory: Path,
    stop_pod: Callable[[str], None],
    *,
    clock: Callable[[], float] = time.monotonic,
    interval: float = 0.2,
    idle_exit: float = 30.0,
    give_up: float = 30.0,
) -> None:
    """Enforce the orders in `directory` until none has been pending for `idle_exit` seconds."""
    idle_since = clock()
    failing: dict[bytes, float] = {}  # order content -> since when stopping its pods fails
    while True:
        now = clock()
        orders = read_orders(directory)
        if orders:
            idle_since = now
        elif now - idle_since >= idle_exit:
            return
        for name, order in due({n: o for n, (_, o) in orders.items()}, now).items():
            raw = orders[name][0]
            failed = False
            for uid in order.pods:
                try:
                    stop_pod(uid)
                    log.warning("fence keeper: stopped pod %s: the lease of volume %s ran out", uid, order.volume)
                except NotFoundError:
                    continue
                except Exception as exc:
                    failed = True
                    log.error("fence keeper: cannot stop pod %s (volume %s): %s", uid, order.volume, exc)
            if failed and now - failing.setdefault(raw, now) < give_up:
                continue
            failing.pop(raw, None)
            path = directory / name
            with contextlib.suppress(OSError):
                if path.read_bytes() == raw:  # not renewed meanwhile
                    path.unlink()
        time.sleep(interval)


def running(directory: Path) -> bool:
    """Whether a keeper holds the directory's lock."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK, "a+b") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


_children: list[subprocess.Popen[bytes]] = []


def spawn(directory: Path, podman_url: str, node: str) -> None:
    """Start a keeper for `directory` unless one runs; its own session, its output where the agent's goes."""
    _children[:] = [c for c in _children if c.poll() is None]  # reap keepers that exited
    if running(directory):
        return
    argv = [sys.executable, "-m", "edgekube.agent.fencing_keeper", "--dir", str(directory),
            "--podman-url", podman_url, "--node", node]  # fmt: skip
    _children.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True))
    log.info("started the fence keeper for %s", directory)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="edgekube-fence-keeper", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--podman-url", required=True)
    parser.add_argument("--node", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    directory: Path = args.dir
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK, "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0  # another keeper runs
        from edgekube.agent.runtime.podman import PodmanRuntime  # noqa: PLC0415
        from edgekube.model.names import NodeName, PodUID  # noqa: PLC0415

        runtime = PodmanRuntime(args.podman_url, NodeName(args.node), timeout=10.0)
        log.info("fence keeper for node %s watching %s (pid %d)", args.node, directory, os.getpid())
        keep(directory, lambda uid: runtime.stop_pod(PodUID(uid), 0))
        log.info("fence keeper for node %s: no order left, exiting", args.node)
    return 0


if __name__ == "__main__":
    sys.exit(main())
