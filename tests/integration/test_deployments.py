"""Deployments on a real master, a real Mosquitto and three simulated nodes, driven through `ekctl` as a user would.

The simulated agents (tests/support/simnodes.py) report each pod Running and Ready 100 ms after they get it; a
pod whose image is `bad:1` runs but never turns Ready (a readiness probe that always fails). Every write of a Pod
in the master's store is sampled by a listener on its cache (the master's own thread, under its lock), so the
rollout's bounds are checked at every instant the store passed through, not at moments the test happened to look:
pods <= replicas + maxSurge and Ready pods >= replicas - maxUnavailable, once the first rollout is complete.
The same bounds are checked on what the master's watch stream tells a client (tests/support/rollout.py
EventSampler, a Pod watch over MQTT as `ekctl get pods -w` opens it): a sample after each event, once the stream
is shown to have told the whole rollout (no event lost, every replaced pod's deletion and every new pod's
creation) and to have come to the API's state.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.cli.main import main
from edgekube.master.app import Master
from edgekube.master.config import MasterConfig
from edgekube.master.controllers.replication.plan import is_ready
from edgekube.master.wiring import build_master
from edgekube.model.wire import ApiRequest, Verb
from tests.support.broker import AnyBroker
from tests.support.cluster import ApiClient, wait_for
from tests.support.rollout import EventSampler, Sample, Sampler, StreamChecks, view_of
from tests.support.simnodes import SimNodes

pytestmark = pytest.mark.integration

NODES = ("node-1", "node-2", "node-3")
REPLICAS = 8
MANIFEST = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {REPLICAS}
  progressDeadlineSeconds: 4
  selector: {{matchLabels: {{app: web}}}}
  strategy: {{rollingUpdate: {{maxSurge: 2, maxUnavailable: 25%}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: "img:a"}}]
"""
MAX_SURGE, MAX_UNAVAILABLE = 2, 2  # 25% of 8


