"""Deployments: the model's defaults and rules, the pure rollout plan, and rollouts run pass by pass on a real store.

Model rules are Kubernetes' pkg/apis/apps/v1/defaults.go SetDefaults_Deployment and
pkg/apis/apps/validation/validation.go ValidateDeploymentSpec / ValidateRollingUpdateDeployment; the plan's
arithmetic is pkg/controller/deployment (rolling.go, recreate.go, progress.go, util/deployment_util.go).

The rollouts run the deployment controller and the replication controller over an in-memory TinyStateStore, with
a stand-in kubelet that makes pods Ready (a pod whose image is `bad` never is): the bounds of maxSurge and
maxUnavailable are checked after every pass.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edgekube.cli import deployments
from edgekube.master.cache import CachedStore
from edgekube.master.controllers.base import Effects, Snapshot, apply
from edgekube.master.controllers.deployment import plan as rollout
from edgekube.master.controllers.deployment.actions import CreateReplicaSet, DeleteReplicaSet, UpdateReplicaSet
from edgekube.master.controllers.deployment.controller import DeploymentController
from edgekube.master.controllers.owners import controller_ref
from edgekube.master.controllers.replication.controller import ReplicationManager
from edgekube.master.controllers.replication.plan import is_available
from edgekube.master.eventlog import EventLog
from edgekube.model.deployment import REVISION_ANNOTATION, TEMPLATE_HASH_LABEL, fenceposts, scaled
from edgekube.model.errors import NotFoundError
from edgekube.model.manifest import ManifestError, load_manifests, parse_object
from edgekube.store.state import TinyStateStore

NOW = 1_800_000_000.0


def manifest(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "replicas": 4,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "img:a"}]},
        },
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {**base, **spec}}


def validated(**spec: Any) -> dict[str, Any]:
    return parse_object(manifest(**spec)).to_dict()


def problems(**spec: Any) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        parse_object(manifest(**spec))
    return caught.value.problems


# -- the model ---------------------------------------------------------------------------------------------------
def test_defaults_are_set_defaults_deployment() -> None:
    spec = validated()["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["paused"] is False
    assert validated(strategy={"type": "Recreate"})["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "0%"}}},
            'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "0%": may not be 0 when `maxSurge` is 0',
        ),
        (
            {"strategy": {"rollingUpdate": {"maxUnavailable": "101%"}}},
            'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "101%": must not be greater than 100%',
        ),
        (
            {"strategy": {"rollingUpdate": {"maxSurge": "lots"}}},
            'spec.strategy.rollingUpdate.maxSurge: Invalid value: "lots": a valid percent string must be a numeric '
            "string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
        ),
        (
            {"strategy": {"rollingUpdate": {"maxSurge": -1}}},
            "spec.strategy.rollingUpdate.maxSurge: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            {"strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}},
            "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'",
        ),
        (
            {"strategy": {"type": "BlueGreen"}},
            'spec.strategy.type: Unsupported value: "BlueGreen": supported values: "Recreate", "RollingUpdate"',
        ),
        (
            {"minReadySeconds": 30, "progressDeadlineSeconds": 30},
            "spec.progressDeadlineSeconds: Invalid value: 30: must be greater than minReadySeconds",
        ),
        (
            {"revisionHistoryLimit": -1},
            "spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0",
        ),
        ({"selector": None}, "spec.selector: Required value"),
        (
            {"selector": {"matchLabels": {"app": "other"}}},
            'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
            "`selector` does not match template `labels`",
        ),
    ],
)
def test_validation_follows_validate_deployment_spec(spec: dict[str, Any], expected: str) -> None:
    assert expected in problems(**spec)


def test_both_zero_after_rounding_is_valid_and_resolves_to_one_unavailable() -> None:
    """Validation compares the written values; ResolveFenceposts makes 0/0 after rounding move one at a time."""
    spec = validated(replicas=3, strategy={"rollingUpdate": {"maxSurge": 0, "maxUnavailable": "10%"}})["spec"]
    assert fenceposts(spec) == (0, 1)


@pytest.mark.parametrize(
    ("value", "total", "up", "expected"),
    [("25%", 10, True, 3), ("25%", 10, False, 2), ("25%", 4, True, 1), ("25%", 3, False, 0), (2, 10, True, 2)],
)
def test_percentages_round_as_kubernetes_surge_up_unavailable_down(
    value: int | str, total: int, up: bool, expected: int
) -> None:
    assert scaled(value, total, round_up=up) == expected


# -- a world: real store, both controllers, a stand-in kubelet ----------------------------------------------------
class World:
    """The master's two controllers over an in-memory store; `kubelet` makes pods Ready as a node would."""

    def __init__(self, store: CachedStore) -> None:
        self.store = store
        self.events = EventLog()
        self.deployments = DeploymentController(store)
        self.replication = ReplicationManager(store, random.Random(7), resync=0.0)
        self.now = NOW

    def apply(self, **spec: Any) -> dict[str, Any]:
        obj = validated(**spec)
        try:
            current = self.store.get("Deployment", "default", "web")
        except NotFoundError:
            obj["metadata"]["generation"] = 1
            return self.store.create(obj)
        meta = {**current["metadata"], "generation": current["metadata"]["generation"] + 1}
        return self.store.update({**current, "metadata": meta, "spec": obj["spec"]})

    def patch(self, change: Any) -> None:
        current = copy.deepcopy(self.store.get("Deployment", "default", "web"))
        change(current["spec"])
        current["metadata"]["generation"] += 1
        self.store.update(current)

    def step(self) -> None:
        """One master pass (deployment, then replication), as registry orders them."""
        snapshot = Snapshot(self.store, self.now)
        effects = Effects(self.store, self.events)
        apply(self.deployments.plan(snapshot), effects)
        apply(self.replication.plan(snapshot), effects)

    def kubelet(self, at_most: int = 1) -> None:
        """Up to `at_most` pending pods with a good image become Running and Ready (oldest first)."""
        stamp = datetime.fromtimestamp(self.now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        waiting = [p for p in self.store.objects("Pod").values() if p["status"].get("phase") == "Pending"]
        for pod in sorted(waiting, key=lambda p: p["metadata"]["name"])[:at_most]:
            if pod["spec"]["containers"][0]["image"] == "bad":
                continue
            ready = {"type": "Ready", "status": "True", "lastTransitionTime": stamp}
            self.store.update({**pod, "status": {"phase": "Running", "conditions": [ready]}})

    def pods(self) -> list[dict[str, Any]]:
        return list(self.store.objects("Pod").values())

    def available(self, min_ready: int = 0) -> int:
        return sum(1 for p in self.pods() if is_available(p, min_ready, self.now))

    def images(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for pod in self.pods():
            image = pod["spec"]["containers"][0]["image"]
            out[image] = out.get(image, 0) + 1
        return out

    def deployment(self) -> dict[str, Any]:
        return self.store.get("Deployment", "default", "web")

    def replica_sets(self) -> list[dict[str, Any]]:
        return sorted(self.store.objects("ReplicaSet").values(), key=rollout.revision_of)

    def settle(self, passes: int = 200, ready_per_pass: int = 1, check: Any = None) -> int:
        """Passes a second apart until nothing changes for a while; `check` runs after each; returns the count."""
        quiet = 0
        for n in range(passes):
            before = {k: v["metadata"]["resourceVersion"] for kind in ("Pod", "ReplicaSet", "Deployment")
                      for k, v in self.store.objects(kind).items()}  # fmt: skip
            self.step()
            if check is not None:
                check()
            self.kubelet(ready_per_pass)
            if check is not None:
                check()
            self.now += 1
            after = {k: v["metadata"]["resourceVersion"] for kind in ("Pod", "ReplicaSet", "Deployment")
                     for k, v in self.store.objects(kind).items()}  # fmt: skip
            quiet = quiet + 1 if after == before else 0
            if quiet == 15:  # nothing changed for 15 s of the clock (minReadySeconds in the tests are shorter)
                return n
        raise AssertionError("did not settle")


@pytest.fixture
def world() -> Iterator[World]:
    with TinyStateStore(None) as backend:
        yield World(CachedStore(backend))


def image(world: World, name: str) -> None:
    world.patch(lambda spec: spec["template"]["spec"]["containers"][0].update(image=name))


def test_a_new_deployment_creates_one_replica_set_with_the_template_hash(world: World) -> None:
    world.apply()
    world.settle(ready_per_pass=4)
    (rs,) = world.replica_sets()
    pod_hash = rs["metadata"]["labels"][TEMPLATE_HASH_LABEL]
    assert rs["metadata"]["name"] == f"web-{pod_hash}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", TEMPLATE_HASH_LABEL: pod_hash}
    assert rs["spec"]["template"]["metadata"]["labels"][TEMPLATE_HASH_LABEL] == pod_hash
    assert controller_ref(rs)["kind"] == "Deployment"  # type: ignore[index]
    assert rs["metadata"]["annotations"][REVISION_ANNOTATION] == "1"
    d = world.deployment()
    assert d["metadata"]["annotations"][REVISION_ANNOTATION] == "1"
    status = d["status"]
    assert (status["replicas"], status["updatedReplicas"], status["availableReplicas"]) == (4, 4, 4)
    conditions = {c["type"]: c["reason"] for c in status["conditions"]}
    assert conditions == {"Available": "MinimumReplicasAvailable", "Progressing": "NewReplicaSetAvailable"}
    assert rollout.template_hash(d["spec"]["template"]) == pod_hash  # stable: the same template, the same hash


@pytest.mark.parametrize(
    ("replicas", "surge", "unavailable"),
    [(4, "25%", "25%"), (10, "25%", "25%"), (10, 3, 0), (10, 0, 2), (5, "50%", "50%"), (3, 1, 1)],
)
def test_rolling_update_keeps_surge_and_unavailable_bounds_after_every_pass(
    world: World, replicas: int, surge: int | str, unavailable: int | str
) -> None:
    strategy = {"rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}
    world.apply(replicas=replicas, strategy=strategy)
    world.settle(ready_per_pass=replicas)
    max_surge, max_unavailable = fenceposts(world.deployment()["spec"])
    seen_totals: list[int] = []

    def bounds() -> None:
        pods = world.pods()
        seen_totals.append(len(pods))
        assert len(pods) <= replicas + max_surge, world.images()
        assert world.available() >= replicas - max_unavailable, world.images()

    image(world, "img:b")
    world.settle(check=bounds)
    assert world.images() == {"img:b": replicas}
    assert max(seen_totals) > replicas or max_surge == 0  # it did surge when allowed to
    status = world.deployment()["status"]
    assert status["updatedReplicas"] == status["availableReplicas"] == replicas
    assert [rollout.revision_of(rs) for rs in world.replica_sets()] == [1, 2]
    assert [rs["spec"]["replicas"] for rs in world.replica_sets()] == [0, replicas]


def test_first_step_of_a_rollout_is_kubernetes_numbers(world: World) -> None:
    """4 replicas at 25%/25%: surge 1, unavailable 1; the new set gets 1, the old one goes to 3 in the next pass."""
    world.apply()
    world.settle(ready_per_pass=4)
    image(world, "img:b")
    world.step()
    old, new = world.replica_sets()
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (3, 1)


def test_a_never_ready_new_replica_set_stops_the_rollout_with_old_replicas_serving(world: World) -> None:
    world.apply(progressDeadlineSeconds=30)
    world.settle(ready_per_pass=4)
    image(world, "bad")
    for _ in range(60):
        world.step()
        world.kubelet(4)
        world.now += 1
        assert world.available() >= 3  # replicas - maxUnavailable
    images = world.images()
    assert images == {"img:a": 3, "bad": 2}  # surge 1 + unavailable 1 taken, no further
    progressing = next(c for c in world.deployment()["status"]["conditions"] if c["type"] == "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert progressing["message"].endswith("has timed out progressing.")


def test_undo_to_the_old_template_reuses_its_replica_set_as_a_new_revision(world: World) -> None:
    world.apply()
    world.settle(ready_per_pass=4)
    image(world, "bad")
    world.settle(ready_per_pass=4)
    first = world.replica_sets()[0]
    # What `ekctl rollout undo` writes: the old ReplicaSet's template without its hash label.
    template = rollout.without_hash(first["spec"]["template"])
    world.patch(lambda spec: spec.update(template=template))
    world.settle(ready_per_pass=4)
    assert world.images() == {"img:a": 4}
    by_name = {rs["metadata"]["name"]: rs for rs in world.replica_sets()}
    assert len(by_name) == 2  # no third ReplicaSet: the first one is the new one again
    assert rollout.revision_of(by_name[first["metadata"]["name"]]) == 3
    assert world.deployment()["metadata"]["annotations"][REVISION_ANNOTATION] == "3"


def test_recreate_removes_every_old_pod_before_the_first_new_one(world: World) -> None:
    world.apply(strategy={"type": "Recreate"})
    world.settle(ready_per_pass=4)
    image(world, "img:b")

    def never_mixed() -> None:
        assert len(world.images()) <= 1, world.images()

    world.settle(ready_per_pass=4, check=never_mixed)
    assert world.images() == {"img:b": 4}


def test_paused_deployment_creates_no_replica_set_until_resumed(world: World) -> None:
    world.apply()
    world.settle(ready_per_pass=4)
    world.patch(lambda spec: spec.update(paused=True))
    image(world, "img:b")
    world.settle(ready_per_pass=4)
    assert world.images() == {"img:a": 4} and len(world.replica_sets()) == 1
    reasons = {c["type"]: c["reason"] for c in world.deployment()["status"]["conditions"]}
    assert reasons["Progressing"] == "DeploymentPaused"
    world.patch(lambda spec: spec.update(replicas=6))  # scaling still works while paused
    world.settle(ready_per_pass=6)
    assert world.images() == {"img:a": 6}
    world.patch(lambda spec: spec.update(paused=False))
    world.settle(ready_per_pass=6)
    assert world.images() == {"img:b": 6}


def test_revision_history_limit_prunes_the_oldest_empty_replica_sets(world: World) -> None:
    world.apply(revisionHistoryLimit=2)
    world.settle(ready_per_pass=4)
    for tag in "bcde":
        image(world, f"img:{tag}")
        world.settle(ready_per_pass=4)
    revisions = [rollout.revision_of(rs) for rs in world.replica_sets()]
    assert revisions == [3, 4, 5]  # the new one and two old ones
    assert world.images() == {"img:e": 4}


def test_min_ready_seconds_holds_the_rollout_until_new_pods_are_available(world: World) -> None:
    world.apply(minReadySeconds=10)
    world.settle(ready_per_pass=4)
    world.now += 20
    image(world, "img:b")
    for _ in range(5):  # ready, but not for 10 s yet: nothing old goes beyond maxUnavailable
        world.step()
        world.kubelet(4)
        world.now += 1
    assert world.images() == {"img:a": 3, "img:b": 2}
    world.settle(ready_per_pass=4)
    assert world.images() == {"img:b": 4}


def test_deleting_the_deployment_garbage_collects_its_replica_sets(world: World) -> None:
    world.apply()
    world.settle(ready_per_pass=4)
    world.store.delete("Deployment", "default", "web")
    world.settle()
    assert world.replica_sets() == [] and world.pods() == []


# -- the plan on its own ----------------------------------------------------------------------------------------
def stored(d: dict[str, Any]) -> dict[str, Any]:
    meta = {**d["metadata"], "namespace": "default", "uid": "d-uid", "generation": 1, "resourceVersion": "1"}
    return {**d, "metadata": meta}


def test_a_name_taken_by_a_foreign_replica_set_counts_a_collision() -> None:
    d = stored(validated())
    name = f"web-{rollout.template_hash(d['spec']['template'])}"
    actions = rollout.plan(d, [], lambda uid: [], NOW, taken={name})
    assert not any(isinstance(a, CreateReplicaSet) for a in actions)
    (status,) = [a.status for a in actions if hasattr(a, "status")]
    assert status["collisionCount"] == 1
    retry = rollout.plan({**d, "status": status}, [], lambda uid: [], NOW, taken={name})
    (created,) = [a for a in retry if isinstance(a, CreateReplicaSet)]
    assert created.rs["metadata"]["name"] != name


def test_history_cleanup_keeps_an_old_replica_set_that_still_has_pods() -> None:
    d = stored(validated(revisionHistoryLimit=0, paused=True))  # paused: cleanup runs with old pods about
    template = d["spec"]["template"]
    new_hash = rollout.template_hash(template)

    def rs(name: str, revision: int, tpl: dict[str, Any], replicas: int) -> dict[str, Any]:
        return {
            "metadata": {"name": name, "namespace": "default", "uid": name, "creationTimestamp": "2026-01-01T00:00:00Z",
                         "annotations": {REVISION_ANNOTATION: str(revision)}},
            "spec": {"replicas": replicas, "template": tpl},
        }  # fmt: skip

    other = copy.deepcopy(template)
    other["spec"]["containers"][0]["image"] = "img:old"
    sets = [rs("web-old", 1, other, 0), rs("web-older", 0, other, 0), rs(f"web-{new_hash}", 2, template, 4)]
    lingering = {"metadata": {"name": "p"}, "status": {"phase": "Running"}}
    ready = {
        "metadata": {"name": "q"},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    }
    pods: dict[str, list[dict[str, Any]]] = {"web-old": [lingering], f"web-{new_hash}": [ready] * 4}
    actions = rollout.plan(d, sets, lambda uid: pods.get(uid, []), NOW)
    deleted = [a.name for a in actions if isinstance(a, DeleteReplicaSet)]
    assert deleted == ["web-older"]  # web-old still has a pod: kept until it is gone
    assert not any(isinstance(a, UpdateReplicaSet) and a.replicas is not None for a in actions)


# -- ekctl's reading of a Deployment --------------------------------------------------------------------------------
def shown(generation: int = 2, observed: int = 2, **status: Any) -> dict[str, Any]:
    obj = stored(validated())
    obj["metadata"]["generation"] = generation
    obj["status"] = {"observedGeneration": observed, **status}
    return obj


@pytest.mark.parametrize(
    ("obj", "line", "done"),
    [
        (shown(3, 2), "Waiting for deployment spec update to be observed...", False),
        (shown(updatedReplicas=1, replicas=5), 'Waiting for deployment "web" rollout to finish: 1 out of 4 new '
         "replicas have been updated...", False),
        (shown(updatedReplicas=4, replicas=5), 'Waiting for deployment "web" rollout to finish: 1 old replicas are '
         "pending termination...", False),
        (shown(updatedReplicas=4, replicas=4, availableReplicas=3), 'Waiting for deployment "web" rollout to '
         "finish: 3 of 4 updated replicas are available...", False),
        (shown(updatedReplicas=4, replicas=4, availableReplicas=4), 'deployment "web" successfully rolled out', True),
    ],
)  # fmt: skip
def test_rollout_status_lines_are_kubectl_s(obj: dict[str, Any], line: str, done: bool) -> None:
    assert deployments.rollout_status(obj) == (line, done)


def test_rollout_status_past_the_deadline_fails() -> None:
    obj = shown(conditions=[{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}])
    with pytest.raises(deployments.RolloutFailed, match='deployment "web" exceeded its progress deadline'):
        deployments.rollout_status(obj)


def test_get_deploy_row() -> None:
    obj = shown(replicas=5, updatedReplicas=2, readyReplicas=3, availableReplicas=3)
    row = deployments.deployment_row(obj, wide=True)
    assert row[:4] == ["web", "3/4", "2", "3"]
    assert row[5:] == ["c", "img:a", "app=web"]


@pytest.mark.parametrize("replicas", [0, 2, 9])
def test_scaling_in_the_middle_of_a_rollout_converges_to_the_new_count(world: World, replicas: int) -> None:
    """Scaled while the old and the new ReplicaSet both have replicas: it ends with the new count, all new."""
    world.apply(replicas=6)
    world.settle(ready_per_pass=6)
    image(world, "img:b")
    world.step()
    world.kubelet(1)
    world.patch(lambda spec: spec.update(replicas=replicas))
    world.settle(ready_per_pass=3)
    assert world.images() == ({"img:b": replicas} if replicas else {})
    assert world.deployment()["status"]["updatedReplicas"] == replicas


def test_the_example_deployment_is_valid() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "web-deployment.yaml"
    (doc,) = load_manifests(example.read_text(), source=str(example))
    assert fenceposts(doc.obj.to_dict()["spec"]) == (1, 1)


def test_a_scale_in_the_middle_of_a_rollout_is_shared_in_proportion(world: World) -> None:
    """sync.go scale(): 10 replicas at 25%/25% (surge 3) held at old 8 / new 5; scaled to 20 (surge 5): the 12 more
    allowed pods are shared 8:5 as getReplicaSetFraction rounds (old 8 -> 15, new 5 -> 10), leftovers none."""
    world.apply(replicas=10)
    world.settle(ready_per_pass=10)
    image(world, "bad")  # the new pods never turn Ready: the rollout holds where the bounds stop it
    world.settle(ready_per_pass=10)
    old, new = world.replica_sets()
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (8, 5)
    world.patch(lambda spec: spec.update(replicas=20))
    world.step()
    old, new = world.replica_sets()
    assert (old["spec"]["replicas"], new["spec"]["replicas"]) == (15, 10)
    assert old["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "20"
    world.settle(ready_per_pass=10)  # then the rolling update goes on from there, within the new bounds
    old, new = world.replica_sets()
    assert old["spec"]["replicas"] + new["spec"]["replicas"] <= 25 and old["spec"]["replicas"] >= 15


def test_a_deployment_applied_again_after_an_orphaning_delete_adopts_its_replica_set(world: World) -> None:
    world.apply()
    world.settle(ready_per_pass=4)
    (rs,) = world.replica_sets()
    pods = {p["metadata"]["name"] for p in world.pods()}
    # What `ekctl delete deploy web --cascade=orphan` does: the ReplicaSet loses its owner, then the Deployment goes.
    meta = {k: v for k, v in rs["metadata"].items() if k != "ownerReferences"}
    world.store.update({**rs, "metadata": meta})
    world.store.delete("Deployment", "default", "web")
    world.settle(ready_per_pass=4)
    assert {p["metadata"]["name"] for p in world.pods()} == pods  # the orphans keep running
    world.apply()
    world.settle(ready_per_pass=4)
    (again,) = world.replica_sets()
    assert again["metadata"]["name"] == rs["metadata"]["name"]
    assert controller_ref(again)["uid"] == world.deployment()["metadata"]["uid"]  # type: ignore[index]
    assert {p["metadata"]["name"] for p in world.pods()} == pods  # not one pod replaced, none doubled
