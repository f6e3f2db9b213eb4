"""The replication controller: the pure plan as tables (adopt, release, scale, ordering, selectors), then passes
of the registered controller (its plan, the shared apply) over a real store."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from edgekube.master.cache import CachedStore
from edgekube.master.controllers.base import CreatePod, Effects, Snapshot, apply
from edgekube.master.controllers.owners import controller_ref, owner_ref, without_owner
from edgekube.master.controllers.replication import plan as plan_module
from edgekube.master.controllers.replication.actions import AdoptPod, DeletePod, ReleasePod, ReplicaAction, SetStatus
from edgekube.master.controllers.replication.controller import ReplicationManager, selector_of
from edgekube.master.controllers.replication.plan import (
    BURST,
    TERMINAL_GRACE,
    dangling,
    deletion_order,
    generate_name,
    plan,
    replica_status,
)
from edgekube.master.eventlog import EventLog
from edgekube.model.controllers import ReplicaSet, ReplicationController
from edgekube.model.pod import Pod
from edgekube.store.state import TinyStateStore

NOW = 1_800_000_000.0


def rfc3339(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


TEMPLATE_SPEC = {"containers": [{"name": "web", "image": "busybox:1.36"}], "restartPolicy": "Always"}


def rc(
    name: str = "web",
    *,
    replicas: int = 3,
    selector: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    uid: str = "rc-uid",
    namespace: str = "default",
    status: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A stored ReplicationController, validated by the model like every stored one."""
    template_labels = labels or {"app": "web"}
    doc = ReplicationController.from_dict(
        {
            "metadata": {"name": name, "namespace": namespace, "uid": uid, "generation": 2},
            "spec": {
                "replicas": replicas,
                "selector": selector or {"app": "web"},
                "template": {"metadata": {"labels": template_labels, "annotations": {"a": "1"}}, "spec": TEMPLATE_SPEC},
                **spec,
            },
        }
    ).to_dict()
    doc["metadata"]["resourceVersion"] = "1"
    if status is not None:
        doc["status"] = status
    return doc


def pod(
    name: str,
    labels: dict[str, str] | None = None,
    *,
    owner: str | None = "rc-uid",
    owner_kind: str = "ReplicationController",
    phase: str = "Running",
    ready: bool = True,
    node: str | None = "node-1",
    restarts: int = 0,
    created: str = "2026-11-28T10:00:00Z",
    namespace: str = "default",
    ready_since: str | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": f"uid-{name}",
        "labels": {"app": "web"} if labels is None else labels,
        "creationTimestamp": created,
        "resourceVersion": "5",
    }
    if owner is not None:
        meta["ownerReferences"] = [
            {"apiVersion": "v1", "kind": owner_kind, "name": "x", "uid": owner, "controller": True}
        ]
    condition: dict[str, Any] = {"type": "Ready", "status": "True" if ready else "False"}
    if ready_since:
        condition["lastTransitionTime"] = ready_since
    spec: dict[str, Any] = dict(TEMPLATE_SPEC)
    if node:
        spec["nodeName"] = node
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": spec,
        "status": {
            "phase": phase,
            "conditions": [condition],
            "containerStatuses": [{"name": "web", "image": "busybox:1.36", "restartCount": restarts}],
        },
    }


def run(controller: dict[str, Any], pods: list[dict[str, Any]], **kw: Any) -> list[ReplicaAction]:
    return plan(controller, selector_of(controller), pods, NOW, rng=random.Random(7), **kw)


def summary(actions: list[ReplicaAction]) -> list[tuple[str, str]]:
    """(action, pod name) for pod actions; status updates are checked separately."""
    out = []
    for a in actions:
        if isinstance(a, CreatePod):
            out.append(("create", "*"))
        elif isinstance(a, DeletePod):
            out.append((f"delete:{a.why}", a.name))
        elif isinstance(a, AdoptPod):
            out.append(("adopt", a.name))
        elif isinstance(a, ReleasePod):
            out.append(("release", a.name))
    return out


