"""paho-mqtt (MQTT 5) implementation of MessageBus: TCP_NODELAY, persistent sessions, Last Will, request/response.

A client given several brokers connects to one at a time and fails over in the order of `bus/brokers.py`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import ssl
import threading
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgekube.bus import topics
from edgekube.bus.brokers import Broker, Failover
from edgekube.bus.protocol import ConnectHook, Handler, Message, Will
from edgekube.bus.tls import TlsFiles, explain

__all__ = ["Broker", "BusConfig", "PahoBus", "Will"]
from edgekube.model.errors import BusError, ValidationError

log = logging.getLogger(__name__)
#: Topics whose matching handlers are remembered when the broker sends no subscription identifiers.
_MAX_ROUTES = 4096


@dataclass
class _Subscription:
    """One topic filter: the MQTT 5 subscription identifier it is sent with, and every handler on it."""

    ident: int
    qos: int
    handlers: list[Handler]

    def properties(self) -> Properties:
        props = Properties(PacketTypes.SUBSCRIBE)  # type: ignore[no-untyped-call]
        props.SubscriptionIdentifier = self.ident
        return props


@dataclass
class BusConfig:
    host: str = "127.0.0.1"
    port: int = 1883
    #: Brokers tried after host:port, in order, when it is lost or cannot be reached (bus/brokers.py: Failover).
    fallbacks: tuple[Broker, ...] = ()
    client_id: str = field(default_factory=lambda: f"edgekube-{uuid.uuid4().hex[:12]}")
    #: Persistent session (clean_start False + expiry) so QoS 1 messages queue at the broker while we are away.
    persistent: bool = False
    session_expiry: int = 24 * 3600
    keepalive: int = 5
    will: Will | None = None
    #: PEM files for TLS (all empty: plain TCP): the fleet's CA, this client's certificate and its key.
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    #: Log why connecting fails while retrying (daemons); False: only start(wait)'s BusError says it (ekctl).
    log_failures: bool = True
    #: Never send on a new connection what was published on a lost one (paho resends unacknowledged QoS 1 even
    #: with a clean start). For a client that republishes its level-triggered state on every connect anyway: an HA
    #: master, whose old messages would carry a term that may have been superseded meanwhile (docs/ha.md).
    drop_unsent: bool = False

    @property
    def tls(self) -> TlsFiles:
        return TlsFiles(self.tls_ca, self.tls_cert, self.tls_key)

    @property
    def brokers(self) -> tuple[Broker, ...]:
        """Every broker this client may use, the preferred one first."""
        return tuple(dict.fromkeys((Broker(self.host, self.port), *self.fallbacks)))

    @classmethod
    def on(cls, brokers: tuple[Broker, ...], **settings: Any) -> BusConfig:
        """A config for the ordered broker list `brokers` (bus/brokers.py: resolve), the first preferred."""
        first, *rest = brokers
        return cls(host=first.host, port=first.port, fallbacks=tuple(rest), **settings)

    def per_broker(self) -> list[BusConfig]:
        """One config per broker, without fallbacks: a client that must be on every broker at once (the masters)."""
        return [replace(self, host=b.host, port=b.port, fallbacks=()) for b in self.brokers]


class _Client(mqtt.Client):
    """paho's client, sending each attempt where `failover` says and remembering why it failed (paho retries)."""

    failure: BaseException | None = None
    failover: Failover

    def reconnect(self) -> MQTTErrorCode:
        # Every attempt, the first one included, goes through here on paho's network thread.
        broker = self.failover.attempt()
        self._host, self._port = broker.host, broker.port
        try:
            return super().reconnect()
        except OSError as exc:  # refused, unreachable, TLS handshake (ssl.SSLError is an OSError)
            self.failure = exc
            self.failover.failed()
            raise

    #: See BusConfig.drop_unsent; `dropped` counts what was not sent (the first connect drops nothing).
    drop_unsent = False
    dropped = 0
    _connected_before = False

    def _messages_reconnect_reset_out(self) -> None:
        # Called by paho's reconnect() before each attempt's CONNECT, with what the last connection left unsent.
        if self.drop_unsent and self._connected_before:
            with self._out_message_mutex:
                self.dropped += len(self._out_messages)
                self._out_messages.clear()
        super()._messages_reconnect_reset_out()

    def _reconnect_wait(self) -> None:
        # paho waits 1-2 s before every attempt; with another broker not yet tried, that one is tried at once.
        if self.failover.must_wait():
            super()._reconnect_wait()

    def _ssl_wrap_socket(self, tcp_sock: socket.socket) -> ssl.SSLSocket:
        # paho's own leaves the socket open when the handshake fails (a ResourceWarning per retry). The context
        # checks the broker's name itself (check_hostname), so nothing else of paho's version is needed.
        assert self._ssl_context is not None
        sock = self._ssl_context.wrap_socket(tcp_sock, server_hostname=self._host, do_handshake_on_connect=False)
        try:
            sock.settimeout(self._connect_timeout)
            sock.do_handshake()
        except BaseException:
            sock.close()
            raise
        return sock


