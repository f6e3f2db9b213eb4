"""The master's settings (`edgekube master --help` lists them as flags); read by the wiring, loop and controllers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class MasterConfig:
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    #: The cluster's brokers in failover order, "HOST:PORT" each (`--broker`, repeatable; docs/ha.md); empty: the
    #: one at mqtt_host:mqtt_port. The master connects to every one of them.
    brokers: list[str] = field(default_factory=list)
    data_dir: Path = field(default_factory=lambda: Path("/var/lib/edgekube/master"))
    #: A node is NotReady after this long without a heartbeat (agents beat every 0.5 s by default).
    node_timeout: float = 2.0
    #: Seconds a Last Will waits before it counts (so a broker's graceful shutdown, which sends every Will, is
    #: recognised as "most nodes at once" and evicts nothing).
    will_settle: float = 0.25
    #: Seconds a pod with no matching toleration stays on a NotReady node before it is evicted and replaced.
    pod_eviction_timeout: float = 0.0
    #: Evictions stop while more than this share of the nodes (and at least 2) are NotReady at once.
    unhealthy_zone_threshold: float = 0.55
    #: MQTT keep-alive in seconds; the broker fires a vanished client's Last Will after 1.5 times this.
    mqtt_keepalive: int = 5
    #: Level-triggered resync period of the reconcile loop; events also wake it at once.
    resync_interval: float = 1.0
    #: Seconds between passes that plan every ReplicationController/ReplicaSet; passes in between plan only those
    #: whose pods or spec changed (a safety net: the change feed is complete, this bounds the cost of a bug).
    controller_resync: float = 5.0
    #: Events kept in memory (never written to disk); the oldest make room.
    event_capacity: int = 2000
    #: NFS provisioning and reclaiming: a failed job is retried after this many seconds, doubled per failure in a
    #: row up to `volume_retry_max`; each NFS call gives up after `nfs_timeout` seconds.
    volume_retry_base: float = 2.0
    volume_retry_max: float = 60.0
    nfs_timeout: float = 5.0
    client_id: str = "edgekube-master"
    #: TLS (all empty: plain TCP): the fleet's CA certificate, the master's certificate and key (edgekube ca issue).
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    #: Prometheus /metrics on this port (0: off): what the master holds of every node's usage (docs/telemetry.md).
    metrics_port: int = 0
    #: Secrets at rest (docs/config.md): an EncryptionConfiguration (apiserver.config.k8s.io/v1, aesgcm keys) whose
    #: first provider seals each Secret's data in the store. Empty: <data_dir>/encryption-config.yaml, made with a
    #: fresh key on first start (0600); keep a copy apart from the SD card, without it the Secrets cannot be read.
    encryption_config: str = ""
    metrics_address: str = "0.0.0.0"
    #: Two-master HA (docs/ha.md); empty: a single master, as before. This master's id (a DNS-1123 name), the role it
    #: starts in ("active" or "standby"; a master that sees a higher term starts as standby whatever this says), and
    #: how long a write waits for the standby's acknowledgement before the standby is declared down and writes are
    #: acknowledged unreplicated. Both masters need the same `encryption_config` (Secrets replicate sealed).
    master_id: str = ""
    role: str = "active"
    replication_timeout: float = 1.0
    #: Services' clusterIPs are allocated from this IPv4 network (docs/services.md); K3s' default.
    service_cidr: str = "10.43.0.0/16"
    #: The pod network (docs/networking.md): each node's `spec.podCIDR` is a /`node_cidr_mask` of this range.
    cluster_cidr: str = "10.42.0.0/16"
    node_cidr_mask: int = 24
    #: The live dashboard (docs/dashboard.md) on HOST:PORT, e.g. 127.0.0.1:8080; empty: off. `ekctl dashboard`
    #: prints a one-time login URL. HTTPS when both `dashboard_cert` and `dashboard_key` (PEM files) are given.
    dashboard: str = ""
    dashboard_cert: str = ""
    dashboard_key: str = ""