def status_of(actions: list[ReplicaAction]) -> dict[str, Any] | None:
    found = [a.status for a in actions if isinstance(a, SetStatus)]
    return found[0] if found else None


def running(*names: str, **kw: Any) -> list[dict[str, Any]]:
    return [pod(n, **kw) for n in names]


# -- counting ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replicas", "pods", "expected"),
    [
        (3, [], [("create", "*")] * 3),
        (3, running("a", "b", "c"), []),
        (3, running("a"), [("create", "*")] * 2),
        (1, running("a", "b", "c"), [("delete:scale down", "a"), ("delete:scale down", "b")]),
        (0, running("b", "a"), [("delete:scale down", "a"), ("delete:scale down", "b")]),
        (0, [], []),
    ],
    ids=["from-zero", "steady", "scale-up", "scale-down", "to-zero", "zero"],
)
def test_the_plan_converges_on_spec_replicas(
    replicas: int, pods: list[dict[str, Any]], expected: list[tuple[str, str]]
) -> None:
    assert summary(run(rc(replicas=replicas), pods)) == expected


def test_new_pods_come_from_the_template_owned_by_the_controller() -> None:
    controller = rc(replicas=2)
    creates = [a for a in run(controller, []) if isinstance(a, CreatePod)]
    names = [c.pod["metadata"]["name"] for c in creates]
    assert len(set(names)) == 2
    for create in creates:
        new = create.pod
        assert new["metadata"]["name"].startswith("web-") and len(new["metadata"]["name"]) == len("web-") + 5
        assert new["metadata"]["namespace"] == "default"
        assert new["metadata"]["labels"] == {"app": "web"}
        assert new["metadata"]["annotations"] == {"a": "1"}
        assert new["metadata"]["ownerReferences"] == [
            {"apiVersion": "v1", "kind": "ReplicationController", "name": "web", "uid": "rc-uid", "controller": True}
        ]
        assert new["spec"] == controller["spec"]["template"]["spec"]
        assert new["status"] == {"phase": "Pending"}
        Pod.from_dict(new)  # a valid pod


def test_generated_names_avoid_names_in_use_and_use_kubernetes_alphabet() -> None:
    rng = random.Random(1)
    taken = {generate_name("web", set(), random.Random(1))}
    fresh = generate_name("web", taken, rng)
    assert fresh not in taken
    assert set(fresh.removeprefix("web-")) <= set("bcdfghjklmnpqrstvwxz2456789")
    long = generate_name("x" * 253, set(), rng)
    assert len(long) == 63 and long.startswith("x" * 58)
    creates = run(rc(replicas=1), [pod("other", labels={"app": "db"}, owner=None)], taken={"web-abcde"})
    assert all(a.pod["metadata"]["name"] not in ("web-abcde", "other") for a in creates if isinstance(a, CreatePod))


def test_a_big_scale_up_is_made_in_bursts() -> None:
    assert len([a for a in run(rc(replicas=BURST + 200), []) if isinstance(a, CreatePod)]) == BURST
    assert len([a for a in run(rc(replicas=5), [], burst=2) if isinstance(a, CreatePod)]) == 2


# -- loose coupling --------------------------------------------------------------------------------------------


def test_a_matching_pod_without_a_controller_is_adopted_and_counted() -> None:
    actions = run(rc(replicas=2), [pod("bare", owner=None)])
    assert summary(actions) == [("adopt", "bare"), ("create", "*")]
    adopt = next(a for a in actions if isinstance(a, AdoptPod))
    assert adopt.ref == {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "name": "web",
        "uid": "rc-uid",
        "controller": True,
    }


def test_a_relabelled_pod_is_released_and_replaced() -> None:
    pods = [*running("a", "b"), pod("c", labels={"app": "debug"})]
    assert summary(run(rc(replicas=3), pods)) == [("release", "c"), ("create", "*")]


