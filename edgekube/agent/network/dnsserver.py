"""The node's cluster DNS: answers service names from the ServiceTable, forwards the rest upstream; run by netagent.

Hand-written rather than dnslib: it needs one question per query, A/PTR/SRV answers and byte-for-byte forwarding
(no parsing of upstream answers), about 150 lines of RFC 1035 with no new dependency on a Pi. UDP only: answers
stay far below 512 bytes for up to 30 endpoints (more are truncated to the first 30, TC unset, as the record set
is a sample anyway). Names, as CoreDNS' kubernetes plugin answers them:

- `<svc>.<ns>.svc.<domain>`: A = the clusterIP, or a headless service's ready endpoints' IPs.
- `_<port>._<proto>.<svc>.<ns>.svc.<domain>`: SRV to `<svc>.<ns>.svc.<domain>` with the port.
- `<svc>.<ns>` and `<svc>` (namespace default) when such a service exists (else forwarded, it may be a real name).
- PTR of a clusterIP. Anything else in the cluster domain: NXDOMAIN; outside it: forwarded to the node's resolvers.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import struct
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edgekube.model.netstate import CLUSTER_DOMAIN, ServiceEntry, ServiceTable

log = logging.getLogger(__name__)

TYPE_A, TYPE_PTR, TYPE_AAAA, TYPE_SRV = 1, 12, 28, 33
RCODE_NXDOMAIN, RCODE_FORMERR = 3, 1
TTL = 5
_MAX_ANSWERS = 30
_IP_FREEBIND = 15  # linux/in.h: bind the gateway address before Podman has made the bridge that holds it


@dataclass(frozen=True)
class Question:
    id: int
    flags: int
    name: str
    qtype: int
    raw_question: bytes


def parse(packet: bytes) -> Question | None:
    """The first question of a query, or None when the packet is not a query we can read."""
    if len(packet) < 12:
        return None
    ident, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if flags & 0x8000 or qdcount != 1:
        return None
    labels, pos = [], 12
    while pos < len(packet):
        length = packet[pos]
        if length == 0 or length > 63:
            break
        labels.append(packet[pos + 1 : pos + 1 + length].decode("ascii", "replace").lower())
        pos += 1 + length
    if pos + 5 > len(packet) or packet[pos] != 0:
        return None
    qtype = struct.unpack("!H", packet[pos + 1 : pos + 3])[0]
    return Question(ident, flags, ".".join(labels), qtype, packet[12 : pos + 5])


def _name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p) + b"\x00"


def _record(rtype: int, data: bytes) -> bytes:
    return b"\xc0\x0c" + struct.pack("!HHIH", rtype, 1, TTL, len(data)) + data  # name: a pointer to the question


def reply(q: Question, rcode: int, answers: Sequence[bytes] = ()) -> bytes:
    flags = 0x8000 | 0x0400 | (q.flags & 0x0100) | 0x0080 | rcode  # response, authoritative, RD copied, RA
    return struct.pack("!HHHHHH", q.id, flags, 1, len(answers), 0, 0) + q.raw_question + b"".join(answers)


class Resolver:
    """Pure lookups in a ServiceTable: the answer to a question, or None (not ours: forward it)."""

    def __init__(self, table: ServiceTable, domain: str = CLUSTER_DOMAIN) -> None:
        self.domain = domain
        self.services = {(s.namespace, s.name): s for s in table.services}
        self.by_ip = {s.cluster_ip: s for s in table.services if s.cluster_ip}

    def answer(self, q: Question) -> bytes | None:
        name = q.name.rstrip(".")
        if name.endswith(".in-addr.arpa"):
            return self._ptr(q, name)
        suffix = f".svc.{self.domain}"
        if name.endswith(suffix):
            parts = name.removesuffix(suffix).split(".")
            return self._service(q, parts)
        if name == self.domain or name.endswith(f".{self.domain}"):
            return reply(q, RCODE_NXDOMAIN)
        parts = name.split(".")
        if len(parts) == 2 and tuple(reversed(parts)) in self.services:
            return self._service(q, parts)
        if len(parts) == 1 and ("default", parts[0]) in self.services:
            return self._service(q, [parts[0], "default"])
        return None

    def _service(self, q: Question, parts: list[str]) -> bytes:
        srv = len(parts) == 4 and parts[0].startswith("_") and parts[1].startswith("_")
        svc = self.services.get((parts[-1], parts[-2])) if len(parts) in (2, 4) else None
        if svc is None:
            return reply(q, RCODE_NXDOMAIN)
        if srv:
            return self._srv(q, svc, parts[0][1:], parts[1][1:])
        if q.qtype != TYPE_A:
            return reply(q, 0)  # the name exists, with no record of that type (AAAA: IPv4 only)
        ips = [svc.cluster_ip] if svc.cluster_ip else sorted({e.ip for e in svc.endpoints if e.ready})
        return reply(q, 0, [_record(TYPE_A, ipaddress.IPv4Address(ip).packed) for ip in ips[:_MAX_ANSWERS]])

    def _srv(self, q: Question, svc: ServiceEntry, port_name: str, proto: str) -> bytes:
        port = next((p for p in svc.ports if p.name == port_name and p.protocol.lower() == proto), None)
        if port is None:
            return reply(q, RCODE_NXDOMAIN)
        if q.qtype != TYPE_SRV:
            return reply(q, 0)
        target = _name(f"{svc.name}.{svc.namespace}.svc.{self.domain}")
        return reply(q, 0, [_record(TYPE_SRV, struct.pack("!HHH", 0, 100, port.port) + target)])

    def _ptr(self, q: Question, name: str) -> bytes | None:
        octets = name.removesuffix(".in-addr.arpa").split(".")
        svc = self.by_ip.get(".".join(reversed(octets))) if len(octets) == 4 else None
        if svc is None:
            return None
        if q.qtype != TYPE_PTR:
            return reply(q, 0)
        return reply(q, 0, [_record(TYPE_PTR, _name(f"{svc.name}.{svc.namespace}.svc.{self.domain}"))])


class DnsServer:
    """UDP on `address:port`; `table()` gives the current ServiceTable; other names go to `upstream` (first answer)."""

    def __init__(
        self,
        address: str,
        table: Callable[[], ServiceTable],
        upstream: Sequence[str],
        *,
        port: int = 53,
        domain: str = CLUSTER_DOMAIN,
        timeout: float = 2.0,
        upstream_port: int = 53,
    ) -> None:
        self.table = table
        self.upstream = [u for u in upstream if (u, upstream_port) != (address, port)]  # never itself: a loop
        self.domain = domain
        self.timeout = timeout
        self.upstream_port = upstream_port
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setsockopt(socket.SOL_IP, _IP_FREEBIND, 1)
        self._sock.bind((address, port))
        self.address = self._sock.getsockname()
        self._resolver: tuple[ServiceTable, Resolver] | None = None
        self._forwards = threading.BoundedSemaphore(16)
        self._stopped = False
        self._thread = threading.Thread(target=self._serve, name="cluster-dns", daemon=True)

    def start(self) -> DnsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped = True
        self._sock.close()

    def resolver(self) -> Resolver:
        table = self.table()
        if self._resolver is None or self._resolver[0] is not table:
            self._resolver = (table, Resolver(table, self.domain))
        return self._resolver[1]

    def _serve(self) -> None:
        while not self._stopped:
            try:
                packet, client = self._sock.recvfrom(4096)
            except OSError:
                return
            try:
                self._handle(packet, client)
            except Exception:
                log.exception("cluster DNS: query from %s failed", client)

    def _handle(self, packet: bytes, client: tuple[str, int]) -> None:
        q = parse(packet)
        if q is None:
            if len(packet) >= 2:
                self._sock.sendto(packet[:2] + struct.pack("!HHHHH", 0x8000 | RCODE_FORMERR, 0, 0, 0, 0), client)
            return
        answer = self.resolver().answer(q)
        if answer is not None:
            self._sock.sendto(answer, client)
        elif self.upstream and self._forwards.acquire(blocking=False):
            threading.Thread(target=self._forward, args=(packet, client), daemon=True).start()

    def _forward(self, packet: bytes, client: tuple[str, int]) -> None:
        try:
            for server in self.upstream:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as up:
                    up.settimeout(self.timeout)
                    try:
                        up.sendto(packet, (server, self.upstream_port))
                        answer, _ = up.recvfrom(65535)
                    except OSError:
                        continue
                    self._sock.sendto(answer, client)
                    return
        except OSError:
            pass
        finally:
            self._forwards.release()
