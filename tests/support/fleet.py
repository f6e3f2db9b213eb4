"""A multi-node test cluster on real parts for fault tests and benchmarks: every daemon a process that can be hurt.

One Mosquitto (persistence on), the master and one agent per node as subprocesses (`python -m edgekube.main`),
each node with its own Podman store and socket and, with `netns=True`, its own network namespace joined to the
host by a veth pair, so the harness can kill, freeze, cut off and restart any part and look at what Podman
really runs on each node. Logs go to `<root>/logs/`; `close()` removes every process, pod, namespace and veth.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Self

from edgekube.agent import hostinfo
from edgekube.agent.runtime.protocol import LABEL_CONTAINER, LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID
from edgekube.local.broker import Mosquitto
from edgekube.local.images import DEMO_IMAGE, ensure_demo_image
from edgekube.local.nfs import Ganesha
from edgekube.local.podman_service import PodmanService
from edgekube.master.controllers.owners import CONTROLLER_KINDS
from edgekube.model.errors import BusError
from edgekube.model.wire import ApiResponse
from edgekube.nfs.target import NfsTarget
from tests.support.cluster import ApiClient, wait_for
from tests.support.netns import NetNode

REPO = Path(__file__).resolve().parents[2]


def node_names(count: int) -> list[str]:
    return [f"node-{i}" for i in range(1, count + 1)]


def podman_services(nodes: Iterable[str], base: Path | None = None) -> dict[str, PodmanService]:
    """Start one Podman service per node (own store and socket, under /tmp for short socket paths), demo image in."""
    base = base or Path(tempfile.mkdtemp(prefix="ekf-podman-", dir="/tmp"))
    services: dict[str, PodmanService] = {}
    try:
        for node in nodes:
            services[node] = PodmanService(base / node).start()
            ensure_demo_image(services[node])
    except BaseException:
        destroy_services(services)
        raise
    return services


def destroy_services(services: Mapping[str, PodmanService]) -> None:
    """Destroy every service (store included) and the directory podman_services() made for them, once empty."""
    for service in services.values():
        service.destroy()
    for parent in {service.workdir.parent for service in services.values()}:
        with contextlib.suppress(OSError):
            parent.rmdir()


def ready(node: Mapping[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def phase(pod: Mapping[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase", ""))


def node_of(pod: Mapping[str, Any]) -> str:
    return str(pod["spec"].get("nodeName") or "")


def terminating(pod: Mapping[str, Any]) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def restart_counts(pod: Mapping[str, Any]) -> dict[str, int]:
    statuses = (pod.get("status") or {}).get("containerStatuses", [])
    return {c["name"]: int(c.get("restartCount", 0)) for c in statuses}


def uid_of(obj: Mapping[str, Any]) -> str:
    return str(obj["metadata"].get("uid", ""))


def unix_seconds(stamp: str) -> float:
    """An RFC 3339 time with up to nanoseconds, as Podman's events carry it, in unix seconds."""
    whole, _, rest = stamp.partition(".")
    digits = "".join(itertools.takewhile(str.isdigit, rest))
    zone = rest[len(digits) :] if rest else whole[19:]
    moment = datetime.fromisoformat(whole[:19] + (zone.replace("Z", "+00:00") or "+00:00"))
    return moment.timestamp() + (int(digits) / 10 ** len(digits) if digits else 0.0)


#: A container command that runs until SIGTERM and then exits at once (busybox as PID 1 ignores SIGTERM).
SLEEP_FOREVER = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]


def container(name: str = "main", command: Sequence[str] = SLEEP_FOREVER, **fields: Any) -> dict[str, Any]:
    """A container of the demo image; `fields` are more container fields, e.g. livenessProbe=..."""
    return {"name": name, "image": DEMO_IMAGE, "command": list(command), **fields}


def rc_manifest(name: str, replicas: int, containers: Sequence[Mapping[str, Any]] | None = None) -> str:
    """A v1 ReplicationController `name` selecting app=<name>; by default one SIGTERM-trapping sleeper per pod."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "ReplicationController",
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {
                "replicas": replicas,
                "selector": {"app": name},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [dict(c) for c in containers or [container()]]},
                },
            },
        }
    )


@contextlib.contextmanager
def meanwhile(action: Callable[[], object]) -> Iterator[None]:
    """Run `action` in a thread while the with-block runs; its exception is raised once both are done."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=run, name="fleet-meanwhile")
    thread.start()
    try:
        yield
    finally:
        thread.join()
    if errors:
        raise errors[0]


