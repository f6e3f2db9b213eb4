"""What a client published on a connection lost to a silent cut: resent by paho, or dropped (BusConfig.drop_unsent).

paho resends unacknowledged QoS 1 publishes on the next connection, even with a clean start. An HA master must not:
what it published while a cut went unnoticed carries its term of then, and by the time the cut heals another
master may hold a higher one (docs/ha.md). The broker runs in a network namespace and the test's client reaches
it over the veth; the cut takes the link down (no FIN, no RST), as a pulled cable does.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest

from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.bus.protocol import Message
from tests.support.cluster import wait_for
from tests.support.netns import NetNode, mosquitto_inside

pytestmark = pytest.mark.integration


def _connections_to(node: NetNode, port: int) -> int:
    """Established TCP connections the broker in `node` still holds on `port`."""
    listed = subprocess.run(
        node.enter(["ss", "-Htn", "state", "established", f"( sport = :{port} )"]),
        capture_output=True, text=True, timeout=10, check=True,
    )  # fmt: skip
    return len(listed.stdout.splitlines())


def _retained(host: str, port: int, topic_filter: str, last: str) -> set[str]:
    """The topics under `topic_filter` the broker holds a retained message for, read once `last` has arrived."""
    seen: set[str] = set()

    def keep(msg: Message) -> None:
        seen.add(msg.topic)

    reader = PahoBus(BusConfig(host=host, port=port))
    reader.subscribe(topic_filter, keep)
    reader.start(wait=10)
    try:
        wait_for(f"the retained {last}", lambda: last in seen, timeout=10)
        return set(seen)
    finally:
        reader.close()


@pytest.mark.parametrize("drop", [True, False], ids=["drop_unsent", "paho_default"])
def test_a_publish_left_unacknowledged_by_a_silent_cut_is_resent_after_it_heals_unless_drop_unsent(
    cable: NetNode, tmp_path: Path, drop: bool
) -> None:
    topic = f"test/unsent/{uuid.uuid4().hex[:8]}"
    with mosquitto_inside(cable, tmp_path / "broker") as broker:
        bus = PahoBus(BusConfig(host=cable.address, port=broker.port, keepalive=1, drop_unsent=drop))
        bus.start(wait=10)
        try:
            bus.publish(f"{topic}/before", b"acknowledged before the cut", retain=True)
            wait_for("the publish before the cut held", lambda: f"{topic}/before" in _retained(
                cable.address, broker.port, f"{topic}/#", f"{topic}/before"))  # fmt: skip
            cable.cut()
            bus.publish(f"{topic}/during", b"published while the cut went unnoticed", retain=True)
            wait_for("the client noticed the cut", lambda: not bus.connected, timeout=30)
            # The broker gave up the old connection too: nothing of it can still arrive once the link is back.
            wait_for("the broker dropped the old connection", lambda: _connections_to(cable, broker.port) == 0)
            cable.restore()
            wait_for("the client connected again", lambda: bus.connected, timeout=30)
            bus.publish(f"{topic}/after", b"published on the new connection", retain=True)

            held = _retained(cable.address, broker.port, f"{topic}/#", f"{topic}/after")
            assert f"{topic}/before" in held
            assert (f"{topic}/during" in held) is not drop
        finally:
            bus.close()
