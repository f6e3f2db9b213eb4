"""The live dashboard in a real headless Chromium, on real parts: the secure Mosquitto `make up` runs (TLS, a
certificate per identity, the generated ACL), a master with `--dashboard`, one agent on real Podman with its LEDs on
gpiozero's MockFactory pins, and `ekctl` with the admin's and a viewer's certificates.

The browser logs in with the one-time URL `ekctl dashboard` prints. The page shows the node Ready with its LED
pattern and the pods on it; `ekctl delete pod` makes the pod's row disappear without a reload (the page is the same
document before and after); Identify on the page makes the agent blink its LEDs, and the page then shows the
pattern the agent reported; a viewer's page has Identify disabled and the master refuses the action itself; without
a session, with a used token or without the action header, the dashboard refuses. Screenshots (desktop and phone
size) are saved under test-artifacts/ for review.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from edgekube.agent.app import Agent
from edgekube.agent.indicators.table import Pattern
from edgekube.cli.main import main
from edgekube.local.broker import Mosquitto
from edgekube.local.images import ensure_demo_image
from edgekube.local.pki import ADMIN, MASTER, LocalPki
from edgekube.local.podman_service import PodmanService
from edgekube.master.app import Master
from edgekube.master.config import MasterConfig
from edgekube.master.wiring import build_master
from edgekube.security.ca import Role
from tests.support.browser import artifact, chromium, require_browser
from tests.support.cluster import ApiClient, start_agent, stop_agent, wait_for
from tests.support.prerequisites import require_mosquitto

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.integration

VIEWER = "viewer-1"
NODE = "node-1"
POD = """
apiVersion: v1
kind: Pod
metadata: {name: %(name)s}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: app, image: %(image)s, command: [sh, -c, "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]}
"""


DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: %(name)s}
spec:
  replicas: 1
  selector: {matchLabels: {app: %(name)s}}
  template:
    metadata: {labels: {app: %(name)s}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - {name: app, image: %(image)s, command: [sh, -c, "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]}
"""


@dataclass
class Cluster:
    master: Master
    agent: Agent
    client: ApiClient
    pki: LocalPki
    port: int
    image: str
    browser: Browser

    def ekctl(self, identity: str, capsys: pytest.CaptureFixture[str], *args: str) -> str:
        files = self.pki.files(identity)
        tls = ["--tls-ca", files.ca, "--tls-cert", files.cert, "--tls-key", files.key]
        capsys.readouterr()
        code = main(["--mqtt-host", "127.0.0.1", "--mqtt-port", str(self.port), *tls, "--timeout", "10", *args])
        out, err = capsys.readouterr()
        assert code == 0, err
        return out

    def login(self, identity: str, capsys: pytest.CaptureFixture[str], **context: Any) -> Page:
        """A new browser context logged in through the URL `ekctl dashboard` printed for `identity`."""
        url = self.ekctl(identity, capsys, "dashboard").strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/login\?token=[-_A-Za-z0-9]{40,}", url), url
        page = self.browser.new_context(**context).new_page()
        page.goto(url)
        page.wait_for_selector(f"[data-node='{NODE}'] [data-ready='Ready']")
        return page

    def pattern(self) -> Pattern | None:
        shown = self.agent.indicator.shown
        return shown.pattern if shown is not None else None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_mosquitto()
    require_browser()
    tmp = tmp_path_factory.mktemp("dashboard")
    pki = LocalPki(tmp / "pki").ensure({MASTER: Role.MASTER, ADMIN: Role.ADMIN, VIEWER: Role.VIEWER, NODE: Role.NODE})
    podman = PodmanService(Path(str(tmp_path_factory.mktemp("p"))) / "p").start()
    image = ensure_demo_image(podman)
    with Mosquitto(None, tmp / "broker", persistence=True, tls=pki.broker_tls()) as broker:
        files = pki.files(MASTER)
        config = MasterConfig(
            mqtt_port=broker.port, data_dir=tmp / "master", node_timeout=4.0, dashboard="127.0.0.1:0",
            tls_ca=files.ca, tls_cert=files.cert, tls_key=files.key,
        )  # fmt: skip
        master = build_master(config).start(wait=10)
        agent = start_agent(
            broker.port, NODE, podman, tmp / "agent", tls=pki.files(NODE), telemetry_interval=1.0,
            led_pins="17,27", led_pin_factory="mock",
        )  # fmt: skip
        client = ApiClient(broker.port, tls=pki.files(ADMIN))
        try:
            with chromium() as browser:
                yield Cluster(master, agent, client, pki, broker.port, image, browser)
        finally:
            client.close()
            master.stop()
            stop_agent(agent)
            podman.destroy()


def test_the_page_shows_the_cluster_and_a_deleted_pod_leaves_it_without_a_reload(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    names = [f"web-{uuid.uuid4().hex[:5]}", f"keep-{uuid.uuid4().hex[:5]}"]
    for name in names:
        response = cluster.client.apply(POD % {"name": name, "image": cluster.image})
        assert response.ok, response.error
    deployment = f"app-{uuid.uuid4().hex[:5]}"
    response = cluster.client.apply(DEPLOYMENT % {"name": deployment, "image": cluster.image})
    assert response.ok, response.error
    page = cluster.login(ADMIN, capsys)
    gone, kept = (f"[data-node='{NODE}'] [data-pod='default/{n}']" for n in names)
    page.wait_for_selector(f"{gone} >> text=Running", timeout=60_000)
    page.wait_for_selector(f"{kept} >> text=Running", timeout=60_000)
    page.wait_for_selector(f"[data-controller='Deployment/default/{deployment}'] >> text=1/1", timeout=60_000)
    assert page.get_attribute(f"[data-node='{NODE}'] [data-leds]", "data-leds") == Pattern.HEALTHY.value
    assert page.get_attribute("[data-role]", "data-role") == "admin"
    assert page.get_attribute("[data-link]", "data-link") == "live"
    page.wait_for_selector(f"[data-node='{NODE}'] [data-temperature], [data-node='{NODE}'] .spark svg", timeout=30_000)
    page.screenshot(path=str(artifact("dashboard-desktop.png")), full_page=True)
    page.evaluate("window.sameDocument = true")

    out = cluster.ekctl(ADMIN, capsys, "delete", "pod", names[0])
    assert f'pod "{names[0]}" deleted' in out

    page.wait_for_selector(gone, state="detached")  # no timeout of ours: the default 30 s is the test's bound
    assert page.evaluate("window.sameDocument") is True  # updated in place, not reloaded
    assert page.is_visible(kept)

    phone = cluster.login(ADMIN, capsys, viewport={"width": 390, "height": 844}, device_scale_factor=2)
    card = phone.locator(f"[data-node='{NODE}']").bounding_box()
    assert card is not None and card["width"] <= 390  # one column on a phone screen
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # and nothing to scroll sideways
    phone.screenshot(path=str(artifact("dashboard-phone.png")), full_page=True)


def test_identify_on_the_page_blinks_the_nodes_leds_and_the_page_shows_what_the_node_reports(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    page = cluster.login(ADMIN, capsys)
    leds = f"[data-node='{NODE}'] [data-leds]"
    assert cluster.pattern() is not Pattern.IDENTIFY

    page.click(f"[data-identify='{NODE}']")

    wait_for("the agent's LEDs to show Identify", lambda: cluster.pattern() is Pattern.IDENTIFY)
    page.wait_for_selector(f"{leds}[data-leds='Identify']")  # reported by the agent, pushed by the master
    page.wait_for_selector(f"[data-node='{NODE}'] .note >> text=blinking")
    page.screenshot(path=str(artifact("dashboard-identify.png")), full_page=True)
    cluster.ekctl(ADMIN, capsys, "node", "identify", NODE, "--cancel")
    page.wait_for_selector(f"{leds}:not([data-leds='Identify'])")


def test_a_viewer_sees_the_cluster_but_cannot_identify(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    page = cluster.login(VIEWER, capsys)
    assert page.get_attribute("[data-role]", "data-role") == "viewer"
    assert page.is_disabled(f"[data-identify='{NODE}']")

    refused = page.request.post(
        f"{page.url.rstrip('/')}/api/nodes/{NODE}/identify",
        data='{"seconds": 30}',
        headers={"X-Edgekube-Dashboard": "1", "Content-Type": "application/json"},
    )

    assert refused.status == 403
    assert "admin" in refused.json()["error"]
    assert cluster.pattern() is not Pattern.IDENTIFY


def test_without_a_session_or_with_a_used_token_the_dashboard_refuses(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    url = cluster.ekctl(ADMIN, capsys, "dashboard").strip()
    base = url.split("/login", 1)[0]
    stranger = cluster.browser.new_context().new_page()

    assert stranger.request.get(f"{base}/events").status == 401
    assert (
        stranger.request.post(f"{base}/api/nodes/{NODE}/identify", headers={"X-Edgekube-Dashboard": "1"}).status == 401
    )
    first = cluster.browser.new_context().new_page()
    first.goto(url)
    first.wait_for_selector("[data-link='live']")
    again = stranger.goto(url)
    assert again is not None and again.status == 403  # a login URL works once
    forged = first.request.post(f"{base}/api/nodes/{NODE}/identify", data="{}")
    assert forged.status == 403  # no action header: what another site's form could send
    assert cluster.pattern() is not Pattern.IDENTIFY
