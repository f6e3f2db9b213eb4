"""Which node proxy a node runs (setting `proxy_mode`): nftables when the kernel can, else userspace; for agent.wiring.

`auto` asks the kernel once, at start: `nft` loads a throwaway transaction that uses every feature the nftables
proxy needs (a nat chain with `fib`, `numgen`, `dnat`, a dynamic set with timeouts, `masquerade`, `reject`) and
deletes its table in the same transaction, so nothing is left even if the agent dies during it. A kernel built
without nf_tables or those expressions (and no module to load) refuses it, and the node falls back to the
userspace proxy (agent/network/userspace.py).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence

#: The values of the agent setting `proxy_mode`.
PROXY_MODES = ("auto", "nftables", "userspace")

_PROBE_TABLE = "ip edgekube-probe"
PROBE = f"""add table {_PROBE_TABLE}
add set {_PROBE_TABLE} clients {{ type ipv4_addr; flags dynamic,timeout; timeout 10s; }}
add chain {_PROBE_TABLE} pre {{ type nat hook prerouting priority dstnat; policy accept; }}
add chain {_PROBE_TABLE} post {{ type nat hook postrouting priority srcnat; policy accept; }}
add chain {_PROBE_TABLE} in {{ type filter hook input priority -10; policy accept; }}
add chain {_PROBE_TABLE} ep
add rule {_PROBE_TABLE} pre fib daddr type local ip daddr 192.0.2.1 numgen random mod 2 vmap {{ 0 : goto ep }}
add rule {_PROBE_TABLE} ep update @clients {{ ip saddr }} meta l4proto tcp dnat to 192.0.2.2:80
add rule {_PROBE_TABLE} post meta mark & 0x4000 == 0x4000 masquerade fully-random
add rule {_PROBE_TABLE} in ip daddr 192.0.2.1 reject
delete table {_PROBE_TABLE}
"""


def nft_problem(argv: Sequence[str] = ("nft",), timeout: float = 10.0) -> str:
    """Why `nft` cannot load the probe transaction (module docstring), in one line; "" when it can."""
    try:
        done = subprocess.run(
            [*argv, "-f", "-"], input=PROBE, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{' '.join(argv)}: {exc}"
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return f"{' '.join(argv)} -f: {lines[0] if lines else f'exit {done.returncode}'}"
    return ""


def choose(setting: str, nft_problem: Callable[[], str] = nft_problem) -> tuple[str, str]:
    """(mode, why) for the setting: `nftables` and `userspace` as set; `auto` asks `nft_problem` once."""
    if setting != "auto":
        return setting, f"proxy_mode {setting}"
    problem = nft_problem()
    if problem:
        return "userspace", f"proxy_mode auto: nftables unusable ({problem})"
    return "nftables", "proxy_mode auto: nft loads nat, fib and numgen rules"