class Env(StreamChecks):
    def __init__(
        self,
        broker: AnyBroker,
        master: Master,
        sims: SimNodes,
        client: ApiClient,
        sampler: Sampler,
        events: EventSampler,
    ) -> None:
        self.broker, self.master, self.sims, self.client, self.sampler = broker, master, sims, client, sampler
        self.events = events

    def ekctl(self, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
        code = main(["--mqtt-host", "127.0.0.1", "--mqtt-port", str(self.broker.port), "--timeout", "5", *argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    def deployment(self) -> dict[str, Any]:
        return self.client.call(ApiRequest(verb=Verb.GET, kind="Deployment", name="web")).object or {}

    def images(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for pod in self.client.call(ApiRequest(verb=Verb.LIST, kind="Pod", selector="app=web")).items or []:
            image = pod["spec"]["containers"][0]["image"]
            out[image] = out.get(image, 0) + 1
        return out

    def web_pods(self) -> dict[str, tuple[str, bool]]:
        """The app=web pods as the API lists them: name -> (image, Ready), as EventSampler.view() has them."""
        pods = self.client.call(ApiRequest(verb=Verb.LIST, kind="Pod", selector="app=web")).items or []
        return {p["metadata"]["name"]: view_of(p) for p in pods}

    def rolled_out(self, image: str) -> bool:
        status = self.deployment().get("status") or {}
        done = status.get("updatedReplicas") == status.get("availableReplicas") == status.get("replicas") == REPLICAS
        return done and self.images() == {image: REPLICAS}


@pytest.fixture
def env(broker: AnyBroker, tmp_path: Path) -> Iterator[Env]:
    config = MasterConfig(mqtt_port=broker.port, data_dir=tmp_path / "master", node_timeout=2.0, resync_interval=0.5)
    master = build_master(config).start(wait=10)
    sampler = Sampler()
    with master._lock:  # the loop's lock: the listener joins the cache's listeners between two passes
        master.store.listen("Pod", sampler)
    events = EventSampler(broker.port)
    sims = SimNodes(broker.port, list(NODES), start_delay=0.1, heartbeat_interval=0.5, never_ready_images=["bad:1"])
    sims.start()
    client = ApiClient(broker.port)
    try:
        yield Env(broker, master, sims, client, sampler, events)
    finally:
        client.close()
        events.close()
        master.stop()
        sims.close()


def assert_bounds(samples: list[Sample]) -> None:
    assert samples, "no pod write was sampled"
    for total, ready, images in samples:
        assert total <= REPLICAS + MAX_SURGE, (total, ready, images)
        assert ready >= REPLICAS - MAX_UNAVAILABLE, (total, ready, images)


def test_rolling_update_bad_image_and_undo_through_ekctl(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert env.client.apply(MANIFEST).ok
    wait_for("the first rollout", lambda: env.rolled_out("img:a"), timeout=20)
    code, out, _ = env.ekctl(capsys, "rollout", "status", "deploy/web")
    assert (code, out) == (0, 'deployment "web" successfully rolled out\n')

    # A to B: bounds hold at every write the store saw, and at every event the watch stream told.
    mark, event_mark, before = env.marks()
    code, out, _ = env.ekctl(capsys, "set", "image", "deploy/web", "web=img:b")
    assert (code, out) == (0, "deployment.apps/web image updated\n")
    code, out, _ = env.ekctl(capsys, "rollout", "status", "deploy/web", "--wait-timeout", "30s")
    assert code == 0
    lines = out.splitlines()
    assert lines[-1] == 'deployment "web" successfully rolled out'
    # Progress lines before it (how many depends on when each poll lands; the rollout takes about a second).
    assert all(line.startswith("Waiting for deployment ") for line in lines[:-1])
    wait_for("all pods on img:b", lambda: env.rolled_out("img:b"), timeout=20)
    samples = env.sampler.since(mark)
    assert_bounds(samples)
    assert max(total for total, _, _ in samples) > REPLICAS  # it did use its surge
    assert any(images == {"img:a", "img:b"} for _, _, images in samples)  # both ran side by side on the way
    streamed = env.streamed(event_mark, before)  # at least one sample per replaced pod and per new one
    assert_bounds(streamed)
    assert max(total for total, _, _ in streamed) > REPLICAS
    assert any(images == {"img:a", "img:b"} for _, _, images in streamed)

    # A broken image: the rollout stops with the old replicas serving, then the progress deadline passes.
    mark, event_mark, before = env.marks()
    code, _, _ = env.ekctl(capsys, "set", "image", "deploy/web", "web=bad:1")
    assert code == 0

    def timed_out() -> bool:
        conditions = (env.deployment().get("status") or {}).get("conditions") or []
        return any(c["type"] == "Progressing" and c["reason"] == "ProgressDeadlineExceeded" for c in conditions)

    wait_for("ProgressDeadlineExceeded", timed_out, timeout=30)
    images = env.images()
    assert images["img:b"] >= REPLICAS - MAX_UNAVAILABLE and images.get("bad:1", 0) <= MAX_SURGE + MAX_UNAVAILABLE
    code, out, err = env.ekctl(capsys, "rollout", "status", "deploy/web")
    assert code == 1 and 'deployment "web" exceeded its progress deadline' in err
    assert_bounds(env.sampler.since(mark))
    assert_bounds(env.streamed(event_mark, before))

    code, out, _ = env.ekctl(capsys, "rollout", "history", "deploy/web")
    assert out.splitlines()[0] == "deployment.apps/web "
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["1", "2", "3"]

    # Undo: back to img:b (revision 2 becomes revision 4), within the same bounds.
    mark, event_mark, before = env.marks()
    code, out, _ = env.ekctl(capsys, "rollout", "undo", "deploy/web")
    assert (code, out) == (0, "deployment.apps/web rolled back\n")
    wait_for("all pods back on img:b", lambda: env.rolled_out("img:b"), timeout=30)
    assert_bounds(env.sampler.since(mark))  # the broken pods go first (unhealthy), the serving ones stay
    assert_bounds(env.streamed(event_mark, before))
    code, out, _ = env.ekctl(capsys, "rollout", "history", "deploy/web")
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["1", "3", "4"]
    assert env.deployment()["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "4"

    code, out, _ = env.ekctl(capsys, "get", "deploy")
    header, row = out.splitlines()
    assert header.split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert row.split()[:4] == ["web", f"{REPLICAS}/{REPLICAS}", str(REPLICAS), str(REPLICAS)]
    code, out, _ = env.ekctl(capsys, "describe", "deploy", "web")
    assert code == 0
    assert f"Replicas:               {REPLICAS} desired | {REPLICAS} updated | {REPLICAS} total" in out
    assert "RollingUpdateStrategy:  25% max unavailable, 2 max surge" in out
    assert "NewReplicaSet:" in out and f"({REPLICAS}/{REPLICAS} replicas created)" in out


def test_pause_scale_resume_and_restart(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert env.client.apply(MANIFEST).ok
    wait_for("the first rollout", lambda: env.rolled_out("img:a"), timeout=20)
    assert env.ekctl(capsys, "rollout", "pause", "deploy/web")[:2] == (0, "deployment.apps/web paused\n")
    code, _, err = env.ekctl(capsys, "rollout", "pause", "deploy/web")
    assert code == 1 and 'deployments.apps "web" is already paused' in err
    assert env.ekctl(capsys, "set", "image", "deploy/web", "web=img:c")[0] == 0
    assert env.ekctl(capsys, "scale", "deploy/web", "--replicas", "9")[:2] == (0, "deployment.apps/web scaled\n")
    wait_for("nine img:a pods while paused", lambda: env.images() == {"img:a": 9}, timeout=20)
    assert env.ekctl(capsys, "rollout", "resume", "deploy/web")[:2] == (0, "deployment.apps/web resumed\n")
    wait_for("nine img:c pods", lambda: env.images() == {"img:c": 9}, timeout=30)
    before = {p["metadata"]["name"] for p in env.client.call(ApiRequest(verb=Verb.LIST, kind="Pod")).items or []}
    assert env.ekctl(capsys, "rollout", "restart", "deploy/web")[:2] == (0, "deployment.apps/web restarted\n")

    def replaced() -> bool:
        pods = env.client.call(ApiRequest(verb=Verb.LIST, kind="Pod")).items or []
        names = {p["metadata"]["name"] for p in pods}
        return len(names) == 9 and not names & before and all(is_ready(p) for p in pods)

    wait_for("every pod replaced", replaced, timeout=30)
    code, out, _ = env.ekctl(capsys, "delete", "deploy", "web")
    assert (code, out) == (0, 'deployment.apps "web" deleted\n')
    wait_for("no ReplicaSet and no pod left", lambda: env.images() == {}, timeout=20)
    assert not env.client.call(ApiRequest(verb=Verb.LIST, kind="ReplicaSet")).items


def test_a_node_killed_mid_rollout_neither_loses_nor_doubles_replicas(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    assert env.client.apply(MANIFEST).ok
    wait_for("the first rollout", lambda: env.rolled_out("img:a"), timeout=20)
    # img:slow pods do not turn Ready until the test says so: the rollout is held half way, deterministically.
    env.sims.never_ready_images = frozenset({"img:slow"})
    assert env.ekctl(capsys, "set", "image", "deploy/web", "web=img:slow")[0] == 0
    half_way = {"img:a": REPLICAS - MAX_UNAVAILABLE, "img:slow": MAX_SURGE + MAX_UNAVAILABLE}
    wait_for("the rollout held half way", lambda: env.images() == half_way, timeout=10)
    env.sims.kill("node-3")  # its pods are evicted once it is NotReady; their ReplicaSets replace them

    def on_live_nodes() -> dict[str, str] | None:
        pods = env.client.call(ApiRequest(verb=Verb.LIST, kind="Pod", selector="app=web")).items or []
        where = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in pods}
        running = {p.split("/")[1] for n in NODES if n != "node-3" for p in env.sims.running(n)}
        return where if set(where) == running and "node-3" not in where.values() else None

    wait_for("node-3's pods replaced on the live nodes", on_live_nodes, timeout=30)
    env.sims.never_ready_images = frozenset()
    for pod in env.client.call(ApiRequest(verb=Verb.LIST, kind="Pod", selector="app=web")).items or []:
        env.sims.set_ready("default", pod["metadata"]["name"], ready=True)
    wait_for("all pods on img:slow", lambda: env.rolled_out("img:slow"), timeout=40)
    wait_for("the stored pods running on the two live nodes", on_live_nodes, timeout=20)
    assert env.images() == {"img:slow": REPLICAS}  # exactly the replicas: none lost, none doubled
    replica_sets = env.client.call(ApiRequest(verb=Verb.LIST, kind="ReplicaSet")).items or []
    assert sorted(rs["spec"]["replicas"] for rs in replica_sets) == [0, REPLICAS]


def test_revision_history_limit_keeps_the_newest_old_replica_sets(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert env.client.apply(MANIFEST.replace("progressDeadlineSeconds: 4", "revisionHistoryLimit: 1")).ok
    wait_for("the first rollout", lambda: env.rolled_out("img:a"), timeout=20)
    for tag in "bcd":
        assert env.ekctl(capsys, "set", "image", "deploy/web", f"web=img:{tag}")[0] == 0
        wait_for(f"img:{tag} rolled out", functools.partial(env.rolled_out, f"img:{tag}"), timeout=20)

    def two_left() -> list[str] | None:
        items = env.client.call(ApiRequest(verb=Verb.LIST, kind="ReplicaSet")).items or []
        revisions = sorted(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] for rs in items)
        return revisions if revisions == ["3", "4"] else None

    wait_for("the new ReplicaSet and one old one", two_left, timeout=10)
    code, out, _ = env.ekctl(capsys, "rollout", "history", "deploy/web")
    assert code == 0 and [line.split()[0] for line in out.splitlines()[2:]] == ["3", "4"]
