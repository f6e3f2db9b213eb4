"""`ekctl port-forward`: the node's relay against a fake pod connection (window, rate cap, half-close, lease,
duplicates), and the CLI's port specs, named ports, service endpoint choice and chunk ordering."""

from __future__ import annotations

import base64
import queue
import threading
from typing import Any

import pytest

from edgekube.agent.portforward import Relay, Relays
from edgekube.cli.cmd_portforward import Downstream, PortSpec, container_port, parse_ports, service_target
from edgekube.model.errors import EdgekubeError, ValidationError
from edgekube.model.portforward import PF_CHUNK_BYTES, PF_MAX_SESSIONS, PF_SEND_BYTES, PF_WINDOW_CHUNKS
from edgekube.model.watch import LogChunk
from edgekube.model.wire import READ_VERBS, ApiRequest, Verb


class FakeConn:
    """The pod's side: bytes it will send (None: EOF) and what it received."""

    def __init__(self) -> None:
        self.outgoing: queue.Queue[bytes | None] = queue.Queue()
        self.received = bytearray()
        self.write_closed = threading.Event()
        self.closed = threading.Event()

    def recv(self, size: int) -> bytes:
        data = self.outgoing.get()
        if data is None:
            return b""
        assert len(data) <= size
        return data

    def sendall(self, data: bytes) -> None:
        self.received += data

    def shutdown_write(self) -> None:
        self.write_closed.set()

    def close(self) -> None:
        self.closed.set()
        self.outgoing.put(None)


class Sink:
    def __init__(self) -> None:
        self.chunks: queue.Queue[LogChunk] = queue.Queue()

    def __call__(self, topic: str, payload: bytes) -> None:
        self.chunks.put(LogChunk.decode(payload, what="chunk"))

    def next(self) -> LogChunk:
        return self.chunks.get(timeout=5)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def req(**fields: Any) -> ApiRequest:
    return ApiRequest(verb=Verb.PORT_FORWARD, name="web", stream="s1", **fields)


def answers() -> tuple[list[EdgekubeError | None], threading.Event, Any]:
    got: list[EdgekubeError | None] = []
    event = threading.Event()

    def done(problem: EdgekubeError | None) -> None:
        got.append(problem)
        event.set()

    return got, event, done


def test_the_relay_sends_at_most_a_window_of_chunks_beyond_the_last_acknowledged() -> None:
    conn, sink, clock = FakeConn(), Sink(), Clock()
    relay = Relay(conn, "t", "s1", sink, clock=clock, sleep=clock.sleep)
    for i in range(PF_WINDOW_CHUNKS + 3):
        conn.outgoing.put(bytes([i]))
    first = [sink.next() for _ in range(PF_WINDOW_CHUNKS)]
    assert [c.seq for c in first] == list(range(1, PF_WINDOW_CHUNKS + 1))
    with pytest.raises(queue.Empty):
        sink.chunks.get(timeout=0.3)  # the window is full: nothing more until an ack
    relay.feed(req(received=2), lambda _p: None)
    more = [sink.next(), sink.next()]
    assert [base64.b64decode(c.text) for c in more] == [bytes([PF_WINDOW_CHUNKS]), bytes([PF_WINDOW_CHUNKS + 1])]
    with pytest.raises(queue.Empty):
        sink.chunks.get(timeout=0.3)
    relay.close("test over")


def test_the_relay_waits_out_what_ran_ahead_of_the_rate_cap() -> None:
    conn, sink, clock = FakeConn(), Sink(), Clock()
    relay = Relay(conn, "t", "s1", sink, clock=clock, sleep=clock.sleep, rate=PF_CHUNK_BYTES)  # one chunk a second
    for _ in range(3):
        conn.outgoing.put(b"x" * PF_CHUNK_BYTES)
    for _ in range(3):
        sink.next()
    relay.close("test over")
    assert clock.slept[:3] == [1.0, 1.0, 1.0]


