"""Benchmark: how long a client (PahoBus with two brokers) takes to carry on at the second broker when the first goes.

Run:
    .venv/bin/python benchmarks/broker_failover.py [--trials 20] [--quick]

Each trial starts two fresh brokers, connects a client given both (subscribed to one topic, keep-alive 5 s as
agents use) and a publisher on the second broker that publishes a numbered message every 10 ms. Then the first
broker is taken away by one of two faults, alternating trial by trial:

- `kill`: SIGKILL of the broker process: the kernel resets the client's connection at once (a crashed broker);
- `freeze`: SIGSTOP of the broker: the connection stays open and silent (a board that hung, or a cable pulled),
  so the client notices only by its keep-alive.

Measured from the fault (monotonic clock, one process): `reconnected`, when the client's connect hook ran on the
second broker; `delivered`, when the first message published there reached its handler (it subscribed again).
Pairs: Mosquitto + Mosquitto, and Mosquitto first with rumqttd second. p95 is the nearest rank of the trials.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere: tests.support

from edgekube.bus.brokers import Broker
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.bus.protocol import Message
from tests.support.broker import make_broker

TOPIC = "edgekube/bench/failover"
FAULTS = ("kill", "freeze")
PAIRS = (("mosquitto", "mosquitto"), ("mosquitto", "rumqttd"))
WAIT = 30.0


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def trial(first: str, second: str, fault: str, workdir: Path) -> tuple[float, float]:
    """(reconnected, delivered) seconds after the fault."""
    b1, b2 = make_broker(first, workdir / "b1"), make_broker(second, workdir / "b2")
    b1.start()
    b2.start()
    client = PahoBus(
        BusConfig.on(
            (Broker(b1.host, b1.port), Broker(b2.host, b2.port)), client_id="bench-client", persistent=True,
            keepalive=5, log_failures=False,
        )
    )  # fmt: skip
    publisher = PahoBus(BusConfig(port=b2.port, client_id="bench-publisher", log_failures=False))
    connects: list[tuple[float, int]] = []
    delivered = threading.Event()
    delivered_at: list[float] = []
    armed = threading.Event()

    def on_connect() -> None:
        connects.append((time.monotonic(), client.broker.port))

    def on_message(msg: Message) -> None:
        if armed.is_set() and not delivered.is_set():
            delivered_at.append(time.monotonic())
            delivered.set()

    stop = threading.Event()

    def publish() -> None:
        n = 0
        while not stop.wait(0.01):
            n += 1
            publisher.publish(TOPIC, str(n).encode(), qos=0)

    try:
        client.on_connect(on_connect)
        client.subscribe(TOPIC, on_message, qos=0)
        client.start(wait=WAIT)
        publisher.start(wait=WAIT)
        ticker = threading.Thread(target=publish, daemon=True)
        ticker.start()
        assert client.broker.port == b1.port
        armed.set()
        pid = b1.pid
        assert pid is not None
        t0 = time.monotonic()
        os.kill(pid, signal.SIGKILL if fault == "kill" else signal.SIGSTOP)
        if not delivered.wait(WAIT):
            raise RuntimeError(f"{first}+{second} {fault}: no message through the second broker within {WAIT:g}s")
        reconnected = next(t for t, port in connects if port == b2.port)
        stop.set()
        ticker.join()
        return reconnected - t0, delivered_at[0] - t0
    finally:
        stop.set()
        client.close()
        publisher.close()
        if b1.pid is not None and fault == "freeze":
            os.kill(b1.pid, signal.SIGCONT)
        b1.close()
        b2.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="trials per pair and fault (default 20)")
    parser.add_argument("--quick", action="store_true", help="one trial per pair and fault (smoke test)")
    parser.add_argument("--fault", choices=[*FAULTS, "both"], default="both", help="which fault (default both)")
    args = parser.parse_args()
    faults = FAULTS if args.fault == "both" else (args.fault,)
    trials = 1 if args.quick else args.trials
    print(f"{'pair':<20} {'fault':<7} {'n':>3} {'reconnect p50':>14} {'p95':>7} {'delivered p50':>14} {'p95':>7}")
    for first, second in PAIRS:
        for fault in faults:
            reconnects, deliveries = [], []
            for _ in range(trials):
                with tempfile.TemporaryDirectory(prefix="ek-failover-") as tmp:
                    r, d = trial(first, second, fault, Path(tmp))
                reconnects.append(r)
                deliveries.append(d)
            print(
                f"{first + '+' + second:<20} {fault:<7} {trials:>3} {statistics.median(reconnects):>13.3f}s "
                f"{percentile(reconnects, 0.95):>6.3f}s {statistics.median(deliveries):>13.3f}s "
                f"{percentile(deliveries, 0.95):>6.3f}s"
            )


if __name__ == "__main__":
    main()
