"""Node health like the kubelet's eviction manager, plus the Pi's own: readings, pressure conditions, evictions.

Parts: `pi.py` (SoC temperature and the firmware's throttle flags from a sys tree), `signals.py` (memory, disk,
inode and PID headroom from proc/sys trees and statvfs), `pressure.py` (kubelet-style thresholds, the pure plan:
conditions and the one pod to evict), `monitor.py` (the agent's periodic check on its own thread: conditions with
their transition times, node events, evictions), `agent.py` (its wiring: settings from AgentConfig, the pods that
may be evicted, PodActions' eviction path). Docs: docs/node-health.md. Nothing here writes to disk.
"""
