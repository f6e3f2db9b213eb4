"""The nftables proxy's sync on a fake firewall: partial transactions, and when a full one comes instead."""

from __future__ import annotations

from edgekube.agent.network.nftsync import NftSync
from edgekube.model.errors import RuntimeFailure
from edgekube.model.netstate import EndpointEntry, ServiceEntry, ServicePortEntry, ServiceTable
from tests.support.netfakes import FakeFirewall


class RefusingFirewall(FakeFirewall):
    """Refuses the next load (a transaction the kernel would not take), then loads again."""

    refuse = False

    def load(self, text: str) -> None:
        if self.refuse:
            self.refuse = False
            raise RuntimeFailure("nft -f -: Error: Could not process rule", reason="ProxyRulesError")
        super().load(text)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _svc(name: str, *ips: str) -> ServiceEntry:
    return ServiceEntry(namespace="default", name=name, cluster_ip=f"10.43.0.{len(name) + 10}",
                        ports=[ServicePortEntry(port=80)],
                        endpoints=[EndpointEntry(ip=ip, ports={"": 8080}) for ip in ips])  # fmt: skip


def _table(web: tuple[str, ...], api: tuple[str, ...] = ("10.42.2.7",)) -> ServiceTable:
    return ServiceTable(services=[_svc("web", *web), _svc("apiserver", *api)])


def test_the_first_table_is_one_full_transaction_then_a_change_writes_only_the_changed_service() -> None:
    firewall, clock = FakeFirewall(), Clock()
    sync = NftSync(firewall, clock=clock)
    sync.sync(_table(("10.42.1.5", "10.42.1.6")), "10.42.0.0/24")
    assert "add chain ip edgekube endpoint-default/apiserver/tcp/80/10.42.2.7/8080" in firewall.loaded[0]
    sync.sync(_table(("10.42.1.5",)), "10.42.0.0/24")
    partial = firewall.loaded[1]
    assert "default/apiserver" not in partial.replace("goto service-default/apiserver", "")
    assert "add rule ip edgekube service-default/web/tcp/80 goto endpoint-default/web/tcp/80/10.42.1.5/8080" in partial
    assert partial.endswith("delete chain ip edgekube endpoint-default/web/tcp/80/10.42.1.6/8080\n")
    assert (sync.full_loads, sync.partial_loads) == (1, 1)


def test_nothing_is_loaded_while_the_table_and_the_pod_cidr_are_what_was_loaded() -> None:
    firewall = FakeFirewall()
    sync = NftSync(firewall, clock=Clock())
    sync.sync(_table(("10.42.1.5",)), "10.42.0.0/24")
    sync.sync(_table(("10.42.1.5",)), "10.42.0.0/24")  # equal, though another object (a new message)
    assert len(firewall.loaded) == 1


def test_a_new_pod_cidr_a_refused_load_and_the_full_resync_period_each_bring_a_full_transaction() -> None:
    firewall, clock = RefusingFirewall(), Clock()
    sync = NftSync(firewall, full_resync=3600.0, clock=clock)
    table = _table(("10.42.1.5",))
    sync.sync(table, "")
    sync.sync(table, "10.42.0.0/24")  # the hairpin rule names the CIDR: every chain is written again
    assert "add chain ip edgekube endpoint-default/apiserver/tcp/80/10.42.2.7/8080" in firewall.loaded[-1]
    firewall.refuse = True
    assert sync.sync(_table(("10.42.1.6",)), "10.42.0.0/24") == ["nft -f -: Error: Could not process rule"]
    firewall.objects = {("chain", "listed-after-the-refusal")}
    sync.sync(_table(("10.42.1.6",)), "10.42.0.0/24")
    assert "add chain ip edgekube endpoint-default/apiserver/tcp/80/10.42.2.7/8080" in firewall.loaded[-1]
    assert firewall.loaded[-1].endswith("delete chain ip edgekube listed-after-the-refusal\n")
    loads = len(firewall.loaded)
    clock.now = 3599.0
    sync.sync(_table(("10.42.1.6",)), "10.42.0.0/24")
    assert len(firewall.loaded) == loads
    clock.now = 3600.0 + 1  # nothing changed, but a full transaction is due: it repairs what someone else touched
    sync.sync(_table(("10.42.1.6",)), "10.42.0.0/24")
    assert "add chain ip edgekube endpoint-default/apiserver/tcp/80/10.42.2.7/8080" in firewall.loaded[-1]
    assert (sync.full_loads, sync.partial_loads) == (4, 0)
