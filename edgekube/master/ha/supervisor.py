"""One HA master process (`edgekube master --master-id ID`): holds the role, runs the Master only while active.

It keeps its own MQTT client (its presence on `edgekube/v1/masters/<id>/online` with a Last Will, the replication
topics, every master's presence and flag, every node's witness). As standby it runs a Follower on the store's
directory; as active a Master (built by master.wiring, with its own client on the API and node topics) whose
group commits go through a Replicator. Its thread decides, with plan.py:

- start: after the retained messages arrived, the configured role — standby if a higher term or another active
  is seen;
- standby: follow the active announced with the highest term; take over (term + 1) when plan_takeover says so:
  close the copy, open the Master on the same directory (its caches are built from the store), write the new
  term to the store durably, then connect: the Master republishes every node's desired state with the new term;
- active: a higher term anywhere (a presence, a flag, a witness) fences the Replicator at once on the bus
  thread (no answer, no desired state leaves after that), then the Master stops without announcing and the
  process becomes standby: it asks the new active for a snapshot, which replaces whatever it wrote alone.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from edgekube.bus import topics
from edgekube.bus.fanout import FanoutBus
from edgekube.bus.guard import guarded
from edgekube.bus.paho import PahoBus
from edgekube.bus.protocol import Handler, Message, MessageBus, Will
from edgekube.master.app import Master
from edgekube.master.cache import LEASE_KIND, LEASE_NAME, LEASE_NAMESPACE
from edgekube.master.config import MasterConfig
from edgekube.master.ha.active import Replicator
from edgekube.master.ha.plan import TakeoverView, must_step_down, plan_takeover, start_role
from edgekube.master.ha.standby import Follower
from edgekube.model.errors import NotFoundError, ValidationError
from edgekube.model.ha import (
    MasterPresence,
    Replication,
    ReplicationAck,
    ReplicationFlag,
    Role,
    SyncRequest,
    Witness,
)
from edgekube.model.taints import TAINT_NOT_READY, TAINT_UNREACHABLE
from edgekube.store.journal import JournalStorage

log = logging.getLogger(__name__)

#: How often the supervisor looks again (takeover check, beats, presence refresh) when nothing woke it.
TICK = 0.1
BEAT_EVERY = 0.5
PRESENCE_EVERY = 5.0
#: Said in the presence of an active that stopped cleanly after its standby acknowledged everything.
HANDOVER = "handover"

BusFactory = Callable[[Will], MessageBus]
MasterFactory = Callable[[MasterConfig], Master]


def check(config: MasterConfig) -> None:
    """HA settings: a master id (DNS-1123, it is a topic level) and a role; one clear line otherwise."""
    topics.master_online(config.master_id)  # ValidationError naming the rule
    if config.role not in (Role.ACTIVE, Role.STANDBY):
        raise ValidationError(f"--role: must be 'active' or 'standby', got {config.role!r}")
    if config.replication_timeout <= 0:
        raise ValidationError(f"--replication-timeout: must be greater than 0, got {config.replication_timeout}")


def stored_lease(storage: JournalStorage) -> tuple[int, str]:
    """(term, holder) as the store says: the master Lease's leaseTransitions and holderIdentity."""
    table = storage.read().get(LEASE_KIND) or {}
    for doc_id in list(table):
        lease = table[doc_id]
        meta = lease.get("metadata") or {}
        if meta.get("name") == LEASE_NAME and meta.get("namespace") == LEASE_NAMESPACE:
            spec = lease.get("spec") or {}
            return int(spec.get("leaseTransitions") or 0), str(spec.get("holderIdentity") or "")
    return 0, ""


def ready_nodes(storage: JournalStorage) -> set[str]:
    """Nodes the active last judged Ready: stored, without the node lifecycle's NotReady taints."""
    table = storage.read().get("Node") or {}
    ready = set()
    for doc_id in list(table):
        node = table[doc_id]
        taints = {t.get("key") for t in (node.get("spec") or {}).get("taints") or ()}
        if not taints & {TAINT_NOT_READY, TAINT_UNREACHABLE}:
            ready.add(node["metadata"]["name"])
    return ready


def _no_answer(_msg: Message, _response: object) -> None:
    """Nothing on these topics asks for an answer."""


