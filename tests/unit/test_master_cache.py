"""The master's write-through cache: reads from memory, a change feed, a label index, and group commit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgekube.master.cache import LEASE_KIND, LEASE_NAME, LEASE_NAMESPACE, CachedStore
from edgekube.model.errors import ConflictError, NotFoundError
from edgekube.model.labels import parse_selector
from edgekube.store import files
from edgekube.store.state import TinyStateStore


@pytest.fixture
def backend() -> Iterator[TinyStateStore]:
    with TinyStateStore(None) as store:
        yield store


def pod(name: str, **labels: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": labels}}


def test_objects_already_stored_are_loaded_on_first_read(backend: TinyStateStore) -> None:
    backend.create(pod("old"))
    cache = CachedStore(backend)
    assert list(cache.objects("Pod")) == [("default", "old")]
    assert cache.objects("Node") == {}


def test_every_write_is_reflected_and_counted(backend: TinyStateStore) -> None:
    cache = CachedStore(backend)
    created = cache.create(pod("a"))
    assert cache.peek("Pod", "default", "a") == backend.get("Pod", "default", "a")
    cache.update({**created, "metadata": {**created["metadata"], "labels": {"v": "2"}}})
    assert cache.peek("Pod", "default", "a")["metadata"]["labels"] == {"v": "2"}
    cache.delete("Pod", "default", "a")
    assert cache.objects("Pod") == {}
    assert cache.writes == 3
    with pytest.raises(NotFoundError, match="Pod default/a not found"):
        cache.peek("Pod", "default", "a")


def test_a_failed_write_changes_nothing(backend: TinyStateStore) -> None:
    cache = CachedStore(backend)
    created = cache.create(pod("a"))
    stale = {**created, "metadata": {**created["metadata"], "resourceVersion": "999"}}
    with pytest.raises(ConflictError):
        cache.update(stale)
    assert cache.peek("Pod", "default", "a") == created
    assert cache.writes == 1


def test_get_and_list_still_hand_out_copies(backend: TinyStateStore) -> None:
    cache = CachedStore(backend)
    cache.create(pod("a", app="x"))
    got = cache.get("Pod", "default", "a")
    got["metadata"]["labels"]["app"] = "changed"
    cache.list("Pod")[0]["metadata"]["name"] = "changed"
    assert cache.peek("Pod", "default", "a")["metadata"] == backend.get("Pod", "default", "a")["metadata"]
    assert cache.peek("Pod", "default", "a")["metadata"]["labels"] == {"app": "x"}


# -- change feed and label index ------------------------------------------------------------------------------


def test_listeners_hear_every_write_and_the_objects_already_there(backend: TinyStateStore) -> None:
    cache = CachedStore(backend)
    cache.create(pod("old"))
    heard: list[tuple[tuple[str, str], object]] = []
    cache.listen("Pod", lambda key, obj: heard.append((key, obj and obj["metadata"]["labels"])))
    created = cache.create(pod("new", v="1"))
    cache.update({**created, "metadata": {**created["metadata"], "labels": {"v": "2"}}})
    cache.delete("Pod", "default", "old")
    assert heard == [
        (("default", "old"), {}),
        (("default", "new"), {"v": "1"}),
        (("default", "new"), {"v": "2"}),
        (("default", "old"), None),
    ]


@pytest.mark.parametrize(
    ("selector", "names"),
    [
        ("app=web", ["a", "b"]),
        ("app=web,tier=front", ["a"]),
        ("app in (web)", ["a", "b"]),
        ("app!=web", ["c", "d"]),
        ("tier", ["a", "c"]),
        ("", ["a", "b", "c", "d"]),
        ("app=nothing", []),
    ],
)
def test_select_uses_the_label_index_and_agrees_with_matching(
    backend: TinyStateStore, selector: str, names: list[str]
) -> None:
    cache = CachedStore(backend)
    cache.create(pod("a", app="web", tier="front"))
    cache.create(pod("b", app="web"))
    created = cache.create(pod("c", app="web", tier="back"))
    cache.update({**created, "metadata": {**created["metadata"], "labels": {"app": "db", "tier": "back"}}})
    cache.create(pod("d"))
    cache.create(pod("gone", app="web"))
    cache.delete("Pod", "default", "gone")
    found = cache.select("Pod", "default", parse_selector(selector))
    assert sorted(o["metadata"]["name"] for o in found) == names
    assert cache.select("Pod", "other", parse_selector(selector)) == []


def test_the_label_index_is_built_for_objects_already_stored(backend: TinyStateStore) -> None:
    backend.create(pod("a", app="web"))
    assert [o["metadata"]["name"] for o in CachedStore(backend).select("Pod", None, parse_selector("app=web"))] == ["a"]


# -- group commit over a real journal --------------------------------------------------------------------------


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[CachedStore, list[int]]]:
    syncs: list[int] = []
    real = files.datasync

    def counting(fd: int) -> None:
        syncs.append(fd)
        real(fd)

    monkeypatch.setattr(files, "datasync", counting)
    with TinyStateStore(tmp_path / "state") as store:
        yield CachedStore(store), syncs


def test_a_sync_batch_costs_one_flash_sync_however_many_writes(journal: tuple[CachedStore, list[int]]) -> None:
    cache, syncs = journal
    with cache.batch():
        for i in range(20):
            cache.create(pod(f"p{i}"))
    assert len(syncs) == 1  # the Lease renewal
    assert cache.peek(LEASE_KIND, LEASE_NAMESPACE, LEASE_NAME)["spec"]["holderIdentity"] == "edgekube-master"
    with cache.batch():
        pass
    assert len(syncs) == 1  # nothing written, nothing to sync
    cache.create(pod("alone"))  # outside a batch: the store's own durable write
    assert len(syncs) == 2


def test_deferred_writes_wait_for_the_next_sync_batch(journal: tuple[CachedStore, list[int]]) -> None:
    cache, syncs = journal
    with cache.batch("defer"):
        cache.create(pod("a"))
    assert (len(syncs), cache.unsynced) == (0, True)
    with cache.batch("sync"):
        pass
    assert (len(syncs), cache.unsynced) == (1, False)


def test_lazy_writes_owe_no_sync(journal: tuple[CachedStore, list[int]]) -> None:
    cache, syncs = journal
    with cache.batch("lazy"):
        cache.create(pod("status"))
    with cache.batch("sync"):
        pass
    assert (len(syncs), cache.unsynced) == (0, False)


def test_batched_writes_survive_reopening(tmp_path: Path) -> None:
    with TinyStateStore(tmp_path / "state") as store:
        cache = CachedStore(store)
        with cache.batch():
            cache.create(pod("a"))
    with TinyStateStore(tmp_path / "state") as store:
        assert store.get("Pod", "default", "a")["metadata"]["name"] == "a"


def test_a_memory_store_is_left_alone(backend: TinyStateStore) -> None:
    cache = CachedStore(backend)
    with cache.batch():
        cache.create(pod("a"))
    assert cache.objects(LEASE_KIND) == {}
