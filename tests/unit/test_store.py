"""Contract of the StateStore, run against TinyDB's MemoryStorage and our JournalStorage alike."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edgekube.model.errors import ConflictError, NotFoundError, StoreError, ValidationError
from edgekube.store import StateStore, TinyStateStore

NOW = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def fixed_clock() -> datetime:
    return NOW


def pod(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"containers": [{"name": "main", "image": "nginx:1.27"}], **spec},
        "status": {"phase": "Pending"},
    }


def node(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "status": {"capacity": {"cpu": "4"}}}


Opener = Callable[[], TinyStateStore]


@pytest.fixture(params=["memory", "journal"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Open (or reopen) the store under test; every store opened is closed at the end."""
    opened: list[TinyStateStore] = []

    def opener() -> TinyStateStore:
        if request.param == "memory":
            store = TinyStateStore(None, clock=fixed_clock)
        else:
            store = TinyStateStore(tmp_path / "state", clock=fixed_clock)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Opener) -> TinyStateStore:
    return open_store()


def test_tiny_state_store_satisfies_the_protocol(store: TinyStateStore) -> None:
    typed: StateStore = store  # mypy --strict checks the structural match

    assert typed.list("Pod") == []


class TestCreate:
    def test_assigns_uid_timestamp_and_resource_version(self, store: TinyStateStore) -> None:
        created = store.create(pod("web"))

        metadata = created["metadata"]
        assert len(metadata["uid"]) == 36
        assert metadata["creationTimestamp"] == "2026-11-28T10:00:00Z"
        assert metadata["resourceVersion"] == "1"
        assert created["spec"] == pod("web")["spec"]

    def test_keeps_a_uid_the_caller_chose(self, store: TinyStateStore) -> None:
        obj = pod("web")
        obj["metadata"]["uid"] = "0b8f5f3e-1111-4222-8333-444455556666"

        assert store.create(obj)["metadata"]["uid"] == "0b8f5f3e-1111-4222-8333-444455556666"

    def test_an_existing_key_is_a_conflict_naming_the_object(self, store: TinyStateStore) -> None:
        store.create(pod("web"))

        with pytest.raises(ConflictError, match="Pod default/web already exists"):
            store.create(pod("web"))

    def test_the_same_name_in_another_namespace_is_another_object(self, store: TinyStateStore) -> None:
        store.create(pod("web", "default"))
        store.create(pod("web", "edge"))

        assert store.get("Pod", "edge", "web")["metadata"]["namespace"] == "edge"
        assert len(store.list("Pod")) == 2

    def test_resource_versions_grow_across_kinds(self, store: TinyStateStore) -> None:
        versions = [
            int(store.create(obj)["metadata"]["resourceVersion"])
            for obj in (pod("a"), node("pi-1"), pod("b"), node("pi-2"))
        ]

        assert versions == sorted(versions)
        assert len(set(versions)) == 4

    def test_neither_the_input_nor_the_result_is_shared_with_the_store(self, store: TinyStateStore) -> None:
        obj = pod("web")
        created = store.create(obj)

        obj["spec"]["containers"][0]["image"] = "changed-input"
        created["spec"]["containers"][0]["image"] = "changed-result"

        assert store.get("Pod", "default", "web")["spec"]["containers"][0]["image"] == "nginx:1.27"

    @pytest.mark.parametrize(
        ("obj", "message"),
        [
            ({"metadata": {"name": "x"}}, "kind"),
            ({"kind": "Pod", "metadata": {}}, "metadata.name"),
            ({"kind": "Pod"}, "metadata must be a mapping"),
            ({"kind": "_meta", "metadata": {"name": "x"}}, "kind"),
        ],
    )
    def test_an_object_without_a_key_is_invalid(self, store: TinyStateStore, obj: dict[str, Any], message: str) -> None:
        with pytest.raises(ValidationError, match=message):
            store.create(obj)