def test_pods_of_another_controller_are_never_touched_nor_counted() -> None:
    pods = [pod("theirs", owner="other-uid"), pod("rs", owner="rs-uid", owner_kind="ReplicaSet")]
    assert summary(run(rc(replicas=1), pods)) == [("create", "*")]
    assert summary(run(rc(replicas=0), pods)) == []


def test_pods_of_other_namespaces_are_invisible() -> None:
    assert summary(run(rc(replicas=1), [pod("a", namespace="prod"), pod("b", namespace="prod", owner=None)])) == [
        ("create", "*")
    ]


def test_a_non_matching_pod_without_a_controller_is_left_alone() -> None:
    assert summary(run(rc(replicas=1), [*running("a"), pod("db", labels={"app": "db"}, owner=None)])) == []


def test_changing_the_selector_changes_the_managed_set_at_once() -> None:
    narrower = rc(replicas=2, selector={"app": "web", "tier": "front"}, labels={"app": "web", "tier": "front"})
    pods = [
        pod("old-1"),  # owned, lacks tier: released
        pod("front", labels={"app": "web", "tier": "front"}, owner=None),  # unowned, matches: adopted
        pod("owned-front", labels={"app": "web", "tier": "front"}),
    ]
    assert summary(run(narrower, pods)) == [("release", "old-1"), ("adopt", "front")]


def test_a_replicaset_selects_with_match_expressions() -> None:
    rs = ReplicaSet.from_dict(
        {
            "metadata": {"name": "api", "namespace": "default", "uid": "rs-uid", "generation": 1},
            "spec": {
                "replicas": 2,
                "selector": {
                    "matchLabels": {"app": "api"},
                    "matchExpressions": [
                        {"key": "env", "operator": "In", "values": ["prod", "test"]},
                        {"key": "canary", "operator": "DoesNotExist"},
                    ],
                },
                "template": {"metadata": {"labels": {"app": "api", "env": "prod"}}, "spec": TEMPLATE_SPEC},
            },
        }
    ).to_dict()
    pods = [
        pod("p", labels={"app": "api", "env": "prod"}, owner=None),
        pod("t", labels={"app": "api", "env": "test"}, owner=None),
        pod("dev", labels={"app": "api", "env": "dev"}, owner=None),
        pod("canary", labels={"app": "api", "env": "prod", "canary": "1"}, owner=None),
    ]
    actions = run(rs, pods)
    assert summary(actions) == [("adopt", "p"), ("adopt", "t")]
    adopt = next(a for a in actions if isinstance(a, AdoptPod))
    assert (adopt.ref["apiVersion"], adopt.ref["kind"]) == ("apps/v1", "ReplicaSet")


# -- terminal pods -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_terminal_pods_are_not_active_they_are_deleted_and_replaced(phase: str) -> None:
    pods = [*running("a"), pod("dead", phase=phase, ready=False)]
    assert summary(run(rc(replicas=2), pods)) == [("delete:terminal", "dead"), ("create", "*")]


def test_a_pod_that_ends_right_after_its_creation_is_replaced_only_after_the_grace() -> None:
    young = pod("crashed", phase="Failed", ready=False, created=rfc3339(NOW - TERMINAL_GRACE + 1))
    assert summary(run(rc(replicas=2), [*running("a"), young])) == []  # holds its place: no hot loop
    assert status_of(run(rc(replicas=2), [*running("a"), young]))["replicas"] == 1  # type: ignore[index]
    grown = pod("crashed", phase="Failed", ready=False, created=rfc3339(NOW - TERMINAL_GRACE))
    assert summary(run(rc(replicas=2), [*running("a"), grown])) == [("delete:terminal", "crashed"), ("create", "*")]
    assert summary(run(rc(replicas=1), [*running("a"), young])) == [("delete:scale down", "crashed")]


