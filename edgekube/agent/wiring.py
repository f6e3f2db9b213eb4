"""Composition root of the agent daemon: builds its parts (paho bus, Podman runtime) and runs the Agent.

Only `edgekube agent` (edgekube.main) and the local cluster use it; tests hand Agent an in-memory bus and the fake
runtime instead. This is the one place that decides which implementation of each protocol a real node runs.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING

from edgekube.agent.app import Agent, AgentConfig
from edgekube.agent.indicators.drivers import open_driver
from edgekube.agent.runtime.protocol import PodRuntime
from edgekube.bus import topics
from edgekube.bus.brokers import resolve
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.bus.protocol import MessageBus, Will
from edgekube.model.errors import ValidationError
from edgekube.model.names import NodeName
from edgekube.model.wire import Presence
from edgekube.sdnotify import SdNotify

if TYPE_CHECKING:
    from edgekube.agent.network.netagent import NetworkAgent

log = logging.getLogger(__name__)


def agent_bus(config: AgentConfig) -> MessageBus:
    """The node's MQTT client: a persistent session (desired states queue while away) and a Last Will.

    With several brokers it is on one at a time, in failover order (edgekube/bus/brokers.py).
    """
    node = NodeName(config.node_name)
    return PahoBus(
        BusConfig.on(
            resolve(config.brokers, config.mqtt_host, config.mqtt_port),
            client_id=f"edgekube-agent-{node}",
            persistent=True,
            will=Will(topics.node_online(node), Presence(online=False).encode()),
            tls_ca=config.tls_ca,
            tls_cert=config.tls_cert,
            tls_key=config.tls_key,
        )
    )


def podman_runtime(config: AgentConfig) -> PodRuntime:
    from edgekube.agent.runtime.podman import PodmanRuntime  # noqa: PLC0415 - podman-py loads only on a node

    return PodmanRuntime(
        config.podman_url, NodeName(config.node_name), nfs_client=config.nfs_client, nfs_timeout=config.nfs_timeout
    )


def build_agent(config: AgentConfig, runtime: PodRuntime | None = None) -> Agent:
    """An Agent on the real parts (the runtime may be given, e.g. a node whose Podman is already open)."""
    runtime = runtime if runtime is not None else podman_runtime(config)
    leds = open_driver(config.led_settings())  # no usable LEDs: one warning, and none
    if config.pod_network and config.proxy_mode == "auto":
        config = dataclasses.replace(config, proxy_mode=proxy_mode(config))  # asked once; the Node shows it
    agent = Agent(config, runtime, agent_bus(config), notify=SdNotify.from_environ(), leds=leds)
    if config.pod_network:
        pod_network(config, runtime, agent.bus).start()
    return agent


def proxy_mode(config: AgentConfig) -> str:
    """`nftables` or `userspace`: the setting, or for `auto` what the kernel can do (proxymode.py); logged."""
    from edgekube.agent.network.proxymode import choose  # noqa: PLC0415 - pod_network only

    mode, why = choose(config.proxy_mode)
    log.info("node proxy: %s (%s)", mode, why)
    return mode


def pod_network(config: AgentConfig, runtime: PodRuntime, bus: MessageBus) -> NetworkAgent:
    """The node's network loop (docs/networking.md) on `ip` and `nft`, subscribed on the agent's bus."""
    from edgekube.agent.network.conntrack import ConntrackTool  # noqa: PLC0415
    from edgekube.agent.network.loopback import IpLoopback  # noqa: PLC0415
    from edgekube.agent.network.netagent import NetworkAgent, NetworkRuntime  # noqa: PLC0415 - pod_network only
    from edgekube.agent.network.nftables import NftProxy  # noqa: PLC0415
    from edgekube.agent.network.relay import Relays  # noqa: PLC0415
    from edgekube.agent.network.routes import IpRoutes  # noqa: PLC0415
    from edgekube.agent.network.userspace import UserspaceProxy  # noqa: PLC0415

    if not isinstance(runtime, NetworkRuntime):
        raise ValidationError("pod_network: needs the Podman runtime")
    parts = (IpRoutes(), NftProxy(), ConntrackTool())
    mode = config.proxy_mode if config.proxy_mode != "auto" else proxy_mode(config)
    userspace = UserspaceProxy(IpLoopback(), Relays().start()).start() if mode == "userspace" else None
    return NetworkAgent(config.node_name, runtime, *parts, dns=config.cluster_dns, userspace=userspace).attach(bus)


def run_agent(config: AgentConfig) -> None:
    """Run until SIGTERM/SIGINT; pods keep running after the agent stops."""
    agent = build_agent(config).start()
    log.info(
        "agent %s up: mqtt %s (%s), podman %s",
        config.node_name,
        ", ".join(map(str, resolve(config.brokers, config.mqtt_host, config.mqtt_port))),
        "TLS" if config.tls_ca else "plain TCP",
        config.podman_url,
    )
    log.info("LEDs: %s", agent.indicator.driver.name)
    try:
        while True:
            time.sleep(3600)
    finally:
        agent.stop()
