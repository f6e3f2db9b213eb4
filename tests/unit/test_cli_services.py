"""ekctl's Service and Endpoints columns: kubectl's makePortString, formatEndpoints and printEndpointSlice."""

from __future__ import annotations

from edgekube.cli.services import endpoints_text, ports_text, service_row, slice_row


def test_ports_show_node_ports_and_protocols_joined_by_commas() -> None:
    spec = {"ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}, {"port": 53, "protocol": "UDP"}]}
    assert ports_text(spec) == "80:30080/TCP,53/UDP"
    assert ports_text({}) == "<none>"


def test_a_headless_service_row_and_wide_selector() -> None:
    svc = {"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": []}}
    assert service_row(svc, wide=True)[:5] + service_row(svc, wide=True)[6:] == [
        "db", "ClusterIP", "None", "<none>", "<none>", "app=db"
    ]  # fmt: skip


def test_endpoints_show_three_ready_addresses_then_how_many_more() -> None:
    subset = {
        "addresses": [{"ip": f"10.42.0.{i}"} for i in range(2, 7)],
        "notReadyAddresses": [{"ip": "10.42.0.9"}],
        "ports": [{"port": 8080}],
    }
    assert endpoints_text({"subsets": [subset]}) == "10.42.0.2:8080,10.42.0.3:8080,10.42.0.4:8080 + 2 more..."
    assert endpoints_text({"subsets": []}) == "<none>"
    assert endpoints_text({"subsets": [{"addresses": [{"ip": "10.42.0.2"}]}]}) == "10.42.0.2"  # headless, no ports


def test_an_endpoint_slice_row_lists_every_endpoint() -> None:
    view = {
        "metadata": {"name": "web-0"},
        "addressType": "IPv4",
        "ports": [{"port": 8080}],
        "endpoints": [{"addresses": [f"10.42.0.{i}"]} for i in range(2, 6)],
    }
    assert slice_row(view, wide=False)[:4] == ["web-0", "IPv4", "8080", "10.42.0.2,10.42.0.3,10.42.0.4 + 1 more..."]