def test_client_bytes_are_written_in_order_a_duplicate_dropped_and_each_answered_once_written() -> None:
    conn, sink, clock = FakeConn(), Sink(), Clock()
    relay = Relay(conn, "t", "s1", sink, clock=clock, sleep=clock.sleep)
    got, event, done = answers()
    relay.feed(req(stdin=base64.b64encode(b"hello ").decode(), ack=1), done)
    assert event.wait(5)
    event.clear()
    relay.feed(req(stdin=base64.b64encode(b"hello ").decode(), ack=1), done)  # delivered twice
    relay.feed(req(stdin=base64.b64encode(b"world").decode(), ack=2), done)
    assert event.wait(5)
    while len(got) < 3:
        event.clear()
        event.wait(5)
    assert bytes(conn.received) == b"hello world"
    assert got == [None, None, None]
    relay.close("test over")


def test_a_request_carrying_more_than_the_send_cap_is_refused_and_nothing_written() -> None:
    conn, sink, clock = FakeConn(), Sink(), Clock()
    relay = Relay(conn, "t", "s1", sink, clock=clock, sleep=clock.sleep)
    got, event, done = answers()
    relay.feed(req(stdin=base64.b64encode(b"x" * (PF_SEND_BYTES + 1)).decode(), ack=1), done)
    assert event.wait(5)
    assert [str(p) for p in got] == [f"port-forward: a request carries at most {PF_SEND_BYTES} bytes"]
    assert conn.received == b""
    relay.close("test over")


def test_eof_either_way_half_closes_and_both_end_the_relay() -> None:
    conn, sink, clock = FakeConn(), Sink(), Clock()
    relay = Relay(conn, "t", "s1", sink, clock=clock, sleep=clock.sleep)
    conn.outgoing.put(b"reply")
    conn.outgoing.put(None)  # the pod closed its side
    assert base64.b64decode(sink.next().text) == b"reply"
    last = sink.next()
    assert (last.end, last.reason) == (True, "eof")
    assert not relay.ended.is_set()  # the client may still send
    got, event, done = answers()
    relay.feed(req(stdin=base64.b64encode(b"late").decode(), ack=1), done)
    assert event.wait(5) and got == [None]
    event.clear()
    relay.feed(req(eof=True, ack=2), done)
    assert event.wait(5)
    assert conn.write_closed.is_set() and bytes(conn.received) == b"late"
    assert relay.ended.wait(5) and conn.closed.is_set()


def test_relays_close_a_connection_whose_pod_left_the_node_with_the_reason() -> None:
    sink, clock = Sink(), Clock()
    conns: list[FakeConn] = []

    def dial(host: str, port: int) -> FakeConn:
        assert (host, port) == ("10.88.0.5", 8080)
        conns.append(FakeConn())
        return conns[-1]

    relays = Relays(sink, clock, clock.sleep, dial)
    assert relays.handle(req(port=8080), "uid-1", "10.88.0.5", "t1", lambda _p: None) is True
    relays.keep({"uid-2"})
    last = sink.next()
    assert (last.end, last.reason) == (True, "the pod is gone from the node")
    assert conns[0].closed.is_set()
    with pytest.raises(EdgekubeError, match="this connection has ended"):
        relays.handle(req(stdin="eA==", ack=1), "uid-1", "10.88.0.5", "t1", lambda _p: None)


def test_relays_refuse_more_than_the_sessions_a_node_serves() -> None:
    sink, clock = Sink(), Clock()
    relays = Relays(sink, clock, clock.sleep, lambda _h, _p: FakeConn())
    for i in range(PF_MAX_SESSIONS):
        relays.handle(req(port=80), "u", "10.0.0.1", f"t{i}", lambda _p: None)
    with pytest.raises(EdgekubeError, match=f"at most {PF_MAX_SESSIONS} connections"):
        relays.handle(req(port=80), "u", "10.0.0.1", "one-more", lambda _p: None)
    relays.close_all()