def test_a_terminal_pod_without_a_controller_is_not_adopted() -> None:
    assert summary(run(rc(replicas=1), [*running("a"), pod("dead", phase="Failed", owner=None)])) == []


# -- which pods go on a scale-down ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (pod("x", node=None, phase="Pending", ready=False), pod("y", phase="Pending", ready=False)),
        (pod("x", phase="Pending", ready=False), pod("y", phase="Unknown", ready=False)),
        (pod("x", phase="Unknown", ready=False), pod("y", phase="Running", ready=False)),
        (pod("x", phase="Pending", ready=False), pod("y")),
        (pod("x", ready=False), pod("y")),
        (pod("x", restarts=5), pod("y", restarts=1)),
        (pod("x", created="2026-11-28T10:00:05Z"), pod("y", created="2026-11-28T10:00:04Z")),
        (pod("x"), pod("y")),  # all equal: by name, so the choice is deterministic
        # Earlier criteria win over later ones.
        (pod("x", node=None, phase="Pending", ready=False), pod("y", phase="Pending", ready=False, restarts=9)),
        (pod("x", ready=False, created="2026-01-01T00:00:00Z"), pod("y", restarts=3, created="2026-12-01T00:00:00Z")),
        (pod("x", restarts=1, created="2026-01-01T00:00:00Z"), pod("y", created="2026-12-01T00:00:00Z")),
    ],
    ids=[
        "unscheduled-first",
        "pending-before-unknown",
        "unknown-before-running",
        "pending-before-running",
        "not-ready-first",
        "more-restarts-first",
        "newer-first",
        "by-name",
        "unscheduled-beats-restarts",
        "not-ready-beats-restarts-and-age",
        "restarts-beat-age",
    ],
)
def test_scale_down_deletes_like_kubernetes_active_pods(first: dict[str, Any], second: dict[str, Any]) -> None:
    assert [p["metadata"]["name"] for p in deletion_order([second, first])] == ["x", "y"]
    assert summary(run(rc(replicas=1), [second, first])) == [("delete:scale down", "x")]


# -- status ----------------------------------------------------------------------------------------------------------


def test_status_counts_active_owned_pods() -> None:
    controller = rc(replicas=4, selector={"app": "web"}, labels={"app": "web", "tier": "front"})
    pods = [
        pod("ready-labelled", labels={"app": "web", "tier": "front"}),
        pod("ready"),
        pod("starting", phase="Pending", ready=False),
        pod("dead", phase="Failed", ready=False),  # not active
        pod("theirs", owner="other"),  # not ours
    ]
    assert status_of(run(controller, pods)) == {
        "replicas": 3,
        "fullyLabeledReplicas": 1,
        "readyReplicas": 2,
        "availableReplicas": 2,
        "observedGeneration": 2,
    }


def test_available_needs_min_ready_seconds_of_readiness() -> None:
    controller = rc(replicas=3, minReadySeconds=10)
    pods = [
        pod("long", ready_since="2027-01-15T07:59:00Z"),  # NOW is 2027-01-15T08:00:00Z
        pod("just", ready_since="2027-01-15T07:59:55Z"),
        pod("unknown-since"),
    ]
    status = replica_status(controller, pods, NOW)
    assert (status["readyReplicas"], status["availableReplicas"]) == (3, 1)


def test_status_is_only_written_when_it_changes() -> None:
    current = {
        "replicas": 2,
        "fullyLabeledReplicas": 2,
        "readyReplicas": 2,
        "availableReplicas": 2,
        "observedGeneration": 2,
    }
    assert run(rc(replicas=2, status=current), running("a", "b")) == []
    assert status_of(run(rc(replicas=2, status=current), [pod("a"), pod("b", ready=False)])) == {
        **current,
        "readyReplicas": 1,
        "availableReplicas": 1,
    }


# -- garbage collection and owner references ---------------------------------------------------------------------------


