"""An HA active's view of a broker is confirmed again after its Master's own client reconnects (docs/ha.md).

The Master's client and the supervisor's client notice a silent cut at different times, and the supervisor's may
not notice a short one at all. A CI run showed the result: the Master reconnected after a cut healed and published
desired state of its old term, before the supervisor had read the higher term waiting on the broker. Now a
reconnect of the Master's client sends a new probe through the supervisor's connection, and the view counts
(`Supervisor.is_fresh`) only for the Master connection that probe was sent for.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from edgekube.bus.paho import PahoBus
from edgekube.local.broker import Mosquitto
from edgekube.master.config import MasterConfig
from edgekube.master.ha.supervisor import Supervisor
from edgekube.master.wiring import build_master, ha_bus
from edgekube.model.ha import Role
from tests.support.cluster import wait_for

pytestmark = pytest.mark.integration


def test_after_the_master_s_own_client_reconnects_its_view_counts_only_once_a_probe_sent_since_came_back(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    config = MasterConfig(mqtt_port=mosquitto.port, data_dir=tmp_path / "m1", master_id="m1", role="active")
    supervisor = Supervisor(config, bus=lambda will: ha_bus(config, will), build=build_master).start()
    try:
        wait_for("m1 active and fresh", lambda: supervisor.role is Role.ACTIVE and supervisor.is_fresh())
        master = supervisor.master
        assert master is not None
        client, own = master.bus, supervisor.bus
        assert isinstance(client, PahoBus) and isinstance(own, PahoBus)
        before, own_before = client.connects, own.connects
        assert supervisor._fresh == {0: before}

        # Only the Master's connection breaks: paho reads EOF and connects again; the supervisor's stays up.
        sock = client._client.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)
        wait_for("the Master's client connected again", lambda: client.connects > before and client.connected)
        wait_for("m1's view fresh again", supervisor.is_fresh)

        assert own.connects == own_before, "the supervisor's own connection was replaced too"
        assert supervisor._fresh == {0: client.connects}  # the probe sent for the new connection, not the old one
    finally:
        supervisor.stop()
