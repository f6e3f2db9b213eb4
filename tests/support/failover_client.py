"""A PahoBus client in a process of its own, for failover tests that must kill it (`python -m` this module).

Usage: `python -m tests.support.failover_client NAME HOST:PORT [HOST:PORT ...]`. It connects to the brokers in
failover order with a persistent session and a Last Will `{"online": false}` retained on `edgekube/test/<NAME>/online`;
after every connect it publishes `{"online": true}` there (retained) and prints `connected HOST:PORT`; every message
on `edgekube/test/<NAME>/in` is printed as `got PAYLOAD`. It runs until killed.
"""

from __future__ import annotations

import sys
import time

from edgekube.bus.brokers import resolve
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.bus.protocol import Message, Will


def online_topic(name: str) -> str:
    return f"edgekube/test/{name}/online"


def inbox_topic(name: str) -> str:
    return f"edgekube/test/{name}/in"


def main(argv: list[str]) -> None:
    name, *brokers = argv
    config = BusConfig.on(
        resolve(brokers, "", 0),
        client_id=f"failover-{name}",
        persistent=True,
        keepalive=5,
        will=Will(online_topic(name), b'{"online": false}'),
        log_failures=False,
    )
    bus = PahoBus(config)

    def say(line: str) -> None:
        print(line, flush=True)

    def connected() -> None:
        bus.publish(online_topic(name), b'{"online": true}', retain=True)
        say(f"connected {bus.broker}")

    def got(msg: Message) -> None:
        say(f"got {msg.payload.decode()}")

    bus.on_connect(connected)
    bus.subscribe(inbox_topic(name), got)
    bus.start()
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main(sys.argv[1:])