def test_pods_whose_controller_is_gone_are_garbage() -> None:
    pods = [
        pod("gone", owner="deleted-uid"),
        pod("alive", owner="rc-uid"),
        pod("bare", owner=None),
        pod("other-kind", owner="deployment-uid", owner_kind="Deployment"),
    ]
    assert [(d.name, d.why) for d in dangling(pods, {"rc-uid"})] == [("gone", "owner gone")]


def test_owner_reference_helpers() -> None:
    controller = rc()
    owned = pod("a")
    owned["metadata"]["ownerReferences"].append({"apiVersion": "v1", "kind": "X", "name": "y", "uid": "keep"})
    assert owner_ref(controller)["uid"] == "rc-uid"
    assert controller_ref(owned) is not None
    assert controller_ref(pod("b", owner=None)) is None
    stripped = without_owner(owned, "rc-uid")
    assert stripped["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "X", "name": "y", "uid": "keep"}]
    assert "ownerReferences" not in without_owner(pod("c"), "rc-uid")["metadata"]
    assert owned["metadata"]["ownerReferences"][0]["uid"] == "rc-uid"  # the input is not changed


# -- apply, over a real (in-memory) store ---------------------------------------------------------------------------


@pytest.fixture
def store() -> Iterator[CachedStore]:
    with TinyStateStore(None) as backend:
        yield CachedStore(backend)


def run_pass(manager: ReplicationManager, store: CachedStore, events: EventLog, now: float) -> int:
    """One pass as the master runs it: the controller's plan, then the shared apply; returns the actions taken."""
    return apply(manager.plan(Snapshot(store, now)), Effects(store, events))


def stored_rc(store: CachedStore, **kw: Any) -> dict[str, Any]:
    doc = rc(**kw)
    for field in ("uid", "resourceVersion"):
        doc["metadata"].pop(field)
    return store.create(doc)


def test_a_pass_creates_records_events_and_then_settles(store: CachedStore) -> None:
    events = EventLog()
    manager = ReplicationManager(store, random.Random(3))
    controller = stored_rc(store, replicas=3)
    run_pass(manager, store, events, NOW)
    pods = list(store.objects("Pod").values())
    assert len(pods) == 3
    assert {controller_ref(p)["uid"] for p in pods} == {controller["metadata"]["uid"]}  # type: ignore[index]
    assert [e["reason"] for e in events.list()] == ["SuccessfulCreate"] * 3
    run_pass(manager, store, events, NOW)  # the status catches up with the pods
    assert store.peek("ReplicationController", "default", "web")["status"]["replicas"] == 3
    writes = store.writes
    assert run_pass(manager, store, events, NOW) == 0
    assert store.writes == writes  # a settled controller writes nothing (SD card)


def test_a_pass_adopts_releases_and_collects_garbage(store: CachedStore) -> None:
    events = EventLog()
    controller = stored_rc(store, replicas=1)
    uid = controller["metadata"]["uid"]
    bare = pod("bare", owner=None)
    debug = pod("debug", labels={"app": "debug"}, owner=uid)
    orphan = pod("orphan", owner="gone-uid")
    for doc in (bare, debug, orphan):
        for field in ("uid", "resourceVersion"):
            doc["metadata"].pop(field)
        store.create(doc)
    run_pass(ReplicationManager(store, random.Random(1)), store, events, NOW)
    pods = store.objects("Pod")
    assert sorted(name for _, name in pods) == ["bare", "debug"]
    assert controller_ref(pods[("default", "bare")])["uid"] == uid  # type: ignore[index]
    assert "ownerReferences" not in pods[("default", "debug")]["metadata"]
    assert [e["reason"] for e in events.list()] == ["SuccessfulDelete"]  # the garbage collector's
    assert events.list()[0]["source"]["component"] == "garbage-collector"


def test_a_pass_scales_down_and_records_it(store: CachedStore) -> None:
    events = EventLog()
    manager = ReplicationManager(store, random.Random(2))
    stored_rc(store, replicas=3)
    run_pass(manager, store, events, NOW)
    current = store.peek("ReplicationController", "default", "web")
    store.update({**current, "spec": {**current["spec"], "replicas": 1}})
    run_pass(manager, store, events, NOW)
    assert len(store.objects("Pod")) == 1
    assert [e["reason"] for e in events.list()].count("SuccessfulDelete") == 2


class TestWhichControllersAPassPlans:
    """Only controllers whose inputs changed are planned; a full pass every `resync` seconds is the safety net."""

    @pytest.fixture
    def planned(self, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        names: list[str] = []

        def counting(controller: dict[str, Any], *args: Any, **kwargs: Any) -> list[ReplicaAction]:
            names.append(controller["metadata"]["name"])
            return plan(controller, *args, **kwargs)

        monkeypatch.setattr(plan_module, "plan", counting)
        return names

    def settled(self, store: CachedStore) -> ReplicationManager:
        manager = ReplicationManager(store, random.Random(4), resync=60)
        stored_rc(store, replicas=2)
        stored_rc(store, name="db", labels={"app": "db"}, selector={"app": "db"}, uid="db-uid", replicas=1)
        for _ in range(3):
            run_pass(manager, store, EventLog(), NOW)
        return manager

    def test_a_settled_cluster_plans_nothing(self, store: CachedStore, planned: list[str]) -> None:
        manager = self.settled(store)
        planned.clear()
        assert run_pass(manager, store, EventLog(), NOW + 1) == 0
        assert planned == []

    def test_a_change_to_one_pod_plans_only_its_controller(self, store: CachedStore, planned: list[str]) -> None:
        manager = self.settled(store)
        planned.clear()
        key = next(k for k, p in store.objects("Pod").items() if p["metadata"]["labels"]["app"] == "web")
        store.delete("Pod", *key)
        run_pass(manager, store, EventLog(), NOW + 1)  # creates the replacement
        assert planned == ["web"]
        assert len([p for p in store.objects("Pod").values() if p["metadata"]["labels"]["app"] == "web"]) == 2

    def test_a_new_unowned_pod_plans_the_controllers_of_its_namespace(
        self, store: CachedStore, planned: list[str]
    ) -> None:
        manager = self.settled(store)
        planned.clear()
        stray = pod("stray", labels={"app": "db"}, owner=None)
        for field in ("uid", "resourceVersion"):
            stray["metadata"].pop(field)
        store.create(stray)
        run_pass(manager, store, EventLog(), NOW + 1)
        assert sorted(planned) == ["db", "web"]
        assert controller_ref(store.peek("Pod", "default", "stray")) is not None  # adopted by db

    def test_every_controller_is_planned_again_after_resync(self, store: CachedStore, planned: list[str]) -> None:
        manager = self.settled(store)
        planned.clear()
        run_pass(manager, store, EventLog(), NOW + 61)
        assert sorted(planned) == ["db", "web"]

    def test_a_terminal_pod_in_its_grace_keeps_its_controller_planned(
        self, store: CachedStore, planned: list[str]
    ) -> None:
        manager = self.settled(store)
        (key, victim), *_ = ((k, p) for k, p in store.objects("Pod").items() if p["metadata"]["labels"]["app"] == "db")
        store.update(
            {
                **victim,
                "metadata": {**victim["metadata"], "creationTimestamp": rfc3339(NOW)},
                "status": {"phase": "Failed"},
            }
        )
        run_pass(manager, store, EventLog(), NOW + 1)
        planned.clear()
        run_pass(manager, store, EventLog(), NOW + 2)  # nothing changed, but the grace is running out
        assert planned == ["db"]
        run_pass(manager, store, EventLog(), NOW + TERMINAL_GRACE + 1)
        assert key not in store.objects("Pod")  # deleted once its grace ran out, without a resync