def _check_filter(topic_filter: str) -> None:
    """MQTT's rules for a topic filter (paho's own check raises inside its connect callback); ValidationError."""
    levels = topic_filter.split("/")
    bad = not topic_filter or len(topic_filter.encode()) > 65535 or "\0" in topic_filter
    bad = bad or any(("+" in level or "#" in level) and level not in ("+", "#") for level in levels)
    if bad or "#" in levels[:-1]:
        raise ValidationError(
            f"topic filter {topic_filter!r}: Invalid value: '+' and '#' must be whole levels, '#' only the last one"
        )


#: The message a connect hook's queue entry carries (hooks take no argument; see _hook_handler).
_CONNECTED = Message(topic="", payload=b"")


def _hook_handler(hook: ConnectHook) -> Handler:
    return lambda _msg: hook()


class PahoBus:
    """MessageBus over paho-mqtt. Handlers run on one dispatcher thread, in arrival order, isolated from I/O."""

    def __init__(self, config: BusConfig) -> None:
        self.config = config
        # Checked first: a bad certificate or key file is an error now, before any thread starts.
        context = config.tls.context() if config.tls.enabled else None
        self._client = _Client(CallbackAPIVersion.VERSION2, client_id=config.client_id, protocol=mqtt.MQTTv5)
        self._client.failover = Failover(config.brokers)
        self._client.drop_unsent = config.drop_unsent
        #: The broker of the last connection that worked (None before the first).
        self._last_broker: Broker | None = None
        if context is not None:
            self._client.tls_set_context(context)
        self._client.reconnect_delay_set(min_delay=1, max_delay=2)
        self._client.on_connect_fail = self._on_connect_fail
        #: Why the last attempt to connect failed (one line, hint, specific), logged once per change while retrying.
        self._failure: tuple[str, str, bool] | None = None
        #: The last reason logged per broker (a client alternating between brokers logs each reason once).
        self._failures: dict[Broker, str] = {}
        if config.will is not None:
            w = config.will
            self._client.will_set(w.topic, w.payload, qos=w.qos, retain=w.retain)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_socket_open = self._on_socket_open
        #: Filter -> subscription. A message names the subscriptions it came through (MQTT 5 subscription
        #: identifiers), so overlapping filters do not hand one handler the copy meant for another filter.
        self._subs: dict[str, _Subscription] = {}
        self._by_ident: dict[int, _Subscription] = {}
        #: topic -> the handlers whose filters match it; cleared on every subscribe (matching costs ~10 µs a filter).
        self._routes: dict[str, tuple[Handler, ...]] = {}
        self._lock = threading.Lock()
        self._connected = threading.Event()
        #: How many times a connection was accepted; raised before `connected` turns true, so a reader that saw the
        #: old count and later sees this one knows the connection it relied on was replaced in between.
        self.connects = 0
        self._inbox: queue.Queue[tuple[Handler, Message] | None] = queue.Queue()
        self._pending: dict[bytes, queue.Queue[Message]] = {}
        self._reply_topic = topics.client_reply(config.client_id)
        self._add(self._reply_topic, self._on_reply, 1)  # handled inline, see _on_message
        self._dispatcher = threading.Thread(target=self._dispatch, name=f"bus-{config.client_id}", daemon=True)
        self._on_connect_hooks: list[ConnectHook] = []
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self, wait: float | None = None) -> PahoBus:
        """Connect in the background (reconnecting forever); with `wait`, raise BusError if not up in time."""
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self.config.session_expiry if self.config.persistent else 0
        self._dispatcher.start()
        first = self._client.failover.current
        self._client.connect_async(
            first.host,
            first.port,
            keepalive=self.config.keepalive,
            clean_start=not self.config.persistent,
            properties=props,
        )
        self._client.loop_start()
        self._started = True
        if wait is not None and not self._connected.wait(wait):
            self.close()
            brokers = self.config.brokers
            where = str(brokers[0]) if len(brokers) == 1 else "any of " + ", ".join(map(str, brokers))
            if self._failure is not None and self._failure[2]:
                what, hint, _ = self._failure
                raise BusError(f"cannot connect to the MQTT broker at {where}: {what}", hint=hint)
            raise BusError(
                f"cannot reach the MQTT broker at {where} within {wait:g}s",
                hint="is the cluster up? start it with `make up`, or set EDGEKUBE_MQTT_HOST/EDGEKUBE_MQTT_PORT",
            )
        return self

    @property
    def broker(self) -> Broker:
        """The broker connected to, or the one being tried."""
        return self._client.failover.current

    @property
    def failure(self) -> str | None:
        """Why the last attempt to connect failed (None once connected): one line, no secrets."""
        return self._failure[0] if self._failure is not None else None

    def _fail(self, what: str, hint: str, *, specific: bool = True) -> None:
        """Remember why connecting failed; log it once per distinct reason (paho keeps retrying every 1-2 s).

        `specific`: the reason says more than "not reachable" (TLS, authorisation), so start() reports it.
        """
        broker = self.broker
        if self.config.log_failures and self._failures.get(broker) != what:
            where = str(broker)
            log.warning(
                "MQTT %s: cannot connect to %s: %s (retrying; hint: %s)", self.config.client_id, where, what, hint
            )
        self._failure = (what, hint, specific)
        self._failures[broker] = what

    def on_connect(self, hook: ConnectHook) -> None:
        """Run `hook` (on the dispatcher thread) after every (re)connection, e.g. to republish presence."""
        with self._lock:
            self._on_connect_hooks.append(hook)
            if self.connected:
                self._inbox.put((_hook_handler(hook), _CONNECTED))

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def close(self) -> None:
        """Disconnect cleanly (the Last Will is NOT sent) and stop threads."""
        if self._started:
            try:
                self._client.disconnect()
            finally:
                self._client.loop_stop()
                # paho 2.x keeps its wake-up socketpair open after loop_stop(); close it or every bus leaks 2 fds.
                reset = getattr(self._client, "_reset_sockets", None)
                if callable(reset):
                    reset()
            self._started = False
        self._inbox.put(None)

    # -- pub/sub -----------------------------------------------------------------------------------------
    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        _check_filter(topic_filter)  # now: paho would refuse it inside every later connect, which then never completes
        with self._lock:
            sub = self._add(topic_filter, handler, qos)
            self._routes = {}
            # Decided under the lock _on_connect takes: a filter added while it subscribes is sent by one of us.
            now = self._connected.is_set()
        if now:
            self._client.subscribe(topic_filter, qos=sub.qos, properties=sub.properties())

    def _add(self, topic_filter: str, handler: Handler, qos: int) -> _Subscription:
        sub = self._subs.get(topic_filter)
        if sub is None:
            sub = self._subs[topic_filter] = _Subscription(len(self._subs) + 1, qos, [])
            self._by_ident[sub.ident] = sub
        sub.handlers.append(handler)
        sub.qos = max(sub.qos, qos)
        return sub

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
        props: Properties | None = None
        if response_topic is not None or correlation is not None:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            if response_topic is not None:
                props.ResponseTopic = response_topic
            if correlation is not None:
                props.CorrelationData = correlation
        # While disconnected paho queues the message and sends it on reconnect (QoS >= 1).
        self._client.publish(topic, payload, qos=qos, retain=retain, properties=props)

    def request(self, topic: str, payload: bytes, timeout: float = 5.0) -> Message:
        """Publish with an MQTT 5 response topic + correlation data and wait for the one reply."""
        correlation = uuid.uuid4().bytes
        box: queue.Queue[Message] = queue.Queue(maxsize=1)
        self._pending[correlation] = box
        try:
            self.publish(topic, payload, qos=1, response_topic=self._reply_topic, correlation=correlation)
            try:
                return box.get(timeout=timeout)
            except queue.Empty:
                raise BusError(
                    f"no answer on {topic} within {timeout:g}s",
                    hint="is the edgekube master running? `make up` starts a local cluster",
                ) from None
        finally:
            self._pending.pop(correlation, None)

    # -- paho callbacks (network thread: keep them short) -------------------------------------------------
    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        # Without TCP_NODELAY Nagle + delayed ACK add ~40-90 ms to every QoS 1 round trip.
        with contextlib.suppress(OSError, AttributeError):  # websockets/unix sockets have no Nagle
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        failure = self._client.failure
        if failure is not None:
            what, hint = explain(failure, tls=self.config.tls.enabled)
            generic = isinstance(failure, ConnectionRefusedError | socket.gaierror | TimeoutError)
            self._fail(what, hint, specific=not generic)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            hint = "check the broker's log"
            if str(reason) in ("Not authorized", "Bad user name or password"):
                hint = (
                    "the broker does not accept this identity: with TLS, is the certificate issued by the fleet's CA "
                    "and listed in the broker's ACL (`edgekube ca acl`)?"
                )
            self._fail(f"the broker refused the connection: {reason}", hint)
            return
        broker = self.broker
        self._client.failover.connected()
        self._client._connected_before = True
        if self._client.dropped:
            log.info("MQTT %s: %d message(s) published on the lost connection not sent on this one (drop_unsent)",
                     self.config.client_id, self._client.dropped)  # fmt: skip
            self._client.dropped = 0
        if self._failure is not None or self._last_broker not in (None, broker):
            moved = f" (failed over from {self._last_broker})" if self._last_broker not in (None, broker) else ""
            log.info("MQTT %s: connected to %s%s", self.config.client_id, broker, moved)
        self._failure = None
        self._failures.clear()
        self._last_broker = broker
        # Subscribe again on every connect, never trusting the CONNACK's session_present: a broker restarted
        # without persistence, or another broker after a failover, has no session, and brokers differ in what
        # they answer on a resumed one (docs/protocol.md, "What edgekube needs from a broker").
        with self._lock:
            subs = list(self._subs.items())
        for topic_filter, sub in subs:
            client.subscribe(topic_filter, qos=sub.qos, properties=sub.properties())
        with self._lock:
            # Filters subscribe() added meanwhile saw "not connected" and left them to us.
            sent = {f for f, _ in subs}
            missed = [(f, sub) for f, sub in self._subs.items() if f not in sent]
            self.connects += 1
            self._connected.set()
            hooks = list(self._on_connect_hooks)
        for topic_filter, sub in missed:
            client.subscribe(topic_filter, qos=sub.qos, properties=sub.properties())
        for hook in hooks:
            self._inbox.put((_hook_handler(hook), _CONNECTED))

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not self._client.failover.pending:
            return  # the same end reported again (paho calls this twice on a keep-alive timeout)
        refused = reason.is_failure and not self._connected.is_set() and self._failure is None
        if refused and str(reason) == "Keep alive timeout":
            # Connected at TCP level, then silence: a hung broker (or a board gone without a reset).
            self._fail("the broker accepted the TCP connection but did not answer", "is it hung or overloaded?")
        elif refused and self.config.tls.enabled:
            # Closed before any CONNACK: with TLS 1.3 a refused client certificate shows up only here.
            self._fail(
                f"the broker closed the connection before accepting it ({reason})",
                "did it refuse this client's certificate (unknown CA, revoked or expired)? see the broker's log",
            )
        elif refused:
            self._fail(
                f"the broker closed the connection before accepting it ({reason})",
                "does this port want TLS (--tls-ca, --tls-cert, --tls-key)?",
            )
        self._connected.clear()
        self._client.failover.failed()  # lost or refused: the next attempt goes to the next broker

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        response_topic = getattr(props, "ResponseTopic", None) if props is not None else None
        correlation = getattr(props, "CorrelationData", None) if props is not None else None
        message = Message(
            topic=msg.topic,
            payload=bytes(msg.payload),
            retain=bool(msg.retain),
            response_topic=response_topic or None,
            correlation=bytes(correlation) if correlation is not None else None,
        )
        if msg.topic == self._reply_topic:
            # Inline, not via the dispatcher: a handler may itself be waiting on a request's reply.
            self._on_reply(message)
            return
        idents = getattr(props, "SubscriptionIdentifier", None) if props is not None else None
        if idents:
            with self._lock:
                subs = [self._by_ident[i] for i in idents if i in self._by_ident]
                handlers: tuple[Handler, ...] = tuple(h for sub in subs for h in sub.handlers)
        else:
            handlers = self._routes.get(msg.topic) or self._match(msg.topic)
        for handler in handlers:
            self._inbox.put((handler, message))

    def _match(self, topic: str) -> tuple[Handler, ...]:
        """Handlers of every filter matching `topic` (a broker without subscription identifiers)."""
        with self._lock:
            handlers = tuple(
                h for f, sub in self._subs.items() if mqtt.topic_matches_sub(f, topic) for h in sub.handlers
            )
            if len(self._routes) >= _MAX_ROUTES:
                self._routes = {}  # topics with ids in them (replies, one-off clients) must not grow it forever
            self._routes[topic] = handlers
        return handlers

    def _on_reply(self, message: Message) -> None:
        box = self._pending.get(message.correlation or b"")
        if box is not None and box.empty():
            box.put_nowait(message)

    def _dispatch(self) -> None:
        while True:
            item = self._inbox.get()
            if item is None:
                return
            handler, message = item
            try:
                handler(message)
            except Exception:
                # A handler bug must never take the daemon down; it is logged with the topic that caused it.
                log.exception("handler for %s failed", message.topic or "<connect>")
