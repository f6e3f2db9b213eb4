"""Builds the master from its config: PahoBus (with the master's Last Will), TinyDB store, cache, NFS client; runs it.

The only place the master's parts are chosen (`edgekube master` calls `run_master`; tests that want a real master
call `build_master`); `Master` itself only receives them.
"""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path

from edgekube.bus import topics
from edgekube.bus.brokers import resolve
from edgekube.bus.fanout import FanoutBus
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.bus.protocol import MessageBus, Will
from edgekube.master.app import Master
from edgekube.master.cache import CachedStore
from edgekube.master.config import MasterConfig
from edgekube.master.nfsshare import NfsShareFs
from edgekube.model.wire import Presence
from edgekube.sdnotify import SdNotify
from edgekube.store.sealed import Keyring, SealedStore, new_key_file
from edgekube.store.state import TinyStateStore

log = logging.getLogger(__name__)

#: Young-generation threshold of the garbage collector (CPython's default is 700). The master holds every stored
#: object as dicts; with the default, full collections walking all of them took over half of opening a 10,000-pod
#: store and a good share of a burst's CPU. Its data are plain JSON trees without cycles, which reference counting
#: frees anyway, so collecting rarely loses nothing.
GC_THRESHOLD = 50_000


def master_will() -> Will:
    """What the broker publishes (retained) when the master vanishes: the master is offline."""
    return Will(topics.MASTER_ONLINE, Presence(online=False).encode())


def master_bus(config: MasterConfig) -> MessageBus:
    """The master's MQTT client: a persistent session, and a Will that says the master is offline.

    With several brokers (`--broker`, docs/ha.md) one client per broker (FanoutBus): agents and clients are on one
    broker each, and the master must reach them all; a node's presence counts online if any broker says so.
    An HA master keeps no session: requests queued for it while it was standby (or deposed) must never be
    replayed when it becomes active again, hours later; a request sent during a takeover is retried by its client.
    Nor does it send on a new connection what it published on a lost one (`drop_unsent`): its desired state goes
    again on every connect anyway, once it has seen the broker's terms, and an old copy could carry a deposed term.
    """
    settings = BusConfig.on(
        resolve(config.brokers, config.mqtt_host, config.mqtt_port),
        client_id=config.client_id, persistent=not config.master_id, keepalive=config.mqtt_keepalive,
        will=master_will(), drop_unsent=bool(config.master_id),
        tls_ca=config.tls_ca, tls_cert=config.tls_cert, tls_key=config.tls_key,
    )  # fmt: skip
    if len(settings.brokers) > 1:
        return FanoutBus.of(settings, merged=[topics.ALL_NODE_ONLINE])
    return PahoBus(settings)


def ha_bus(config: MasterConfig, will: Will) -> MessageBus:
    """An HA master's own client (master.ha.supervisor): its presence with a Will, the replication topics.

    On every broker of the cluster (one client each), so the two masters meet whichever broker each prefers. No
    session is kept: frames missed while disconnected are asked for again (a gap), never queued for days.
    """
    settings = BusConfig.on(
        resolve(config.brokers, config.mqtt_host, config.mqtt_port),
        client_id=f"edgekube-ha-{config.master_id}", persistent=False, keepalive=config.mqtt_keepalive, will=will,
        tls_ca=config.tls_ca, tls_cert=config.tls_cert, tls_key=config.tls_key,
    )  # fmt: skip
    if len(settings.brokers) > 1:
        return FanoutBus.of(settings, merged=[topics.ALL_MASTERS_ONLINE])
    return PahoBus(settings)


def keyring(config: MasterConfig) -> Keyring:
    """The keys that seal Secrets in the store; the default key file is made on first start."""
    path = Path(config.encryption_config) if config.encryption_config else config.data_dir / "encryption-config.yaml"
    if not config.encryption_config and not path.exists():
        new_key_file(path)
        log.info("made a new Secret encryption key in %s (keep a copy off the SD card)", path)
    return Keyring.load(path)


def build_master(config: MasterConfig) -> Master:
    """A master on the broker and the data directory `config` names, not yet started (call `.start()`)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = CachedStore(SealedStore(TinyStateStore(config.data_dir / "state"), keyring(config)))
    bus = master_bus(config)
    return Master(
        config,
        bus=bus,
        store=store,
        clock=time.monotonic,
        wall=time.time,
        notify=SdNotify.from_environ(),
        share_fs=NfsShareFs(timeout=config.nfs_timeout),
    )


def run_master(config: MasterConfig) -> None:
    """Run until SIGTERM/SIGINT (systemd stop, Ctrl-C)."""
    gc.set_threshold(GC_THRESHOLD, 20, 20)
    if config.master_id:
        run_ha_master(config)
        return
    master = build_master(config).start()
    gc.freeze()  # what was loaded at start stays: later collections skip it
    tls = "TLS" if config.tls_ca else "plain TCP"
    log.info("master up: mqtt %s:%s (%s), data %s", config.mqtt_host, config.mqtt_port, tls, config.data_dir)
    try:
        while True:
            time.sleep(3600)
    finally:
        master.stop()


def run_ha_master(config: MasterConfig) -> None:
    """One of two HA masters (docs/ha.md): the supervisor holds the role and runs the Master while active."""
    from edgekube.master.ha.supervisor import Supervisor  # noqa: PLC0415 - a single master never loads it

    if not config.encryption_config:
        log.warning("HA master without --encryption-config: the other master cannot read Secrets sealed here")
    supervisor = Supervisor(config, bus=lambda will: ha_bus(config, will), build=build_master).start()
    where = f"{config.mqtt_host}:{config.mqtt_port}"
    log.info("HA master %s up: mqtt %s, data %s", config.master_id, where, config.data_dir)
    try:
        while True:
            time.sleep(3600)
    finally:
        supervisor.stop()
