"""`ekctl port-forward pod/NAME|svc/NAME [LOCAL:]REMOTE...`: local TCP ports relayed to a pod's ports through its node.

Listens on 127.0.0.1 (or each `--address`); every accepted connection becomes a stream to the pod's node
(docs/protocol.md, "port-forward"): the node connects to the pod's port and pushes the pod's bytes on this client's
stream (acknowledged every half window), and ekctl sends the local bytes as requests the master forwards, each
answered once written to the pod. Either side's EOF half-closes the other. `svc/NAME` forwards to one ready endpoint
pod (targetPort resolved by name from its containers' ports), as kubectl. It ends when the pod is gone.
"""

from __future__ import annotations

import base64
import contextlib
import queue
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgekube.bus import topics
from edgekube.bus.protocol import Message
from edgekube.cli.context import Context
from edgekube.cli.kinds import EP, POD, SVC, split_args
from edgekube.model.errors import EdgekubeError, NotFoundError, ValidationError
from edgekube.model.portforward import PF_LEASE_SECONDS, PF_SEND_BYTES, PF_WINDOW_CHUNKS
from edgekube.model.watch import LogChunk
from edgekube.model.wire import ApiRequest, Verb

Obj = dict[str, Any]
#: How often ekctl checks that the pod is still there.
POD_CHECK_SECONDS = 2.0


@dataclass(frozen=True)
class PortSpec:
    """One `[LOCAL:]REMOTE`: LOCAL 0 picks a free port; REMOTE a number or a container port's name."""

    local: int
    remote: str