@dataclass(frozen=True)
class Converged:
    """A moment at which the API and every node's Podman store agreed (see Fleet.wait_converged)."""

    api: dict[str, dict[str, Any]]  # uid -> pod as the API lists it
    podman: dict[str, PodmanPod]  # uid -> the pod in its node's store

    def on(self, node: str) -> dict[str, PodmanPod]:
        return {uid: pod for uid, pod in self.podman.items() if pod.node == node}


def disturbed(pods: Mapping[str, PodmanPod], after: Converged) -> list[str]:
    """What befell `pods` (from an earlier Converged) by `after`: evicted, moved, Podman pod replaced, restarted."""
    problems = []
    for uid, pod in pods.items():
        now = after.api.get(uid)
        if now is None:
            problems.append(f"{pod.name} was evicted from {pod.node}")
        elif node_of(now) != pod.node:
            problems.append(f"{pod.name} moved from {pod.node} to {node_of(now)}")
        elif after.podman[uid].pod_id != pod.pod_id:
            problems.append(f"{pod.name}'s Podman pod on {pod.node} was replaced")
        elif any(restart_counts(now).values()):
            problems.append(f"{pod.name} on {pod.node} was restarted: {restart_counts(now)}")
    return problems


@dataclass(frozen=True)
class PodmanPod:
    """One edgekube pod as a node's Podman store holds it, running or not."""

    node: str
    name: str
    namespace: str
    uid: str
    pod_id: str
    status: str  # Podman's pod status: Running, Degraded, Exited, Created, ...


@dataclass(frozen=True)
class PodmanContainer:
    """One app container of an edgekube pod in a node's Podman store."""

    name: str
    container_id: str
    state: str
    started_at: int  # unix seconds, as `podman ps` reports it
    pod_uid: str


class Proc:
    """One daemon process with its log file; every start is reaped by the matching kill/terminate."""

    def __init__(self, name: str, argv: Callable[[], list[str]], log: Path) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self.popen: subprocess.Popen[bytes] | None = None
        self.stopped = False  # SIGSTOPped

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    def start(self) -> None:
        assert not self.running, f"{self.name} already runs"
        self.reap()
        with self.log.open("ab") as out:
            out.write(f"\n==== {time.strftime('%H:%M:%S')} start {self.name}\n".encode())
            out.flush()
            self.popen = subprocess.Popen(
                self.argv(),
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(os.environ, PYTHONUNBUFFERED="1"),
                start_new_session=True,
            )

    def signal(self, sig: signal.Signals) -> None:
        assert self.running, f"{self.name} does not run"
        os.kill(self.pid, sig)
        if sig is signal.SIGSTOP:
            self.stopped = True
        elif sig is signal.SIGCONT:
            self.stopped = False

    def kill(self) -> None:
        """SIGKILL, as in a crash or a power cut of the daemon: no Last Will of its own, no cleanup."""
        if self.running:
            os.kill(self.pid, signal.SIGKILL)
        self.reap()

    def terminate(self, timeout: float = 10.0) -> None:
        """SIGTERM (a frozen process is woken first so it can act on it), SIGKILL after `timeout`."""
        if self.running:
            os.kill(self.pid, signal.SIGTERM)
            if self.stopped:
                os.kill(self.pid, signal.SIGCONT)
            assert self.popen is not None
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
        self.reap()

    def reap(self) -> None:
        if self.popen is not None:
            self.popen.wait(timeout=30)
            self.popen = None
        self.stopped = False


