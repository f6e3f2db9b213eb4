"""The fleet CA (`edgekube ca`) and the ACL generator: files, modes, certificate contents, revocation, the ACL text."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgekube.main import main
from edgekube.model.errors import ConflictError, EdgekubeError, NotFoundError, ValidationError
from edgekube.security.acl import render
from edgekube.security.ca import CertificateAuthority, Identity, Role


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    authority = CertificateAuthority(tmp_path / "ca")
    assert authority.init()
    return authority


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def crl_serials(ca: CertificateAuthority) -> set[int]:
    return {r.serial_number for r in x509.load_pem_x509_crl(ca.crl_path.read_bytes())}


def test_init_writes_the_ca_with_a_private_key_only_the_owner_can_read(ca: CertificateAuthority) -> None:
    assert mode(ca.key_path) == 0o600
    assert mode(ca.dir) & 0o077 == 0
    root = cert(ca.cert_path)
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert json.loads(ca.index_path.read_text()) == {"identities": []}
    assert list(x509.load_pem_x509_crl(ca.crl_path.read_bytes())) == []


def test_init_twice_changes_nothing(ca: CertificateAuthority, capsys: pytest.CaptureFixture[str]) -> None:
    before = {p.name: p.read_bytes() for p in ca.dir.iterdir() if p.is_file()}
    assert main(["ca", "init", "--dir", str(ca.dir)]) == 0
    assert "already initialised" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in ca.dir.iterdir() if p.is_file()} == before


def test_a_node_certificate_names_the_node_and_its_role_for_client_auth(ca: CertificateAuthority) -> None:
    issued = ca.issue("node-1", Role.NODE)
    assert issued.cert == ca.issued_dir / "node-1.crt"
    assert mode(issued.key) == 0o600
    leaf = cert(issued.cert)
    leaf.verify_directly_issued_by(cert(ca.cert_path))
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "node-1"
    assert leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == "node"
    assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH
    ]
    assert [(i.name, i.role, i.serial, i.revoked) for i in ca.identities()] == [
        ("node-1", "node", f"{leaf.serial_number:x}", False)
    ]


def test_the_broker_certificate_carries_its_names_for_server_auth(ca: CertificateAuthority, tmp_path: Path) -> None:
    issued = ca.issue("broker", Role.BROKER, sans=["127.0.0.1", "mqtt.local"], out=tmp_path / "out")
    assert issued.key == tmp_path / "out" / "broker.key"
    leaf = cert(issued.cert)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["broker", "mqtt.local"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]


def test_issuing_a_name_again_is_refused_unless_forced_and_forcing_revokes_the_old(ca: CertificateAuthority) -> None:
    first = ca.issue("node-1", Role.NODE)
    with pytest.raises(ConflictError, match="already has a node certificate"):
        ca.issue("node-1", Role.NODE)
    second = ca.issue("node-1", Role.NODE, force=True)
    assert crl_serials(ca) == {int(first.identity.serial, 16)}
    assert [(i.serial, i.revoked) for i in ca.identities()] == [
        (first.identity.serial, True),
        (second.identity.serial, False),
    ]


def test_a_name_is_unique_across_roles(ca: CertificateAuthority) -> None:
    ca.issue("node-1", Role.NODE)
    with pytest.raises(ConflictError, match="names are unique across roles") as info:
        ca.issue("node-1", Role.ADMIN, force=True)
    assert "edgekube ca revoke node-1" in info.value.hint


def test_node_names_must_be_dns1123_subdomains(ca: CertificateAuthority) -> None:
    with pytest.raises(ValidationError, match="RFC 1123 subdomain"):
        ca.issue("Node_1", Role.NODE)
    with pytest.raises(ValidationError, match="RFC 1123 subdomain"):
        ca.issue("node/+", Role.NODE)


def test_only_the_broker_takes_names(ca: CertificateAuthority) -> None:
    with pytest.raises(ValidationError, match="only the broker"):
        ca.issue("node-1", Role.NODE, sans=["127.0.0.1"])


def test_revoking_puts_the_serial_on_the_crl(ca: CertificateAuthority) -> None:
    keep = ca.issue("node-1", Role.NODE).identity
    gone = ca.issue("node-2", Role.NODE).identity
    ca.revoke("node-2")
    assert crl_serials(ca) == {int(gone.serial, 16)}
    assert [i.name for i in ca.active()] == [keep.name]
    with pytest.raises(NotFoundError, match="already revoked"):
        ca.revoke("node-2")
    with pytest.raises(NotFoundError, match="no certificate issued"):
        ca.revoke("node-9")


def test_crl_refresh_moves_the_next_update(ca: CertificateAuthority) -> None:
    ca.refresh_crl(days=2)
    crl = x509.load_pem_x509_crl(ca.crl_path.read_bytes())
    assert crl.next_update_utc is not None
    assert crl.next_update_utc - datetime.now(UTC) < timedelta(days=2)
    assert crl.is_signature_valid(cert(ca.cert_path).public_key())  # type: ignore[arg-type]


def test_commands_on_a_directory_without_a_ca_say_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(EdgekubeError, match="no certificate authority here") as info:
        CertificateAuthority(tmp_path).issue("node-1", Role.NODE)
    assert "edgekube ca init" in info.value.hint


def test_cli_issue_of_a_taken_name_prints_one_error_and_a_hint(
    ca: CertificateAuthority, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ca", "issue", "node-1", "--role", "node", "--dir", str(ca.dir)]) == 0
    capsys.readouterr()
    assert main(["ca", "issue", "node-1", "--role", "node", "--dir", str(ca.dir)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: 'node-1' already has a node certificate")
    assert err[1].startswith("hint: ")


def test_cli_list_shows_every_identity_and_its_status(
    ca: CertificateAuthority, capsys: pytest.CaptureFixture[str]
) -> None:
    ca.issue("node-1", Role.NODE)
    ca.issue("alice", Role.VIEWER)
    ca.revoke("node-1")
    assert main(["ca", "list", "--dir", str(ca.dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "ROLE", "SERIAL", "NOT-AFTER", "STATUS"]
    assert [(line.split()[0], line.split()[1], line.split()[4]) for line in lines[1:]] == [
        ("node-1", "node", "revoked"),
        ("alice", "viewer", "valid"),
    ]


# -- ACL ------------------------------------------------------------------------------------------------


def ident(name: str, role: Role, *, revoked: bool = False) -> Identity:
    return Identity(name=name, role=role.value, serial="1", not_after="2030-01-01T00:00:00Z", revoked=revoked)


def blocks(text: str) -> dict[str, list[str]]:
    """user -> its topic lines; '*' -> the pattern lines."""
    out: dict[str, list[str]] = {"*": []}
    user = "*"
    for line in text.splitlines():
        if line.startswith("user "):
            user = line.split()[1]
            out[user] = []
        elif line.startswith(("topic ", "pattern ")):
            out[user if line.startswith("topic ") else "*"].append(line)
    return out


def test_acl_confines_a_node_to_its_own_topics() -> None:
    acl = blocks(render([ident("node-1", Role.NODE), ident("node-2", Role.NODE)]))
    assert acl["node-1"] == [
        "topic read edgekube/v1/nodes/node-1/desired",
        "topic read edgekube/v1/nodes/node-1/rpc",
        "topic write edgekube/v1/nodes/node-1/status",
        "topic write edgekube/v1/nodes/node-1/heartbeat",
        "topic write edgekube/v1/nodes/node-1/online",
        "topic write edgekube/v1/nodes/node-1/events",
        "topic write edgekube/v1/nodes/node-1/metrics",
        "topic write edgekube/v1/nodes/node-1/witness",
        "topic read edgekube/v1/master/online",
        "topic read edgekube/v1/masters/+/online",
        "topic read edgekube/v1/routes",
        "topic read edgekube/v1/services",
        "topic write edgekube/v1/clients/+/reply",
        "topic write edgekube/v1/clients/+/streams/#",
    ]
    assert all("node-1" not in line for line in acl["node-2"])


def test_acl_has_no_pattern_but_each_clients_own_reply_topic() -> None:
    acl = blocks(render([ident("node-1", Role.NODE)]))
    assert acl["*"] == ["pattern read edgekube/v1/clients/%c/reply", "pattern read edgekube/v1/clients/%c/streams/#"]


def test_acl_lets_a_viewer_send_only_read_requests_and_an_admin_writes() -> None:
    acl = blocks(render([ident("ada", Role.ADMIN), ident("vic", Role.VIEWER), ident("edgekube-master", Role.MASTER)]))
    assert [line for line in acl["vic"] if " write " in line] == ["topic write edgekube/v1/api/read"]
    assert {"topic write edgekube/v1/api/request", "topic write edgekube/v1/apply"} <= set(acl["ada"])
    assert acl["edgekube-master"] == ["topic readwrite edgekube/v1/#"]


def test_acl_leaves_out_the_broker_and_revoked_identities(ca: CertificateAuthority) -> None:
    ca.issue("broker", Role.BROKER, sans=["127.0.0.1"])
    ca.issue("node-1", Role.NODE)
    ca.issue("node-2", Role.NODE)
    ca.revoke("node-2")
    assert sorted(blocks(render(ca.active()))) == ["*", "node-1"]
