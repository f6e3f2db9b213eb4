"""Benchmark: the dashboard's update latency — `ekctl delete pod` acknowledged to the pod's row gone in the browser.

Run:
    .venv/bin/python benchmarks/dashboard.py [--trials 30] [--nodes 3]

A real Mosquitto (plain TCP), a master with `--dashboard 127.0.0.1:0`, simulated nodes (tests/support/simnodes.py:
their pods turn Running at once) and a headless Chromium (Debian's, driven by Playwright) logged in with the
one-time URL the master issues for `ekctl dashboard`. `--trials` pods are created and shown Running on the page
first; then, one at a time, each is deleted with the request `ekctl delete pod` sends (verb delete on
edgekube/v1/api/request), and a MutationObserver in the page stamps the moment its row leaves the DOM.

Clocks: both stamps are the machine's wall clock (Python's time.time(); the page's performance.timeOrigin +
performance.now()), one machine, so they compare to well under a millisecond. Reported per trial:
`after ack` = row gone - answer received (negative: the page was faster than the answer; the master pushes a
change from its cache listener at once, and answers after the group commit's fsync); `after send` = row gone -
request sent. p95 is the nearest rank of the trials.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere: tests.support

from edgekube.local.broker import Mosquitto
from edgekube.master.config import MasterConfig
from edgekube.master.wiring import build_master
from edgekube.model.wire import ApiRequest, Verb
from tests.support.browser import chromium
from tests.support.cluster import ApiClient
from tests.support.simnodes import SimNodes

POD = """
apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  containers: [{name: app, image: busybox}]
"""
OBSERVER = """keys => {
  window.gone = window.gone || {};
  window.watched = new Set(keys);
  new MutationObserver(() => {
    const now = performance.timeOrigin + performance.now();
    for (const key of window.watched) {
      if (!(key in window.gone) && !document.querySelector(`[data-pod="${key}"]`)) window.gone[key] = now;
    }
  }).observe(document.body, {childList: true, subtree: true});
}"""


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(trials: int, nodes: int, workdir: Path) -> tuple[list[float], list[float]]:
    after_ack: list[float] = []
    after_send: list[float] = []
    with Mosquitto(workdir=workdir / "broker") as broker:
        config = MasterConfig(mqtt_port=broker.port, data_dir=workdir / "master", dashboard="127.0.0.1:0")
        master = build_master(config).start(wait=10)
        sims = SimNodes(broker.port, nodes).start()
        client = ApiClient(broker.port)
        try:
            names = [f"bench-{i:03d}" for i in range(trials)]
            for name in names:
                assert client.apply(POD % name).ok
            login = client.call(ApiRequest(verb=Verb.DASHBOARD, kind="admin")).object or {}
            url = f"http://127.0.0.1:{login['port']}{login['path']}"
            with chromium() as browser:
                page = browser.new_page()
                page.goto(url)
                for name in names:
                    page.wait_for_selector(f"[data-pod='default/{name}'] >> text=Running", timeout=60_000)
                page.evaluate(OBSERVER, [f"default/{n}" for n in names])
                for name in names:
                    time.sleep(random.uniform(0.1, 0.4))  # not in step with the feed's ticker or the sims' reports
                    sent = time.time()
                    response = client.call(ApiRequest(verb=Verb.DELETE, kind="Pod", name=name))
                    acked = time.time()
                    assert response.ok, response.error
                    key = f"default/{name}"
                    page.wait_for_function("key => key in window.gone", arg=key, timeout=30_000)
                    gone = float(page.evaluate("key => window.gone[key]", key)) / 1000
                    after_ack.append(gone - acked)
                    after_send.append(gone - sent)
        finally:
            client.close()
            sims.close()
            master.stop()
    return after_ack, after_send


def row(label: str, samples: list[float]) -> str:
    ms = [s * 1000 for s in samples]
    return (
        f"{label:<11} n={len(ms):<3} p50 {percentile(ms, 0.5):7.1f} ms  p95 {percentile(ms, 0.95):7.1f} ms  "
        f"mean {statistics.fmean(ms):7.1f} ms  min {min(ms):7.1f} ms  max {max(ms):7.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30, help="pods deleted, one per trial (at least 20 for p95)")
    parser.add_argument("--nodes", type=int, default=3, help="simulated nodes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ek-dash-bench-") as tmp:
        after_ack, after_send = run(args.trials, args.nodes, Path(tmp))
    print(f"dashboard update latency: delete pod -> row gone in Chromium ({args.nodes} simulated nodes)")
    print(row("after ack", after_ack))
    print(row("after send", after_send))
    return 0


if __name__ == "__main__":
    sys.exit(main())
