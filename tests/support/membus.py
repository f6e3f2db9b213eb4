"""An in-memory MessageBus and broker for unit tests; tests/integration/test_bus_contract.py holds it to PahoBus.

`MemoryBroker` keeps retained messages, Last Wills and persistent sessions the way Mosquitto does for what
edgekube uses; `MemoryBus` is one client of it. Two delivery modes:
- threaded (default): like PahoBus, each bus runs its handlers on one thread of its own, in arrival order;
- inline (`MemoryBroker(inline=True)`): handlers run inside `publish`, so a unit test that publishes has seen
  every consequence when the call returns (no sleeps, no polling). Nested publishes are queued and delivered
  in order once the outer delivery is done, as a broker would.
Faults are explicit: `drop(client_id)` loses one connection (its Will fires), `outage()` takes the broker down,
`recover()` brings it back (clients reconnect, their connect hooks run).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from edgekube.bus import topics
from edgekube.bus.protocol import ConnectHook, Handler, Message, Will
from edgekube.model.errors import BusError

log = logging.getLogger(__name__)


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT's matching rules: `+` one level, `#` the rest (also the parent level); `$` topics need a literal."""
    if topic.startswith("$") and not topic_filter.startswith("$"):
        return False
    pattern, levels = topic_filter.split("/"), topic.split("/")
    for i, part in enumerate(pattern):
        if part == "#":
            return True
        if i >= len(levels) or part not in ("+", levels[i]):
            return False
    return len(pattern) == len(levels)


@dataclass(frozen=True)
class Published:
    """One message as the broker received it, with who sent it (tests read `broker.log`)."""

    sender: str
    message: Message
    qos: int


@dataclass
class _Session:
    """What the broker keeps of a persistent client while it is away: its filters and the QoS 1 messages."""

    filters: list[str] = field(default_factory=list)
    queued: list[Message] = field(default_factory=list)


