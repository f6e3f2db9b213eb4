"""ekctl end to end against a real Mosquitto and an in-process master (no node agent): every verb, lint, errors.

The round trip and the paged listing (messages near the 1 MiB payload limit) run on rumqttd too (`on_every_broker`).
"""

from __future__ import annotations

import json
import queue
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgekube.bus import topics
from edgekube.bus.paho import BusConfig, PahoBus
from edgekube.bus.protocol import Message
from edgekube.cli.main import main
from edgekube.local.broker import Mosquitto
from edgekube.master.app import Master, MasterConfig
from edgekube.master.wiring import build_master
from tests.support.broker import AnyBroker, on_every_broker

pytestmark = pytest.mark.integration

Capture = pytest.CaptureFixture[str]
POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: {app}}}
spec:
  containers:
    - name: web
      image: busybox:1.36
"""


@pytest.fixture
def master(broker: AnyBroker, tmp_path: Path) -> Iterator[Master]:
    m = build_master(MasterConfig(mqtt_host="127.0.0.1", mqtt_port=broker.port, data_dir=tmp_path / "master"))
    m.start(wait=5)
    yield m
    m.stop()


@pytest.fixture
def ekctl(master: Master, broker: AnyBroker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """Run from a directory whose .edgekube/cluster.json points at the test broker, as `make up` leaves it."""
    work = tmp_path / "work"
    (work / ".edgekube").mkdir(parents=True)
    (work / ".edgekube" / "cluster.json").write_text(json.dumps({"mqtt_host": "127.0.0.1", "mqtt_port": broker.port}))
    (work / "sub").mkdir()
    monkeypatch.chdir(work / "sub")
    monkeypatch.delenv("EDGEKUBE_MQTT_HOST", raising=False)
    monkeypatch.delenv("EDGEKUBE_MQTT_PORT", raising=False)
    return ["--timeout", "5"]


def write(path: Path, name: str, app: str) -> Path:
    path.write_text(POD.format(name=name, app=app))
    return path


@on_every_broker
def test_apply_get_delete_round_trip(ekctl: list[str], tmp_path: Path, capsys: Capture) -> None:
    hello = write(tmp_path / "hello.yaml", "hello", "x")
    other = write(tmp_path / "other.yaml", "other", "y")

    assert main([*ekctl, "apply", "-f", str(hello), "-f", str(other)]) == 0
    assert capsys.readouterr().out == "pod/hello created\npod/other created\n"
    assert main([*ekctl, "apply", "-f", str(hello)]) == 0
    assert capsys.readouterr().out == "pod/hello unchanged\n"

    assert main([*ekctl, "get", "pods"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows[0] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert [row[:4] for row in rows[1:]] == [["hello", "0/1", "Pending", "0"], ["other", "0/1", "Pending", "0"]]

    assert main([*ekctl, "get", "pods", "-l", "app=x", "-o", "name"]) == 0
    assert capsys.readouterr().out == "pod/hello\n"

    assert main([*ekctl, "get", "pod", "hello", "-o", "json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["metadata"]["name"] == "hello" and obj["status"]["phase"] == "Pending"
    assert obj["metadata"]["creationTimestamp"]

    assert main([*ekctl, "describe", "pod", "hello"]) == 0
    assert "Status:       Pending" in capsys.readouterr().out

    assert main([*ekctl, "delete", "pod", "hello"]) == 0
    assert capsys.readouterr().out == 'pod "hello" deleted\n'
    assert main([*ekctl, "get", "pod", "hello"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines()[0] == 'error: pods "hello" not found in namespace "default"'
    assert "Traceback" not in captured.err


def test_get_nodes_empty(ekctl: list[str], capsys: Capture) -> None:
    assert main([*ekctl, "get", "nodes"]) == 0
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "No resources found.\n")


def test_forbidden_update_is_one_line_naming_the_file(ekctl: list[str], tmp_path: Path, capsys: Capture) -> None:
    path = write(tmp_path / "pod.yaml", "hello", "x")
    assert main([*ekctl, "apply", "-f", str(path)]) == 0
    path.write_text(POD.format(name="hello", app="x").replace("busybox:1.36", "busybox:1.37"))
    capsys.readouterr()
    assert main([*ekctl, "apply", "-f", str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"error: {path}: Pod default/hello: spec: Forbidden")
    assert err[1].startswith("hint: delete the pod")


def test_lint_bad_file_lists_every_error(tmp_path: Path, capsys: Capture) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name, labels: {'a b': x}}\n"
        "spec: {containers: [{name: Web, image: ''}], restartPolicy: Sometimes}\n"
        "---\napiVersion: v2\nkind: Pod\nmetadata: {name: x}\n"
    )
    assert main(["lint", str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    fields = [line.split(": ", 2)[1] for line in out]
    assert all(line.startswith(f"{bad}[doc ") for line in out)
    assert {"metadata.name", "spec.restartPolicy", "kind"} <= set(fields)
    assert any(f.startswith("metadata.labels") for f in fields)
    assert any(f.startswith("spec.containers[0].name") for f in fields)
    assert any(f.startswith("spec.containers[0].image") for f in fields)


def test_broker_down_gives_up_at_its_timeout_with_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    before = set(threading.enumerate())
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: every connection is refused
        port = sock.getsockname()[1]
        monkeypatch.chdir(tmp_path)
        assert main(["--mqtt-port", str(port), "--timeout", "1", "get", "pods"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"error: cannot reach the MQTT broker at 127.0.0.1:{port} within 1s (address from --mqtt-port)",
        "hint: is the cluster up? start it with `make up`, or set EDGEKUBE_MQTT_HOST/EDGEKUBE_MQTT_PORT",
    ]
    # Given up, not left reconnecting in the background: paho's network thread was stopped before main returned.
    assert [t.name for t in set(threading.enumerate()) - before if t.name.startswith("paho-mqtt-client-")] == []


def test_master_down_times_out_with_hint(
    mosquitto: Mosquitto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Capture
) -> None:
    # A bystander on the broker sees what ekctl sends, and anything that answers it.
    seen: queue.Queue[Message] = queue.Queue()
    marker = "edgekube/v1/test/after-ekctl"
    watcher = PahoBus(BusConfig(port=mosquitto.port))
    for topic in (topics.API_READ, topics.client_reply("+"), marker):
        watcher.subscribe(topic, seen.put)
    watcher.start(wait=5)
    try:
        monkeypatch.chdir(tmp_path)
        assert main(["--mqtt-port", str(mosquitto.port), "--timeout", "1", "get", "pods"]) == 1
        # Published after ekctl gave up, so it reaches the watcher after any answer that came before that.
        watcher.publish(marker, b"")
        received: list[Message] = []
        while not received or received[-1].topic != marker:
            received.append(seen.get(timeout=5))
    finally:
        watcher.close()
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "error: no answer on edgekube/v1/api/read within 1s"
    assert err[1].startswith("hint: is the edgekube master running?")
    # The request reached the broker, asking for an answer on ekctl's reply topic; nothing answered it.
    assert [m.topic for m in received] == [topics.API_READ, marker]
    request = received[0]
    assert request.correlation
    assert re.fullmatch(r"edgekube/v1/clients/ekctl-\w+/reply", request.response_topic or "")


RC = """\
apiVersion: v1
kind: ReplicationController
metadata: {name: web}
spec:
  replicas: 2
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "busybox:1.36"}]}
"""
NODE = """\
apiVersion: v1
kind: Node
metadata: {name: pi-9}
"""
BOUND = """\
apiVersion: v1
kind: Pod
metadata: {name: bound}
spec: {nodeName: pi-9, containers: [{name: web, image: "busybox:1.36"}]}
"""


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for the master's controllers (level-triggered loop) to reach a state."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the master did not reach the expected state in time"
        time.sleep(0.1)


def ok(ekctl: list[str], capsys: Capture, *argv: str) -> str:
    """Run ekctl, expect success, return stdout."""
    code = main([*ekctl, *argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def pods_of(master: Master, owner: str) -> list[str]:
    return sorted(
        p["metadata"]["name"]
        for p in master.store.list("Pod", "default")
        if any(r.get("name") == owner for r in p["metadata"].get("ownerReferences") or [])
    )


def test_controller_verbs_against_the_real_master(
    ekctl: list[str], master: Master, tmp_path: Path, capsys: Capture
) -> None:
    path = tmp_path / "rc.yaml"
    path.write_text(RC)
    assert ok(ekctl, capsys, "apply", "-f", str(path)) == "replicationcontroller/web created\n"
    eventually(lambda: len(pods_of(master, "web")) == 2)

    rows = [line.split() for line in ok(ekctl, capsys, "get", "rc,pods").splitlines()]
    assert rows[0] == ["NAME", "DESIRED", "CURRENT", "READY", "AGE"]
    assert rows[1][:2] == ["replicationcontroller/web", "2"]
    assert sorted(row[0] for row in rows[4:]) == [f"pod/{name}" for name in pods_of(master, "web")]

    assert ok(ekctl, capsys, "scale", "rc", "web", "--replicas=3") == "replicationcontroller/web scaled\n"
    eventually(lambda: len(pods_of(master, "web")) == 3)

    events = ok(ekctl, capsys, "get", "events").splitlines()
    assert events[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert any("SuccessfulCreate" in line and "replicationcontroller/web" in line for line in events)

    described = ok(ekctl, capsys, "describe", "rc", "web").splitlines()
    assert "Selector:     app=web" in described
    assert "Pods Status:  0 Running / 3 Waiting / 0 Succeeded / 0 Failed" in described
    assert any(line.split()[:2] == ["Normal", "SuccessfulCreate"] for line in described)
    pod = pods_of(master, "web")[0]
    assert "Controlled By:  ReplicationController/web" in ok(ekctl, capsys, "describe", "pod", pod)

    assert ok(ekctl, capsys, "label", "rc", "web", "tier=front") == "replicationcontroller/web labeled\n"
    assert ok(ekctl, capsys, "label", "rc", "web", "tier=front") == "replicationcontroller/web not labeled\n"
    assert main([*ekctl, "label", "rc", "web", "tier=back"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "error: 'tier' already has a value (front), and --overwrite is false",
        "hint: add --overwrite to replace existing values",
    ]
    assert ok(ekctl, capsys, "label", "rc", "web", "tier=back", "--overwrite") == "replicationcontroller/web labeled\n"
    assert ok(ekctl, capsys, "annotate", "pod", pod, "note=hi there") == f"pod/{pod} annotated\n"
    obj = json.loads(ok(ekctl, capsys, "get", "pod", pod, "-o", "json"))
    assert obj["metadata"]["annotations"] == {"note": "hi there"}

    assert ok(ekctl, capsys, "delete", "rc", "web", "--cascade=orphan") == 'replicationcontroller "web" deleted\n'
    orphans = master.store.list("Pod", "default")
    assert len(orphans) == 3 and not any(p["metadata"].get("ownerReferences") for p in orphans)
    assert main([*ekctl, "get", "rc"]) == 0
    assert capsys.readouterr().err == "No resources found in default namespace.\n"


def test_delete_rc_takes_its_pods(ekctl: list[str], master: Master, tmp_path: Path, capsys: Capture) -> None:
    path = tmp_path / "rc.yaml"
    path.write_text(RC)
    ok(ekctl, capsys, "apply", "-f", str(path))
    eventually(lambda: len(pods_of(master, "web")) == 2)
    assert ok(ekctl, capsys, "delete", "rc", "web") == 'replicationcontroller "web" deleted\n'
    eventually(lambda: not master.store.list("Pod", "default"))


def test_node_verbs_against_the_real_master(ekctl: list[str], tmp_path: Path, capsys: Capture) -> None:
    for name, text in (("node.yaml", NODE), ("bound.yaml", BOUND)):
        (tmp_path / name).write_text(text)
        ok(ekctl, capsys, "apply", "-f", str(tmp_path / name))
    assert ok(ekctl, capsys, "cordon", "pi-9") == "node/pi-9 cordoned\n"
    assert ok(ekctl, capsys, "cordon", "node/pi-9") == "node/pi-9 already cordoned\n"
    described = ok(ekctl, capsys, "describe", "node", "pi-9").splitlines()
    assert "Taints:             node.kubernetes.io/unschedulable:NoSchedule" in described
    assert "Unschedulable:      true" in described
    assert any(line.split()[:2] == ["Normal", "NodeNotSchedulable"] for line in described)
    assert ok(ekctl, capsys, "uncordon", "pi-9") == "node/pi-9 uncordoned\n"
    assert ok(ekctl, capsys, "drain", "pi-9").splitlines() == [
        "node/pi-9 cordoned",
        "evicting pod default/bound",
        "node/pi-9 drained",
    ]
    assert main([*ekctl, "get", "pod", "bound"]) == 1
    assert ok(ekctl, capsys, "get", "nodes", "-o", "name") == "node/pi-9\n"


@on_every_broker
def test_get_lists_more_than_one_message_holds_in_pages(ekctl: list[str], tmp_path: Path, capsys: Capture) -> None:
    # 1,500 pods with 1 KiB annotations: about 2.5 MB of JSON, over twice the 1 MiB message limit.
    for chunk in range(3):
        items = [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"big-{chunk}-{n:03d}", "annotations": {"note": "x" * 1024}},
                "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]},
            }
            for n in range(500)
        ]
        path = tmp_path / f"chunk-{chunk}.json"
        path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
        ok(ekctl, capsys, "apply", "-f", str(path))
    names = ok(ekctl, capsys, "get", "pods", "-o", "name").split()
    assert len(names) == len(set(names)) == 1500
    assert names == sorted(names)
