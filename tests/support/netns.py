"""Network namespaces for the fleet harness (cut one node off the network): edgekube.local.netns, plus a broker inside.

`mosquitto_inside(node, workdir)`: a Mosquitto that runs in `node`'s namespace and listens on its address, so a
master board (a master and its broker) can be one namespace: `node.cut()` isolates both, `kill()` acts as a power
cut (with the link down, no FIN of the broker's reaches anyone), `start()` boots it again on the same address.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from edgekube.local.broker import Mosquitto, find_mosquitto, free_port
from edgekube.local.netns import PREFIX, SUBNET, NetNode, available

__all__ = ["PREFIX", "SUBNET", "NetNode", "available", "mosquitto_inside"]


def mosquitto_inside(node: NetNode, workdir: Path, port: int | None = None) -> Mosquitto:
    """A Mosquitto (not started) run through `node.enter` on `node.address`:`port` (a free one when None).

    The launcher's `binary` is a wrapper script in `workdir` that execs nsenter, which execs mosquitto: the
    launcher's child is the broker itself (kill() kills the broker). Processes on the host reach it over the veth.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    wrapper = workdir / "mosquitto-in-netns"
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.join(node.enter([find_mosquitto()]))} "$@"\n', encoding="utf-8")
    wrapper.chmod(0o755)
    # A fresh namespace has every port free; the host's loopback stands in for it when picking one.
    return Mosquitto(free_port() if port is None else port, workdir, host=node.address, binary=str(wrapper))
