"""The node's cluster DNS: service names answered from the ServiceTable, everything else forwarded upstream."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from edgekube.agent.network.dnsserver import (
    RCODE_NXDOMAIN,
    TYPE_A,
    TYPE_AAAA,
    TYPE_PTR,
    TYPE_SRV,
    DnsServer,
    Resolver,
    parse,
)
from edgekube.model.netstate import EndpointEntry, ServiceEntry, ServicePortEntry, ServiceTable

TABLE = ServiceTable(
    services=[
        ServiceEntry(namespace="default", name="web", cluster_ip="10.43.0.10",
                     ports=[ServicePortEntry(name="http", port=80)]),
        ServiceEntry(namespace="shop", name="db", cluster_ip="",
                     endpoints=[EndpointEntry(ip="10.42.2.7"), EndpointEntry(ip="10.42.1.3"),
                                EndpointEntry(ip="10.42.1.4", ready=False)]),
    ]
)  # fmt: skip


def query(name: str, qtype: int = TYPE_A, ident: int = 0x1234) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".") if p)
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + b"\x00" + struct.pack("!HH", qtype, 1)


def decode(answer: bytes) -> tuple[int, list[bytes]]:
    """(rcode, the rdata of each answer) of a reply to one of `query`'s questions."""
    _, flags, _, count = struct.unpack("!HHHH", answer[:8])
    pos = 12
    while answer[pos]:
        pos += 1 + answer[pos]
    pos += 5
    datas = []
    for _ in range(count):
        length = struct.unpack("!H", answer[pos + 10 : pos + 12])[0]
        datas.append(answer[pos + 12 : pos + 12 + length])
        pos += 12 + length
    return flags & 0xF, datas


def ask(name: str, qtype: int = TYPE_A) -> tuple[int, list[bytes]] | None:
    q = parse(query(name, qtype))
    assert q is not None
    reply = Resolver(TABLE).answer(q)
    return None if reply is None else decode(reply)


@pytest.mark.parametrize(
    "name", ["web.default.svc.cluster.local", "web.default.svc.cluster.local.", "web.default", "web"]
)
def test_a_service_name_in_every_form_is_its_cluster_ip(name: str) -> None:
    assert ask(name) == (0, [socket.inet_aton("10.43.0.10")])


def test_a_headless_service_is_its_ready_endpoints() -> None:
    assert ask("db.shop.svc.cluster.local") == (0, [socket.inet_aton("10.42.1.3"), socket.inet_aton("10.42.2.7")])


def test_names_the_cluster_does_not_have_are_nxdomain_inside_its_domain_and_forwarded_outside() -> None:
    assert ask("nope.default.svc.cluster.local") == (RCODE_NXDOMAIN, [])
    assert ask("web.default.svc.cluster.local.default.svc.cluster.local") == (RCODE_NXDOMAIN, [])
    assert ask("x.cluster.local") == (RCODE_NXDOMAIN, [])
    assert ask("example.com") is None
    assert ask("db") is None  # not in namespace default: maybe a real name
    assert ask("web.shop") is None


def test_aaaa_of_a_service_is_no_data_not_nxdomain() -> None:
    assert ask("web.default.svc.cluster.local", TYPE_AAAA) == (0, [])


def test_srv_names_the_port_and_ptr_names_the_service() -> None:
    rcode, (srv,) = ask("_http._tcp.web.default.svc.cluster.local", TYPE_SRV)  # type: ignore[misc]
    assert rcode == 0
    assert struct.unpack("!HHH", srv[:6]) == (0, 100, 80)
    assert srv[6:] == b"\x03web\x07default\x03svc\x07cluster\x05local\x00"
    assert ask("_grpc._tcp.web.default.svc.cluster.local", TYPE_SRV) == (RCODE_NXDOMAIN, [])
    rcode, (ptr,) = ask("10.0.43.10.in-addr.arpa", TYPE_PTR)  # type: ignore[misc]
    assert ptr == b"\x03web\x07default\x03svc\x07cluster\x05local\x00"
    assert ask("9.9.9.9.in-addr.arpa", TYPE_PTR) is None


def test_a_reply_echoes_the_id_and_question() -> None:
    q = parse(query("web", ident=0xBEEF))
    assert q is not None
    reply = Resolver(TABLE).answer(q)
    assert reply is not None
    assert reply[:2] == b"\xbe\xef"
    assert reply[12 : 12 + len(q.raw_question)] == q.raw_question


def test_a_response_or_a_truncated_packet_is_not_a_question() -> None:
    assert parse(b"\x00\x01") is None
    assert parse(b"\x00\x01\x81\x80" + b"\x00" * 8) is None


@pytest.fixture
def upstream() -> Iterator[socket.socket]:
    """A resolver on loopback answering every query with its own id and rcode 0 and no record."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                packet, client = sock.recvfrom(4096)
            except OSError:
                return
            sock.sendto(packet[:2] + b"\x81\x80" + packet[4:], client)

    threading.Thread(target=serve, daemon=True).start()
    yield sock
    sock.close()


def test_the_server_answers_services_and_forwards_other_names(upstream: socket.socket) -> None:
    port = upstream.getsockname()[1]
    server = DnsServer("127.0.0.1", lambda: TABLE, ["127.0.0.1"], port=0, upstream_port=port).start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            client.sendto(query("web.default.svc.cluster.local", ident=7), server.address)
            assert decode(client.recvfrom(4096)[0]) == (0, [socket.inet_aton("10.43.0.10")])
            client.sendto(query("example.com", ident=8), server.address)
            forwarded = client.recvfrom(4096)[0]
            assert forwarded[:4] == b"\x00\x08\x81\x80"
    finally:
        server.stop()