class TestGetAndList:
    def test_get_returns_a_copy(self, store: TinyStateStore) -> None:
        store.create(pod("web"))

        got = store.get("Pod", "default", "web")
        got["status"]["phase"] = "Running"

        assert store.get("Pod", "default", "web")["status"]["phase"] == "Pending"

    def test_get_of_a_missing_object_is_not_found(self, store: TinyStateStore) -> None:
        store.create(pod("web"))

        with pytest.raises(NotFoundError, match="Pod default/db not found"):
            store.get("Pod", "default", "db")
        with pytest.raises(NotFoundError):
            store.get("Deployment", "default", "web")

    def test_cluster_scoped_kinds_live_in_the_empty_namespace(self, store: TinyStateStore) -> None:
        store.create(node("pi-1"))

        assert store.get("Node", "", "pi-1")["status"]["capacity"] == {"cpu": "4"}
        assert [n["metadata"]["name"] for n in store.list("Node", "")] == ["pi-1"]

    def test_list_filters_by_namespace_and_sorts_by_namespace_then_name(self, store: TinyStateStore) -> None:
        for namespace, name in [("edge", "b"), ("default", "c"), ("edge", "a"), ("default", "a")]:
            store.create(pod(name, namespace))

        assert [p["metadata"]["name"] for p in store.list("Pod", "edge")] == ["a", "b"]
        assert [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in store.list("Pod")] == [
            ("default", "a"),
            ("default", "c"),
            ("edge", "a"),
            ("edge", "b"),
        ]
        assert store.list("Pod", "nowhere") == []
        assert store.list("Service") == []

    def test_list_returns_copies(self, store: TinyStateStore) -> None:
        store.create(pod("web"))

        store.list("Pod")[0]["metadata"]["labels"]["app"] = "changed"

        assert store.get("Pod", "default", "web")["metadata"]["labels"] == {"app": "web"}


class TestUpdate:
    def test_bumps_the_version_and_keeps_identity(self, store: TinyStateStore) -> None:
        created = store.create(pod("web"))
        store.create(node("pi-1"))
        change = store.get("Pod", "default", "web")
        change["status"]["phase"] = "Running"
        change["metadata"]["creationTimestamp"] = "1999-01-01T00:00:00Z"

        updated = store.update(change)

        assert updated["status"]["phase"] == "Running"
        assert updated["metadata"]["resourceVersion"] == "3"
        assert updated["metadata"]["uid"] == created["metadata"]["uid"]
        assert updated["metadata"]["creationTimestamp"] == "2026-11-28T10:00:00Z"
        assert store.get("Pod", "default", "web") == updated

    def test_replaces_the_whole_object(self, store: TinyStateStore) -> None:
        store.create(pod("web", nodeName="pi-1"))
        change = store.get("Pod", "default", "web")
        del change["spec"]["nodeName"]
        del change["status"]

        store.update(change)

        stored = store.get("Pod", "default", "web")
        assert "nodeName" not in stored["spec"]
        assert "status" not in stored

    def test_a_stale_resource_version_is_a_conflict_naming_both_versions(self, store: TinyStateStore) -> None:
        store.create(pod("web"))
        first = store.get("Pod", "default", "web")
        second = store.get("Pod", "default", "web")
        store.update(first)

        with pytest.raises(ConflictError, match=r"Pod default/web: resourceVersion 1 is stale, the stored one is 2"):
            store.update(second)

    def test_without_a_resource_version_the_last_write_wins(self, store: TinyStateStore) -> None:
        store.create(pod("web"))
        store.update(store.get("Pod", "default", "web"))
        blind = pod("web")
        blind["status"]["phase"] = "Failed"

        assert store.update(blind)["metadata"]["resourceVersion"] == "3"
        assert store.get("Pod", "default", "web")["status"]["phase"] == "Failed"

    def test_a_different_uid_is_a_conflict(self, store: TinyStateStore) -> None:
        store.create(pod("web"))
        change = store.get("Pod", "default", "web")
        change["metadata"]["uid"] = "someone-else"

        with pytest.raises(ConflictError, match="uid someone-else does not match"):
            store.update(change)

    def test_a_missing_object_is_not_found(self, store: TinyStateStore) -> None:
        with pytest.raises(NotFoundError, match="Node pi-9 not found"):
            store.update(node("pi-9"))

    def test_the_result_is_a_copy(self, store: TinyStateStore) -> None:
        store.create(pod("web"))
        updated = store.update(store.get("Pod", "default", "web"))

        updated["spec"]["containers"].clear()

        assert len(store.get("Pod", "default", "web")["spec"]["containers"]) == 1