class MemoryBroker:
    """Routes messages between MemoryBus clients; every publish is also appended to `log`."""

    def __init__(self, *, inline: bool = False) -> None:
        self.inline = inline
        self.up = True
        self.log: list[Published] = []
        self.retained: dict[str, Message] = {}
        self._clients: dict[str, MemoryBus] = {}
        self._sessions: dict[str, _Session] = {}
        self._dropped: dict[str, MemoryBus] = {}
        self._lock = threading.RLock()
        self._pending: deque[tuple[Handler, Message]] = deque()
        self._delivering = False

    def client(self, client_id: str, *, will: Will | None = None, persistent: bool = False) -> MemoryBus:
        return MemoryBus(self, client_id, will=will, persistent=persistent)

    def published(self, topic_filter: str = "#") -> list[Message]:
        """Every message published on a topic the filter matches, oldest first."""
        return [p.message for p in self.log if topic_matches(topic_filter, p.message.topic)]

    # -- faults ------------------------------------------------------------------------------------------
    def drop(self, client_id: str) -> None:
        """The client's connection breaks without a DISCONNECT: the broker publishes its Will.

        The client stays disconnected (publishing into its outbox) until `reconnect(client_id)`.
        """
        bus = self._clients[client_id]
        bus._lost()
        if bus.will is not None:
            self._route(client_id, Message(bus.will.topic, bus.will.payload, bus.will.retain), qos=1)

    def reconnect(self, client_id: str) -> None:
        """A dropped client connects again (its connect hooks run, its outbox is sent)."""
        bus = self._dropped.pop(client_id)
        bus._reconnect_later()

    def outage(self, *, forget: bool = False) -> None:
        """The broker stops: every client loses its connection until `recover()`.

        `forget=True` is a restart without persistence, like Mosquitto's default: retained messages and
        persistent sessions are gone when it comes back.
        """
        with self._lock:
            self.up = False
            clients = list(self._clients.values())
        for bus in clients:
            bus._lost()
        if forget:
            with self._lock:
                self.retained.clear()
                self._sessions.clear()

    def recover(self) -> None:
        """The broker is back: every started client reconnects; its connect hooks run."""
        with self._lock:
            self.up = True
            clients = list(self._dropped.values())
            self._dropped.clear()
        for bus in clients:
            bus._reconnect_later()

    # -- routing -----------------------------------------------------------------------------------------
    def _attach(self, bus: MemoryBus) -> list[Message]:
        """Connect `bus`; returns what its persistent session queued while it was away."""
        with self._lock:
            if not self.up:
                return []
            self._clients[bus.client_id] = bus
            session = self._sessions.pop(bus.client_id, None)
            return session.queued if session is not None and bus.persistent else []

    def _detach(self, bus: MemoryBus, filters: list[str], *, lost: bool) -> None:
        with self._lock:
            if self._clients.get(bus.client_id) is bus:
                del self._clients[bus.client_id]
            if bus.persistent:
                self._sessions[bus.client_id] = _Session(filters)
            if lost:
                self._dropped[bus.client_id] = bus

    def _route(self, sender: str, message: Message, qos: int) -> None:
        with self._lock:
            self.log.append(Published(sender, message, qos))
            if message.retain:
                if message.payload:
                    self.retained[message.topic] = message
                else:
                    self.retained.pop(message.topic, None)
            targets = list(self._clients.values())
            delivered = Message(message.topic, message.payload, False, message.response_topic, message.correlation)
            if qos >= 1:
                for session in self._sessions.values():
                    if any(topic_matches(f, message.topic) for f in session.filters):
                        session.queued.append(delivered)
        for bus in targets:
            bus._offer(delivered)

    def _waiting(self, bus: MemoryBus) -> None:
        with self._lock:
            self._dropped[bus.client_id] = bus

    def _retained_for(self, topic_filter: str) -> list[Message]:
        with self._lock:
            return [m for t, m in sorted(self.retained.items()) if topic_matches(topic_filter, t)]

    def _run_inline(self, handler: Handler, message: Message) -> None:
        """Deliver now, or after the delivery in progress (keeps broker order with nested publishes)."""
        with self._lock:
            self._pending.append((handler, message))
            if self._delivering:
                return
            self._delivering = True
        try:
            while True:
                with self._lock:
                    if not self._pending:
                        self._delivering = False
                        return
                    handler, message = self._pending.popleft()
                _call(handler, message)
        except BaseException:
            with self._lock:
                self._delivering = False
            raise


def _call(handler: Handler, message: Message) -> None:
    try:
        handler(message)
    except Exception:  # like PahoBus: a handler bug is logged, never raised to the sender
        log.exception("handler for %s failed", message.topic or "<connect>")


_CONNECTED = Message(topic="", payload=b"")


def _hook_handler(hook: ConnectHook) -> Handler:
    return lambda _msg: hook()


