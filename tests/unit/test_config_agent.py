"""The agent's config volumes: the AtomicWriter on a temp dir, the Pod rewritten for the runtime, the local copy.

The writer follows the kubelet's pkg/volume/util/atomic_writer.go: files in a timestamped directory, `..data`
pointing at it, user-visible names symlinked through `..data`, an update swapping `..data` in one rename.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from edgekube.agent.configfiles import DATA_DIR, AtomicWriter, ConfigFiles
from edgekube.agent.desired import SECRETS_NOT_KEPT, DesiredState, without_secrets
from edgekube.model.config import CONFIG_KEY, ProjectedFile, ResolvedConfig
from edgekube.model.errors import RuntimeFailure
from edgekube.model.names import PodUID
from edgekube.model.pod import Pod
from edgekube.model.wire import NodeDesired


def f(path: str, text: str, mode: int = 0o644) -> ProjectedFile:
    return ProjectedFile(path=path, mode=mode, data=base64.b64encode(text.encode()).decode())


def test_the_writer_lays_files_out_like_the_kubelet(tmp_path: Path) -> None:
    """atomic_writer.go: `..data` → `..<timestamp>` dir; each top-level name → `..data/<name>`; modes as given."""
    target = tmp_path / "vol"
    assert AtomicWriter(target).write([f("a.conf", "one"), f("dir/b", "two", 0o400)])
    data = os.readlink(target / DATA_DIR)
    assert data.startswith("..2") and (target / data).is_dir()
    assert os.readlink(target / "a.conf") == "..data/a.conf"
    assert os.readlink(target / "dir") == "..data/dir"
    assert (target / "a.conf").read_text() == "one"
    assert (target / "dir" / "b").stat().st_mode & 0o777 == 0o400
    assert sorted(p.name for p in target.iterdir()) == sorted([DATA_DIR, data, "a.conf", "dir"])


def test_an_update_swaps_data_and_removes_the_old_set_and_gone_keys(tmp_path: Path) -> None:
    """An update writes a new timestamped dir, renames `..data_tmp` over `..data`, then removes the old dir."""
    target = tmp_path / "vol"
    writer = AtomicWriter(target)
    writer.write([f("a", "1"), f("b", "2")])
    first = os.readlink(target / DATA_DIR)
    assert writer.write([f("a", "changed")])
    second = os.readlink(target / DATA_DIR)
    assert second != first and not (target / first).exists()
    assert (target / "a").read_text() == "changed"
    assert not os.path.lexists(target / "b")
    assert not writer.write([f("a", "changed")])  # the same set again touches nothing
    assert os.readlink(target / DATA_DIR) == second


def test_a_reader_holding_the_old_file_open_keeps_reading_it_whole(tmp_path: Path) -> None:
    """The swap never rewrites a file in place: an open file keeps its content."""
    target = tmp_path / "vol"
    writer = AtomicWriter(target)
    writer.write([f("a", "old content")])
    with open(target / "a") as held:
        writer.write([f("a", "new content")])
        assert held.read() == "old content"
    assert (target / "a").read_text() == "new content"


def pod_with_config() -> Pod:
    return Pod.model_validate({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "uid": "u1"},
        "spec": {
            "containers": [{
                "name": "app", "image": "busybox",
                "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}, {"name": "scratch", "mountPath": "/tmp"}],
            }],
            "volumes": [{"name": "cfg", "configMap": {"name": "c"}}, {"name": "scratch", "emptyDir": {}}],
        },
    })  # fmt: skip


def test_prepare_writes_the_files_and_gives_the_runtime_a_read_only_bind_and_resolved_env(tmp_path: Path) -> None:
    """Config volumes become read-only binds of their directories; env holds the master's values, no valueFrom."""
    files = ConfigFiles(tmp_path)
    config = ResolvedConfig(files={"cfg": [f("k", "v")]}, env={"app": {"X": "secret!"}}, secret=True)
    out = files.prepare(pod_with_config(), PodUID("u1"), config)
    volumes = {v.name: v for v in out.spec.volumes}
    assert volumes["cfg"].host_path is not None and volumes["cfg"].host_path.path == str(tmp_path / "u1" / "cfg")
    assert volumes["scratch"].empty_dir is not None
    mounts = {m.name: m.read_only for m in out.spec.containers[0].volume_mounts}
    assert mounts == {"cfg": True, "scratch": False}
    assert [(e.name, e.value, e.value_from) for e in out.spec.containers[0].env] == [("X", "secret!", None)]
    assert (tmp_path / "u1" / "cfg" / "k").read_text() == "v"
    files.remove(PodUID("u1"))
    assert not (tmp_path / "u1").exists()


