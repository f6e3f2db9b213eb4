"""`edgekube up`/`down`: a cluster on this machine under ./.edgekube — broker, master, N agents with own Podman."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edgekube.bus import topics
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.bus.protocol import Message
from edgekube.local import processes
from edgekube.local.broker import Mosquitto, pid_from_pidfile, reload_pidfile, stop_pidfile
from edgekube.local.images import ensure_demo_image
from edgekube.local.nfs import Ganesha
from edgekube.local.pki import ADMIN, MASTER, LocalPki
from edgekube.local.podman_service import PodmanService
from edgekube.model.errors import EdgekubeError
from edgekube.model.wire import ApiRequest, ApiResponse, Presence, Verb
from edgekube.security.ca import Role


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


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
        return PodmanService(self.root / "nodes" / node / "podman", pidfile=self.run / f"podman-{node}.pid")

    def _spawn(self, name: str, args: list[str]) -> int:
        pidfile = self.run / f"{name}.pid"
        pid = processes.live_pid(pidfile)
        if pid is not None:
            return pid
        log = (self.root / "logs" / f"{name}.log").open("ab")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgekube.main", *args],
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
    def up(self, nodes: int = 1, example: Path | None = None, timeout: float = 120.0, *, secure: bool = True) -> None:
        """Start (or complete) the cluster; `secure`: TLS with one certificate per node, the master and an admin."""
        for sub in ("run", "logs", "broker", "master"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        broker_pidfile = self.run / "mosquitto.pid"
        running = pid_from_pidfile(broker_pidfile) is not None
        if running:
            self._check_mode(secure)
        tls = None
        if secure:
            identities = {MASTER: Role.MASTER, ADMIN: Role.ADMIN, **dict.fromkeys(self.node_names(nodes), Role.NODE)}
            pki = self.pki.ensure(identities)
            tls = pki.broker_tls()
            _say(f"[0/5] identities in {pki.root}: broker, {MASTER}, {ADMIN}, {', '.join(self.node_names(nodes))}")
        _say(f"[1/5] broker: mosquitto on 127.0.0.1:{self.port}{' (TLS, client certificates, ACL)' if secure else ''}")
        if not running:
            Mosquitto(
                self.port, self.root / "broker", persistence=True, detached=True, pidfile=broker_pidfile, tls=tls
            ).start()
        elif secure:
            reload_pidfile(broker_pidfile)  # new nodes: the broker re-reads the ACL and the CRL
        cluster: dict[str, object] = {"mqtt_host": "127.0.0.1", "mqtt_port": self.port}
        if secure:
            files = self.pki.files(ADMIN)
            cluster.update(tls_ca=files.ca, tls_cert=files.cert, tls_key=files.key)
        nfs = self._start_nfs()
        if nfs is not None:
            cluster["nfs"] = nfs
        (self.root / "cluster.json").write_text(json.dumps(cluster) + "\n")
        _say("[2/5] master")
        self._spawn(
            "master",
            [
                "master",
                "--mqtt-port",
                str(self.port),
                "--data-dir",
                str(self.root / "master"),
                *self._tls_flags(MASTER, secure),
            ],
        )
        for node in self.node_names(nodes):
            _say(f"[3/5] {node}: podman service + demo image")
            service = self.podman(node)
            if not service.ping():
                service.start()
            ensure_demo_image(service)
            _say(f"[4/5] {node}: agent")
            self._spawn(
                node,
                [
                    "agent",
                    "--node",
                    node,
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
                ],
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
        processes.stop_pidfile(self.run / "master.pid")
        for node_dir in sorted((self.root / "nodes").glob("*")):
            service = self.podman(node_dir.name)
            _say(f"removing pods, containers and volumes of {node_dir.name}")
            service.destroy()
        _say("stopping broker")
        stop_pidfile(self.run / "mosquitto.pid")
        _say("stopping NFS server")
        processes.stop_pidfile(self.run / "ganesha.pid")
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
