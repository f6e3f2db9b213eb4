"""Security on the wire, on a real Mosquitto with TLS, client certificates, the generated ACL and the CRL.

Every refusal is asserted by what the other side receives: a subscriber allowed to see the topic gets a positive
control message sent after the forbidden one, by the same client, so the path is proven to work and the forbidden
message, had it passed, would have arrived first (Mosquitto keeps one client's messages in order).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekube.bus import topics
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.cli.client import BusSession, Client
from edgekube.cli.config import Connection
from edgekube.cli.kinds import NODE, POD
from edgekube.local.pki import LocalPki
from edgekube.master.app import Master
from edgekube.master.config import MasterConfig
from edgekube.master.wiring import build_master
from edgekube.model.errors import BusError, ValidationError
from edgekube.model.wire import ApiRequest, ApiResponse, Verb
from edgekube.security.ca import Role
from tests.support.secure import Inbox, RawClient, SecureBroker

pytestmark = pytest.mark.integration

MANIFEST = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: busybox}]}\n"


@pytest.fixture
def master(secure: SecureBroker, tmp_path: Path) -> Iterator[Master]:
    files = secure.tls("edgekube-master")
    config = MasterConfig(
        mqtt_port=secure.port,
        data_dir=tmp_path / "master",
        tls_ca=files.ca,
        tls_cert=files.cert,
        tls_key=files.key,
    )
    m = build_master(config).start(wait=10)
    yield m
    m.stop()


def client_as(secure: SecureBroker, name: str) -> Client:
    files = secure.tls(name)
    connection = Connection("127.0.0.1", secure.port, "test", files.ca, files.cert, files.key)
    return Client(BusSession(connection, timeout=3))


def test_a_node_cannot_publish_another_nodes_status_or_heartbeat(secure: SecureBroker) -> None:
    watcher = secure.connect("edgekube-master")
    inbox = Inbox(watcher, f"{topics.NODES}/+/status", f"{topics.NODES}/+/heartbeat")
    node1 = secure.connect("node-1")
    node1.publish(topics.node_status("node-2"), b"{}")
    node1.publish(topics.node_heartbeat("node-2"), b"{}")
    node1.publish(topics.node_status("node-1"), b"{}")  # the control: its own status passes
    assert inbox.until(topics.node_status("node-1")) == [topics.node_status("node-1")]


def test_a_node_cannot_read_another_nodes_desired_state(secure: SecureBroker) -> None:
    node1, node2 = secure.connect("node-1"), secure.connect("node-2")
    seen1 = Inbox(node1, f"{topics.NODES}/+/desired")
    seen2 = Inbox(node2, topics.node_desired("node-2"))
    master = secure.connect("edgekube-master")
    master.publish(topics.node_desired("node-2"), b"{}")
    master.publish(topics.node_desired("node-1"), b"{}")
    assert seen2.until(topics.node_desired("node-2")) == [topics.node_desired("node-2")]
    assert seen1.until(topics.node_desired("node-1")) == [topics.node_desired("node-1")]


def test_a_node_cannot_write_the_api_and_gets_no_answer(secure: SecureBroker, master: Master) -> None:
    watcher = secure.connect("edgekube-master", client_id="watcher")
    inbox = Inbox(watcher, topics.API_REQUEST, topics.API_READ, topics.APPLY, topics.node_status("node-1"))
    node1 = secure.connect("node-1")
    with pytest.raises(BusError, match="no answer"):
        node1.request(topics.API_REQUEST, ApiRequest(verb=Verb.APPLY, manifest=MANIFEST).encode(), timeout=1)
    node1.publish(topics.APPLY, MANIFEST.encode())
    node1.publish(topics.API_READ, ApiRequest(verb=Verb.LIST, kind="Pod").encode())
    node1.publish(topics.node_status("node-1"), b"{}")  # the control
    assert inbox.until(topics.node_status("node-1")) == [topics.node_status("node-1")]
    # An admin's request passes the same way, and the master answers it.
    admin = client_as(secure, "admin")
    try:
        assert admin.query(POD, None) == []
    finally:
        admin.close()
    assert inbox.until(topics.API_READ) == [topics.API_READ]


def test_a_viewer_can_list_but_not_apply(secure: SecureBroker, master: Master) -> None:
    viewer = client_as(secure, "vic")
    try:
        assert viewer.query(NODE, None) == []
        with pytest.raises(BusError, match="no answer on edgekube/v1/api/request"):
            viewer.apply(MANIFEST)  # the broker drops it: viewers may write only the read-only topic
    finally:
        viewer.close()
    bus = secure.connect("vic")
    # Sent to the read-only topic, a change is refused by the master itself.
    reply = bus.request(topics.API_READ, ApiRequest(verb=Verb.APPLY, manifest=MANIFEST).encode(), timeout=5)
    answer = ApiResponse.decode(reply.payload)
    assert answer.error is not None
    assert answer.error.reason == ValidationError.reason
    assert answer.error.message.startswith("verb 'apply' is not allowed on edgekube/v1/api/read")
    assert master.store.list("Pod") == []


def test_a_certificate_from_another_ca_cannot_connect(secure: SecureBroker, tmp_path: Path) -> None:
    stranger = LocalPki(tmp_path / "other").ensure({"node-1": Role.NODE}).files("node-1")
    config = BusConfig(port=secure.port, tls_ca=secure.tls("node-1").ca, tls_cert=stranger.cert, tls_key=stranger.key)
    with pytest.raises(BusError, match="closed the connection before accepting it") as info:
        PahoBus(config).start(wait=3)
    assert "certificate" in info.value.hint
    assert "unknown ca" in secure.broker.log_tail(40) or "certificate verify failed" in secure.broker.log_tail(40)


def test_a_revoked_certificate_cannot_connect_once_the_broker_reloads(secure: SecureBroker) -> None:
    secure.connect("node-1").close()  # the control: it connects before
    secure.pki.revoke("node-1")
    secure.connect("node-1").close()  # the broker reads the CRL at start and on SIGHUP only
    secure.reload()
    with pytest.raises(BusError, match="closed the connection before accepting it"):
        secure.connect("node-1", wait=3)
    secure.connect("node-2").close()  # others still connect


def test_a_revoked_node_still_connected_loses_its_topics_once_the_broker_reloads(secure: SecureBroker) -> None:
    watcher = secure.connect("edgekube-master")
    inbox = Inbox(watcher, f"{topics.NODES}/+/status")
    node1 = RawClient(secure, "node-1")
    try:
        assert node1.publish(topics.node_status("node-1")) == "Success"
        assert inbox.until(topics.node_status("node-1")) == [topics.node_status("node-1")]
        secure.pki.revoke("node-1")  # the CRL and the ACL are written again
        secure.reload()
        # TLS does not end a session already open, but the reloaded ACL no longer grants it anything.
        assert node1.publish(topics.node_status("node-1")) == "Not authorized"
    finally:
        node1.close()
    secure.connect("node-2").publish(topics.node_status("node-2"), b"{}")  # the control
    assert inbox.until(topics.node_status("node-2")) == [topics.node_status("node-2")]


def test_the_broker_answers_a_forbidden_publish_with_not_authorized(secure: SecureBroker) -> None:
    node1 = RawClient(secure, "node-1")
    try:
        assert node1.publish(topics.node_status("node-2")) == "Not authorized"
        assert node1.publish(topics.node_desired("node-1")) == "Not authorized"  # reading it is all a node may
        assert node1.publish(topics.API_REQUEST) == "Not authorized"
        assert node1.publish(topics.node_heartbeat("node-1")) in ("Success", "No matching subscribers")
    finally:
        node1.close()


def test_anonymous_clients_are_refused_on_the_tls_listener(secure: SecureBroker) -> None:
    no_cert = BusConfig(port=secure.port, tls_ca=secure.tls("node-1").ca)
    with pytest.raises(BusError, match="closed the connection before accepting it"):
        PahoBus(no_cert).start(wait=3)
    with pytest.raises(BusError, match="closed the connection before accepting it") as info:
        PahoBus(BusConfig(port=secure.port)).start(wait=3)  # plain MQTT on the TLS port
    assert "TLS" in info.value.hint


def test_a_key_readable_by_other_users_is_refused_before_connecting(secure: SecureBroker, tmp_path: Path) -> None:
    files = secure.tls("node-1")
    key = tmp_path / "node-1.key"
    shutil.copy(files.key, key)
    key.chmod(0o644)
    with pytest.raises(BusError, match="other users can read or write it") as info:
        PahoBus(BusConfig(port=secure.port, tls_ca=files.ca, tls_cert=files.cert, tls_key=str(key)))
    assert info.value.hint.startswith(f"chmod 600 {key}")


def test_generated_keys_are_private_and_the_ca_key_never_world_readable(secure: SecureBroker) -> None:
    ca = secure.pki.ca
    assert ca.key_path.stat().st_mode & 0o077 == 0
    for key in ca.issued_dir.glob("*.key"):
        assert key.stat().st_mode & 0o777 == 0o600, key


def test_no_key_material_reaches_the_logs(
    secure: SecureBroker, master: Master, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stranger = LocalPki(tmp_path / "other").ensure({"node-1": Role.NODE}).files("node-1")
    with pytest.raises(BusError):
        PahoBus(BusConfig(port=secure.port, tls_ca=stranger.ca, tls_cert=stranger.cert, tls_key=stranger.key)).start(
            wait=2
        )
    assert any("cannot connect" in r.getMessage() for r in caplog.records)  # failures were logged...
    secrets = [Path(secure.tls(n).key).read_text() for n in ("edgekube-master", "node-1")]
    secrets.append(Path(stranger.key).read_text())
    secrets.append(secure.pki.ca.key_path.read_text())
    body_lines = {line for text in secrets for line in text.splitlines() if "PRIVATE KEY" not in line}
    logged = caplog.text + secure.broker.log_tail(10_000)
    assert "PRIVATE KEY" not in logged  # ...with no key in them
    assert not [line for line in body_lines if line in logged]


def test_live_wire_messages_carry_the_identity_of_the_certificate(secure: SecureBroker) -> None:
    """The broker logs each client with its certificate's name as the username."""
    secure.connect("node-2", client_id="who-am-i").close()
    assert "as who-am-i" in secure.broker.log_tail(50)
    assert "u'node-2'" in secure.broker.log_tail(50)


def test_a_node_publishes_only_its_own_witness_and_reads_every_master_s_presence(secure: SecureBroker) -> None:
    """Two-master HA (docs/ha.md): a node's Witness counts towards a takeover, so no node may speak for another."""
    watcher = secure.connect("edgekube-master")
    witnesses = Inbox(watcher, topics.ALL_NODE_WITNESS)
    node1 = secure.connect("node-1")
    presences = Inbox(node1, topics.ALL_MASTERS_ONLINE)
    node1.publish(topics.node_witness("node-2"), b"{}")
    node1.publish(topics.node_witness("node-1"), b"{}")  # the control: its own witness passes
    assert witnesses.until(topics.node_witness("node-1")) == [topics.node_witness("node-1")]
    watcher.publish(topics.master_online("m2"), b"{}")
    assert presences.until(topics.master_online("m2")) == [topics.master_online("m2")]
