"""Benchmark: time from a node's death to its replicas Running elsewhere, for a killed agent and a cut network.

Run (as root: the network cut uses a network namespace per node):
    .venv/bin/python benchmarks/failover.py [--trials 20] [--replicas 6] [--nodes 3]

A fleet on this machine (tests/support/fleet.py: Mosquitto, the master and one agent per node as processes,
each node its own Podman store and network namespace) runs a ReplicationController. Each trial takes down the
node holding the most replicas — `kill -9` of its agent, or its veth link set down — and measures, by polling
the master's API, until every replica is Running again and none is on that node: the same end point for both
faults. The node is then brought back and the cluster left to settle (all nodes Ready, the Podman stores
holding exactly the replicas) before the next trial. The two faults alternate trial by trial (kill, cut, kill,
cut, ...), so a change in the machine's load hits both. p95 is the nearest rank of --trials (default 20; fewer
print a warning). The Kubernetes line is computed from Kubernetes' defaults, not measured: 40 s
node-monitor-grace-period + 300 s default NoExecute toleration + about 5 s to schedule and start ≈ 345 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere: tests.support

from tests.support import netns
from tests.support.fleet import Fleet, node_of, phase, rc_manifest, ready, terminating

SELECTOR = "app=failover"
#: Computed, not measured: node-monitor-grace-period 40 s + default NoExecute toleration 300 s + ~5 s to start.
KUBERNETES_DEFAULT_S = 345.0
#: Fewer trials than this give no p95 worth printing.
MIN_TRIALS = 20


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (as benchmarks/apply_to_running.py reports p95)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def busiest_node(fleet: Fleet) -> str:
    pods = fleet.api.pods(SELECTOR)
    return max(fleet.nodes, key=lambda n: (sum(node_of(p) == n for p in pods), -fleet.nodes.index(n)))


def rebalance(fleet: Fleet, replicas: int) -> None:
    """Delete replicas from crowded nodes; the controller recreates them on the emptiest (least-loaded scheduling)."""
    limit = -(-replicas // len(fleet.nodes))
    pods = fleet.api.pods(SELECTOR)
    for node in fleet.nodes:
        for pod in [p for p in pods if node_of(p) == node][limit:]:
            fleet.api.delete("Pod", pod["metadata"]["name"])
    fleet.wait_converged({SELECTOR: replicas}, hold=1.0, timeout=90)


@dataclass
class Trial:
    """Seconds from the fault to: the node NotReady, every replica bound elsewhere, every replica Running there."""

    moved: int = 0
    detected: float = 0.0
    rescheduled: float = 0.0
    running: float = 0.0


def observe(fleet: Fleet, victim: str, replicas: int, started: float, trial: Trial) -> bool:
    """Note the phases reached so far; True once every replica is Running (not terminating) away from `victim`."""
    now = time.monotonic() - started
    nodes = fleet.try_list("Node", timeout=2.0) or []
    if not trial.detected and any(n["metadata"]["name"] == victim and not ready(n) for n in nodes):
        trial.detected = now
    pods = [p for p in fleet.try_list("Pod", SELECTOR, timeout=2.0) or [] if not terminating(p)]
    elsewhere = [p for p in pods if node_of(p) not in ("", victim)]
    if not trial.rescheduled and len(elsewhere) == replicas:
        trial.rescheduled = now
    if len([p for p in elsewhere if phase(p) == "Running"]) == replicas:
        trial.running = now
        trial.detected = trial.detected or now  # the node's NotReady and the last pod landed in one poll
        trial.rescheduled = trial.rescheduled or now
        return True
    return False


def run_trial(
    fleet: Fleet, inflict: Callable[[str], None], repair: Callable[[str], None], replicas: int, balance: bool
) -> Trial:
    if balance:
        rebalance(fleet, replicas)
    victim = busiest_node(fleet)
    trial = Trial(moved=sum(node_of(p) == victim for p in fleet.api.pods(SELECTOR)))
    started = time.monotonic()
    inflict(victim)
    while not observe(fleet, victim, replicas, started, trial):
        if time.monotonic() - started > 120:
            raise TimeoutError(f"replicas not Running away from {victim} within 120 s")
        time.sleep(0.01)
    repair(victim)
    fleet.wait_ready(timeout=60)
    fleet.wait_converged({SELECTOR: replicas}, hold=1.0, timeout=90)
    return trial


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=MIN_TRIALS, help=f"per fault (default {MIN_TRIALS})")
    parser.add_argument("--replicas", type=int, default=6)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument(
        "--no-rebalance",
        dest="rebalance",
        action="store_false",
        help="do not spread the replicas evenly again before each trial (repeated failures pile them up)",
    )
    args = parser.parse_args()
    if args.trials < MIN_TRIALS:
        print(f"warning: {args.trials} trials per fault: p95 needs at least {MIN_TRIALS}", file=sys.stderr)
    if reason := netns.available():
        print(f"failover: skipped: {reason}", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory(prefix="ek-failover-") as tmp, Fleet(Path(tmp), args.nodes) as fleet:
        fleet.apply(rc_manifest("failover", args.replicas))
        fleet.wait_converged({SELECTOR: args.replicas})
        scenarios = {
            "agent killed (kill -9)": (fleet.kill_agent, fleet.start_agent, 2.0),
            "network cut (veth down)": (fleet.cut, fleet.restore, 5.0),
        }
        results: dict[str, list[Trial]] = {name: [] for name in scenarios}
        for n in range(1, args.trials + 1):
            for name, (inflict, repair, _) in scenarios.items():  # interleaved: one trial of each in turn
                results[name].append(run_trial(fleet, inflict, repair, args.replicas, args.rebalance))
                t = results[name][-1]
                print(
                    f"  {name}: trial {n}: {t.moved} pods moved; NotReady {t.detected * 1000:.0f} ms, "
                    f"rescheduled {t.rescheduled * 1000:.0f} ms, Running {t.running * 1000:.0f} ms",
                    file=sys.stderr,
                    flush=True,
                )
        rows = [(name, results[name], goal) for name, (_, _, goal) in scenarios.items()]
    spread = "spread evenly before each trial" if args.rebalance else "not rebalanced between trials"
    print(
        f"\nFailover of {args.replicas} replicas on {args.nodes} nodes ({spread}), {args.trials} trials each, "
        "the two faults interleaved:\n"
    )
    print("| node death | pods moved | NotReady p50 | rescheduled p50 | **Running p50** | **Running p95** | goal |")
    print("|---|---|---|---|---|---|---|")
    for name, trials, goal in rows:
        running = [t.running for t in trials]
        p95 = percentile(running, 0.95)
        print(
            f"| {name} | {statistics.median(t.moved for t in trials):g} "
            f"| {percentile([t.detected for t in trials], 0.5):.2f} s "
            f"| {percentile([t.rescheduled for t in trials], 0.5):.2f} s "
            f"| **{percentile(running, 0.5):.2f} s** | **{p95:.2f} s** "
            f"| p95 ≤ {goal:g} s: {'met' if p95 <= goal else 'MISSED'} |"
        )
    print(f"| Kubernetes: computed from Kubernetes' defaults (not measured) | | | | ≈ {KUBERNETES_DEFAULT_S:g} s | | |")
    if args.trials < MIN_TRIALS:
        print(f"\nwarning: {args.trials} trials per fault: p95 needs at least {MIN_TRIALS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
