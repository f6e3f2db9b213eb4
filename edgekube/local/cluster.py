"""`edgekube up`/`down`: a cluster on this machine under ./.edgekube — broker, master, N agents with own Podman.

With `--masters 2` (make up MASTERS=2) it is the two-board layout of docs/ha.md: two brokers (ports P and P+1),
master m1 (active) and m2 (standby), each connected to both brokers, and agents knowing both brokers (node i
prefers broker i, so both carry nodes).

With `--network pod` (make up NETWORK=pod; root) every agent runs in a network namespace of its own (edgekube.local.
netns: NetNode, plugged into one Lan segment) with its own Podman service inside it and `--pod-network true`, as a
fleet's boards do (docs/networking.md): Services then answer across nodes. The broker gets an extra listener on each
namespace's host-side address; run/netns.json records the namespaces so `down` removes them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from edgekube.bus import topics
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.bus.protocol import Message
from edgekube.local import netns, processes
from edgekube.local.broker import Mosquitto, pid_from_pidfile, reload_pidfile, stop_pidfile
from edgekube.local.images import ensure_demo_image
from edgekube.local.netns import Lan, NetNode, NetnsPodmanService
from edgekube.local.nfs import Ganesha
from edgekube.local.pki import ADMIN, BROKER, BROKER_NAMES, MASTER, LocalPki
from edgekube.local.podman_service import PodmanService
from edgekube.model.errors import EdgekubeError
from edgekube.model.wire import ApiRequest, ApiResponse, Presence, Verb
from edgekube.security.ca import Role
from edgekube.store.sealed import new_key_file


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


#: `--network`: `host` (agents share this machine's network namespace; no pod network) or `pod` (see above).
NETWORKS = ("host", "pod")

#: The second master's certificate name (the first keeps `edgekube-master`, so a one-master cluster is unchanged).
MASTER_2 = f"{MASTER}-2"


@dataclass(frozen=True)
class Layout:
    """Who runs where in a local cluster (pure): one broker per master, the masters, each agent's broker list."""

    port: int = 1883
    masters: int = 1
    nodes: int = 1

    def __post_init__(self) -> None:
        if self.masters not in (1, 2):
            raise EdgekubeError(f"MASTERS={self.masters}: must be 1 or 2 (one active master and at most one standby)")
        if self.nodes < 1:
            raise EdgekubeError(f"NODES={self.nodes}: must be at least 1")

    @property
    def brokers(self) -> list[str]:
        return [f"127.0.0.1:{self.port + i}" for i in range(self.masters)]

    def broker_name(self, index: int) -> str:
        """The broker's pidfile stem and directory: `mosquitto`/`broker`, then `mosquitto-2`/`broker-2`."""
        return "mosquitto" if index == 0 else f"mosquitto-{index + 1}"

    @property
    def ha(self) -> bool:
        return self.masters > 1

    @property
    def master_ids(self) -> list[str]:
        """HA master ids (m1 active, m2 standby); empty for the one-master cluster."""
        return [f"m{i + 1}" for i in range(self.masters)] if self.ha else []

    def agent_brokers(self, node_index: int) -> list[str]:
        """Node i (from 1) prefers broker i (round robin), then the others in order."""
        first = (node_index - 1) % len(self.brokers)
        return self.brokers[first:] + self.brokers[:first]

    def cluster_entries(self) -> dict[str, object]:
        """What .edgekube/cluster.json says of brokers and masters (ekctl reads `brokers`)."""
        entries: dict[str, object] = {"mqtt_host": "127.0.0.1", "mqtt_port": self.port}
        if self.ha:
            entries["brokers"] = self.brokers
            entries["masters"] = [
                {"id": mid, "broker": broker, "pidfile": f"run/master-{mid}.pid", "dataDir": f"master-{mid}"}
                for mid, broker in zip(self.master_ids, self.brokers, strict=True)
            ]
        return entries