def _port(text: str, what: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValidationError(f"port-forward: {what} port {text!r}: must be a number between 1 and 65535")
    return int(text)


def parse_ports(specs: list[str]) -> list[PortSpec]:
    """`8080`, `8080:80`, `:80` (a free local port), `8080:http` (a named container port)."""
    if not specs:
        raise ValidationError(
            "port-forward: at least one port: [LOCAL:]REMOTE", hint="ekctl port-forward pod/web 8080:80"
        )
    found = []
    for spec in specs:
        local, sep, remote = spec.rpartition(":")
        if not remote:
            raise ValidationError(f"port-forward: {spec!r}: REMOTE is required ([LOCAL:]REMOTE)")
        if not remote.isdigit():
            if not sep:
                raise ValidationError(f"port-forward: {spec!r}: a named remote port needs a LOCAL port (LOCAL:NAME)")
        else:
            _port(remote, "remote")
        if sep and local == "":
            found.append(PortSpec(0, remote))
        else:
            found.append(PortSpec(_port(local if sep else remote, "local"), remote))
    return found


def container_port(pod: Obj, name: str) -> int:
    """A named port of the pod's containers, or a number as it is."""
    if name.isdigit():
        return int(name)
    for container in pod.get("spec", {}).get("containers", []):
        for port in container.get("ports") or []:
            if port.get("name") == name:
                return int(port["containerPort"])
    pod_name = pod.get("metadata", {}).get("name", "")
    raise ValidationError(f"port-forward: pod {pod_name} has no container port named {name!r}")


def service_target(service: Obj, endpoints: Obj, remote: str) -> tuple[str, str]:
    """The ready endpoint pod a service port leads to, and its targetPort (a number or a name), as kubectl."""
    name = service.get("metadata", {}).get("name", "")
    ports = service.get("spec", {}).get("ports") or []
    match = [p for p in ports if str(p.get("port")) == remote or (p.get("name") and p.get("name") == remote)]
    if not match:
        raise ValidationError(f"port-forward: service {name} does not have a service port {remote}")
    target = str(match[0].get("targetPort") or match[0]["port"])
    for subset in endpoints.get("subsets") or []:
        for address in subset.get("addresses") or []:
            ref = address.get("targetRef") or {}
            if ref.get("kind", "Pod") == "Pod" and ref.get("name"):
                return str(ref["name"]), target
    raise EdgekubeError(f"port-forward: service {name} has no ready endpoint pod", hint=f"ekctl get ep {name}")


class Downstream:
    """The node's chunks of one connection, in `seq` order (a duplicate dropped); says when to acknowledge."""

    def __init__(self) -> None:
        self.next = 1
        self._held: dict[int, LogChunk] = {}
        self.acked = 0

    def take(self, chunk: LogChunk) -> list[LogChunk]:
        if chunk.seq >= self.next:
            self._held[chunk.seq] = chunk
        ready = []
        while self.next in self._held:
            ready.append(self._held.pop(self.next))
            self.next += 1
        return ready

    def ack_due(self) -> bool:
        """True every half window: the node never waits for an ack while the client keeps up."""
        return self.next - 1 - self.acked >= PF_WINDOW_CHUNKS // 2


class Connection:
    """One accepted local connection, relayed over one stream."""

    def __init__(self, send: Callable[[ApiRequest], bool], base: ApiRequest, sock: socket.socket) -> None:
        self.send, self.base, self.sock = send, base, sock
        self.chunks: queue.Queue[LogChunk] = queue.Queue()
        self._down = Downstream()
        self._seq = 0
        self._lock = threading.Lock()
        self.last_sent = time.monotonic()
        self.done = threading.Event()
        self._up_done = False
        self._down_done = False

    def request(self, **update: Any) -> None:
        with self._lock:
            if "stdin" in update or "eof" in update:
                self._seq += 1
                update["ack"] = self._seq
            self.last_sent = time.monotonic()
        self.send(self.base.model_copy(update=update))

    def upstream(self) -> None:
        """Local bytes → the pod (each request waits for the node's answer: the node paces us)."""
        try:
            while data := self.sock.recv(PF_SEND_BYTES):
                self.request(stdin=base64.b64encode(data).decode())
            self.request(eof=True)
        except (OSError, EdgekubeError):
            pass
        self._finish(up=True)

    def downstream(self) -> None:
        """The pod's bytes → local, acknowledged every half window; the node's end half-closes our side."""
        try:
            while True:
                for chunk in self._down.take(self.chunks.get()):
                    if chunk.text:
                        self.sock.sendall(base64.b64decode(chunk.text))
                    if chunk.end:
                        if chunk.reason != "eof":
                            sys.stderr.write(f"port-forward: connection ended: {chunk.reason}\n")
                            self.sock.close()
                        else:
                            self.sock.shutdown(socket.SHUT_WR)
                        self._finish(up=False)
                        return
                if self._down.ack_due():
                    self._down.acked = self._down.next - 1
                    with contextlib.suppress(EdgekubeError):  # the node may have finished: its last chunks still come
                        self.request(received=self._down.acked)
        except OSError:
            self._finish(up=False)

    def renew(self) -> None:
        if time.monotonic() - self.last_sent >= PF_LEASE_SECONDS / 3:
            with contextlib.suppress(EdgekubeError):
                self.request(received=self._down.next - 1)

    def _finish(self, *, up: bool) -> None:
        with self._lock:
            if up:
                self._up_done = True
            else:
                self._down_done = True
            both = self._up_done and self._down_done
        if both:
            self.sock.close()
            self.done.set()


class Forwarder:
    """The listening sockets and every open connection of one `ekctl port-forward`."""

    def __init__(self, ctx: Context, pod: str, remote: dict[int, int]) -> None:
        self.ctx, self.pod, self.remote = ctx, pod, remote
        self.client = ctx.client()
        self.conns: dict[str, Connection] = {}
        self._lock = threading.Lock()
        session: Any = self.client.session
        session.subscribe(topics.client_stream(session.client_id, "#"), self._on_chunk)

    def _on_chunk(self, msg: Message) -> None:
        chunk = LogChunk.decode(msg.payload, what="port-forward data")
        with self._lock:
            conn = self.conns.get(chunk.stream)
        if conn is not None:
            conn.chunks.put(chunk)

    def serve(self, listener: socket.socket, local: int) -> None:
        while True:
            try:
                sock, _peer = listener.accept()
            except OSError:
                return
            self.ctx.out.write(f"Handling connection for {local}\n")
            self.ctx.out.flush()
            threading.Thread(target=self.open, args=(sock, local), daemon=True).start()

    def open(self, sock: socket.socket, local: int) -> None:
        stream = uuid.uuid4().hex[:16]
        base = ApiRequest(verb=Verb.PORT_FORWARD, kind="Pod", namespace=self.ctx.namespace, name=self.pod)
        base = base.model_copy(update={"stream": stream})
        conn = Connection(self.client.follow, base, sock)
        with self._lock:
            self.conns[stream] = conn
        try:
            conn.request(port=self.remote[local])
        except EdgekubeError as exc:
            self.ctx.err.write(f"error: port-forward {local} -> {self.remote[local]}: {exc}\n")
            self.ctx.err.flush()
            sock.close()
            with self._lock:
                del self.conns[stream]
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=conn.downstream, daemon=True).start()
        conn.upstream()
        conn.done.wait()
        with self._lock:
            del self.conns[stream]

    def renew_all(self) -> None:
        with self._lock:
            conns = list(self.conns.values())
        for conn in conns:
            conn.renew()