class TestDelete:
    def test_returns_the_object_and_forgets_it(self, store: TinyStateStore) -> None:
        created = store.create(pod("web"))

        assert store.delete("Pod", "default", "web") == created
        with pytest.raises(NotFoundError):
            store.get("Pod", "default", "web")
        assert store.list("Pod") == []

    def test_a_missing_object_is_not_found(self, store: TinyStateStore) -> None:
        with pytest.raises(NotFoundError, match="Pod default/web not found"):
            store.delete("Pod", "default", "web")

    def test_a_stale_resource_version_is_a_conflict_and_keeps_the_object(self, store: TinyStateStore) -> None:
        store.create(pod("web"))
        store.update(store.get("Pod", "default", "web"))

        with pytest.raises(ConflictError, match="resourceVersion 1 is stale, the stored one is 2"):
            store.delete("Pod", "default", "web", resource_version="1")
        assert store.delete("Pod", "default", "web", resource_version="2")["metadata"]["name"] == "web"

    def test_a_recreated_object_is_a_new_object(self, store: TinyStateStore) -> None:
        first = store.create(pod("web"))
        store.delete("Pod", "default", "web")

        second = store.create(pod("web"))

        assert second["metadata"]["uid"] != first["metadata"]["uid"]
        assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])


class TestLifecycle:
    def test_a_closed_store_refuses_work(self, store: TinyStateStore) -> None:
        store.close()

        with pytest.raises(StoreError, match="closed"):
            store.get("Pod", "default", "web")
        store.close()  # closing twice is harmless

    def test_works_as_a_context_manager(self, open_store: Opener) -> None:
        with open_store() as store:
            store.create(pod("web"))
        with pytest.raises(StoreError):
            store.list("Pod")


class TestPersistence:
    """Only the journal store outlives its process; these run against it alone."""

    @pytest.fixture
    def reopen(self, tmp_path: Path) -> Iterator[Callable[[], TinyStateStore]]:
        opened: list[TinyStateStore] = []

        def opener() -> TinyStateStore:
            if opened:
                opened[-1].close()
            opened.append(TinyStateStore(tmp_path / "state", clock=fixed_clock))
            return opened[-1]

        yield opener
        opened[-1].close()

    def test_objects_survive_a_restart(self, reopen: Callable[[], TinyStateStore]) -> None:
        store = reopen()
        store.create(pod("web"))
        store.create(node("pi-1"))
        store.update(store.get("Pod", "default", "web"))
        before = store.list("Pod") + store.list("Node")

        store = reopen()

        assert store.list("Pod") + store.list("Node") == before

    def test_resource_versions_keep_growing_after_the_newest_object_was_deleted(
        self, reopen: Callable[[], TinyStateStore]
    ) -> None:
        store = reopen()
        store.create(pod("old"))
        newest = store.create(pod("new"))
        store.delete("Pod", "default", "new")

        store = reopen()

        assert int(store.create(pod("next"))["metadata"]["resourceVersion"]) > int(
            newest["metadata"]["resourceVersion"]
        )

    def test_a_second_process_cannot_open_the_same_directory(
        self, reopen: Callable[[], TinyStateStore], tmp_path: Path
    ) -> None:
        reopen()

        with pytest.raises(StoreError, match="already open"):
            TinyStateStore(tmp_path / "state")