@pytest.mark.parametrize(
    ("config", "message", "reason"),
    [
        (
            ResolvedConfig(waiting='configmap "c" not found', reason="FailedMount", volume="cfg"),
            'MountVolume.SetUp failed for volume "cfg" : configmap "c" not found',
            "FailedMount",
        ),
        (
            ResolvedConfig(waiting='secret "s" not found', reason="CreateContainerConfigError"),
            'secret "s" not found',
            "CreateContainerConfigError",
        ),
    ],
)
def test_a_missing_source_fails_the_create_with_the_kubelet_words(
    tmp_path: Path, config: ResolvedConfig, message: str, reason: str
) -> None:
    """kubelet: FailedMount for a volume's missing ConfigMap, CreateContainerConfigError for env's missing Secret."""
    with pytest.raises(RuntimeFailure) as info:
        ConfigFiles(tmp_path).prepare(pod_with_config(), PodUID("u1"), config)
    assert (str(info.value), info.value.failure) == (message, reason)


def test_running_pods_get_new_values_and_a_sweep_removes_pods_that_are_gone(tmp_path: Path) -> None:
    files = ConfigFiles(tmp_path)
    files.sync(PodUID("u1"), ResolvedConfig(files={"cfg": [f("k", "1")]}))
    files.sync(PodUID("u2"), ResolvedConfig(files={"cfg": [f("k", "1")]}))
    assert files.update_running([(PodUID("u1"), ResolvedConfig(files={"cfg": [f("k", "2")]}))]) == ["u1"]
    assert files.update_running([(PodUID("u1"), ResolvedConfig(files={"cfg": [f("k", "2")]}))]) == []
    assert (tmp_path / "u1" / "cfg" / "k").read_text() == "2"
    files.sweep({PodUID("u1")})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u1"]


def test_the_local_copy_of_the_desired_state_never_holds_secret_values() -> None:
    """Secrets reach a node's memory only; the desired state kept on its disk has a wait in their place."""
    secret_pod = {"metadata": {"name": "a"}, CONFIG_KEY: {"env": {"app": {"PW": "hunter2"}}, "secret": True}}
    plain_pod = {"metadata": {"name": "b"}, CONFIG_KEY: {"env": {"app": {"A": "1"}}, "secret": False}}
    raw = json.dumps({"pods": [secret_pod, plain_pod]}, separators=(",", ":")).encode()
    kept = without_secrets(raw)
    assert b"hunter2" not in kept
    pods = json.loads(kept)["pods"]
    assert pods[0][CONFIG_KEY] == {"waiting": SECRETS_NOT_KEPT, "reason": "CreateContainerConfigError", "secret": True}
    assert pods[1] == plain_pod
    assert without_secrets(b'{"pods":[]}') == b'{"pods":[]}'


def test_a_node_restarted_from_its_local_copy_takes_the_same_generation_again_for_its_secret_values(
    tmp_path: Path,
) -> None:
    """The local copy lacks Secret values; the master's retained message of that generation brings them back."""
    pod = pod_with_config().to_dict()
    pod[CONFIG_KEY] = ResolvedConfig(env={"app": {"X": "hunter2"}}, files={"cfg": [f("k", "v")]}, secret=True).to_dict()
    message = NodeDesired(node="n1", generation=3, epoch="e", pods=[pod])
    first = DesiredState(path=tmp_path / "desired.json")
    assert first.offer(message, message.encode())
    assert b"hunter2" not in (tmp_path / "desired.json").read_bytes()

    rebooted = DesiredState.load(tmp_path / "desired.json")
    [waiting] = rebooted.pods
    assert waiting.config is not None and waiting.config.waiting == SECRETS_NOT_KEPT
    assert rebooted.offer(message, message.encode())  # the same generation, now with its values
    [ready] = rebooted.pods
    assert ready.config is not None and ready.config.env == {"app": {"X": "hunter2"}}
    assert ready.spec_hash == waiting.spec_hash  # the running pod is kept
    assert not rebooted.offer(message, message.encode())  # and then a duplicate is a duplicate again
    assert b"hunter2" not in (tmp_path / "desired.json").read_bytes()
