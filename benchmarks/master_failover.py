"""Benchmark: two HA masters — the active's death to the first apply the new active answers; the cost of replication.

Run:
    .venv/bin/python benchmarks/master_failover.py [--trials 10] [--writes 200] [--latency-trials 6]

Failover. One Mosquitto, two masters as processes (`edgekube master --master-id m1|m2`, tests/support/hamasters.py),
three simulated nodes (tests/support/simnodes.py) whose witnesses the agent's own MasterWatch decides
(tests/support/hamasters.py Witnesses), a ReplicationController with 3 replicas Running. Each trial waits until the
active's standby holds everything ("replicated"), then `kill -9`s the active and, from that moment, sends an apply
every 20 ms (each once, to the cluster's API topic) until the first answer `ok` arrives: the time to that answer is
the sample. The killed master is then started again (configured `active`, it sees the higher term and comes back
as standby), and the next trial kills the other one: the roles alternate, the term grows by one per trial.
p50/p95 are nearest-rank over the trials (at least 10).

Replication cost. Trials alternate (the order flips every trial, so a change in the machine's load hits both):
a single master (no --master-id) and an HA pair (active + standby, synchronous replication), each trial on fresh
data directories and fresh master processes, the same broker. Each trial sends `--writes` applies one after the
other (a new ConfigMap each, after 20 warm-up ones) and times each from send to answer. The ratio is HA's p50 over
the single master's p50 from the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere: tests.support

from edgekube.local.broker import Mosquitto
from edgekube.model.errors import BusError
from edgekube.model.ha import Replication, Role
from edgekube.model.wire import ApiRequest, Verb
from tests.support.cluster import ApiClient, PendingReply, wait_for
from tests.support.fleet import REPO, Proc
from tests.support.hamasters import HaMasters, Witnesses
from tests.support.simnodes import SimNodes

MIN_TRIALS = 10
WARMUP = 20
PROBE_EVERY = 0.02
NODES = ["node-1", "node-2", "node-3"]


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (as the other benchmarks report p95)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def config_map(name: str) -> ApiRequest:
    text = f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{k: v}}\n"
    return ApiRequest(verb=Verb.APPLY, manifest=text)


def rc(replicas: int) -> ApiRequest:
    text = (
        "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: web}\n"
        f"spec:\n  replicas: {replicas}\n  selector: {{app: web}}\n"
        "  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: main, image: demo}]}\n"
    )
    return ApiRequest(verb=Verb.APPLY, manifest=text)


def first_answer(api: ApiClient, tag: str, deadline: float) -> float:
    """Send an apply every PROBE_EVERY seconds until one is answered ok; the moment that answer arrived."""
    pending: list[PendingReply] = []
    sent_at = 0.0
    k = 0
    while time.monotonic() < deadline:
        now = time.monotonic()
        if now - sent_at >= PROBE_EVERY:
            pending.append(api.send(config_map(f"probe-{tag}-{k}")))
            sent_at, k = now, k + 1
        for reply in pending:
            try:
                answer = reply.wait(timeout=0.002)
            except BusError:
                continue
            if answer.ok:
                return time.monotonic()
    raise AssertionError(f"no apply answered within the deadline ({k} sent)")


def failover(root: Path, trials: int) -> list[float]:
    samples: list[float] = []
    with Mosquitto(workdir=root / "broker") as broker, HaMasters(broker.port, root / "ha") as masters:
        masters.start("m1", "active")
        masters.wait_role("m1", Role.ACTIVE)
        masters.start("m2", "standby")
        masters.wait_replication("m1", Replication.REPLICATED)
        api = ApiClient(broker.port)
        try:
            with SimNodes(broker.port, NODES) as nodes, Witnesses(broker.port, NODES):
                assert api.call(rc(3)).ok
                wait_for("3 pods running", lambda: sum(len(nodes.running(n)) for n in NODES) == 3)
                active, standby = "m1", "m2"
                for trial in range(trials):
                    term = trial + 1
                    masters.wait_role(active, Role.ACTIVE, term=term)
                    masters.wait_replication(active, Replication.REPLICATED, timeout=60)
                    assert api.call(config_map(f"before-{trial}")).ok  # the nodes are Ready in the copy
                    killed = time.monotonic()
                    masters.kill(active)
                    answered = first_answer(api, str(trial), killed + 60)
                    samples.append(answered - killed)
                    masters.wait_role(standby, Role.ACTIVE, term=term + 1)
                    print(f"  trial {trial + 1}: {standby} active (term {term + 1}) {samples[-1] * 1000:.0f} ms",
                          flush=True)  # fmt: skip
                    masters.start(active, "active")  # configured active, but deposed: it comes back as standby
                    masters.wait_role(active, Role.STANDBY, term=term + 1)
                    active, standby = standby, active
        finally:
            api.bus.close()
    return samples


def write_latencies(api: ApiClient, writes: int) -> list[float]:
    tag = uuid.uuid4().hex[:6]
    for i in range(WARMUP):
        assert api.call(config_map(f"warm-{tag}-{i}")).ok
    out = []
    for i in range(writes):
        started = time.monotonic()
        answer = api.call(config_map(f"w-{tag}-{i}"))
        out.append(time.monotonic() - started)
        assert answer.ok, answer.error
    return out


def single_trial(port: int, root: Path, writes: int) -> list[float]:
    argv = [sys.executable, "-m", "edgekube.main", "master", "--mqtt-port", str(port), "--data-dir", str(root / "m")]
    (root / "logs").mkdir(parents=True)
    master = Proc("single", lambda: argv, root / "logs" / "single.log")
    master.start()
    api = ApiClient(port)
    try:
        wait_for("the single master answers", lambda: _answers(api), timeout=60)
        return write_latencies(api, writes)
    finally:
        api.bus.close()
        master.kill()


def ha_trial(port: int, root: Path, writes: int) -> list[float]:
    with HaMasters(port, root) as masters:
        masters.start("m1", "active")
        masters.wait_role("m1", Role.ACTIVE)
        masters.start("m2", "standby")
        masters.wait_replication("m1", Replication.REPLICATED)
        api = ApiClient(port)
        try:
            return write_latencies(api, writes)
        finally:
            api.bus.close()


def _answers(api: ApiClient) -> bool:
    try:
        return api.call(ApiRequest(verb=Verb.LIST, kind="ConfigMap"), timeout=1).ok
    except BusError:
        return False


def latency(root: Path, trials: int, writes: int) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {"single": [], "ha": []}
    with Mosquitto(workdir=root / "broker") as broker:
        for trial in range(trials):
            order = ("single", "ha") if trial % 2 == 0 else ("ha", "single")
            for mode in order:
                where = root / f"{mode}-{trial}"
                run = single_trial if mode == "single" else ha_trial
                found[mode] += run(broker.port, where, writes)
            print(f"  latency trial {trial + 1}/{trials} done", flush=True)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=MIN_TRIALS, help="failover trials (default 10)")
    parser.add_argument("--latency-trials", type=int, default=6, help="single/HA write-latency trials, interleaved")
    parser.add_argument("--writes", type=int, default=200, help="applies timed per latency trial (default 200)")
    args = parser.parse_args()
    if args.trials < MIN_TRIALS:
        print(f"warning: {args.trials} trials; p95 needs at least {MIN_TRIALS}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="master-failover-") as tmp:
        root = Path(tmp)
        print(f"failover: {args.trials} trials (kill -9 of the active; roles alternate)", flush=True)
        samples = failover(root / "failover", args.trials)
        print(f"latency: {args.latency_trials} interleaved trials x {args.writes} applies per mode", flush=True)
        found = latency(root / "latency", args.latency_trials, args.writes)
    ms = [s * 1000 for s in samples]
    print()
    print("| measure | p50 | p95 | max | n |")
    print("|---|---|---|---|---|")
    print(f"| kill -9 of the active → first apply answered by the new active | {percentile(ms, 0.5):.0f} ms | "
          f"{percentile(ms, 0.95):.0f} ms | {max(ms):.0f} ms | {len(ms)} |")  # fmt: skip
    for mode, label in (("single", "apply, single master"), ("ha", "apply, HA pair (synchronous replication)")):
        values = [v * 1000 for v in found[mode]]
        print(f"| {label} | {percentile(values, 0.5):.1f} ms | {percentile(values, 0.95):.1f} ms | "
              f"{max(values):.1f} ms | {len(values)} |")  # fmt: skip
    ratio = statistics.median(found["ha"]) / statistics.median(found["single"])
    print(f"\nreplication cost: HA p50 / single p50 = {ratio:.2f} (same run, interleaved); machine: {REPO}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