def test_a_relay_whose_client_went_quiet_past_the_lease_is_closed() -> None:
    sink, clock = Sink(), Clock()
    relays = Relays(sink, clock, clock.sleep, lambda _h, _p: FakeConn())
    relays.handle(req(port=80), "u", "10.0.0.1", "t1", lambda _p: None)
    clock.now += 31
    relays.keep({"u"})
    last = sink.next()
    assert (last.end, last.reason) == (True, "the client sent nothing for a while")


def test_a_relay_whose_client_went_quiet_closes_by_itself_once_with_the_reason() -> None:
    conn, sink, clock = FakeConn(), Sink(), Clock()
    relay = Relay(conn, "t", "s1", sink, clock=clock, sleep=clock.sleep)
    clock.now += 31  # nobody calls the relay: its own watchdog sees the lease run out
    last = sink.next()
    assert (last.seq, last.end, last.reason) == (1, True, "the client sent nothing for a while")
    assert relay.ended.wait(5) and conn.closed.is_set()
    with pytest.raises(queue.Empty):
        sink.chunks.get(timeout=0.3)  # the pump, woken by the close, sends nothing after the last chunk


def test_port_specs_like_kubectl() -> None:
    assert parse_ports(["8080", "9000:80", ":81", "7000:http"]) == [
        PortSpec(8080, "8080"), PortSpec(9000, "80"), PortSpec(0, "81"), PortSpec(7000, "http")
    ]  # fmt: skip
    with pytest.raises(ValidationError, match="local port 'x': must be a number"):
        parse_ports(["x:80"])
    with pytest.raises(ValidationError, match="remote port '70000'"):
        parse_ports(["70000"])
    with pytest.raises(ValidationError, match="named remote port needs a LOCAL"):
        parse_ports(["http"])


POD = {
    "metadata": {"name": "web"},
    "spec": {"containers": [{"name": "c", "ports": [{"name": "http", "containerPort": 8080}]}]},
}


def test_named_ports_resolve_from_the_containers() -> None:
    assert container_port(POD, "http") == 8080
    assert container_port(POD, "81") == 81
    with pytest.raises(ValidationError, match="pod web has no container port named 'grpc'"):
        container_port(POD, "grpc")


def test_a_service_leads_to_a_ready_endpoint_pod_and_its_target_port() -> None:
    svc = {"metadata": {"name": "web"}, "spec": {"ports": [{"name": "web", "port": 80, "targetPort": "http"}]}}
    ep = {"subsets": [{"addresses": [{"ip": "10.1.0.4", "targetRef": {"kind": "Pod", "name": "web-1"}}]}]}
    assert service_target(svc, ep, "80") == ("web-1", "http")
    assert service_target(svc, ep, "web") == ("web-1", "http")
    with pytest.raises(ValidationError, match="does not have a service port 443"):
        service_target(svc, ep, "443")
    with pytest.raises(EdgekubeError, match="service web has no ready endpoint pod"):
        service_target(svc, {"subsets": [{"notReadyAddresses": [{"ip": "10.1.0.5"}]}]}, "80")


def test_chunks_are_taken_in_order_and_acknowledged_every_half_window() -> None:
    down = Downstream()

    def chunk(seq: int) -> LogChunk:
        return LogChunk(stream="s", seq=seq, text="")

    assert down.take(chunk(2)) == []
    assert [c.seq for c in down.take(chunk(1))] == [1, 2]
    assert down.take(chunk(1)) == []  # delivered twice
    assert not down.ack_due()
    down.take(chunk(3)), down.take(chunk(4))
    assert down.ack_due() == (PF_WINDOW_CHUNKS // 2 <= 4)


def test_a_viewer_cannot_port_forward_the_verb_is_not_served_on_the_read_only_topic() -> None:
    assert Verb.PORT_FORWARD not in READ_VERBS  # ekctl sends it on api/request, which a viewer may not write
