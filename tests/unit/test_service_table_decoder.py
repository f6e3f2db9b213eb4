"""ServiceTableDecoder: an agent's successive tables, validating only the Services that changed, same errors."""

from __future__ import annotations

import pytest

from edgekube.model.errors import ValidationError
from edgekube.model.netstate import EndpointEntry, ServiceEntry, ServicePortEntry, ServiceTable, ServiceTableDecoder


def _table(generation: int, web_ip: str) -> ServiceTable:
    def svc(name: str, ip: str) -> ServiceEntry:
        return ServiceEntry(namespace="default", name=name, cluster_ip=f"10.43.0.{len(name)}",
                            ports=[ServicePortEntry(name="http", port=80)],
                            endpoints=[EndpointEntry(ip=ip, ports={"http": 8080})])  # fmt: skip

    return ServiceTable(generation=generation, services=[svc("web", web_ip), svc("api", "10.42.2.7")])


def test_it_decodes_as_decode_does_and_keeps_the_entries_of_unchanged_services() -> None:
    decoder = ServiceTableDecoder()
    first = decoder.decode(_table(1, "10.42.1.5").encode())
    second = decoder.decode(_table(2, "10.42.1.6").encode())
    assert first == _table(1, "10.42.1.5")
    assert second == ServiceTable.decode(_table(2, "10.42.1.6").encode())
    assert second.services[1] is first.services[1]  # api: the same JSON, not validated again
    assert second.services[0] is not first.services[0]


def test_a_bad_table_gets_decodes_error_naming_the_field_and_the_next_good_one_decodes() -> None:
    decoder = ServiceTableDecoder()
    decoder.decode(_table(1, "10.42.1.5").encode())
    bad = _table(2, "10.42.1.5").encode().replace(b'"10.42.1.5"', b'"10.42.1.500"')
    with pytest.raises(ValidationError) as caught:
        decoder.decode(bad)
    with pytest.raises(ValidationError) as whole:
        ServiceTable.decode(bad)
    assert str(caught.value) == str(whole.value)
    assert "services[0].endpoints[0].ip" in str(caught.value)
    with pytest.raises(ValidationError, match="schema"):
        decoder.decode(b'{"generation": 3, "services": []}')
    assert decoder.decode(_table(4, "10.42.1.6").encode()).generation == 4
