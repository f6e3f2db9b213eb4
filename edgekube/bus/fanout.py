"""One client per broker seen as one MessageBus: what an HA master uses to be on every broker at once (docs/ha.md).

Agents and `ekctl` are on one broker at a time (bus/brokers.py); the masters must reach them wherever they are,
so a master has a member client per broker of the cluster (BusConfig.per_broker) and this bus:

* `subscribe` subscribes on every member; a message arrives through the member whose broker had it.
* `publish` goes to every member that is connected or has not connected yet (paho queues QoS 1 until its first
  connection); not to one whose connection was lost, whose queue would grow for as long as its broker is away:
  when it reconnects, the connect hooks publish what matters again (presence, desired state, flags).
* connect hooks run when any member (re)connects; `connected` is true while any member is.
* Presence topics (`merged`): a node that failed over leaves its retained Will ("offline") on the broker it left
  while it is online on the other, so the member copies are merged: a handler sees "online" while any broker
  says so, and "offline" only when every broker that holds a copy says so.

Handler calls are serialised across members (one at a time, each broker's messages in their order), as the
MessageBus protocol promises. `buses` are the members themselves, for what must be confirmed on every broker.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.bus.protocol import ConnectHook, Handler, Message, MessageBus
from edgekube.model.errors import BusError

#: How a presence payload says it is online (MasterPresence and Presence are camelCase JSON, compact).
_ONLINE = b'"online":true'


class FanoutBus:
    """Every member's subscriptions and publishes, as one MessageBus."""

    def __init__(self, members: Sequence[MessageBus], *, merged: Sequence[str] = ()) -> None:
        if not members:
            raise ValueError("a fan-out bus needs at least one member")
        self.buses: tuple[MessageBus, ...] = tuple(members)
        #: Topic filters whose retained copies are merged across brokers (presences).
        self._merged = tuple(merged)
        self._lock = threading.Lock()
        #: Members that have been connected once (a member that never was gets publishes queued by paho).
        self._up_once: set[int] = set()
        #: Held around every handler and hook call: one at a time across members.
        self._calls = threading.RLock()
        #: topic -> member index -> the last payload that member delivered.
        self._copies: dict[str, dict[int, bytes]] = {}
        #: topic -> the handler of its merged subscription, and whether it was last shown "online".
        self._routes: dict[str, Handler] = {}
        self._shown: dict[str, bool] = {}

    @classmethod
    def of(cls, config: BusConfig, *, merged: Sequence[str] = ()) -> FanoutBus:
        """One PahoBus per broker of `config` (its host:port and fallbacks), each with `config`'s other settings."""
        return cls([PahoBus(one) for one in config.per_broker()], merged=merged)

    def start(self, wait: float | None = None) -> FanoutBus:
        for index, member in enumerate(self.buses):
            member.on_connect(lambda index=index: self._up_once.add(index))  # type: ignore[misc]
            member.start()
        if wait is not None and not self.wait_connected(wait):
            raise BusError(f"none of the {len(self.buses)} broker(s) accepted a connection within {wait:g}s")
        return self

    def on_connect(self, hook: ConnectHook) -> None:
        def run() -> None:
            with self._calls:
                hook()

        for member in self.buses:
            member.on_connect(run)

    @property
    def connected(self) -> bool:
        return any(member.connected for member in self.buses)

    def wait_connected(self, timeout: float) -> bool:
        if self.connected:
            return True
        done = threading.Event()

        def watch(member: MessageBus) -> None:
            if member.wait_connected(timeout):
                done.set()

        for member in self.buses:
            threading.Thread(target=watch, args=(member,), daemon=True).start()
        return done.wait(timeout)

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        merged = topic_filter in self._merged
        for index, member in enumerate(self.buses):
            member.subscribe(topic_filter, self._serial(self._merging(index, handler) if merged else handler), qos)

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        response_topic: str | None = None,
        correlation: bytes | None = None,
    ) -> None:
        members = [m for i, m in enumerate(self.buses) if m.connected or i not in self._up_once]
        for member in members or self.buses:
            member.publish(
                topic, payload, qos=qos, retain=retain, response_topic=response_topic, correlation=correlation
            )

    def request(self, topic: str, payload: bytes, timeout: float = 5.0) -> Message:
        member = next((m for m in self.buses if m.connected), self.buses[0])
        return member.request(topic, payload, timeout)

    def close(self) -> None:
        for member in self.buses:
            member.close()

    def _serial(self, handler: Handler) -> Handler:
        def run(msg: Message) -> None:
            with self._calls:
                handler(msg)

        return run

    def _merging(self, index: int, handler: Handler) -> Handler:
        def run(msg: Message) -> None:
            with self._lock:
                copies = self._copies.setdefault(msg.topic, {})
                self._routes[msg.topic] = handler
                if msg.payload:
                    copies[index] = msg.payload
                else:
                    copies.pop(index, None)
                if not msg.payload and copies:
                    return  # cleared on one broker, another still holds a copy: nothing changed for the handler
                if _ONLINE not in msg.payload and self._online_elsewhere(copies):
                    return  # "offline" from one broker while another says "online": the node moved, it lives
                self._shown[msg.topic] = _ONLINE in msg.payload
            handler(msg)

        return run

    def _online_elsewhere(self, copies: dict[int, bytes]) -> bytes | None:
        """An "online" copy from a broker this bus is still connected to (a lost broker's copy is stale)."""
        return next((p for i, p in copies.items() if _ONLINE in p and self.buses[i].connected), None)

    def refresh(self) -> None:
        """Deliver "offline" for a presence whose only "online" copies came from brokers lost since.

        No message announces a lost broker: its copy just stops being current. The owner calls this now and then
        (the HA supervisor, every tick) so such a presence does not stay "online" for as long as the broker is away.
        """
        due: list[tuple[Handler, Message]] = []
        with self._lock:
            for topic, copies in self._copies.items():
                if not self._shown.get(topic) or self._online_elsewhere(copies):
                    continue
                offline = next((p for p in copies.values() if _ONLINE not in p), b'{"online":false}')
                self._shown[topic] = False
                due.append((self._routes[topic], Message(topic, offline, retain=True)))
        for handler, msg in due:
            with self._calls:
                handler(msg)