def ha_masters_available() -> bool:
    """Whether this edgekube's master has the HA settings (`--master-id`, `--role`; docs/ha.md)."""
    from edgekube.master.config import MasterConfig  # noqa: PLC0415 - composition root only

    names = {f.name for f in fields(MasterConfig)}
    return {"master_id", "role"} <= names


@dataclass
class LocalCluster:
    """Everything lives in `root` (./.edgekube); pids in root/run so `down` (or a test) can find them."""

    root: Path
    port: int = 1883

    @classmethod
    def here(cls) -> LocalCluster:
        return cls(Path.cwd() / ".edgekube", int(os.environ.get("EDGEKUBE_MQTT_PORT", "1883")))

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def pki(self) -> LocalPki:
        return LocalPki(self.root / "pki")

    def _tls_flags(self, name: str, secure: bool) -> list[str]:
        if not secure:
            return []
        files = self.pki.files(name)
        return ["--tls-ca", files.ca, "--tls-cert", files.cert, "--tls-key", files.key]

    def _bus(self, secure: bool) -> PahoBus:
        """An admin's client for `up` itself."""
        files = self.pki.files(ADMIN) if secure else None
        if files is None:
            return PahoBus(BusConfig(port=self.port))
        return PahoBus(BusConfig(port=self.port, tls_ca=files.ca, tls_cert=files.cert, tls_key=files.key))

    def _check_mode(self, secure: bool) -> None:
        """A broker left running by an earlier `up` keeps its mode: refuse to mix TLS and plain clients."""
        try:
            data = json.loads((self.root / "cluster.json").read_text())
        except (OSError, ValueError):
            return
        was = bool(data.get("tls_ca")) if isinstance(data, dict) else secure
        if was != secure:
            raise EdgekubeError(
                f"a local cluster already runs {'with' if was else 'without'} TLS in {self.root}",
                hint="stop it first: `make down` (or `edgekube down`), then `make up` again",
            )

    def node_names(self, count: int) -> list[str]:
        return [f"node-{i}" for i in range(1, count + 1)]

    def podman(self, node: str) -> PodmanService:
        """The node's Podman service: inside the node's namespace when run/netns.json records one."""
        workdir, pidfile = self.root / "nodes" / node / "podman", self.run / f"podman-{node}.pid"
        net = self._netns_record().get("nodes", {}).get(node)
        if net is not None:
            return NetnsPodmanService(workdir, NetNode(int(net["slot"])).path, pidfile=pidfile)
        return PodmanService(workdir, pidfile=pidfile)

    # -- network namespaces (--network pod) ---------------------------------------------------------------
    @property
    def _netns_file(self) -> Path:
        return self.run / "netns.json"

    def _netns_record(self) -> dict[str, Any]:
        """{"lan": name, "nodes": {node: {"slot": n, "ip": address}}}; empty without --network pod."""
        try:
            data = json.loads(self._netns_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _ensure_namespaces(self, nodes: list[str]) -> dict[str, Any]:
        """The LAN segment and one namespace per node (made if missing), recorded after each step for `down`."""
        record = self._netns_record()
        record.setdefault("nodes", {})
        if "lan" not in record or not netns.exists(str(record["lan"])):
            for net in record["nodes"].values():  # plugged into the segment that is gone: made anew below
                NetNode(int(net["slot"])).delete()
            record["lan"] = Lan(f"eklan-up{os.getpid()}").name
            record["nodes"] = {}
            self._netns_file.write_text(json.dumps(record) + "\n")
        lan = Lan(str(record["lan"]), create=False)
        for index, node in enumerate(nodes, start=1):
            known = record["nodes"].get(node)
            if known is not None and netns.exists(NetNode(int(known["slot"])).name):
                continue
            net = NetNode.create()
            record["nodes"][node] = {"slot": net.slot, "ip": None}
            self._netns_file.write_text(json.dumps(record) + "\n")
            record["nodes"][node]["ip"] = lan.join(net, index)
            self._netns_file.write_text(json.dumps(record) + "\n")
            _say(f"      {node}: namespace {net.name}, LAN address {record['nodes'][node]['ip']}")
        return record

    def _remove_namespaces(self) -> None:
        record = self._netns_record()
        for node, net in sorted(record.get("nodes", {}).items()):
            _say(f"removing network namespace of {node}")
            NetNode(int(net["slot"])).delete()
        if "lan" in record:
            Lan(str(record["lan"]), create=False).delete()

    def _spawn(self, name: str, args: list[str], net: NetNode | None = None) -> int:
        pidfile = self.run / f"{name}.pid"
        pid = processes.live_pid(pidfile)
        if pid is not None:
            return pid
        log = (self.root / "logs" / f"{name}.log").open("ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        argv = [sys.executable, "-m", "edgekube.main", *args]
        proc = subprocess.Popen(
            net.enter(argv) if net is not None else argv,  # nsenter execs the agent: the pid stays its own
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        log.close()
        processes.write_pidfile(pidfile, proc.pid)
        return proc.pid

    # -- up ---------------------------------------------------------------------------------------------
    def up(
        self,
        nodes: int = 1,
        example: Path | None = None,
        timeout: float = 120.0,
        *,
        secure: bool = True,
        masters: int = 1,
        network: str = "host",
    ) -> None:
        """Start (or complete) the cluster; `secure`: TLS with one certificate per node, the master and an admin.

        `network="pod"`: each agent in its own network namespace with the pod network on (module docstring).
        """
        layout = Layout(self.port, masters, nodes)
        pod_network = self._check_network(network, layout)
        for sub in ("run", "logs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        running = pid_from_pidfile(self.run / "mosquitto.pid") is not None
        if running:
            self._check_mode(secure)
            self._check_running_network(network, self.node_names(nodes))
        record = self._ensure_namespaces(self.node_names(nodes)) if pod_network else {}
        host_ends = [NetNode(int(n["slot"])).host_address for n in record.get("nodes", {}).values()]
        tls = None
        if secure:
            masters_ids = [MASTER, MASTER_2][:masters]
            identities = {
                **dict.fromkeys(masters_ids, Role.MASTER), ADMIN: Role.ADMIN,
                **dict.fromkeys(self.node_names(nodes), Role.NODE),
            }  # fmt: skip
            pki = self.pki.ensure(identities)
            if host_ends and not running:  # agents dial the broker on their namespace's host end: name it too
                pki.ca.issue(BROKER, Role.BROKER, sans=[*BROKER_NAMES, *host_ends], force=True)
            tls = pki.broker_tls()
            who = ", ".join([*masters_ids, ADMIN, *self.node_names(nodes)])
            _say(f"[0/5] identities in {pki.root}: broker, {who}")
        for index, address in enumerate(layout.brokers):
            name = layout.broker_name(index)
            pidfile = self.run / f"{name}.pid"
            _say(f"[1/5] broker: mosquitto on {address}{' (TLS, client certificates, ACL)' if secure else ''}")
            if pid_from_pidfile(pidfile) is None:
                directory = self.root / ("broker" if index == 0 else f"broker-{index + 1}")
                directory.mkdir(parents=True, exist_ok=True)
                port = self.port + index
                Mosquitto(
                    port, directory, persistence=True, detached=True, pidfile=pidfile, tls=tls,
                    extra_listeners=host_ends,
                ).start()  # fmt: skip
            elif secure:
                reload_pidfile(pidfile)  # new nodes: the broker re-reads the ACL and the CRL
        cluster = layout.cluster_entries()
        cluster["network"] = network
        if secure:
            files = self.pki.files(ADMIN)
            cluster.update(tls_ca=files.ca, tls_cert=files.cert, tls_key=files.key)
        nfs = self._start_nfs()
        if nfs is not None:
            cluster["nfs"] = nfs
        (self.root / "cluster.json").write_text(json.dumps(cluster) + "\n")
        self._start_masters(layout, secure)
        for index, node in enumerate(self.node_names(nodes), start=1):
            _say(f"[3/5] {node}: podman service + demo image")
            service = self.podman(node)
            if not service.ping():
                service.start()
            ensure_demo_image(service)
            _say(f"[4/5] {node}: agent{' (own network namespace, pod network on)' if pod_network else ''}")
            net = record["nodes"][node] if pod_network else None
            self._spawn(
                node,
                [
                    "agent",
                    "--node",
                    node,
                    *(self._pod_network_flags(net) if net is not None else ()),
                    "--mqtt-port",
                    str(self.port),
                    "--podman-url",
                    service.url,
                    "--state-dir",
                    str(self.root / "nodes" / node / "agent"),
                    "--container-store",  # its imagefs (telemetry, node health): this node's own Podman store
                    str(service.root),
                    "--label",
                    f"edgekube.io/local-index={node[5:]}",
                    *self._tls_flags(node, secure),
                    *(f"--broker={b}" for b in (layout.agent_brokers(index) if layout.ha else ())),
                ],
                NetNode(int(net["slot"])) if net is not None else None,
            )
        # Requests below need the master subscribed: sent before, nobody would answer them.
        bus = self._bus(secure).start(wait=10)
        try:
            self._wait_master_online(bus, timeout=30)
            if nfs is not None:
                self._apply(bus, default_storage_class(nfs), "the default StorageClass nfs")
        finally:
            bus.close()
        if example is not None:
            _say(f"[5/5] applying {example} and waiting for it to run")
            self._apply_and_wait(example, timeout, secure)
        from edgekube.cli.main import main as ekctl  # noqa: PLC0415 - composition root only

        ekctl(["--mqtt-port", str(self.port), "get", "pods", "-o", "wide"])
        _say("\nThe cluster keeps running. Try: .venv/bin/ekctl get nodes   |   stop everything: make down")
        if not layout.ha:
            _say("Live dashboard: open the URL .venv/bin/ekctl dashboard prints (docs/dashboard.md)")

    @staticmethod
    def _check_network(network: str, layout: Layout) -> bool:
        """Whether the pod network is wanted; refuses (one line + hint) what cannot give it."""
        if network not in NETWORKS:
            raise EdgekubeError(f"--network {network}: must be one of {', '.join(NETWORKS)}")
        if network == "host":
            return False
        if layout.ha:
            raise EdgekubeError("--network pod: one master only", hint="make up NODES=3 NETWORK=pod (without MASTERS)")
        reason = netns.available()
        if reason is not None:
            raise EdgekubeError(
                f"--network pod: {reason}",
                hint="as root, with iproute2 and nsenter (sudo make up NODES=3 NETWORK=pod), or leave NETWORK out",
            )
        return True

    def _check_running_network(self, network: str, nodes: list[str]) -> None:
        """A running cluster keeps its network: no mixing, and no new namespaced node (the broker lacks a listener)."""
        try:
            data = json.loads((self.root / "cluster.json").read_text())
        except (OSError, ValueError):
            return
        was = str(data.get("network", "host")) if isinstance(data, dict) else network
        missing = [n for n in nodes if n not in self._netns_record().get("nodes", {})]
        if was != network or (network == "pod" and missing):
            raise EdgekubeError(
                f"a local cluster already runs with --network {was} in {self.root}"
                + (f" without {', '.join(missing)}" if was == network else ""),
                hint="stop it first: `make down` (or `edgekube down`), then `make up` again",
            )

    @staticmethod
    def _pod_network_flags(net: dict[str, Any]) -> list[str]:
        """The agent in its namespace: the broker on the namespace's host end, the pod network on its LAN address."""
        host_end = NetNode(int(net["slot"])).host_address
        return ["--mqtt-host", host_end, "--pod-network", "true", "--node-ip", str(net["ip"])]

    def _start_masters(self, layout: Layout, secure: bool) -> None:
        """One master on the first broker; with HA, m1 (active) and m2 (standby), each connected to every broker."""
        if not layout.ha:
            _say("[2/5] master")
            (self.root / "master").mkdir(parents=True, exist_ok=True)
            self._spawn(
                "master",
                ["master", "--mqtt-port", str(self.port), "--data-dir", str(self.root / "master"),
                 # a free loopback port: `ekctl dashboard` prints the URL with the one the master got
                 "--dashboard", "127.0.0.1:0", *self._tls_flags(MASTER, secure)],
            )  # fmt: skip
            return
        brokers = [f"--broker={b}" for b in layout.brokers]
        if not ha_masters_available():
            # Pending docs/ha.md's standby mode: a second plain master would be a second active one (split brain).
            _say("[2/5] master m1 only: this edgekube's master has no --master-id/--role yet (two-master HA pending)")
            (self.root / "master-m1").mkdir(parents=True, exist_ok=True)
            self._spawn(
                "master-m1",
                ["master", "--mqtt-port", str(self.port), "--data-dir", str(self.root / "master-m1"), *brokers,
                 *self._tls_flags(MASTER, secure)],
            )  # fmt: skip
            return
        # Secrets replicate sealed: both masters open them with one key file.
        keys = self.root / "encryption-config.yaml"
        if not keys.exists():
            new_key_file(keys)
        for index, master_id in enumerate(layout.master_ids):
            role = "active" if index == 0 else "standby"
            own_first = [f"--broker={b}" for b in layout.agent_brokers(index + 1)]  # its own broker first
            _say(f"[2/5] master {master_id} ({role}) on {', '.join(layout.brokers)}")
            data = self.root / f"master-{master_id}"
            data.mkdir(parents=True, exist_ok=True)
            self._spawn(
                f"master-{master_id}",
                ["master", "--master-id", master_id, "--role", role, "--mqtt-port", str(self.port + index),
                 "--data-dir", str(data), "--encryption-config", str(keys), *own_first,
                 *self._tls_flags([MASTER, MASTER_2][index], secure)],
            )  # fmt: skip

    # -- storage ------------------------------------------------------------------------------------------
    @property
    def nfs_root(self) -> Path:
        return self.root / "nfs"

    def _start_nfs(self) -> dict[str, object] | None:
        """NFS-Ganesha (NFSv4 only, loopback) exporting .edgekube/nfs/export; None (and a warning) when missing.

        The port is chosen once and kept in .edgekube/nfs/port, so volumes made by an earlier `up` stay valid.
        """
        if shutil.which("ganesha.nfsd") is None:
            _say("[1/5] storage: NFS-Ganesha is not installed (make install); no NFS StorageClass")
            return None
        export = self.nfs_root / "export"
        export.mkdir(parents=True, exist_ok=True)
        port_file = self.nfs_root / "port"
        port = int(port_file.read_text()) if port_file.exists() else None
        server = Ganesha(self.nfs_root / "server", export, port=port, pidfile=self.run / "ganesha.pid")
        if not server.running:
            server.start()
        port_file.write_text(f"{server.port}\n")
        _say(f"[1/5] storage: NFS-Ganesha (NFSv4) on 127.0.0.1:{server.port}, exporting {export}")
        return {"server": "127.0.0.1", "port": server.port, "path": server.pseudo, "exportDir": str(export)}

    def _apply(self, bus: PahoBus, manifest: str, what: str) -> None:
        req = ApiRequest(verb=Verb.APPLY, manifest=manifest)
        resp = ApiResponse.decode(bus.request(topics.API_REQUEST, req.encode(), timeout=15).payload)
        if not resp.ok:
            raise EdgekubeError(f"apply {what}: {resp.error.message if resp.error else 'failed'}")

    def _apply_and_wait(self, example: Path, timeout: float, secure: bool) -> None:
        bus = self._bus(secure).start(wait=10)
        try:
            self._wait_master_online(bus, timeout=30)
            req = ApiRequest(verb=Verb.APPLY, manifest=example.read_text())
            resp = ApiResponse.decode(bus.request(topics.API_REQUEST, req.encode(), timeout=15).payload)
            if not resp.ok:
                raise EdgekubeError(f"apply {example}: {resp.error.message if resp.error else 'failed'}")
            names = [o.name for o in resp.outcomes or [] if o.kind == "Pod"]
            deadline = time.monotonic() + timeout
            last = ""
            while time.monotonic() < deadline:
                listing = ApiResponse.decode(
                    bus.request(topics.API_REQUEST, ApiRequest(verb=Verb.LIST, kind="Pod").encode(), timeout=10).payload
                )
                phases = {p["metadata"]["name"]: (p.get("status") or {}).get("phase", "?") for p in listing.items or []}
                line = ", ".join(f"{n}: {phases.get(n, '?')}" for n in names)
                if line != last:
                    _say(f"      {line}")
                    last = line
                if all(phases.get(n) == "Running" for n in names):
                    return
                if any(phases.get(n) == "Failed" for n in names):
                    raise EdgekubeError(f"{example}: a pod failed ({line})", hint="ekctl describe pod NAME")
                time.sleep(0.5)
            raise EdgekubeError(
                f"{example}: not Running after {timeout:g}s ({line})",
                hint=f"see {self.root}/logs/ and `ekctl describe pod NAME`",
            )
        finally:
            bus.close()

    @staticmethod
    def _wait_master_online(bus: PahoBus, timeout: float) -> None:
        """The master publishes online=true (retained) only after its subscriptions are in place."""
        online = threading.Event()

        def seen(msg: Message) -> None:
            with contextlib.suppress(EdgekubeError):
                if msg.payload and Presence.decode(msg.payload).online:
                    online.set()

        bus.subscribe(topics.MASTER_ONLINE, seen)
        if not online.wait(timeout):
            raise EdgekubeError(
                f"the master did not come online within {timeout:g}s", hint="see .edgekube/logs/master.log"
            )

    # -- down -------------------------------------------------------------------------------------------
    def down(self) -> None:
        if not self.root.exists():
            _say("nothing to stop (no .edgekube here)")
            return
        for pidfile in sorted(self.run.glob("node-*.pid")):
            _say(f"stopping agent {pidfile.stem}")
            processes.stop_pidfile(pidfile)
        for pidfile in sorted(self.run.glob("master*.pid")):
            processes.stop_pidfile(pidfile)
        for node_dir in sorted((self.root / "nodes").glob("*")):
            service = self.podman(node_dir.name)
            _say(f"removing pods, containers and volumes of {node_dir.name}")
            service.destroy()
        for pidfile in sorted(self.run.glob("mosquitto*.pid")):
            _say(f"stopping broker {pidfile.stem}")
            stop_pidfile(pidfile)
        _say("stopping NFS server")
        processes.stop_pidfile(self.run / "ganesha.pid")
        self._remove_namespaces()
        # Volume data stays until `make distclean`: everything but the NFS export (and its port) goes.
        for entry in self.root.iterdir():
            if entry != self.nfs_root:
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
        if self.nfs_root.exists():
            shutil.rmtree(self.nfs_root / "server", ignore_errors=True)
            _say(f"local cluster removed; volume data kept in {self.nfs_root / 'export'} (make distclean removes it)")
        else:
            self.root.rmdir()
            _say("local cluster removed")


def default_storage_class(nfs: dict[str, object]) -> str:
    """The local cluster's default StorageClass `nfs`: a sub-directory of the local export per claim."""
    return (
        "apiVersion: storage.k8s.io/v1\n"
        "kind: StorageClass\n"
        "metadata:\n"
        "  name: nfs\n"
        "  annotations:\n"
        '    storageclass.kubernetes.io/is-default-class: "true"\n'
        "provisioner: edgekube.io/nfs\n"
        "parameters:\n"
        f'  server: "{nfs["server"]}"\n'
        f'  share: "{nfs["path"]}"\n'
        f'  port: "{nfs["port"]}"\n'
        "reclaimPolicy: Delete\n"
        "volumeBindingMode: Immediate\n"
    )
