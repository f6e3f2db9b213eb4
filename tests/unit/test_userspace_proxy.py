"""The userspace node proxy's plan (ServiceTable → addresses and listeners), its apply on fakes, and the mode choice."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edgekube.agent import wiring
from edgekube.agent.app import AgentConfig
from edgekube.agent.network.netagent import NetworkAgent
from edgekube.agent.network.proxymode import choose
from edgekube.agent.network.relay import _Port
from edgekube.agent.network.userspace import (
    ANY,
    AddAddress,
    Close,
    Frontend,
    Listen,
    RemoveAddress,
    Retarget,
    Target,
    UserspaceProxy,
    Wanted,
    desired,
    plan,
)
from edgekube.bus import topics
from edgekube.bus.protocol import Message
from edgekube.model.errors import RuntimeFailure, ValidationError
from edgekube.model.netstate import EndpointEntry, ServiceEntry, ServicePortEntry, ServiceTable
from tests.support.netfakes import FakeAddresses, FakeFirewall, FakeNetworkRuntime, FakeRoutes

B, C = ("10.42.1.5", 8080), ("10.42.2.7", 8080)


def _web(*, ips: tuple[str, ...] = (B[0], C[0]), **spec: object) -> ServiceEntry:
    fields: dict[str, object] = {
        "namespace": "default", "name": "web", "cluster_ip": "10.43.0.10",
        "ports": [ServicePortEntry(name="http", port=80, node_port=30080)],
        "endpoints": [EndpointEntry(ip=ip, ports={"http": 8080}) for ip in ips],
    }  # fmt: skip
    fields.update(spec)
    return ServiceEntry.model_validate(fields)


def _table(*services: ServiceEntry) -> ServiceTable:
    return ServiceTable(services=list(services))


class RecordingListeners:
    """Listeners in memory; `refuse` are frontends whose bind fails (the port is taken)."""

    def __init__(self, refuse: set[Frontend] | None = None) -> None:
        self.open: dict[Frontend, Target] = {}
        self.refuse = refuse or set()

    def targets(self) -> dict[Frontend, Target]:
        return dict(self.open)

    def listen(self, frontend: Frontend, target: Target) -> None:
        if frontend in self.refuse:
            raise RuntimeFailure(f"{target.service}: cannot listen on {frontend}: address already in use")
        self.open[frontend] = target

    def retarget(self, frontend: Frontend, target: Target) -> None:
        self.open[frontend] = target

    def close(self, frontend: Frontend) -> None:
        del self.open[frontend]


# -- desired ------------------------------------------------------------------------------------------------------
def test_a_cluster_ip_service_listens_on_its_address_with_its_ready_endpoints_sorted() -> None:
    svc = _web(ips=(C[0], B[0], "10.42.3.3"))
    svc.endpoints[2].ready = False
    wanted = desired(_table(svc))
    assert wanted.addresses == {"10.43.0.10"}
    assert wanted.frontends == {Frontend("10.43.0.10", 80): Target("default/web:http", (B, C))}


def test_a_node_port_service_also_listens_on_every_address_at_its_node_port() -> None:
    wanted = desired(_table(_web(type="NodePort")))
    assert wanted.frontends[Frontend(ANY, 30080)] == wanted.frontends[Frontend("10.43.0.10", 80)]


def test_client_ip_affinity_carries_the_services_timeout() -> None:
    wanted = desired(_table(_web(session_affinity="ClientIP", affinity_timeout_seconds=60)))
    assert wanted.frontends[Frontend("10.43.0.10", 80)].affinity_seconds == 60


def test_a_port_without_ready_endpoints_keeps_its_address_but_has_no_listener() -> None:
    wanted = desired(_table(_web(ips=())))
    assert wanted.addresses == {"10.43.0.10"}
    assert wanted.frontends == {}


def test_an_endpoint_without_the_named_target_port_is_left_out_of_that_port() -> None:
    svc = _web()
    svc.endpoints[1].ports = {"metrics": 9100}
    assert desired(_table(svc)).frontends[Frontend("10.43.0.10", 80)].backends == (B,)


def test_headless_services_get_nothing_and_udp_ports_are_listed_as_unsupported() -> None:
    headless = _web(name="db", cluster_ip="")
    dns = _web(name="dns", cluster_ip="10.43.0.53", ports=[ServicePortEntry(name="http", protocol="UDP", port=53)])
    wanted = desired(_table(headless, dns))
    assert wanted == Wanted(unsupported=["default/dns port 53/UDP"])


# -- plan ---------------------------------------------------------------------------------------------------------
def test_from_nothing_the_address_comes_before_its_listeners() -> None:
    wanted = desired(_table(_web(type="NodePort")))
    target = wanted.frontends[Frontend(ANY, 30080)]
    assert plan(wanted, {}, set()) == [
        AddAddress("10.43.0.10"),
        Listen(Frontend(ANY, 30080), target),
        Listen(Frontend("10.43.0.10", 80), target),
    ]


def test_nothing_to_do_when_the_listeners_and_addresses_match() -> None:
    wanted = desired(_table(_web()))
    assert plan(wanted, dict(wanted.frontends), {"10.43.0.10"}) == []


def test_new_endpoints_retarget_the_listener_instead_of_reopening_it() -> None:
    before = desired(_table(_web()))
    after = desired(_table(_web(ips=(C[0],))))
    assert plan(after, dict(before.frontends), {"10.43.0.10"}) == [
        Retarget(Frontend("10.43.0.10", 80), Target("default/web:http", (C,)))
    ]


def test_a_service_gone_closes_its_listeners_before_its_address_goes() -> None:
    before = desired(_table(_web(type="NodePort")))
    assert plan(Wanted(), dict(before.frontends), {"10.43.0.10"}) == [
        Close(Frontend(ANY, 30080)),
        Close(Frontend("10.43.0.10", 80)),
        RemoveAddress("10.43.0.10"),
    ]


def test_the_last_endpoint_leaving_closes_the_listener_and_keeps_the_address() -> None:
    before = desired(_table(_web()))
    assert plan(desired(_table(_web(ips=()))), dict(before.frontends), {"10.43.0.10"}) == [
        Close(Frontend("10.43.0.10", 80))
    ]


# -- apply --------------------------------------------------------------------------------------------------------
def test_a_failed_bind_is_one_failure_line_naming_the_service_and_port_and_the_rest_is_applied() -> None:
    addresses, listeners = FakeAddresses(), RecordingListeners(refuse={Frontend(ANY, 30080)})
    proxy = UserspaceProxy(addresses, listeners)
    failures = proxy.sync(_table(_web(type="NodePort")))
    assert failures == ["userspace proxy: default/web:http: cannot listen on 0.0.0.0:30080: address already in use"]
    assert addresses.list() == {"10.43.0.10"}
    assert set(listeners.open) == {Frontend("10.43.0.10", 80)}
    listeners.refuse.clear()
    assert proxy.sync(_table(_web(type="NodePort"))) == []  # tried again on the next pass
    assert set(listeners.open) == {Frontend("10.43.0.10", 80), Frontend(ANY, 30080)}


def test_an_unsupported_udp_port_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    proxy = UserspaceProxy(FakeAddresses(), RecordingListeners())
    dns = _web(name="dns", cluster_ip="10.43.0.53", ports=[ServicePortEntry(name="http", protocol="UDP", port=53)])
    with caplog.at_level(logging.WARNING):
        proxy.sync(_table(dns))
        proxy.sync(_table(dns))
    lines = [r.getMessage() for r in caplog.records if "not proxied" in r.getMessage()]
    assert lines == ["userspace proxy: default/dns port 53/UDP not proxied: only TCP is supported in userspace mode"]


def test_in_userspace_mode_the_network_loop_hands_the_table_to_the_proxy_and_never_loads_nftables() -> None:
    addresses, listeners, firewall = FakeAddresses(), RecordingListeners(), FakeFirewall()
    proxy = UserspaceProxy(addresses, listeners)
    agent = NetworkAgent("a", FakeNetworkRuntime(), FakeRoutes(), firewall, dns=False, userspace=proxy)
    agent._on_services(Message(topics.SERVICES, _table(_web()).encode(), retain=True))
    agent.sync()
    assert firewall.loaded == []
    assert addresses.list() == {"10.43.0.10"}
    assert set(listeners.open) == {Frontend("10.43.0.10", 80)}


# -- endpoint choice ----------------------------------------------------------------------------------------------
def test_connections_take_the_endpoints_in_turn() -> None:
    port = _Port(Target("default/web:http", (B, C)))
    assert [next(port.candidates("10.42.0.9", 0.0)) for _ in range(4)] == [B, C, B, C]
    assert list(port.candidates("10.42.0.9", 0.0)) == [B, C]  # the rest follow, should the first not answer


def test_client_ip_affinity_keeps_a_client_on_its_endpoint_until_the_timeout() -> None:
    port = _Port(Target("default/web:http", (B, C), affinity_seconds=60))
    port.remember("10.42.0.9", C, now=0.0)
    assert [next(port.candidates("10.42.0.9", t)) for t in (1.0, 2.0, 3.0)] == [C, C, C]
    assert next(port.candidates("10.42.0.8", 3.0)) in (B, C)  # another client: round robin
    assert {next(port.candidates("10.42.0.9", 61.0)) for _ in range(2)} == {B, C}  # expired: round robin


def test_an_affinity_to_an_endpoint_that_left_is_not_honoured() -> None:
    port = _Port(Target("default/web:http", (B, C), affinity_seconds=60))
    port.remember("10.42.0.9", C, now=0.0)
    port.target = Target("default/web:http", (B,), affinity_seconds=60)
    assert list(port.candidates("10.42.0.9", 1.0)) == [B]


# -- mode ---------------------------------------------------------------------------------------------------------
def _no_probe() -> str:
    raise AssertionError("nft asked though the mode was set")


def test_a_set_mode_is_used_without_asking_nft() -> None:
    assert choose("nftables", _no_probe) == ("nftables", "proxy_mode nftables")
    assert choose("userspace", _no_probe) == ("userspace", "proxy_mode userspace")


def test_auto_is_nftables_when_nft_loads_the_probe_else_userspace_with_the_reason() -> None:
    assert choose("auto", lambda: "")[0] == "nftables"
    mode, why = choose("auto", lambda: "nft: No such file or directory")
    assert (mode, why) == ("userspace", "proxy_mode auto: nftables unusable (nft: No such file or directory)")


def test_auto_falls_back_to_userspace_on_a_node_without_nft_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no nft on it
    config = AgentConfig(node_name="n1", state_dir=tmp_path, pod_network=True)
    with caplog.at_level(logging.INFO):
        assert wiring.proxy_mode(config) == "userspace"
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("node proxy:")]
    assert len(lines) == 1
    assert lines[0].startswith("node proxy: userspace (proxy_mode auto: nftables unusable (nft: [Errno 2] ")


def test_an_unknown_proxy_mode_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"^proxy_mode: Unsupported value: 'ipvs': supported values: auto, "):
        AgentConfig(node_name="n1", state_dir=tmp_path, proxy_mode="ipvs")