class Fleet:
    """Broker + master + N agents, all real and all separately killable; see the module docstring.

    `podman` lends the fleet already started Podman services (one per node, e.g. session-wide to save the
    image import); the fleet empties their stores on close but leaves them running. Otherwise it starts its
    own and destroys them on close. `master_args`/`agent_args` are extra daemon flags. With `nfs`, the fleet also
    runs an NFS-Ganesha on the host's main address, which every node reaches (`nfs_target()`, `cut_nfs()`).
    """

    def __init__(
        self,
        root: Path,
        nodes: int = 3,
        *,
        netns: bool = True,
        podman: Mapping[str, PodmanService] | None = None,
        master_args: Sequence[str] = (),
        agent_args: Sequence[str] = (),
        nfs: bool = False,
    ) -> None:
        self.root = root
        self.use_nfs = nfs
        self.ganesha: Ganesha | None = None
        self.nodes = node_names(nodes)
        self.use_netns = netns
        self.master_args = list(master_args)
        self.agent_args = list(agent_args)
        self._lent_podman = podman is not None
        self.podman: dict[str, PodmanService] = dict(podman or {})
        self.net: dict[str, NetNode] = {}
        self.broker: Mosquitto | None = None
        self.master: Proc | None = None
        self.agents: dict[str, Proc] = {}
        self._client: ApiClient | None = None
        (root / "logs").mkdir(parents=True, exist_ok=True)

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> Self:
        """Start every part; once only (`with Fleet(...)` starts it: a second start would leak the first fleet)."""
        if self.broker is not None:
            raise RuntimeError("this fleet is already started")
        try:
            self._start(timeout)
        except BaseException:
            self.close()
            raise
        return self

    def _start(self, timeout: float) -> None:
        if self.use_netns:
            for node in self.nodes:
                self.net[node] = NetNode.create()
        if self.use_nfs:
            # Under /tmp: Podman's FUSE mount points and Ganesha's paths stay short.
            base = Path(tempfile.mkdtemp(prefix="ekf-nfs-", dir="/tmp"))
            self.ganesha = Ganesha(base / "server", base / "export", bind=hostinfo.primary_address()).start()
        self.broker = Mosquitto(
            None,
            self.root / "broker",
            persistence=True,
            extra_listeners=[n.host_address for n in self.net.values()],
        ).start()
        if self._lent_podman:
            missing = set(self.nodes) - set(self.podman)
            assert not missing, f"no Podman service lent for {sorted(missing)}"
            for service in self.podman.values():
                service.cleanup()
        else:
            self.podman = podman_services(self.nodes)
        self.master = Proc("master", self._master_argv, self.root / "logs" / "master.log")
        self.master.start()
        for node in self.nodes:
            argv = functools.partial(self._agent_argv, node)
            self.agents[node] = Proc(node, argv, self.root / "logs" / f"{node}.log")
            self.agents[node].start()
        self.wait_master(timeout)
        self.wait_ready(timeout=timeout)

    def close(self) -> None:
        """Stop every process, empty (or destroy) the Podman stores, delete namespaces; never raises halfway."""
        for proc in [*self.agents.values(), *([self.master] if self.master else [])]:
            with contextlib.suppress(Exception):
                proc.kill()
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
        if self.broker is not None:
            with contextlib.suppress(Exception):
                self.broker.stop()
        if self._lent_podman:
            for service in self.podman.values():
                with contextlib.suppress(Exception):
                    service.cleanup()
        else:
            with contextlib.suppress(Exception):
                destroy_services(self.podman)
        for net in self.net.values():
            with contextlib.suppress(Exception):
                net.delete()
        self.net.clear()
        if self.ganesha is not None:
            with contextlib.suppress(Exception):
                self.ganesha.stop()
            shutil.rmtree(self.ganesha.root.parent, ignore_errors=True)
            self.ganesha = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- process command lines -----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self.broker is not None, "fleet not started"
        return self.broker.port

    def _master_argv(self) -> list[str]:
        return [
            sys.executable, "-m", "edgekube.main", "master",
            "--mqtt-port", str(self.port),
            "--data-dir", str(self.root / "master"),
            *self.master_args,
        ]  # fmt: skip

    def _agent_argv(self, node: str) -> list[str]:
        net = self.net.get(node)
        argv = [
            sys.executable, "-m", "edgekube.main", "agent",
            "--node", node,
            "--mqtt-host", net.host_address if net else "127.0.0.1",
            "--mqtt-port", str(self.port),
            "--podman-url", self.podman[node].url,
            "--state-dir", str(self.root / "agents" / node),
            "--fence-dir", str(self.root / "fence"),  # the fleet's own fence keepers (default: /run/edgekube/fence)
            *self.agent_args,
        ]  # fmt: skip
        return net.enter(argv) if net else argv

    # -- the API -------------------------------------------------------------------------------------------
    @property
    def api(self) -> ApiClient:
        """A client on the host's loopback listener; it reconnects by itself after a broker restart."""
        if self._client is None:
            self._client = ApiClient(self.port)
        return self._client

    def try_list(self, kind: str, selector: str | None = None, timeout: float = 3.0) -> list[dict[str, Any]] | None:
        """The objects, or None while the master or broker does not answer (restarting, or not up yet)."""
        try:
            return self.api.objects(kind, selector, timeout=timeout)
        except BusError:
            return None

    def wait_master(self, timeout: float = 30.0) -> None:
        wait_for("the master to answer API requests", lambda: self.try_list("Node") is not None, timeout)

    def wait_ready(self, nodes: Iterable[str] | None = None, timeout: float = 30.0) -> None:
        """Wait until the master reports every one of `nodes` (default: all) Ready."""
        wanted = set(self.nodes if nodes is None else nodes)

        def check() -> set[str] | bool:
            listed = self.try_list("Node")
            if listed is None:
                return False
            seen = {n["metadata"]["name"] for n in listed if ready(n)}
            return wanted <= seen or False

        wait_for(f"nodes {sorted(wanted)} Ready", check, timeout)

    def node_ready(self, node: str) -> bool | None:
        """The master's view of one node's Ready condition, None if it does not answer."""
        listed = self.try_list("Node")
        if listed is None:
            return None
        return any(ready(n) for n in listed if n["metadata"]["name"] == node)

    def apply(self, text: str, timeout: float = 60.0) -> ApiResponse:
        """Apply, retrying while the broker or the master is away (as any client may: apply is idempotent)."""
        return self._until_answered(lambda: self.api.apply(text, timeout=3), timeout)

    def scale(self, kind: str, name: str, replicas: int, timeout: float = 60.0) -> ApiResponse:
        """Scale a controller, retrying while the broker or the master is away (setting a count is idempotent)."""
        return self._until_answered(lambda: self.api.scale(kind, name, replicas, timeout=3), timeout)

    @staticmethod
    def _until_answered(request: Callable[[], ApiResponse], timeout: float) -> ApiResponse:
        deadline = time.monotonic() + timeout
        while True:
            try:
                resp = request()
            except BusError:
                if time.monotonic() > deadline:
                    raise
                continue
            assert resp.ok, resp.error
            return resp

    def wait_replicas(
        self, selector: str, count: int, *, avoid: str = "", timeout: float = 60.0
    ) -> list[dict[str, Any]]:
        """Wait until `count` pods of `selector` are Running (not terminating) on nodes other than `avoid`."""

        def check() -> list[dict[str, Any]] | None:
            pods = self.try_list("Pod", selector)
            live = [p for p in pods or [] if phase(p) == "Running" and not terminating(p) and node_of(p) != avoid]
            return live if len(live) == count else None

        result: list[dict[str, Any]] = wait_for(
            f"{count} pods {selector} Running" + (f" and none on {avoid}" if avoid else ""), check, timeout
        )
        return result

    def converged(self, expected: Mapping[str, int]) -> Converged | str:
        """The agreed state, or what still disagrees.

        Agreed: for each selector exactly that many pods, all Running and none terminating; no other pod in
        the API; and the pods in all nodes' Podman stores are exactly the API's pods (same uid, on the node the
        API binds it to), each Running: no duplicate, no leftover, nothing missing.
        """
        listed = self.try_list("Pod")
        if listed is None:
            return "the master does not answer"
        problems = []
        matched: set[str] = set()
        for selector, count in expected.items():
            pods = self.try_list("Pod", selector)
            if pods is None:
                return "the master does not answer"
            matched |= {uid_of(p) for p in pods}
            states = sorted(f"{p['metadata']['name']}@{node_of(p)}:{phase(p)}" for p in pods)
            if len(pods) != count or any(phase(p) != "Running" or terminating(p) for p in pods):
                problems.append(f"{selector}: want {count} Running, API has {states}")
        extra = [p["metadata"]["name"] for p in listed if uid_of(p) not in matched]
        if extra:
            problems.append(f"pods outside {sorted(expected)}: {extra}")
        in_podman = self.all_pods()
        want = {(node_of(p), uid_of(p)) for p in listed}
        have = {(p.node, p.uid) for p in in_podman}
        if want != have or len(in_podman) != len(have):
            podman_view = sorted(f"{p.name}@{p.node}" for p in in_podman)
            problems.append(f"Podman holds {podman_view}, API binds {sorted((n, u[:8]) for n, u in want)}")
        not_running = [f"{p.name}@{p.node}:{p.status}" for p in in_podman if p.status != "Running"]
        if not_running:
            problems.append(f"Podman pods not Running: {not_running}")
        if problems:
            return "; ".join(problems)
        return Converged(api={uid_of(p): p for p in listed}, podman={p.uid: p for p in in_podman})

    def wait_converged(self, expected: Mapping[str, int], *, hold: float = 2.0, timeout: float = 60.0) -> Converged:
        """Wait until converged() holds without a break for `hold` seconds; returns the last agreed state."""
        deadline = time.monotonic() + timeout
        since: float | None = None
        state: Converged | str = "not checked yet"
        while time.monotonic() < deadline:
            state = self.converged(expected)
            if isinstance(state, Converged):
                since = time.monotonic() if since is None else since
                if time.monotonic() - since >= hold:
                    return state
            else:
                since = None
            time.sleep(0.25)
        raise AssertionError(f"not converged to {dict(expected)} within {timeout:g}s (held {hold:g}s): {state}")

    # -- faults ---------------------------------------------------------------------------------------------
    def kill_agent(self, node: str) -> None:
        """`kill -9` the node's agent; its pods keep running under conmon, as on a real node."""
        self.agents[node].kill()

    def start_agent(self, node: str) -> None:
        self.agents[node].start()

    def stop_agent(self, node: str) -> None:
        """SIGSTOP: the agent freezes with its MQTT connection open (no Last Will until keep-alive expires)."""
        self.agents[node].signal(signal.SIGSTOP)

    def cont_agent(self, node: str) -> None:
        self.agents[node].signal(signal.SIGCONT)

    def cut(self, node: str) -> None:
        """Cut the node's network (host end of its veth down); the agent keeps running, isolated."""
        assert node in self.net, "cut() needs a fleet with netns=True"
        self.net[node].cut()

    def restore(self, node: str) -> None:
        self.net[node].restore()

    def cut_master(self, node: str) -> None:
        """Cut the node off the broker only (so off the master): it still reaches everything else, NFS included."""
        self.net[node].drop_port(self.port)

    def cut_nfs(self, node: str) -> None:
        """Cut the node's own traffic to the fleet's NFS server (its agent's; Podman's mounts run on the host)."""
        assert self.ganesha is not None, "cut_nfs() needs a fleet with nfs=True"
        self.net[node].drop_port(self.ganesha.port)

    def reconnect(self, node: str) -> None:
        """Undo cut_master() and cut_nfs()."""
        self.net[node].allow_all()

    def nfs_target(self, subpath: str = "") -> NfsTarget:
        """A directory of the fleet's NFS export as every node reaches it (created on the server side)."""
        assert self.ganesha is not None, "the fleet runs no NFS server (nfs=True)"
        (self.ganesha.export_dir / subpath).mkdir(parents=True, exist_ok=True)
        return self.ganesha.target(subpath)

    def stop_broker(self, *, kill: bool = False) -> None:
        """SIGTERM the broker (persistence saved) or, with `kill`, SIGKILL it (only the last autosave survives)."""
        assert self.broker is not None
        if kill:
            self.broker.kill()
        else:
            self.broker.stop()

    def start_broker(self) -> None:
        """Start the broker again on the same port and persistence file."""
        assert self.broker is not None
        self.broker.start()

    def broker_down(self) -> bool:
        """True when the broker process is gone and nothing accepts connections on its port."""
        assert self.broker is not None
        if self.broker.running:
            return False
        try:
            socket.create_connection((self.broker.host, self.port), timeout=1.0).close()
        except OSError:
            return True
        return False

    def restart_broker(self, *, kill: bool = False, down_for: float = 0.0) -> None:
        """stop_broker(), wait `down_for` seconds, start_broker()."""
        self.stop_broker(kill=kill)
        time.sleep(down_for)
        self.start_broker()

    def stop_master(self, *, kill: bool = False) -> None:
        """SIGTERM (or, with `kill`, SIGKILL) the master and reap it: when this returns, it is gone."""
        assert self.master is not None
        if kill:
            self.master.kill()
        else:
            self.master.terminate()

    def start_master(self, *, wait: bool = True) -> None:
        """Start the master again on the same data directory; with `wait`, until it answers API requests."""
        assert self.master is not None
        self.master.start()
        if wait:
            self.wait_master()

    def restart_master(self, *, kill: bool = False, down_for: float = 0.0, wait: bool = True) -> None:
        """stop_master(), wait `down_for` seconds, start_master()."""
        self.stop_master(kill=kill)
        time.sleep(down_for)
        self.start_master(wait=wait)

    def kill_container(self, node: str, pod: str, container: str, namespace: str = "default") -> None:
        """`podman kill` one app container of an edgekube pod in that node's store."""
        ids = [c.container_id for c in self.containers_of(node, pod, namespace) if c.name == container]
        assert len(ids) == 1, f"expected one container {container!r} of pod {pod} on {node}, found {ids}"
        self.podman[node].podman("kill", ids[0])

    # -- what Podman really runs ----------------------------------------------------------------------------
    def pods_on(self, node: str) -> list[PodmanPod]:
        """Every edgekube pod in the node's Podman store (label io.edgekube.pod.name), whatever its state."""
        out = self.podman[node].podman("pod", "ps", "--filter", f"label={LABEL_POD_NAME}", "--format", "json").stdout
        pods = []
        for entry in json.loads(out or "[]"):
            labels = entry.get("Labels") or {}
            pods.append(
                PodmanPod(
                    node=node,
                    name=labels.get(LABEL_POD_NAME, ""),
                    namespace=labels.get(LABEL_POD_NAMESPACE, ""),
                    uid=labels.get(LABEL_POD_UID, ""),
                    pod_id=str(entry.get("Id", "")),
                    status=str(entry.get("Status", "")),
                )
            )
        return sorted(pods, key=lambda p: p.name)

    def all_pods(self) -> list[PodmanPod]:
        """Every edgekube pod on every node, from Podman's side."""
        return [pod for node in self.nodes for pod in self.pods_on(node)]

    def containers_of(self, node: str, pod: str, namespace: str = "default") -> list[PodmanContainer]:
        """The app containers of one edgekube pod in the node's store (the infra container is not listed)."""
        out = self.podman[node].podman(
            "ps", "--all",
            "--filter", f"label={LABEL_POD_NAME}={pod}",
            "--filter", f"label={LABEL_POD_NAMESPACE}={namespace}",
            "--format", "json",
        ).stdout  # fmt: skip
        containers = []
        for entry in json.loads(out or "[]"):
            labels = entry.get("Labels") or {}
            if LABEL_CONTAINER not in labels:
                continue
            containers.append(
                PodmanContainer(
                    name=labels[LABEL_CONTAINER],
                    container_id=str(entry.get("Id", "")),
                    state=str(entry.get("State", "")),
                    started_at=int(entry.get("StartedAt") or 0),
                    pod_uid=labels.get(LABEL_POD_UID, ""),
                )
            )
        return containers

    def container_starts(self, node: str, pod_uid: str, container: str) -> list[float]:
        """When Podman started that app container, oldest first (unix seconds, ns precision, from its event log).

        Every start counts: the first, a restart of the same container and the start of a recreated one.
        """
        out = self.podman[node].podman("events", "--stream=false", "--filter", "event=start", "--format", "json")
        starts = []
        for line in out.stdout.splitlines():
            event = json.loads(line)
            attributes = event.get("Attributes") or {}
            if attributes.get(LABEL_POD_UID) == pod_uid and attributes.get(LABEL_CONTAINER) == container:
                starts.append(unix_seconds(str(event["Time"])))
        return sorted(starts)

    # -- between tests ------------------------------------------------------------------------------------------
    def heal(self, timeout: float = 60.0) -> None:
        """Undo every fault: links up, frozen agents woken, dead daemons started; wait for all nodes Ready."""
        assert self.broker is not None and self.master is not None
        for net in self.net.values():
            if net.is_cut:
                net.restore()
            if net.dropped_ports:
                net.allow_all()
        if self.ganesha is not None and not self.ganesha.running:
            self.ganesha.start()
        if not self.broker.running:
            self.broker.start()
        if not self.master.running:
            self.master.start()
        for agent in self.agents.values():
            if agent.stopped:
                agent.signal(signal.SIGCONT)
            if not agent.running:
                agent.start()
        self.wait_master(timeout)
        self.wait_ready(timeout=timeout)

    def reset(self, timeout: float = 60.0) -> None:
        """heal(), then delete every controller and pod and wait until no node's Podman store holds a pod."""
        self.heal(timeout)
        for kind in (*CONTROLLER_KINDS, "Pod"):
            for obj in self.api.objects(kind):
                self.api.delete(kind, obj["metadata"]["name"])
        wait_for(
            "every pod gone from the API and from every node's Podman store",
            lambda: not self.api.pods() and not self.all_pods(),
            timeout=timeout,
            interval=0.5,
        )

    def log_tails(self, lines: int = 80) -> str:
        """The last lines of every process's log, for a failing test's report."""
        logs = sorted((self.root / "logs").glob("*.log"))
        if self.broker is not None:
            logs.append(self.broker.log_path)
        parts = []
        for path in logs:
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").splitlines()
                parts.append(f"---- {path} (last {lines} lines)\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)
