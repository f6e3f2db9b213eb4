"""The master's API over an in-memory store: apply/get/list/delete, and `handle` answering every failure."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from edgekube.master.api import Api
from edgekube.master.cache import CachedStore
from edgekube.model.errors import (
    BusError,
    ConflictError,
    NotFoundError,
    StoreError,
    ValidationError,
)
from edgekube.model.wire import ApiRequest, ApiResponse, Verb
from edgekube.store.state import TinyStateStore


def decorate(node: dict[str, Any]) -> dict[str, Any]:
    return {**node, "status": {**node.get("status", {}), "conditions": [{"type": "Ready", "status": "True"}]}}


@pytest.fixture
def store() -> Iterator[CachedStore]:
    with TinyStateStore(None) as s:
        yield CachedStore(s)


@pytest.fixture
def api(store: CachedStore) -> Api:
    return Api(store, decorate)


def pod(
    name: str = "web",
    *,
    namespace: str | None = None,
    labels: dict[str, str] | None = None,
    image: str = "nginx:1.25",
    **spec: Any,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": labels or {}}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": "app", "image": image}], **spec},
    }


def node(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}


def manifest(*docs: dict[str, Any]) -> str:
    return "\n---\n".join(json.dumps(d) for d in docs)


def actions(api: Api, *docs: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    return [(o.kind, o.namespace, o.name, o.action) for o in api.apply(manifest(*docs))]


def call(api: Api, verb: Verb, **fields: Any) -> ApiResponse:
    response = api.handle(ApiRequest(verb=verb, **fields))
    assert ApiResponse.decode(response.encode()) == response  # every answer can go on the wire
    return response


# -- apply ----------------------------------------------------------------------------------------------------


def test_apply_creates_a_pending_pod_with_server_fields(api: Api, store: CachedStore) -> None:
    assert actions(api, pod()) == [("Pod", "default", "web", "created")]
    stored = store.get("Pod", "default", "web")
    assert stored["status"] == {"phase": "Pending"}
    assert (
        stored["metadata"]["uid"] and stored["metadata"]["resourceVersion"] and stored["metadata"]["creationTimestamp"]
    )
    assert stored["spec"]["containers"][0]["image"] == "nginx:1.25"
    assert stored["spec"]["restartPolicy"] == "Always"  # defaults are stored explicitly


def test_apply_ignores_status_and_server_fields_in_the_manifest(api: Api, store: CachedStore) -> None:
    doc = pod()
    doc["metadata"].update(uid="mine", resourceVersion="99", creationTimestamp="2000-01-01T00:00:00Z", generation=5)
    doc["status"] = {"phase": "Running"}
    api.apply(manifest(doc))
    stored = store.get("Pod", "default", "web")
    assert stored["metadata"]["uid"] != "mine"
    assert stored["metadata"]["resourceVersion"] == "1"
    assert "generation" not in stored["metadata"]
    assert stored["status"] == {"phase": "Pending"}


def test_reapplying_the_same_manifest_is_unchanged(api: Api, store: CachedStore) -> None:
    api.apply(manifest(pod(labels={"app": "web"})))
    before = store.get("Pod", "default", "web")
    assert actions(api, pod(labels={"app": "web"})) == [("Pod", "default", "web", "unchanged")]
    assert store.get("Pod", "default", "web") == before


def test_reapplying_after_scheduling_is_unchanged(api: Api, store: CachedStore) -> None:
    api.apply(manifest(pod()))
    bound = store.get("Pod", "default", "web")
    bound["spec"]["nodeName"] = "pi-1"
    bound["status"] = {"phase": "Running"}
    store.update(bound)
    assert actions(api, pod()) == [("Pod", "default", "web", "unchanged")]
    assert store.get("Pod", "default", "web")["status"] == {"phase": "Running"}


@pytest.mark.parametrize(
    ("change", "field", "value"),
    [
        ({"labels": {"app": "web", "tier": "front"}}, "labels", {"app": "web", "tier": "front"}),
        ({"labels": {}}, "labels", {}),
        ({"annotations": {"note": "x"}}, "annotations", {"note": "x"}),
    ],
)
def test_a_label_or_annotation_change_is_an_update(
    api: Api, store: CachedStore, change: dict[str, Any], field: str, value: dict[str, str]
) -> None:
    api.apply(manifest(pod(labels={"app": "web"})))
    doc = pod(labels={"app": "web"})
    doc["metadata"].update(change)
    before = store.get("Pod", "default", "web")
    assert actions(api, doc) == [("Pod", "default", "web", "updated")]
    after = store.get("Pod", "default", "web")
    assert after["metadata"][field] == value
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert int(after["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])
    assert after["spec"] == before["spec"] and after["status"] == before["status"]


@pytest.mark.parametrize(
    "changed",
    [pod(image="nginx:1.26"), pod(restartPolicy="Never"), pod(nodeName="pi-2")],
    ids=["image", "restartPolicy", "nodeName"],
)
def test_a_spec_change_to_a_pod_is_forbidden_with_a_hint(api: Api, store: CachedStore, changed: dict[str, Any]) -> None:
    api.apply(manifest(pod()))
    before = store.get("Pod", "default", "web")
    response = call(api, Verb.APPLY, manifest=manifest(changed))
    assert not response.ok and response.error is not None
    assert response.error.reason == "Invalid"
    assert response.error.message == (
        "Pod default/web: spec: Forbidden: pod updates may not change fields other than metadata.labels "
        "and metadata.annotations"
    )
    assert response.error.hint == "delete the pod and apply it again (a ReplicationController does this for you)"
    assert store.get("Pod", "default", "web") == before


def test_a_node_spec_may_change(api: Api, store: CachedStore) -> None:
    api.apply(manifest(node("pi-1")))
    doc = node("pi-1")
    doc["spec"] = {"unschedulable": True}
    assert actions(api, doc) == [("Node", "", "pi-1", "updated")]
    assert store.get("Node", "", "pi-1")["spec"] == {"unschedulable": True, "taints": []}


def test_apply_of_several_documents_reports_each(api: Api) -> None:
    api.apply(manifest(pod("old")))
    assert actions(api, pod("old"), pod("new", namespace="prod"), node("pi-1", zone="a")) == [
        ("Pod", "default", "old", "unchanged"),
        ("Pod", "prod", "new", "created"),
        ("Node", "", "pi-1", "created"),
    ]


def test_the_same_object_twice_in_one_manifest_ends_as_the_later_document(api: Api, store: CachedStore) -> None:
    assert actions(api, pod(labels={"v": "1"}), pod(labels={"v": "2"}), pod(labels={"v": "2"})) == [
        ("Pod", "default", "web", "created"),
        ("Pod", "default", "web", "updated"),
        ("Pod", "default", "web", "unchanged"),
    ]
    assert store.get("Pod", "default", "web")["metadata"]["labels"] == {"v": "2"}


@pytest.mark.parametrize(
    ("second", "message"),
    [
        (pod("Bad"), 'request[2]: metadata.name: Invalid value: "Bad": a lowercase RFC 1123 subdomain must consist of'),
        ({"apiVersion": "v1", "kind": "Ingress"}, "request[2]: kind: Ingress (v1) is not supported"),
        (pod("existing", image="other"), "Pod default/existing: spec: Forbidden: "),
    ],
    ids=["invalid-field", "unknown-kind", "forbidden-update"],
)
def test_a_manifest_with_a_bad_last_document_stores_nothing(
    api: Api, store: CachedStore, second: dict[str, Any], message: str
) -> None:
    api.apply(manifest(pod("existing", labels={"v": "1"})))
    before = store.list("Pod")
    first = [pod("fresh"), pod("existing", labels={"v": "2"})]
    response = call(api, Verb.APPLY, manifest=manifest(*first, second))
    assert response.error is not None and response.error.reason == "Invalid"
    assert response.error.message.startswith(message)
    assert store.list("Pod") == before
    assert store.list("Node") == []


def test_an_invalid_manifest_names_every_problem(api: Api) -> None:
    response = call(api, Verb.APPLY, manifest="apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {}\n")
    assert response.error is not None
    assert response.error.message == "request[0]: spec.containers: Required value"
    assert response.error.hint == "run `ekctl lint FILE` to list every problem"


def test_an_empty_apply_does_nothing(api: Api, store: CachedStore) -> None:
    assert call(api, Verb.APPLY) == ApiResponse(ok=True, outcomes=[])
    assert store.list("Pod") == []


# -- get / list / delete ------------------------------------------------------------------------------------------


def test_get_returns_the_stored_pod(api: Api, store: CachedStore) -> None:
    api.apply(manifest(pod(namespace="prod")))
    response = call(api, Verb.GET, kind="Pod", namespace="prod", name="web")
    assert response.ok and response.object == store.get("Pod", "prod", "web")


def test_get_defaults_the_namespace(api: Api) -> None:
    api.apply(manifest(pod()))
    assert api.get("Pod", None, "web")["metadata"]["namespace"] == "default"


def test_a_node_is_decorated_and_cluster_scoped(api: Api) -> None:
    api.apply(manifest(node("pi-1")))
    for namespace in (None, "", "default", "anything"):
        got = api.get("Node", namespace, "pi-1")
        assert got["status"]["conditions"] == [{"type": "Ready", "status": "True"}]
    [listed] = api.list("Node", "default", None)
    assert listed["status"]["conditions"][0]["type"] == "Ready"


def test_pods_are_not_decorated(api: Api, store: CachedStore) -> None:
    api.apply(manifest(pod()))
    assert api.get("Pod", "default", "web") == store.get("Pod", "default", "web")


@pytest.fixture
def labelled(api: Api) -> Api:
    api.apply(
        manifest(
            pod("a", labels={"app": "x", "tier": "a"}),
            pod("b", labels={"app": "x", "tier": "b"}),
            pod("c", labels={"app": "y", "tier": "c", "x": "1"}),
            pod("d", namespace="prod", labels={"app": "x"}),
        )
    )
    return api


@pytest.mark.parametrize(
    ("namespace", "selector", "names"),
    [
        (None, None, ["default/a", "default/b", "default/c", "prod/d"]),
        (None, "", ["default/a", "default/b", "default/c", "prod/d"]),
        ("default", None, ["default/a", "default/b", "default/c"]),
        ("prod", None, ["prod/d"]),
        ("empty", None, []),
        (None, "app=x", ["default/a", "default/b", "prod/d"]),
        ("default", "app=x", ["default/a", "default/b"]),
        (None, "app!=x", ["default/c"]),
        (None, "tier in (a,b)", ["default/a", "default/b"]),
        (None, "tier notin (a,b)", ["default/c", "prod/d"]),
        (None, "!x", ["default/a", "default/b", "prod/d"]),
        (None, "x", ["default/c"]),
        (None, "app=x,tier", ["default/a", "default/b"]),
    ],
)
def test_list_filters_by_namespace_and_selector(
    labelled: Api, namespace: str | None, selector: str | None, names: list[str]
) -> None:
    response = call(labelled, Verb.LIST, kind="Pod", namespace=namespace, selector=selector)
    assert response.ok and response.items is not None
    assert [f"{o['metadata']['namespace']}/{o['metadata']['name']}" for o in response.items] == names


def test_a_bad_selector_is_invalid_with_the_syntax_hint(labelled: Api) -> None:
    response = call(labelled, Verb.LIST, kind="Pod", selector="tier in (a")
    assert response.error is not None and response.error.reason == "Invalid"
    assert response.error.message.startswith('selector "tier in (a": ')
    assert response.error.hint.startswith("selector syntax: ")


def test_list_of_nodes_with_a_selector(api: Api) -> None:
    api.apply(manifest(node("pi-2", zone="b"), node("pi-1", zone="a"), node("pi-3")))
    assert [n["metadata"]["name"] for n in api.list("Node", None, "zone")] == ["pi-1", "pi-2"]
    assert [n["metadata"]["name"] for n in api.list("Node", None, None)] == ["pi-1", "pi-2", "pi-3"]


def test_delete_removes_and_reports(api: Api, store: CachedStore) -> None:
    api.apply(manifest(pod(), node("pi-1")))
    response = call(api, Verb.DELETE, kind="Pod", name="web")
    assert response.outcomes is not None
    assert [(o.kind, o.namespace, o.name, o.action) for o in response.outcomes] == [
        ("Pod", "default", "web", "deleted")
    ]
    assert store.list("Pod") == []
    assert api.delete("Node", "default", "pi-1").namespace == ""
    assert store.list("Node") == []


@pytest.mark.parametrize(
    ("verb", "fields", "message"),
    [
        (Verb.GET, {"kind": "Pod", "name": "nope"}, "Pod default/nope not found"),
        (Verb.GET, {"kind": "Pod", "namespace": "prod", "name": "nope"}, "Pod prod/nope not found"),
        (Verb.GET, {"kind": "Node", "name": "nope"}, "Node nope not found"),
        (Verb.DELETE, {"kind": "Pod", "name": "nope"}, "Pod default/nope not found"),
        (Verb.DELETE, {"kind": "Node", "name": "nope"}, "Node nope not found"),
    ],
)
def test_unknown_names_are_not_found(api: Api, verb: Verb, fields: dict[str, Any], message: str) -> None:
    response = call(api, verb, **fields)
    assert not response.ok and response.error is not None
    assert (response.error.reason, response.error.message) == ("NotFound", message)


# -- handle never raises ----------------------------------------------------------------------------------------


SUPPORTED = (
    "(supported: Pod, Node, ReplicationController, ReplicaSet, Deployment, PersistentVolume, PersistentVolumeClaim, "
    "StorageClass, "
    "ConfigMap, Secret, Event, Service, Endpoints, EndpointSlice)"
)


@pytest.mark.parametrize(
    ("verb", "fields", "message"),
    [
        (
            Verb.GET,
            {"kind": "DaemonSet", "name": "x"},
            "kind: 'DaemonSet' is not supported " + SUPPORTED,
        ),
        (
            Verb.LIST,
            {},
            "kind: None is not supported " + SUPPORTED,
        ),
        (
            Verb.LIST,
            {"kind": "pod"},
            "kind: 'pod' is not supported " + SUPPORTED,
        ),
        (Verb.GET, {"kind": "Pod"}, "name: Required value for verb get"),
        (Verb.DELETE, {"kind": "Pod"}, "name: Required value for verb delete"),
        (Verb.LOGS, {"kind": "Pod", "name": "web"}, "verb: 'logs' is not handled by the master API"),
        (Verb.APPLY, {"manifest": "a: [1"}, "request: invalid YAML at line 1, column 6: "),
    ],
)
def test_bad_requests_are_invalid(api: Api, verb: Verb, fields: dict[str, Any], message: str) -> None:
    response = call(api, verb, **fields)
    assert not response.ok and response.error is not None
    assert response.error.reason == "Invalid"
    assert response.error.message.startswith(message)
    assert (response.items, response.object, response.outcomes) == (None, None, None)


class BrokenStore(TinyStateStore):
    """A store whose writes fail the way a given exception says."""

    def __init__(self, failure: Exception) -> None:
        super().__init__(None)
        self.failure = failure

    def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        raise self.failure

    def list(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]:
        raise self.failure


@pytest.mark.parametrize(
    ("failure", "reason", "message", "hint"),
    [
        (ConflictError("Pod default/web already exists", hint="h"), "Conflict", "Pod default/web already exists", "h"),
        (StoreError("the state store is closed"), "Unavailable", "the state store is closed", ""),
        (BusError("broker gone"), "Unavailable", "broker gone", ""),
        (NotFoundError("gone"), "NotFound", "gone", ""),
        (KeyError("metadata"), "Internal", "internal error: KeyError: 'metadata'", "see the master's log"),
    ],
)
def test_handle_turns_every_failure_into_an_answer(
    failure: Exception, reason: str, message: str, hint: str, caplog: pytest.LogCaptureFixture
) -> None:
    api = Api(CachedStore(BrokenStore(failure)), decorate)
    with caplog.at_level(logging.ERROR, logger="edgekube.master.api"):
        for verb, fields in ((Verb.APPLY, {"manifest": manifest(pod())}), (Verb.LIST, {"kind": "Pod"})):
            response = call(api, verb, **fields)
            assert not response.ok and response.error is not None
            assert (response.error.reason, response.error.message, response.error.hint) == (reason, message, hint)
    # Only unexpected exceptions are logged with a traceback.
    assert ("request" in caplog.text) is (reason == "Internal")


def test_two_documents_where_the_second_is_invalid_store_nothing(api: Api, store: CachedStore) -> None:
    response = call(api, Verb.APPLY, manifest=manifest(pod("good"), pod("bad", image="")))
    assert response.error is not None
    assert response.error.message == "request[1]: spec.containers[0].image: Required value"
    assert store.list("Pod") == []


# -- controllers: apply, generation, scale ---------------------------------------------------------------------------


def rc(name: str = "web", replicas: int = 2, image: str = "busybox:1.36", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ReplicationController",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"app": name},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]},
            },
        },
    }


def rs(name: str = "api", replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": [name]}]},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
        },
    }


def owned_pod(name: str, owner: dict[str, Any], **labels: str) -> dict[str, Any]:
    doc = pod(name, namespace="default", labels=labels or {"app": owner["metadata"]["name"]})
    doc["metadata"]["ownerReferences"] = [
        {
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
            "controller": True,
        }
    ]
    return doc


def test_a_controller_starts_at_generation_1_and_each_spec_change_adds_one(api: Api, store: CachedStore) -> None:
    assert actions(api, rc(), rs()) == [
        ("ReplicationController", "default", "web", "created"),
        ("ReplicaSet", "default", "api", "created"),
    ]
    assert store.get("ReplicationController", "default", "web")["metadata"]["generation"] == 1
    assert store.get("ReplicaSet", "default", "api")["metadata"]["generation"] == 1
    assert actions(api, rc()) == [("ReplicationController", "default", "web", "unchanged")]
    assert actions(api, rc(tier="x")) == [("ReplicationController", "default", "web", "updated")]  # metadata only
    assert store.get("ReplicationController", "default", "web")["metadata"]["generation"] == 1
    assert actions(api, rc(image="busybox:1.37")) == [("ReplicationController", "default", "web", "updated")]
    assert store.get("ReplicationController", "default", "web")["metadata"]["generation"] == 2


def test_apply_keeps_a_controllers_status(api: Api, store: CachedStore) -> None:
    api.apply(manifest(rc()))
    current = store.get("ReplicationController", "default", "web")
    store.update({**current, "status": {"replicas": 2}})
    api.apply(manifest(rc(replicas=3)))
    assert store.get("ReplicationController", "default", "web")["status"] == {"replicas": 2}


def test_scale_sets_replicas_bumps_generation_and_answers_the_object(api: Api, store: CachedStore) -> None:
    api.apply(manifest(rc(), rs()))
    response = call(api, Verb.SCALE, kind="ReplicationController", name="web", replicas=5)
    assert response.ok and response.object is not None and response.outcomes is not None
    assert (response.object["spec"]["replicas"], response.object["metadata"]["generation"]) == (5, 2)
    assert response.outcomes[0].action == "updated"
    assert store.get("ReplicationController", "default", "web")["spec"]["replicas"] == 5
    again = call(api, Verb.SCALE, kind="ReplicationController", name="web", replicas=5)
    assert again.outcomes is not None and again.outcomes[0].action == "unchanged"
    assert call(api, Verb.SCALE, kind="ReplicaSet", name="api", replicas=0).ok
    assert store.get("ReplicaSet", "default", "api")["spec"]["replicas"] == 0


@pytest.mark.parametrize(
    ("fields", "reason", "message"),
    [
        ({"kind": "Pod", "name": "web", "replicas": 1}, "Invalid", "kind: 'Pod' is not supported for verb scale"),
        ({"kind": "ReplicationController", "name": "web"}, "Invalid", "replicas: Required value for verb scale"),
        ({"kind": "ReplicationController", "replicas": 1}, "Invalid", "name: Required value for verb scale"),
        ({"kind": "ReplicaSet", "name": "nope", "replicas": 1}, "NotFound", "ReplicaSet default/nope not found"),
    ],
)
def test_bad_scale_requests(api: Api, fields: dict[str, Any], reason: str, message: str) -> None:
    api.apply(manifest(rc()))
    response = call(api, Verb.SCALE, **fields)
    assert response.error is not None and (response.error.reason, response.error.message[: len(message)]) == (
        reason,
        message,
    )


def test_a_negative_replica_count_is_refused_on_the_wire() -> None:
    with pytest.raises(ValidationError):
        ApiRequest.decode(b'{"schema":"edgekube/v1","verb":"scale","kind":"ReplicaSet","name":"a","replicas":-1}')


def test_get_and_list_controllers(api: Api) -> None:
    api.apply(manifest(rc("web"), rc("db"), rs()))
    assert [o["metadata"]["name"] for o in api.list("ReplicationController", None, None)] == ["db", "web"]
    assert api.get("ReplicaSet", None, "api")["kind"] == "ReplicaSet"
    assert call(api, Verb.LIST, kind="ReplicaSet").items is not None


# -- delete with cascade -----------------------------------------------------------------------------------------------


@pytest.fixture
def with_pods(api: Api, store: CachedStore) -> dict[str, Any]:
    api.apply(manifest(rc()))
    controller = store.get("ReplicationController", "default", "web")
    other = store.create({**rc("other"), "metadata": {"name": "other", "namespace": "default"}})
    store.create(owned_pod("web-1", controller))
    store.create(owned_pod("web-2", controller))
    store.create(owned_pod("other-1", other, app="web"))  # matches web's selector, owned by another
    store.create(pod("bare", namespace="default", labels={"app": "web"}))
    return controller


def test_delete_cascades_to_the_controllers_own_pods_by_default(
    api: Api, store: CachedStore, with_pods: dict[str, Any]
) -> None:
    response = call(api, Verb.DELETE, kind="ReplicationController", name="web")
    assert response.outcomes is not None
    assert [(o.kind, o.name, o.action) for o in response.outcomes] == [("ReplicationController", "web", "deleted")]
    assert [p["metadata"]["name"] for p in store.list("Pod")] == ["bare", "other-1"]


def test_delete_with_orphan_keeps_the_pods_without_owner(
    api: Api, store: CachedStore, with_pods: dict[str, Any]
) -> None:
    assert call(api, Verb.DELETE, kind="ReplicationController", name="web", cascade="orphan").ok
    pods = {p["metadata"]["name"]: p for p in store.list("Pod")}
    assert sorted(pods) == ["bare", "other-1", "web-1", "web-2"]
    assert "ownerReferences" not in pods["web-1"]["metadata"]
    assert "ownerReferences" not in pods["web-2"]["metadata"]
    assert pods["other-1"]["metadata"]["ownerReferences"][0]["name"] == "other"
    assert store.list("ReplicationController", "default")[0]["metadata"]["name"] == "other"


def test_cascade_means_nothing_for_a_pod(api: Api, store: CachedStore) -> None:
    api.apply(manifest(pod()))
    assert call(api, Verb.DELETE, kind="Pod", name="web", cascade="orphan").ok
    assert store.list("Pod") == []


def test_deleting_a_missing_controller_changes_nothing(api: Api, store: CachedStore, with_pods: dict[str, Any]) -> None:
    before = store.list("Pod")
    response = call(api, Verb.DELETE, kind="ReplicaSet", name="web")
    assert response.error is not None and response.error.reason == "NotFound"
    assert store.list("Pod") == before


# -- label / annotate ----------------------------------------------------------------------------------------------


def test_label_adds_changes_with_overwrite_and_removes(api: Api, store: CachedStore) -> None:
    api.apply(manifest(pod(labels={"app": "web", "tier": "front"})))
    response = call(api, Verb.LABEL, kind="Pod", name="web", labels={"env": "prod", "tier": None})
    assert response.ok and response.object is not None and response.outcomes is not None
    assert response.object["metadata"]["labels"] == {"app": "web", "env": "prod"}
    assert response.outcomes[0].action == "updated"
    assert call(api, Verb.LABEL, kind="Pod", name="web", labels={"app": "debug"}, overwrite=True).ok
    assert store.get("Pod", "default", "web")["metadata"]["labels"] == {"app": "debug", "env": "prod"}


def test_label_refuses_to_overwrite_without_overwrite(api: Api, store: CachedStore) -> None:
    api.apply(manifest(pod(labels={"app": "web"})))
    before = store.get("Pod", "default", "web")
    response = call(api, Verb.LABEL, kind="Pod", name="web", labels={"new": "1", "app": "debug"})
    assert response.error is not None
    assert (response.error.reason, response.error.message) == (
        "Invalid",
        "'app' already has a value (web), and --overwrite is false",
    )
    assert store.get("Pod", "default", "web") == before  # nothing written, not even the valid key


def test_label_with_the_same_value_or_removing_a_missing_key_is_unchanged(api: Api, store: CachedStore) -> None:
    api.apply(manifest(pod(labels={"app": "web"})))
    before = store.get("Pod", "default", "web")
    response = call(api, Verb.LABEL, kind="Pod", name="web", labels={"app": "web", "gone": None})
    assert response.outcomes is not None and response.outcomes[0].action == "unchanged"
    assert store.get("Pod", "default", "web") == before


def test_a_label_change_keeps_the_pods_spec_and_status(api: Api, store: CachedStore) -> None:
    api.apply(manifest(pod(labels={"app": "web"})))
    bound = store.get("Pod", "default", "web")
    store.update({**bound, "spec": {**bound["spec"], "nodeName": "pi-1"}, "status": {"phase": "Running"}})
    before = store.get("Pod", "default", "web")
    call(api, Verb.LABEL, kind="Pod", name="web", labels={"app": "debug"}, overwrite=True)
    after = store.get("Pod", "default", "web")
    assert (after["spec"], after["status"], after["metadata"]["uid"]) == (
        before["spec"],
        before["status"],
        before["metadata"]["uid"],
    )


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"bad key": "x"}, 'labels["bad key"]: invalid key'),
        ({"app": "not valid!"}, 'labels["app"]: invalid value "not valid!"'),
        ({"app": "x" * 64}, "must be no more than 63 characters"),
        ({}, "labels: Required value"),
    ],
)
def test_label_keys_and_values_follow_the_label_rules(api: Api, labels: dict[str, Any], message: str) -> None:
    api.apply(manifest(pod()))
    response = call(api, Verb.LABEL, kind="Pod", name="web", labels=labels)
    assert response.error is not None and response.error.reason == "Invalid"
    assert message in response.error.message


def test_annotate_takes_free_text_values(api: Api, store: CachedStore) -> None:
    api.apply(manifest(pod()))
    response = call(api, Verb.ANNOTATE, kind="Pod", name="web", labels={"note": "built on Tuesday, by me!"})
    assert response.ok
    assert store.get("Pod", "default", "web")["metadata"]["annotations"] == {"note": "built on Tuesday, by me!"}
    assert store.get("Pod", "default", "web")["metadata"]["labels"] == {}
    bad = call(api, Verb.ANNOTATE, kind="Pod", name="web", labels={"bad key": "x"})
    assert bad.error is not None and bad.error.reason == "Invalid"
    clash = call(api, Verb.ANNOTATE, kind="Pod", name="web", labels={"note": "other"})
    assert clash.error is not None and "'note' already has a value" in clash.error.message


@pytest.mark.parametrize("kind", ["Node", "ReplicationController", "ReplicaSet"])
def test_label_works_on_nodes_and_controllers(api: Api, store: CachedStore, kind: str) -> None:
    api.apply(manifest(node("web"), rc(), rs("web")))
    response = call(api, Verb.LABEL, kind=kind, name="web", labels={"zone": "a"})
    assert response.ok and response.object is not None
    assert store.get(kind, "" if kind == "Node" else "default", "web")["metadata"]["labels"]["zone"] == "a"
    if kind == "Node":
        assert response.object["status"]["conditions"] == [{"type": "Ready", "status": "True"}]  # decorated


def test_label_by_selector_changes_every_match_after_checking_all(api: Api, store: CachedStore) -> None:
    api.apply(manifest(pod("a", labels={"app": "x"}), pod("b", labels={"app": "x", "env": "dev"}), pod("c")))
    response = call(api, Verb.LABEL, kind="Pod", selector="app=x", labels={"env": "prod"})
    assert response.error is not None and "'env' already has a value (dev)" in response.error.message
    assert "env" not in store.get("Pod", "default", "a")["metadata"]["labels"]
    response = call(api, Verb.LABEL, kind="Pod", selector="app=x", labels={"env": "prod"}, overwrite=True)
    assert response.outcomes is not None
    assert [(o.name, o.action) for o in response.outcomes] == [("a", "updated"), ("b", "updated")]
    assert store.get("Pod", "default", "c")["metadata"]["labels"] == {}


def test_label_needs_a_name_or_a_selector(api: Api) -> None:
    response = call(api, Verb.LABEL, kind="Pod", labels={"a": "b"})
    assert response.error is not None and response.error.message.startswith("name: Required value for verb label")


def test_label_is_not_for_events(api: Api) -> None:
    response = call(api, Verb.LABEL, kind="Event", name="x", labels={"a": "b"})
    assert response.error is not None and "not supported for verb label" in response.error.message


# -- cordon / uncordon / drain -----------------------------------------------------------------------------------------


def test_cordon_and_uncordon_set_unschedulable_and_the_taint(api: Api, store: CachedStore) -> None:
    api.apply(manifest(node("pi-1")))
    response = call(api, Verb.CORDON, kind="Node", name="pi-1")
    assert response.outcomes is not None and response.outcomes[0].action == "updated"
    assert store.get("Node", "", "pi-1")["spec"] == {
        "unschedulable": True,
        "taints": [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}],
    }
    again = call(api, Verb.CORDON, name="pi-1")  # kind defaults to Node
    assert again.outcomes is not None and again.outcomes[0].action == "unchanged"
    assert call(api, Verb.UNCORDON, name="pi-1").ok
    assert store.get("Node", "", "pi-1")["spec"] == {"unschedulable": False, "taints": []}
    reasons = [e["reason"] for e in api.events.list()]
    assert reasons == ["NodeNotSchedulable", "NodeSchedulable"]


def test_uncordon_keeps_other_taints(api: Api, store: CachedStore) -> None:
    doc = node("pi-1")
    doc["spec"] = {"taints": [{"key": "gpu", "effect": "NoSchedule"}]}
    api.apply(manifest(doc))
    call(api, Verb.CORDON, name="pi-1")
    call(api, Verb.UNCORDON, name="pi-1")
    assert store.get("Node", "", "pi-1")["spec"]["taints"] == [{"key": "gpu", "value": "", "effect": "NoSchedule"}]


def test_drain_cordons_and_evicts_every_pod_on_the_node(api: Api, store: CachedStore) -> None:
    api.apply(manifest(node("pi-1"), node("pi-2"), pod("a"), pod("b", namespace="prod"), pod("c"), pod("d")))
    for name, ns, where in (("a", "default", "pi-1"), ("b", "prod", "pi-1"), ("c", "default", "pi-2")):
        current = store.get("Pod", ns, name)
        store.update({**current, "spec": {**current["spec"], "nodeName": where}})
    response = call(api, Verb.DRAIN, name="pi-1")
    assert response.ok and response.outcomes is not None and response.object is not None
    assert [(o.namespace, o.name, o.action) for o in response.outcomes] == [
        ("default", "a", "deleted"),
        ("prod", "b", "deleted"),
    ]
    assert response.object["spec"]["unschedulable"] is True
    assert sorted(p["metadata"]["name"] for p in store.list("Pod")) == ["c", "d"]
    evictions = [e for e in api.events.list(None) if e["reason"] == "Evicted"]
    assert [e["involvedObject"]["name"] for e in evictions] == ["a", "b"]


@pytest.mark.parametrize("verb", [Verb.CORDON, Verb.UNCORDON, Verb.DRAIN])
def test_node_verbs_need_an_existing_node(api: Api, verb: Verb) -> None:
    response = call(api, verb, name="nope")
    assert response.error is not None and (response.error.reason, response.error.message) == (
        "NotFound",
        "Node nope not found",
    )
    wrong = call(api, verb, kind="Pod", name="x")
    assert wrong.error is not None and wrong.error.message.startswith(f"kind: 'Pod' is not supported for verb {verb}")


def test_applying_a_node_manifest_keeps_the_lifecycle_taints(api: Api, store: CachedStore) -> None:
    api.apply(manifest(node("pi-1")))
    current = store.get("Node", "", "pi-1")
    unreachable = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-11-28T10:00:00Z"}
    store.update({**current, "spec": {"unschedulable": False, "taints": [unreachable]}})
    doc = node("pi-1", zone="a")
    doc["spec"] = {"taints": [{"key": "gpu", "effect": "NoSchedule"}]}
    api.apply(manifest(doc))
    taints = store.get("Node", "", "pi-1")["spec"]["taints"]
    assert [t["key"] for t in taints] == ["gpu", "node.kubernetes.io/unreachable"]


# -- events ------------------------------------------------------------------------------------------------------------


def test_events_are_listed_and_got_from_memory(api: Api, store: CachedStore) -> None:
    event = api.events.record(
        {"kind": "Pod", "metadata": {"name": "web", "namespace": "prod"}}, "Scheduled", "x", component="s"
    )
    listed = call(api, Verb.LIST, kind="Event", namespace="prod")
    assert listed.items is not None and [e["reason"] for e in listed.items] == ["Scheduled"]
    assert call(api, Verb.LIST, kind="Event", namespace="default").items == []
    assert call(api, Verb.LIST, kind="Event").items is not None
    got = call(api, Verb.GET, kind="Event", namespace="prod", name=event["metadata"]["name"])
    assert got.object is not None and got.object["message"] == "x"
    missing = call(api, Verb.GET, kind="Event", name="nope")
    assert missing.error is not None and missing.error.reason == "NotFound"
    assert store.list("Event") == []  # never on disk
