"""Network namespaces for the fleet harness (cut one node off the network): edgekube.local.netns, re-exported."""

from __future__ import annotations

from edgekube.local.netns import PREFIX, SUBNET, NetNode, available

__all__ = ["PREFIX", "SUBNET", "NetNode", "available"]