class MemoryBus:
    """One client of a MemoryBroker, implementing MessageBus."""

    def __init__(
        self, broker: MemoryBroker, client_id: str, *, will: Will | None = None, persistent: bool = False
    ) -> None:
        self.broker = broker
        self.client_id = client_id
        self.will = will
        self.persistent = persistent
        self._subs: list[tuple[str, Handler, int]] = []
        self._hooks: list[ConnectHook] = []
        self._connected = threading.Event()
        self._started = False
        self._closed = False
        self._lock = threading.RLock()
        self._outbox: list[tuple[Message, int]] = []
        self._inbox: queue.Queue[tuple[Handler, Message] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._pending: dict[bytes, queue.Queue[Message]] = {}
        self._reply_topic = topics.client_reply(client_id)
        self._seq = 0

    # -- MessageBus ----------------------------------------------------------------------------------------
    def start(self, wait: float | None = None) -> MemoryBus:
        """Connect; a second call while started does nothing (tests may start a bus before handing it over)."""
        if self._started:
            return self
        if not self.broker.inline:
            self._thread = threading.Thread(target=self._dispatch, name=f"membus-{self.client_id}", daemon=True)
            self._thread.start()
        self._started = True
        self._connect()
        if wait is not None and not self._connected.is_set():
            self.close()
            raise BusError(f"cannot reach the in-memory broker for {self.client_id}")
        return self

    def on_connect(self, hook: ConnectHook) -> None:
        with self._lock:
            self._hooks.append(hook)
            connected = self._connected.is_set()
        if connected:
            self._enqueue(_hook_handler(hook), _CONNECTED)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        with self._lock:
            self._subs.append((topic_filter, handler, qos))
            connected = self._connected.is_set()
        if connected:
            for message in self.broker._retained_for(topic_filter):
                self._enqueue(handler, message)

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
        message = Message(topic, payload, retain, response_topic, correlation)
        with self._lock:
            if not self._connected.is_set():
                if qos >= 1 and not self._closed:
                    self._outbox.append((message, qos))  # paho queues QoS >= 1 and sends it on reconnect
                return
        self.broker._route(self.client_id, message, qos)

    def request(self, topic: str, payload: bytes, timeout: float = 5.0) -> Message:
        with self._lock:
            self._seq += 1
            correlation = f"{self.client_id}-{self._seq}".encode()
        box: queue.Queue[Message] = queue.Queue(maxsize=1)
        self._pending[correlation] = box
        try:
            self.publish(topic, payload, response_topic=self._reply_topic, correlation=correlation)
            try:
                return box.get(timeout=timeout)
            except queue.Empty:
                raise BusError(f"no answer on {topic} within {timeout:g}s") from None
        finally:
            self._pending.pop(correlation, None)

    def close(self) -> None:
        """A clean disconnect: the Will is not published."""
        with self._lock:
            self._closed = True
            self._started = False
            self._connected.clear()
            self._outbox.clear()
        self.broker._detach(self, self._filters(), lost=False)
        self._inbox.put(None)

    # -- broker side ---------------------------------------------------------------------------------------
    def _connect(self) -> None:
        if not self.broker.up:
            self.broker._waiting(self)  # like paho, it keeps trying: it connects when the broker recovers
            return
        queued = self.broker._attach(self)
        with self._lock:
            self._connected.set()
            subs = list(self._subs)
            outbox, self._outbox = self._outbox, []
            hooks = list(self._hooks)
        for message in queued:
            self._deliver(message)
        for topic_filter, handler, _qos in subs:
            for message in self.broker._retained_for(topic_filter):
                self._enqueue(handler, message)
        for hook in hooks:
            self._enqueue(_hook_handler(hook), _CONNECTED)
        for message, qos in outbox:
            self.broker._route(self.client_id, message, qos)

    def _lost(self) -> None:
        self._connected.clear()
        self.broker._detach(self, self._filters(), lost=True)

    def _filters(self) -> list[str]:
        with self._lock:
            return [f for f, _, _ in self._subs]

    def _reconnect_later(self) -> None:
        if self._started and not self._closed:
            self._connect()

    def _offer(self, message: Message) -> None:
        if message.topic == self._reply_topic:
            box = self._pending.get(message.correlation or b"")
            if box is not None and box.empty():
                box.put_nowait(message)
            return
        self._deliver(message)

    def _matching(self, topic: str) -> list[Handler]:
        with self._lock:
            return [h for f, h, _ in self._subs if topic_matches(f, topic)]

    def _deliver(self, message: Message) -> None:
        for handler in self._matching(message.topic):
            self._enqueue(handler, message)

    def _enqueue(self, handler: Handler, message: Message) -> None:
        if self.broker.inline:
            self.broker._run_inline(handler, message)
        else:
            self._inbox.put((handler, message))

    def _dispatch(self) -> None:
        while True:
            item = self._inbox.get()
            if item is None:
                return
            _call(*item)


#: What a test builds buses with: `factory(client_id)`.
BusFactory = Callable[[str], MemoryBus]
