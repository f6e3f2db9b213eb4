"""FanoutBus on two in-memory brokers: presences merged across brokers, handler calls and publishes fanned out.

A node that failed over to the second broker leaves its retained Will ("offline") on the first; the master, on both,
must go on seeing it online. The merge is on the presence topics only; everything else is delivered as it comes.
"""

from __future__ import annotations

from edgekube.bus import topics
from edgekube.bus.fanout import FanoutBus
from edgekube.bus.protocol import Message
from edgekube.model.wire import Presence
from tests.support.membus import MemoryBroker

ONLINE = Presence(online=True, boot_id="b").encode()
OFFLINE = Presence(online=False).encode()
TOPIC = topics.node_online("node-1")


def pair() -> tuple[MemoryBroker, MemoryBroker, FanoutBus, list[bytes]]:
    first, second = MemoryBroker(inline=True), MemoryBroker(inline=True)
    fan = FanoutBus([first.client("m"), second.client("m")], merged=[topics.ALL_NODE_ONLINE])
    seen: list[bytes] = []
    fan.subscribe(topics.ALL_NODE_ONLINE, lambda msg: seen.append(msg.payload))
    fan.start()
    return first, second, fan, seen


def test_a_stale_will_on_the_broker_a_node_left_does_not_hide_it_online_on_the_other() -> None:
    first, second, _fan, seen = pair()
    node1 = first.client("node-1").start()
    node2 = second.client("node-1b").start()
    node2.publish(TOPIC, ONLINE, retain=True)  # the node, now on the second broker
    node1.publish(TOPIC, OFFLINE, retain=True)  # its Will on the first broker
    assert seen == [ONLINE]
    node2.publish(TOPIC, OFFLINE, retain=True)  # offline everywhere now
    assert seen == [ONLINE, OFFLINE]


def test_other_topics_are_not_merged_and_publishes_reach_both_brokers() -> None:
    first, second, fan, _seen = pair()
    got: list[Message] = []
    fan.subscribe("edgekube/v1/nodes/+/status", got.append)
    first.client("a").start().publish(topics.node_status("node-1"), b"1")
    second.client("b").start().publish(topics.node_status("node-1"), b"2")
    assert [m.payload for m in got] == [b"1", b"2"]
    fan.publish(topics.node_desired("node-1"), b"desired", retain=True)
    assert first.retained[topics.node_desired("node-1")].payload == b"desired"
    assert second.retained[topics.node_desired("node-1")].payload == b"desired"


def test_an_online_copy_from_a_broker_lost_since_stops_counting_on_refresh() -> None:
    first, second, fan, seen = pair()
    first.client("node-1").start().publish(TOPIC, ONLINE, retain=True)  # seen through the first broker only
    node_b = second.client("node-1b").start()
    node_b.publish(TOPIC, OFFLINE, retain=True)  # the other broker holds its Will
    assert seen == [ONLINE]
    fan.refresh()
    assert seen == [ONLINE], "both brokers connected: the online copy is current"
    fan.buses[0].close()  # the first broker is lost; no message says so
    fan.refresh()
    assert seen == [ONLINE, OFFLINE]
    fan.refresh()
    assert seen == [ONLINE, OFFLINE], "said once"