def _target(ctx: Context, words: list[str]) -> tuple[Obj, list[PortSpec]]:
    """The pod to forward to and the ports, remote ones resolved to numbers (a service's targetPort too)."""
    ref, *specs = words
    res, names = split_args([ref] if "/" in ref else ["pod", ref])
    if res not in (POD, SVC) or len(names) != 1:
        raise ValidationError("port-forward: expected one pod/NAME or svc/NAME")
    ports = parse_ports(specs)
    client = ctx.client()
    if res == SVC:
        try:
            service = client.get(SVC, ctx.namespace, names[0])
            endpoints = client.get(EP, ctx.namespace, names[0])
        except NotFoundError:
            raise NotFoundError(f'services "{names[0]}" not found') from None
        picked = [service_target(service, endpoints, p.remote) for p in ports]
        pod = client.get(POD, ctx.namespace, picked[0][0])
        ports = [PortSpec(p.local, target) for p, (_pod, target) in zip(ports, picked, strict=True)]
    else:
        try:
            pod = client.get(POD, ctx.namespace, names[0])
        except NotFoundError:
            raise NotFoundError(f'pods "{names[0]}" not found') from None
    phase = pod.get("status", {}).get("phase", "Pending")
    if phase != "Running":
        raise EdgekubeError(f"unable to forward port because pod is not running. Current status={phase}")
    return pod, [PortSpec(p.local, str(container_port(pod, p.remote))) for p in ports]


def run(ctx: Context) -> int:
    args = ctx.args
    pod, ports = _target(ctx, [args.target, *args.ports])
    name, uid = pod["metadata"]["name"], pod["metadata"].get("uid")
    session: Any = ctx.client().session
    if not hasattr(session, "subscribe"):
        raise ValidationError("port-forward needs an MQTT connection to the broker")
    addresses = ["127.0.0.1" if a == "localhost" else a for a in (args.address or ["127.0.0.1"])]
    listeners: list[tuple[socket.socket, int]] = []
    remote: dict[int, int] = {}
    for spec in ports:
        local = spec.local
        for address in addresses:
            sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address, local))
            except OSError as exc:
                raise EdgekubeError(f"unable to listen on {address}:{local}: {exc.strerror}") from None
            sock.listen(16)
            local = sock.getsockname()[1]  # `:REMOTE`: the free port the first address got, for all of them
            listeners.append((sock, local))
            ctx.out.write(f"Forwarding from {address}:{local} -> {spec.remote}\n")
        remote[local] = int(spec.remote)
    ctx.out.flush()
    forwarder = Forwarder(ctx, name, remote)
    for sock, local in listeners:
        threading.Thread(target=forwarder.serve, args=(sock, local), daemon=True).start()
    try:
        while True:
            time.sleep(POD_CHECK_SECONDS)
            forwarder.renew_all()
            gone = _gone(ctx, name, uid)
            if gone:
                ctx.err.write(f"error: lost connection to pod {ctx.namespace}/{name}: {gone}; port-forward ended\n")
                return 1
    except KeyboardInterrupt:
        return 130
    finally:
        for sock, _local in listeners:
            sock.close()


def _gone(ctx: Context, name: str, uid: str | None) -> str:
    """Why the pod can no longer be forwarded to, or "" while it runs."""
    try:
        pod = ctx.client().get(POD, ctx.namespace, name)
    except NotFoundError:
        return "the pod was deleted"
    except EdgekubeError:
        return ""  # the master is briefly unreachable: the connections say so if it lasts
    if pod["metadata"].get("uid") != uid:
        return "the pod was deleted (a new pod has its name)"
    if pod["metadata"].get("deletionTimestamp"):
        return "the pod is terminating"
    phase = pod.get("status", {}).get("phase")
    return f"the pod is {phase}" if phase in ("Succeeded", "Failed") else ""