def _members_of(bus: MessageBus) -> tuple[MessageBus, ...]:
    """A client's connections by broker index: a FanoutBus's members, or the one bus (same broker order)."""
    return bus.buses if isinstance(bus, FanoutBus) else (bus,)


class Supervisor:
    """The role of one HA master, and the Master or the Follower that goes with it."""

    def __init__(
        self,
        config: MasterConfig,
        *,
        bus: BusFactory,
        build: MasterFactory,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        check(config)
        self.me = config.master_id
        if config.client_id == MasterConfig.client_id:  # one API client per master: two would take each other's session
            config = dataclasses.replace(config, client_id=f"edgekube-master-{self.me}")
        self.config = config
        self._bus_factory = bus
        self._build = build
        self._clock = clock
        self.boot_id = uuid.uuid4().hex
        self.role = Role.STANDBY
        self.term = 0
        self.master: Master | None = None
        self.replicator: Replicator | None = None
        self.follower: Follower | None = None
        self.reason = "starting"
        self._holder = ""
        self._presences: dict[str, MasterPresence] = {}
        #: Masters that handed over: (term, the last seq they wrote).
        self._handovers: dict[str, tuple[int, int]] = {}
        self._flags: dict[str, ReplicationFlag] = {}
        self._witnesses: dict[str, Witness] = {}
        self._mu = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        #: Set once the bus is about to close: handlers drop messages. Not before: a stopping active still needs
        #: its standby's acks and its flag's echo for the last commit and the handover.
        self._closing = threading.Event()
        self._deposed = threading.Event()
        self._echoed = threading.Event()
        #: Brokers (member indices) whose retained presences, flags and witnesses have arrived since their last
        #: (re)connect (our echo came back through them): until then an active answers nothing alone and publishes
        #: no desired state — after a cut heals, a higher term may be waiting there. Each maps to the Master's
        #: own client's connection count on that broker when the probe left (-1: no Master): a Master client that
        #: reconnected since (the two clients notice a silent cut at different times, and the supervisor's may
        #: never notice a short one) makes the view stale until a new probe comes back.
        self._fresh: dict[int, int] = {}
        #: Per broker, the probe whose echo counts (older ones are ignored) and the count it was sent with.
        self._probes: dict[int, tuple[str, int]] = {}
        self._fresh_lock = threading.Lock()
        #: The replication state changed: the thread republishes the presence (never from the Replicator's lock).
        self._dirty = threading.Event()
        self._thread = threading.Thread(target=self._run, name="master-ha", daemon=True)
        self.bus: MessageBus | None = None
        #: Set once the start role is taken (tests wait on it).
        self.settled = threading.Event()
        #: Standby: since when (clock) a majority of witnesses sees the active gone. Active: whether a majority of
        #: its nodes is Ready in its eyes (refreshed every tick; the Replicator reads it, never taking the lock).
        self._majority_since: float | None = None
        self._majority_ok = False

    # -- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> Supervisor:
        storage = self._open_storage()
        self.term, self._holder = stored_lease(storage)
        gone = MasterPresence(online=False, master_id=self.me, term=self.term)
        will = Will(topics.master_online(self.me), gone.encode())
        bus = self.bus = self._bus_factory(will)
        self.follower = Follower(bus, storage, master_id=self.me, send=self._send_one)
        self.follower.term = self.term
        subscriptions: list[tuple[str, Handler]] = [
            (topics.ALL_MASTERS_ONLINE, self._on_presence),
            (topics.ALL_MASTERS_REPLICATION, self._on_flag),
            (topics.ALL_NODE_WITNESS, self._on_witness),
            (topics.master_replicate(self.me), self._on_frame),
            (topics.master_ack(self.me), self._on_ack),
            (topics.master_sync(self.me), self._on_sync),
            (self._echo_topic, lambda _msg: self._echoed.set()),
        ]
        for topic, handler in subscriptions:
            safe = guarded(handler, answer=_no_answer, component="master", log=log, stopping=self._closing.is_set)
            bus.subscribe(topic, safe)
        # Our own flag's echo, per broker: an answer relying on "unreplicated" waits until each broker has it.
        # And per broker, a fresh view after every (re)connect (see _fresh).
        for index, member in enumerate(self._members):
            echo = functools.partial(self._on_own_flag, index)
            member.subscribe(
                topics.master_replication(self.me),
                guarded(echo, answer=_no_answer, component="master", log=log, stopping=self._closing.is_set),
            )
            member.subscribe(self._fresh_topic, functools.partial(self._on_fresh, index))
            member.on_connect(functools.partial(self._member_connected, index))
        bus.on_connect(self._on_connected)
        bus.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        """SIGTERM: an active hands over (its standby holds everything it answered), a standby just leaves.

        The Master stops without the supervisor's lock held: its last commit waits for the standby's ack and the
        flag's echo, which the bus thread delivers — and that thread takes the lock for presences.
        """
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        with self._mu:
            master, replicator, follower = self.master, self.replicator, self.follower
        handover = False
        if master is not None:
            master.stop()
            handover = replicator is not None and replicator.state is Replication.REPLICATED
            if replicator is not None and handover:
                log.info("HA master %s stopped: handing over to %s at seq %d", self.me, replicator.peer,
                         replicator.storage.seq)  # fmt: skip
            elif replicator is not None:
                log.warning("HA master %s stopped without handing over (%s)", self.me, replicator.state.value)
        with self._mu:
            self.master = None
            if follower is not None:
                follower.close()
                self.follower = None
            bus = self.bus
        if bus is not None:
            self._publish_presence(online=False, note=HANDOVER if handover else "")
            # Our probe back through the broker: it has the presence above before the connection closes.
            self._echoed.clear()
            bus.publish(self._echo_topic, b"", qos=1)
            self._echoed.wait(5.0)
            self._closing.set()
            bus.close()

    @property
    def _members(self) -> tuple[MessageBus, ...]:
        return _members_of(self.bus) if self.bus is not None else ()

    def _send_one(self, topic: str, payload: bytes) -> None:
        """The replication stream's publish: through the first connected broker only (one copy, in order)."""
        members = self._members
        member = next((m for m in members if m.connected), members[0] if members else None)
        if member is not None:
            member.publish(topic, payload)

    def _connected_brokers(self) -> set[int]:
        return {index for index, member in enumerate(self._members) if member.connected}

    def _on_connected(self) -> None:
        self._publish_presence()
        replicator = self.replicator
        if replicator is not None:
            replicator.republish()

    @property
    def _fresh_topic(self) -> str:
        return topics.master_online(self.me).removesuffix("/online") + "/fresh"

    def _member_connected(self, index: int) -> None:
        """A broker (re)connected: its view counts only once our probe came back through it (after its retained)."""
        self._probe(index)

    def _master_member_connected(self, index: int) -> None:
        """The Master's own client (re)connected to broker `index`: what this supervisor saw there is stale.

        A probe through the supervisor's connection to that broker comes back after everything the broker sent
        it before (a higher term's presence, say): until then the Master publishes nothing and answers nothing
        alone, even if the supervisor's own connection never noticed the cut.
        """
        if index < len(self._members):
            self._probe(index)

    def _probe(self, index: int) -> None:
        token = uuid.uuid4().hex[:12]
        with self._fresh_lock:
            self._fresh.pop(index, None)
            self._probes[index] = (token, self._master_connects(index))
        self._members[index].publish(self._fresh_topic, f"{index}:{token}".encode())

    def _master_connects(self, index: int) -> int:
        """How many times the Master's own client connected to broker `index` (-1: no Master, or not counted)."""
        master = self.master
        if master is None:
            return -1
        members = _members_of(master.bus)
        member = members[index] if index < len(members) else None
        return member.connects if isinstance(member, PahoBus) else -1

    def _on_fresh(self, index: int, msg: Message) -> None:
        with self._fresh_lock:
            probe = self._probes.get(index)
            if probe is not None and msg.payload == f"{index}:{probe[0]}".encode():
                self._fresh[index] = probe[1]

    def is_fresh(self) -> bool:
        """Whether every connected broker's retained state has been seen since it connected (and one is).

        Also every broker the Master's own client is on (same order of brokers, so the same indices): the two
        clients reconnect independently, and requests and heartbeats must not arrive through a broker whose
        presences, flags and witnesses this supervisor has not seen yet.
        """
        connected = self._connected_brokers()
        with self._fresh_lock:
            fresh = dict(self._fresh)
        master = self.master
        if master is not None:
            members = _members_of(master.bus)
            for index, member in enumerate(members):
                if not member.connected:
                    continue
                if index not in connected:
                    return False
                if isinstance(member, PahoBus) and fresh.get(index) != member.connects:
                    return False  # reconnected since the last probe left: not seen through this connection yet
        return bool(connected) and connected <= fresh.keys()

    @property
    def _echo_topic(self) -> str:
        return topics.master_online(self.me).removesuffix("/online") + "/echo"

    def _open_storage(self) -> JournalStorage:
        return JournalStorage(self.config.data_dir / "state")

    # -- the thread ------------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._settle()
            last_beat = last_presence = self._clock()
            while not self._stop.is_set():
                self._wake.wait(TICK)
                self._wake.clear()
                if self._stop.is_set():
                    return
                if self._dirty.is_set() and self.role is Role.ACTIVE:
                    self._dirty.clear()
                    self._publish_presence()
                if isinstance(self.bus, FanoutBus):
                    self.bus.refresh()  # a presence last seen online only on a broker lost since is offline now
                if self._deposed.is_set():
                    self._step_down()
                elif self.role is Role.STANDBY:
                    self._standby_tick()
                else:
                    self._majority_ok = self._holds_majority()
                now = self._clock()
                if self.role is Role.ACTIVE and self.replicator is not None and now - last_beat >= BEAT_EVERY:
                    self.replicator.beat()
                    last_beat = now
                if now - last_presence >= PRESENCE_EVERY:
                    self._publish_presence()
                    last_presence = now
        except Exception:
            log.exception("HA supervisor failed; this master stops serving")
            self._fence()

    def _settle(self) -> None:
        """Wait for the broker and its retained presences, flags and witnesses; then take the start role."""
        assert self.bus is not None
        while not self._stop.is_set() and not self.bus.wait_connected(1.0):
            pass
        while not self._stop.is_set():
            self._echoed.clear()
            self.bus.publish(self._echo_topic, b"", qos=1)
            if self._echoed.wait(2.0):  # everything retained before it has arrived
                break
        with self._mu:
            self._note_terms()
            others_active = any(
                p.online and p.role is Role.ACTIVE and p.master_id != self.me for p in self._presences.values()
            )
            role = start_role(self.config.role, self.term, self._seen_terms(), others_active)
        log.info("HA master %s: store term %d; starting as %s", self.me, self.term, role)
        if role == Role.ACTIVE:
            self._become_active(max(self.term, 1), why="configured active")
        else:
            self._publish_presence()
        self.settled.set()

    def _standby_tick(self) -> None:
        with self._mu:
            self._note_terms()
            follower = self.follower
            if follower is None:
                return
            if self._dirty.is_set():
                self._dirty.clear()
                self._publish_presence()
            if self._holder and self._holder != self.me:
                presence = self._presences.get(self._holder)
                if presence is not None and presence.online and presence.role is Role.ACTIVE:
                    follower.follow(self._holder, self.term)
            view = self._view(follower)
        decision = plan_takeover(view)
        if not decision.majority:
            self._majority_since = None
        elif self._majority_since is None:
            self._majority_since = self._clock()
        if decision.take_over:
            log.warning("HA master %s takes over with term %d: %s", self.me, decision.term, decision.reason)
            self._become_active(decision.term, why=decision.reason)
        elif decision.reason != self.reason:
            self.reason = decision.reason
            log.info("HA master %s stays standby: %s", self.me, decision.reason)
            self._publish_presence()

    def _view(self, follower: Follower) -> TakeoverView:
        active = self._holder
        presence = self._presences.get(active)
        online = presence is not None and presence.online
        handed = self._handovers.get(active)
        handover = not online and handed is not None and handed[0] == self.term and follower.applied >= handed[1]
        # The electorate is read from the copy only when it matters (the active is not online).
        ready = follower.inspect(ready_nodes) if not online else set()
        everywhere = not online and all(member.connected for member in self._members)
        since = self._majority_since
        return TakeoverView(
            me=self.me,
            term=self.term,
            active=active if active != self.me else "",
            active_online=online,
            flag=self._flags.get(active),
            ready_nodes=ready,
            witnesses=dict(self._witnesses),
            handover=handover,
            gone_everywhere=everywhere,
            majority_for=0.0 if since is None else self._clock() - since,
            grace=self.config.node_timeout,
        )

    def _note_terms(self) -> None:
        """Raise the known term and its holder from what is announced (an active's presence) and what is stored."""
        if self.follower is not None and self.role is Role.STANDBY:
            term, holder = self.follower.inspect(stored_lease)
            if term > self.term or (term == self.term and holder and not self._holder):
                self.term, self._holder = term, holder
        for presence in self._presences.values():
            announced = presence.role is Role.ACTIVE and presence.online and presence.master_id != self.me
            if announced and (presence.term > self.term or (presence.term == self.term and not self._holder)):
                self.term, self._holder = presence.term, presence.master_id
        if self.follower is not None:
            self.follower.term = max(self.follower.term, self.term)

    def _seen_terms(self) -> list[int]:
        seen = [p.term for p in self._presences.values() if p.master_id != self.me]
        seen += [f.term for f in self._flags.values() if f.master_id != self.me]
        seen += [w.term for w in self._witnesses.values()]
        return seen

    # -- switching roles -------------------------------------------------------------------------------
    def _become_active(self, term: int, *, why: str) -> None:
        with self._mu:
            if self.follower is not None:
                self.follower.close()
                self.follower = None
            master = self._build(self.config)
            members = _members_of(master.bus)
            for index, member in enumerate(members):
                member.on_connect(functools.partial(self._master_member_connected, index))
            self._write_term(master, term)
            storage = master.store.backend.storage  # type: ignore[attr-defined]  # SealedStore over TinyStateStore
            assert isinstance(storage, JournalStorage)
            assert self.bus is not None
            replicator = Replicator(
                self.bus,
                storage,
                master_id=self.me,
                term=term,
                timeout=self.config.replication_timeout,
                lock=master.lock,
                on_change=self._changed,
                brokers=self._connected_brokers,
                majority=lambda: self._majority_ok and self.is_fresh(),
                fresh=self.is_fresh,
                send=self._send_one,
            )
            master.gate = replicator
            master.dispatcher.term = term
            self.term, self._holder, self.role = term, self.me, Role.ACTIVE
            self.master, self.replicator, self.reason = master, replicator, why
            replicator.start()
            for presence in list(self._presences.values()):
                replicator.on_peer(presence)
        master.start()
        self._publish_presence()
        log.info("HA master %s is active (term %d): %s", self.me, term, why)

    def _holds_majority(self) -> bool:
        """Active: whether most stored nodes are Ready in its eyes (heartbeats within node_timeout)."""
        master = self.master
        if master is None:
            return False
        with master.lock:
            names = [name for (_, name) in master.store.objects("Node")]
            ready = sum(1 for name in names if master.liveness.ready(name))
        return not names or 2 * ready > len(names)

    def _write_term(self, master: Master, term: int) -> None:
        """The new term on flash before anything is published with it (the store only ever holds higher ones)."""
        store = master.store
        with master.lock, store.batch("sync"):
            try:
                lease = store.peek(LEASE_KIND, LEASE_NAMESPACE, LEASE_NAME)
            except NotFoundError:
                store.create(
                    {
                        "apiVersion": "coordination.k8s.io/v1",
                        "kind": LEASE_KIND,
                        "metadata": {"name": LEASE_NAME, "namespace": LEASE_NAMESPACE},
                        "spec": {"holderIdentity": self.me, "leaseTransitions": term},
                    }
                )
                return
            spec: dict[str, Any] = {**lease["spec"], "holderIdentity": self.me, "leaseTransitions": term}
            store.update({**lease, "spec": spec})

    def _changed(self) -> None:
        self._dirty.set()
        self._wake.set()

    def _fence(self) -> None:
        replicator = self.replicator
        if replicator is not None:
            replicator.fence()

    def _step_down(self) -> None:
        """Deposed: the Master stops without a word, and this process follows the new active."""
        with self._mu:
            self._deposed.clear()
            master, self.master, self.replicator = self.master, None, None
            self.role = Role.STANDBY
            self._holder = ""
        if master is not None:
            master.stop(announce=False)
        with self._mu:
            assert self.bus is not None
            self.follower = Follower(self.bus, self._open_storage(), master_id=self.me, send=self._send_one)
            self._note_terms()
            self.reason = "deposed; catching up"
            log.warning("HA master %s stepped down: term %d is held by %s", self.me, self.term, self._holder or "?")
        self._publish_presence()

    # -- bus handlers (the supervisor's bus thread) ----------------------------------------------------
    def _on_presence(self, msg: Message) -> None:
        master_id = topics.master_of(msg.topic)
        if not msg.payload or master_id == self.me:
            return
        presence = MasterPresence.decode(msg.payload, what="master presence")
        with self._mu:
            self._presences[master_id] = presence
            # A handover is kept until that master is online again: the Will of a connection that dropped just
            # after it (no clean DISCONNECT) must not take it back.
            if presence.online:
                self._handovers.pop(master_id, None)
            elif presence.note == HANDOVER:
                self._handovers[master_id] = (presence.term, presence.seq)
            if self.replicator is not None:
                self.replicator.on_peer(presence)
        self._check_deposed(presence.term)
        self._wake.set()

    def _on_flag(self, msg: Message) -> None:
        if not msg.payload:
            return
        flag = ReplicationFlag.decode(msg.payload, what="replication flag")
        with self._mu:
            known = self._flags.get(flag.master_id)
            if known is not None and (known.term, known.version) > (flag.term, flag.version):
                return  # an older copy, from a broker the master could not reach when it changed
            self._flags[flag.master_id] = flag
        if flag.master_id != self.me:
            self._check_deposed(flag.term)
        self._wake.set()

    def _on_own_flag(self, broker: int, msg: Message) -> None:
        replicator = self.replicator
        if msg.payload and replicator is not None:
            replicator.on_flag(ReplicationFlag.decode(msg.payload, what="replication flag"), broker)

    def _on_witness(self, msg: Message) -> None:
        if not msg.payload:
            return
        witness = Witness.decode(msg.payload, what="witness")
        with self._mu:
            self._witnesses[witness.node] = witness
        self._check_deposed(witness.term)
        self._wake.set()

    def _check_deposed(self, term: int) -> None:
        """An active that sees a higher term fences itself here, on the bus thread, before anything else."""
        if self.role is Role.ACTIVE and must_step_down(self.term, [term]) and not self._deposed.is_set():
            log.warning("HA master %s (term %d) saw term %d: deposed", self.me, self.term, term)
            self._fence()
            self._deposed.set()

    def _on_frame(self, msg: Message) -> None:
        follower = self.follower
        if follower is not None:
            follower.on_frame(msg)

    def _on_ack(self, msg: Message) -> None:
        replicator = self.replicator
        if replicator is not None:
            replicator.on_ack(ReplicationAck.decode(msg.payload, what="replication ack"))

    def _on_sync(self, msg: Message) -> None:
        replicator = self.replicator
        if replicator is not None and self.role is Role.ACTIVE:
            replicator.on_sync(SyncRequest.decode(msg.payload, what="sync request"))

    # -- presence --------------------------------------------------------------------------------------
    def presence(self, *, online: bool = True, note: str = "") -> MasterPresence:
        with self._mu:
            if self.role is Role.ACTIVE and self.replicator is not None:
                replicator = self.replicator
                return MasterPresence(
                    online=online, master_id=self.me, role=Role.ACTIVE, term=self.term, boot_id=self.boot_id,
                    replication=replicator.state.value, peer=replicator.peer, seq=replicator.storage.seq,
                    note=note or replicator.reason,
                )  # fmt: skip
            follower = self.follower
            current = follower is not None and follower.current
            return MasterPresence(
                online=online, master_id=self.me, role=Role.STANDBY, term=self.term, boot_id=self.boot_id,
                replication=(Replication.FOLLOWING if current else Replication.STALE).value,
                peer=follower.active if follower is not None else "",
                seq=follower.applied if follower is not None else 0, note=note or self.reason,
            )  # fmt: skip

    def _publish_presence(self, *, online: bool = True, note: str = "") -> None:
        bus = self.bus
        if bus is not None:
            bus.publish(topics.master_online(self.me), self.presence(online=online, note=note).encode(), retain=True)
