"""Test helpers for a real cluster in one process: master + agents on a real broker and real Podman."""

from __future__ import annotations

import queue
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekube.agent.app import Agent, AgentConfig
from edgekube.agent.runtime.podman import PodmanRuntime
from edgekube.agent.wiring import build_agent
from edgekube.bus import topics
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.bus.protocol import Message
from edgekube.bus.tls import TlsFiles
from edgekube.local.podman_service import PodmanService
from edgekube.master.app import Master
from edgekube.master.config import MasterConfig
from edgekube.master.wiring import build_master
from edgekube.model.errors import BusError
from edgekube.model.names import NodeName
from edgekube.model.wire import ApiRequest, ApiResponse, Verb


class PendingReply:
    """The answer to one request sent with ApiClient.send(): `correlation` names it on the wire."""

    def __init__(self, correlation: bytes) -> None:
        self.correlation = correlation
        self._box: queue.Queue[Message] = queue.Queue(maxsize=1)

    def deliver(self, message: Message) -> None:
        self._box.put_nowait(message)

    def wait(self, timeout: float) -> ApiResponse:
        """The master's answer; BusError if none comes within `timeout` seconds."""
        try:
            return ApiResponse.decode(self._box.get(timeout=timeout).payload)
        except queue.Empty:
            raise BusError(f"no answer to request {self.correlation.hex()} within {timeout:g}s") from None


class ApiClient:
    """A tiny synchronous API client over the real bus (the same requests ekctl sends).

    Requests that get no answer raise BusError (e.g. while the broker or the master restarts); the
    connection itself comes back on its own after a broker restart.
    """

    def __init__(self, port: int, host: str = "127.0.0.1", tls: TlsFiles | None = None) -> None:
        self.bus = PahoBus(bus_config(port, tls, host=host))
        # Answers to send(): a reply topic of our own, subscribed before connecting and again on every reconnect.
        self._replies = topics.client_reply(f"{self.bus.config.client_id}-sent")
        self._pending: dict[bytes, PendingReply] = {}
        self.bus.subscribe(self._replies, self._on_reply)
        self.bus.start(wait=10)

    def _on_reply(self, message: Message) -> None:
        pending = self._pending.pop(message.correlation or b"", None)
        if pending is not None:
            pending.deliver(message)

    def send(self, req: ApiRequest) -> PendingReply:
        """Publish one request now, once, without waiting: the caller knows the moment it was sent.

        While the broker is away paho queues it and sends it on reconnect (QoS 1), as it does for any client.
        """
        pending = PendingReply(uuid.uuid4().bytes)
        self._pending[pending.correlation] = pending
        self.bus.publish(
            topics.API_REQUEST, req.encode(), response_topic=self._replies, correlation=pending.correlation
        )
        return pending

    def call(self, req: ApiRequest, timeout: float = 10) -> ApiResponse:
        return ApiResponse.decode(self.bus.request(topics.API_REQUEST, req.encode(), timeout=timeout).payload)

    def apply(self, text: str, timeout: float = 10) -> ApiResponse:
        return self.call(ApiRequest(verb=Verb.APPLY, manifest=text), timeout=timeout)

    def objects(self, kind: str, selector: str | None = None, timeout: float = 10) -> list[dict[str, Any]]:
        resp = self.call(ApiRequest(verb=Verb.LIST, kind=kind, selector=selector), timeout=timeout)
        assert resp.ok, resp.error
        return resp.items or []

    def get(self, kind: str, name: str) -> dict[str, Any]:
        resp = self.call(ApiRequest(verb=Verb.GET, kind=kind, name=name))
        assert resp.ok, resp.error
        assert resp.object is not None
        return resp.object

    def pods(self, selector: str | None = None) -> list[dict[str, Any]]:
        return self.objects("Pod", selector)

    def pod(self, name: str) -> dict[str, Any]:
        return self.get("Pod", name)

    def nodes(self) -> list[dict[str, Any]]:
        return self.objects("Node")

    def delete(self, kind: str, name: str) -> ApiResponse:
        return self.call(ApiRequest(verb=Verb.DELETE, kind=kind, name=name))

    def scale(self, kind: str, name: str, replicas: int, timeout: float = 10) -> ApiResponse:
        return self.call(ApiRequest(verb=Verb.SCALE, kind=kind, name=name, replicas=replicas), timeout=timeout)

    def logs(self, name: str, container: str | None = None) -> ApiResponse:
        return self.call(ApiRequest(verb=Verb.LOGS, name=name, container=container))

    def close(self) -> None:
        self.bus.close()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60, interval: float = 0.2) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` and the last value seen."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def phase(client: ApiClient, name: str) -> str:
    for pod in client.pods():
        if pod["metadata"]["name"] == name:
            return str((pod.get("status") or {}).get("phase", ""))
    return ""


def bus_config(port: int, tls: TlsFiles | None = None, **kw: Any) -> BusConfig:
    """A client's settings for the broker on `port`, with the identity `tls` (None: plain TCP)."""
    files = tls or TlsFiles()
    return BusConfig(port=port, tls_ca=files.ca, tls_cert=files.cert, tls_key=files.key, **kw)


def start_master(port: int, data_dir: Path, tls: TlsFiles | None = None) -> Master:
    files = tls or TlsFiles()
    config = MasterConfig(
        mqtt_port=port,
        data_dir=data_dir,
        node_timeout=4.0,
        tls_ca=files.ca,
        tls_cert=files.cert,
        tls_key=files.key,
    )
    return build_master(config).start(wait=10)


def start_agent(
    port: int, node: str, service: PodmanService, state_dir: Path, tls: TlsFiles | None = None, **kw: Any
) -> Agent:
    files = tls or TlsFiles()
    config = AgentConfig(
        node_name=node,
        mqtt_port=port,
        podman_url=service.url,
        state_dir=state_dir,
        resync_interval=0.5,
        tls_ca=files.ca,
        tls_cert=files.cert,
        tls_key=files.key,
        **kw,
    )
    return build_agent(config, PodmanRuntime(service.url, NodeName(node))).start(wait=10)


def stop_agent(agent: Agent) -> None:
    """A test's teardown: stop the agent first (its loop must not start again what is removed), then its pods."""
    agent.stop()
    for pod in agent.runtime.list_pods():
        agent.runtime.remove_pod(pod.uid, 0)
