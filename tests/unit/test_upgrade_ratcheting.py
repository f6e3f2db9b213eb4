"""Upgrades: objects accepted before the Kubernetes rules are read back, not re-validated (docs/compatibility.md).

The pre-upgrade pod has a port named `http_port` (not an IANA service name) and `containerPort: "80"` (a string the
old models coerced; strict decoding refuses it), and a toleration with operator Exists and a value. Before
model/lenient.py: the agent rejected it from its desired state and removed the running pod; the master's pass failed
on it at every run (scheduling read its tolerations, dispatch its env); an apply of the same manifest is refused.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from edgekube.agent.desired import DesiredState
from edgekube.bus import topics
from edgekube.model.config import CONFIG_KEY
from edgekube.model.errors import ValidationError
from edgekube.model.lenient import decode_stored, is_strictly_valid
from edgekube.model.manifest import ManifestError
from edgekube.model.pod import Pod
from edgekube.model.wire import EventReport, NodeDesired, Verb
from edgekube.store.state import TinyStateStore
from tests.support.apiserver import Clock
from tests.support.membus import MemoryBroker
from tests.unit.test_agent_loop import IMAGE, Node
from tests.unit.test_master_loop import Cluster

OLD_PORT = {"name": "http_port", "containerPort": "80"}


def old_spec(image: str = IMAGE, **extra: Any) -> dict[str, Any]:
    return {"containers": [{"name": "web", "image": image, "ports": [dict(OLD_PORT)], **extra}]}


def old_pod(name: str = "old", **spec: Any) -> dict[str, Any]:
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {**old_spec(), **spec}}


# -- the model ------------------------------------------------------------------------------------------------


def test_the_pre_upgrade_pod_breaks_todays_rules_at_the_api() -> None:
    assert not is_strictly_valid(Pod, old_pod())
    with pytest.raises(ManifestError) as caught:
        Pod.from_dict(old_pod())
    text = str(caught.value)
    assert 'containerPort: Invalid value: "80": cannot unmarshal string' in text


def test_decode_stored_reads_the_pre_upgrade_pod_by_type() -> None:
    pod = decode_stored(Pod, old_pod())
    [port] = pod.spec.containers[0].ports
    assert (port.name, port.container_port) == ("http_port", 80)  # the string coerced, as the old models did
    assert pod.to_dict()["spec"]["containers"][0]["ports"] == [
        {"containerPort": 80, "protocol": "TCP", "name": "http_port"}
    ]


def test_decode_stored_keeps_a_valid_object_exactly_as_validation_makes_it() -> None:
    valid = old_pod()
    valid["spec"]["containers"][0]["ports"] = [{"name": "http", "containerPort": 80}]
    assert decode_stored(Pod, valid) == Pod.from_dict(valid)


def test_decode_stored_still_refuses_data_of_the_wrong_shape_naming_the_field() -> None:
    with pytest.raises(ValidationError, match=r"spec\.containers: Invalid value"):
        decode_stored(Pod, {**old_pod(), "spec": {"containers": "web"}})


# -- the agent ------------------------------------------------------------------------------------------------


def desired(pods: list[dict[str, Any]], generation: int = 1) -> NodeDesired:
    return NodeDesired(node="pi-1", generation=generation, epoch="e", pods=pods)


def test_the_agent_keeps_a_pre_upgrade_pod_desired_and_in_its_local_copy(tmp_path: Path) -> None:
    path = tmp_path / "desired.json"
    state = DesiredState(path=path)
    msg = desired([old_pod()])
    assert state.offer(msg, msg.encode())
    assert ([d.pod.metadata.name for d in state.pods], state.rejected) == (["old"], {})
    again = DesiredState.load(path)  # after a reboot, from desired.json
    assert [d.pod.metadata.name for d in again.pods] == ["old"]
    assert again.pods[0].spec_hash == state.pods[0].spec_hash  # the same pod: not restarted


def test_a_pre_upgrade_pod_runs_on_the_agent(tmp_path: Path) -> None:
    node = Node(tmp_path / "agent")
    try:
        node.want(old_pod())
        node.settle()
        assert node.status("uid-old")["phase"] == "Running"
    finally:
        node.agent.prober.stop()


def test_a_running_pod_the_agent_cannot_decode_is_kept_with_a_warning_event(tmp_path: Path) -> None:
    node = Node(tmp_path / "agent")
    try:
        node.agent.start(loop=False)
        good = old_pod()
        node.want(good)
        node.settle()
        before = node.ids("uid-old")
        broken = {**good, "spec": {"containers": "web"}}  # unreadable even leniently
        node.generation += 1
        payload = desired([broken], node.generation).encode()
        node.broker.client("master").start().publish(topics.node_desired("pi-1"), payload, retain=True)
        assert node.agent.desired.generation == node.generation
        assert "old" in node.agent.desired.rejected
        node.settle()
        assert node.ids("uid-old") == before  # not removed, not restarted
        [(_, message)] = [e for e in node.events() if e[0] == "FailedToDecode"]
        assert message.startswith("pod: spec.containers: Invalid value") and "the running pod is kept" in message
        node.want()  # the master no longer wants it: removed as usual
        node.settle()
        assert [p.uid for p in node.runtime.list_pods()] == []
    finally:
        node.agent.prober.stop()


# -- the master -----------------------------------------------------------------------------------------------


def stored_cluster(tmp: Path, objects: list[dict[str, Any]]) -> Cluster:
    """A master started on a store written before the upgrade (a journal on disk, reopened)."""
    path = tmp / "store"
    path.mkdir(parents=True)
    before = TinyStateStore(path)
    for obj in objects:
        before.create(obj)
    before.close()
    cluster = Cluster(tmp, TinyStateStore(path), MemoryBroker(inline=True), Clock())
    for node in ("n1", "n2"):
        cluster.node_up(node)
    cluster.pass_after(2.5, beating=("n1", "n2"))
    return cluster


def test_the_master_schedules_and_dispatches_a_stored_pre_upgrade_pod(tmp_path: Path) -> None:
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm", "namespace": "default"}}
    env = [{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "old", "namespace": "default"},
        "spec": {"tolerations": [{"operator": "Exists", "value": "x"}], **old_spec(env=env)},
        "status": {"phase": "Pending"},
    }
    cluster = stored_cluster(tmp_path, [{**config, "data": {"k": "v"}}, pod])
    [node] = cluster.pods().values()
    sent = cluster.desired(node)
    assert sent is not None
    [dispatched] = sent.pods
    assert dispatched["spec"]["containers"][0]["ports"] == [OLD_PORT]  # as stored: the agent reads it leniently
    assert dispatched[CONFIG_KEY]["env"]["web"]["K"] == "v"


def old_rc() -> dict[str, Any]:
    template = {"metadata": {"labels": {"app": "rc"}}, "spec": old_spec("busybox")}
    meta = {"name": "rc", "namespace": "default", "generation": 1}
    spec = {"replicas": 2, "selector": {"app": "rc"}, "template": template}
    return {"apiVersion": "v1", "kind": "ReplicationController", "metadata": meta, "spec": spec}


def test_an_rc_with_a_pre_upgrade_template_keeps_its_replicas(tmp_path: Path) -> None:
    rc = old_rc()
    cluster = stored_cluster(tmp_path, [rc])
    assert len(cluster.pods()) == 2


def test_applying_the_pre_upgrade_manifest_again_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    """Kubernetes' rule for core kinds: an update is validated whole (the stored object stays as it is)."""
    rc = old_rc()
    cluster = stored_cluster(tmp_path, [rc])
    pods = cluster.pods()
    manifest = {**rc, "metadata": {"name": "rc"}, "spec": {**rc["spec"], "replicas": 3}}
    answer = cluster.api(verb=Verb.APPLY, manifest=json.dumps(manifest))
    assert not answer.ok and answer.error is not None
    assert "spec.template.spec.containers[0].ports[0].containerPort: Invalid value" in answer.error.message
    assert (
        cluster.pods() == pods
        and cluster.master.store.peek("ReplicationController", "default", "rc")["spec"]["replicas"] == 2
    )
    fixed = json.loads(json.dumps(manifest))
    fixed["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"name": "http", "containerPort": 80}]
    assert cluster.api(verb=Verb.APPLY, manifest=json.dumps(fixed)).ok
    cluster.pass_after(0.5, beating=("n1", "n2"))
    assert len(cluster.pods()) == 3


def test_scale_and_label_work_on_a_pre_upgrade_rc(tmp_path: Path) -> None:
    """They change one field and never re-validate the stored spec."""
    cluster = stored_cluster(tmp_path, [old_rc()])
    rc = {"kind": "ReplicationController", "namespace": "default", "name": "rc"}
    assert cluster.api(verb=Verb.SCALE, replicas=3, **rc).ok
    assert cluster.api(verb=Verb.LABEL, labels={"tier": "web"}, **rc).ok
    cluster.pass_after(0.5, beating=("n1", "n2"))
    stored = cluster.master.store.peek("ReplicationController", "default", "rc")
    assert (stored["spec"]["replicas"], stored["metadata"]["labels"]) == (3, {"tier": "web"})
    assert len(cluster.pods()) == 3


def test_the_master_warns_of_a_pod_an_agent_keeps_without_reading_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    node = Node(tmp_path / "agent")
    try:
        node.agent.start(loop=False)
        broken = {**old_pod(), "spec": {"containers": "web"}}
        node.broker.client("master").start().publish(topics.node_desired("pi-1"), desired([broken], 1).encode())
        [event] = [e for e in node.agent.events.events() if e["reason"] == "FailedToDecode"]
    finally:
        node.agent.prober.stop()
    cluster = stored_cluster(tmp_path / "master", [])
    with caplog.at_level(logging.WARNING, logger="edgekube.master.eventlog"):
        assert cluster.master.events.ingest("pi-1", EventReport(node="pi-1", events=[event])) == 1
    assert "node pi-1 cannot read pod old: pod: spec.containers: Invalid value" in caplog.text
