"""The agent's disk: desired state (generation/epoch ordering, per-pod rejection, local copy) and restart ledger."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.desired import DesiredState
from edgekube.agent.ledger import PodRecord, RestartLedger
from edgekube.agent.reconcile import spec_hash
from edgekube.model.names import PodUID
from edgekube.model.wire import NodeDesired


def pod(name: str, uid: str | None = None, **container: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": "default"}
    if uid != "":
        metadata["uid"] = uid or f"uid-{name}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": "app", "image": "busybox", **container}]},
    }


def message(generation: int, epoch: str = "e1", pods: list[dict[str, Any]] | None = None) -> NodeDesired:
    return NodeDesired(node="pi-1", generation=generation, epoch=epoch, pods=[pod("web")] if pods is None else pods)


def offer(state: DesiredState, msg: NodeDesired) -> bool:
    return state.offer(msg, msg.encode())


def test_a_fresh_state_is_empty() -> None:
    state = DesiredState()
    assert (state.epoch, state.generation, state.pods, state.rejected) == ("", -1, [], {})


@pytest.mark.parametrize(
    ("offers", "accepted", "final"),
    [
        pytest.param([(0, "e1")], [True], (0, "e1"), id="first-generation-zero"),
        pytest.param([(1, "e1"), (2, "e1")], [True, True], (2, "e1"), id="newer"),
        pytest.param([(5, "e1"), (9, "e1")], [True, True], (9, "e1"), id="gaps-are-fine"),
        pytest.param([(2, "e1"), (2, "e1")], [True, False], (2, "e1"), id="duplicate"),
        pytest.param([(3, "e1"), (2, "e1")], [True, False], (3, "e1"), id="stale"),
        pytest.param([(7, "e1"), (1, "e2")], [True, True], (1, "e2"), id="new-epoch-any-generation"),
        pytest.param([(7, "e1"), (1, "e2"), (6, "e1")], [True, True, True], (6, "e1"), id="epoch-changes-back"),
        pytest.param([(7, "e1"), (7, "e2"), (7, "e2")], [True, True, False], (7, "e2"), id="duplicate-in-new-epoch"),
    ],
)
def test_offer_accepts_newer_generations_within_an_epoch_and_anything_from_a_new_one(
    offers: list[tuple[int, str]], accepted: list[bool], final: tuple[int, str]
) -> None:
    state = DesiredState()
    assert [offer(state, message(g, e)) for g, e in offers] == accepted
    assert (state.generation, state.epoch) == final


def test_a_refused_offer_leaves_the_pods_alone() -> None:
    state = DesiredState()
    offer(state, message(2, pods=[pod("web")]))
    assert not offer(state, message(1, pods=[pod("other")]))
    assert [d.pod.metadata.name for d in state.pods] == ["web"]


def test_an_accepted_offer_replaces_the_whole_set() -> None:
    state = DesiredState()
    offer(state, message(1, pods=[pod("a"), pod("b")]))
    offer(state, message(2, pods=[pod("c")]))
    assert [d.pod.metadata.name for d in state.pods] == ["c"]
    offer(state, message(3, pods=[]))
    assert state.pods == []


def test_desired_pods_carry_uid_and_spec_hash() -> None:
    state = DesiredState()
    offer(state, message(1, pods=[pod("web", uid="u-1")]))
    [d] = state.pods
    assert d.uid == "u-1"
    assert d.spec_hash == spec_hash("u-1", d.pod.spec.to_dict())


@pytest.mark.parametrize(
    ("bad", "key", "why"),
    [
        pytest.param(pod("bad", image=""), "bad", "spec.containers[0].image: Required value", id="invalid-spec"),
        pytest.param(pod("nouid", uid=""), "nouid", "metadata.uid: Required value", id="no-uid"),
        pytest.param({"metadata": {"name": "x"}}, "x", "spec: Required value", id="no-spec"),
        pytest.param({"spec": {}}, "pods[1]", "metadata: Required value", id="no-metadata"),
        pytest.param({"metadata": ["not", "a", "mapping"]}, "pods[1]", "metadata: Invalid value: [", id="bad-metadata"),
        pytest.param(
            {"metadata": "text"},
            "pods[1]",
            'metadata: Invalid value: "text": cannot unmarshal string',
            id="string-metadata",
        ),
    ],
)
def test_an_invalid_pod_is_rejected_alone(
    bad: dict[str, Any], key: str, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    state = DesiredState()
    with caplog.at_level(logging.ERROR, logger="edgekube.agent.desired"):
        assert offer(state, message(1, pods=[pod("good"), bad, pod("also-good")]))
    assert [d.pod.metadata.name for d in state.pods] == ["good", "also-good"]
    assert list(state.rejected) == [key]
    assert why in state.rejected[key]
    assert f"desired pod {key} rejected" in caplog.text


def test_rejections_are_forgotten_once_the_pod_is_fixed() -> None:
    state = DesiredState()
    offer(state, message(1, pods=[pod("web", image="")]))
    offer(state, message(2, pods=[pod("web")]))
    assert state.rejected == {}
    assert len(state.pods) == 1


def test_an_accepted_offer_is_persisted_atomically_and_load_restores_it(tmp_path: Path) -> None:
    path = tmp_path / "state" / "desired.json"  # the directory is created
    state = DesiredState(path=path)
    msg = message(4, epoch="e9", pods=[pod("a"), pod("b")])
    assert offer(state, msg)
    assert path.read_bytes() == msg.encode()
    assert sorted(p.name for p in path.parent.iterdir()) == ["desired.json"]  # no temporary file left behind

    restored = DesiredState.load(path)
    assert (restored.path, restored.epoch, restored.generation) == (path, "e9", 4)
    assert [(d.uid, d.spec_hash) for d in restored.pods] == [(d.uid, d.spec_hash) for d in state.pods]
    assert not offer(restored, msg)  # the same message retained on the broker is a duplicate
    assert offer(restored, message(5, epoch="e9"))


def test_a_refused_offer_does_not_touch_the_file(tmp_path: Path) -> None:
    path = tmp_path / "desired.json"
    state = DesiredState(path=path)
    first = message(3)
    offer(state, first)
    assert not state.offer(message(2), b"must not be written")
    assert path.read_bytes() == first.encode()


def test_the_raw_payload_is_what_is_written(tmp_path: Path) -> None:
    path = tmp_path / "desired.json"
    msg = message(1)
    raw = msg.encode() + b"\n"
    DesiredState(path=path).offer(msg, raw)
    assert path.read_bytes() == raw


def test_load_without_a_file_is_empty(tmp_path: Path) -> None:
    state = DesiredState.load(tmp_path / "missing.json")
    assert (state.epoch, state.generation, state.pods) == ("", -1, [])


@pytest.mark.parametrize(
    "content", [b"", b"garbage", b"[]", b'{"schema": "edgekube/v1"}', b'{"schema": "other", "node": "pi-1"}']
)
def test_an_unreadable_file_is_ignored_and_logged(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "desired.json"
    path.write_bytes(content)
    with caplog.at_level(logging.ERROR, logger="edgekube.agent.desired"):
        state = DesiredState.load(path)
    assert (state.generation, state.pods, state.path) == (-1, [], path)
    assert "ignoring unreadable local desired state" in caplog.text
    assert offer(state, message(0))  # and the state still works


def test_a_persisted_set_with_a_bad_pod_keeps_the_good_ones(tmp_path: Path) -> None:
    path = tmp_path / "desired.json"
    offer(DesiredState(path=path), message(1, pods=[pod("ok"), pod("bad", uid="")]))
    restored = DesiredState.load(path)
    assert [d.pod.metadata.name for d in restored.pods] == ["ok"]
    assert list(restored.rejected) == ["bad"]


# -- the restart ledger: counts that outlive the agent ---------------------------------------------------------


def test_the_ledger_counts_restarts_per_pod_and_survives_a_reload(tmp_path: Path) -> None:
    path = tmp_path / "restarts.json"
    ledger = RestartLedger.load(path)
    assert ledger.get(PodUID("u1"), "pod-1") is None
    ledger.restarted(PodUID("u1"), "pod-1", ["web", "side"], {"web": {"terminated": {"exitCode": 1}}})
    ledger.restarted(PodUID("u1"), "pod-1", ["web", "side"], {"side": {"terminated": {"exitCode": 143}}})
    ledger.finished(PodUID("u2"), "pod-2", "Succeeded", "all containers exited with code 0")
    ledger.finished(PodUID("u2"), "pod-2", "Succeeded", "all containers exited with code 0")  # no change: no write
    assert ledger.writes == 3
    again = RestartLedger.load(path)
    record = again.get(PodUID("u1"), "pod-1")
    assert record is not None
    assert record.restart_count == {"web": 2, "side": 2}
    assert record.last_state == {"web": {"terminated": {"exitCode": 1}}, "side": {"terminated": {"exitCode": 143}}}
    done = again.get(PodUID("u2"), "pod-2")
    assert done is not None and (done.finished, done.message) == ("Succeeded", "all containers exited with code 0")
    assert again.writes == 0


def test_a_record_belongs_to_one_podman_pod(tmp_path: Path) -> None:
    ledger = RestartLedger.load(tmp_path / "restarts.json")
    ledger.restarted(PodUID("u1"), "pod-1", ["web"], {})
    assert ledger.get(PodUID("u1"), "pod-2") is None  # re-created (e.g. spec changed): counts start over
    ledger.restarted(PodUID("u1"), "pod-2", ["web"], {})
    record = ledger.get(PodUID("u1"), "pod-2")
    assert record is not None and record.restart_count == {"web": 1}


def test_retain_drops_gone_pods_and_writes_only_then(tmp_path: Path) -> None:
    ledger = RestartLedger.load(tmp_path / "restarts.json")
    ledger.restarted(PodUID("u1"), "p1", ["a"], {})
    ledger.restarted(PodUID("u2"), "p2", ["a"], {})
    ledger.retain([PodUID("u1"), PodUID("u2")])
    assert ledger.writes == 2
    ledger.retain([PodUID("u1")])
    assert ledger.writes == 3
    assert RestartLedger.load(tmp_path / "restarts.json").get(PodUID("u2"), "p2") is None


def test_records_handed_out_are_copies(tmp_path: Path) -> None:
    ledger = RestartLedger()
    ledger.restarted(PodUID("u1"), "p1", ["a"], {})
    record = ledger.get(PodUID("u1"), "p1")
    assert record is not None
    record.restart_count["a"] = 99
    assert ledger.get(PodUID("u1"), "p1") == PodRecord(pod_id="p1", restart_count={"a": 1})


@pytest.mark.parametrize(
    "content",
    [b"not json", b"[]", b'{"format": "other"}', b'{"format": "edgekube/agent-restarts/v1", "pods": {"u": {}}}'],
)
def test_an_unreadable_ledger_is_ignored(tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "restarts.json"
    path.write_bytes(content)
    with caplog.at_level(logging.ERROR):
        ledger = RestartLedger.load(path)
    assert ledger.get(PodUID("u"), "p") is None
    assert "ignoring unreadable restart ledger" in caplog.text
