"""The master's resolution of a pod's ConfigMaps, Secrets and downward API values, and its dispatch to the node.

Kubernetes: kubelet_pods.go makeEnvironmentVariables (envFrom in order, invalid names skipped, then env; a missing
source is `configmap "x" not found`, a missing key `couldn't find key k in ConfigMap ns/x`), the configmap and
secret volume plugins (MakePayload: every key, or the items; `configmap references non-existent config key`),
fieldpath.FormatMap for labels/annotations files, and resource.ExtractResourceValueByContainerName (divisor, ceil).
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgekube.bus import topics
from edgekube.master.api import Api
from edgekube.master.cache import CachedStore
from edgekube.master.configdata import ConfigResolver, format_map, uses_config
from edgekube.master.dispatch import CONFIG_BUDGET, Dispatcher, VolumeResolver
from edgekube.model.config import CONFIG_KEY, ResolvedConfig
from edgekube.model.wire import ApiRequest, ApiResponse, Verb
from edgekube.store.state import TinyStateStore
from tests.support.apiserver import Clock
from tests.support.membus import MemoryBroker
from tests.unit.test_master_loop import Cluster


@pytest.fixture
def store() -> Iterator[CachedStore]:
    with TinyStateStore(None) as s:
        yield CachedStore(s)


def apply(store: CachedStore, *docs: dict[str, Any]) -> None:
    Api(store, lambda n: n).apply(json.dumps({"apiVersion": "v1", "kind": "List", "items": list(docs)}))


def cm(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


def secret(name: str, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data}


def pod(container: dict[str, Any] | None = None, volumes: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    c = {"name": "app", "image": "busybox", **(container or {})}
    spec = {"nodeName": "n1", "containers": [c], "volumes": volumes or []}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"b": "2", "a": "1"}}, "spec": spec}


def resolve(store: CachedStore, doc: dict[str, Any]) -> ResolvedConfig:
    apply(store, doc)
    stored = store.get("Pod", "default", doc["metadata"]["name"])
    return ConfigResolver(store).resolve(stored)[0]


def text(config: ResolvedConfig, volume: str) -> dict[str, tuple[str, int]]:
    return {f.path: (base64.b64decode(f.data).decode(), f.mode) for f in config.files[volume]}


def test_env_from_in_order_then_env_wins_and_invalid_names_are_skipped(store: CachedStore) -> None:
    # `1st` is a valid ConfigMap key but no environment variable name (IsEnvVarName: no leading digit).
    apply(store, cm("base", A="cm", B="cm", **{"1st": "x"}), secret("creds", A="secret", PW="pw"))
    container = {
        "envFrom": [{"configMapRef": {"name": "base"}}, {"prefix": "S_", "secretRef": {"name": "creds"}},
                    {"secretRef": {"name": "creds"}}],
        "env": [{"name": "B", "value": "plain"},
                {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "L", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['a']"}}}],
    }  # fmt: skip
    config = resolve(store, pod(container))
    assert config.env["app"] == {"A": "secret", "B": "plain", "S_A": "secret", "S_PW": "pw", "PW": "pw",
                                 "NAME": "p", "L": "1"}  # fmt: skip
    assert config.secret


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"configMapKeyRef": {"name": "nope", "key": "k"}}, 'configmap "nope" not found'),
        ({"secretKeyRef": {"name": "nope", "key": "k"}}, 'secret "nope" not found'),
        (
            {"configMapKeyRef": {"name": "base", "key": "missing"}},
            "couldn't find key missing in ConfigMap default/base",
        ),
        ({"secretKeyRef": {"name": "creds", "key": "missing"}}, "couldn't find key missing in Secret default/creds"),
    ],
)
def test_a_missing_env_source_makes_the_pod_wait_with_the_kubelet_message(
    store: CachedStore, env: dict[str, Any], message: str
) -> None:
    apply(store, cm("base", A="1"), secret("creds", PW="pw"))
    config = resolve(store, pod({"env": [{"name": "X", "valueFrom": env}]}))
    assert (config.waiting, config.reason, config.env) == (message, "CreateContainerConfigError", {})


def test_optional_sources_and_keys_are_left_out(store: CachedStore) -> None:
    apply(store, cm("base", A="1"))
    container = {
        "envFrom": [{"configMapRef": {"name": "nope", "optional": True}}],
        "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "base", "key": "no", "optional": True}}}],
    }
    volumes = [{"name": "v", "configMap": {"name": "nope", "optional": True}}]
    config = resolve(store, pod(container, volumes))
    assert (config.waiting, config.env, config.files) == ("", {"app": {}}, {"v": []})


def test_config_map_volume_every_key_or_the_items_with_their_modes(store: CachedStore) -> None:
    apply(store, cm("base", a="1", b="2"))
    volumes = [
        {"name": "all", "configMap": {"name": "base", "defaultMode": 0o440}},
        {"name": "some", "configMap": {"name": "base", "items": [{"key": "b", "path": "dir/b.txt", "mode": 0o400}]}},
    ]
    config = resolve(store, pod(volumes=volumes))
    assert text(config, "all") == {"a": ("1", 0o440), "b": ("2", 0o440)}
    assert text(config, "some") == {"dir/b.txt": ("2", 0o400)}


def test_a_missing_volume_source_or_item_key_waits_as_failed_mount(store: CachedStore) -> None:
    apply(store, cm("base", a="1"))
    config = resolve(store, pod(volumes=[{"name": "v", "configMap": {"name": "gone"}}]))
    assert (config.waiting, config.reason, config.volume) == ('configmap "gone" not found', "FailedMount", "v")
    items = [{"key": "zz", "path": "z"}]
    other = pod(volumes=[{"name": "v", "configMap": {"name": "base", "items": items}}])
    config = resolve(store, {**other, "metadata": {"name": "q"}})
    assert config.waiting == "configmap references non-existent config key: zz"


def test_projected_and_downward_api_files(store: CachedStore) -> None:
    apply(store, cm("base", a="1"), secret("creds", pw="pw"))
    sources = [
        {"configMap": {"name": "base"}},
        {"secret": {"name": "creds", "items": [{"key": "pw", "path": "secret/pw"}]}},
        {"downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                                   {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
    ]  # fmt: skip
    config = resolve(store, pod(volumes=[{"name": "all", "projected": {"sources": sources, "defaultMode": 0o400}}]))
    assert text(config, "all") == {
        "a": ("1", 0o400), "secret/pw": ("pw", 0o400), "labels": ('a="1"\nb="2"', 0o400), "ns": ("default", 0o400),
    }  # fmt: skip
    assert config.secret


def test_resource_field_ref_is_rounded_up_by_its_divisor_and_a_missing_limit_is_the_nodes(store: CachedStore) -> None:
    apply(store, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    node = store.get("Node", "", "n1")
    store.update({**node, "status": {"allocatable": {"cpu": "4", "memory": "8Gi"}}})
    env = [
        {"name": "CPU_REQ", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
        {"name": "MEM_LIM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
        {"name": "CPU_LIM", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
    ]
    resources = {"requests": {"cpu": "250m"}, "limits": {"memory": "100M"}}
    config = resolve(store, pod({"env": env, "resources": resources}))
    assert config.env["app"] == {"CPU_REQ": "250", "MEM_LIM": "96", "CPU_LIM": "4"}


def test_format_map_is_the_kubelets() -> None:
    assert format_map({"b": 'say "hi"', "a": "1"}) == 'a="1"\nb="say \\"hi\\""'


def test_uses_config_sees_volumes_value_from_and_env_from() -> None:
    assert not uses_config(pod({"env": [{"name": "A", "value": "1"}]}))
    assert uses_config(pod({"envFrom": [{"configMapRef": {"name": "x"}}]}))
    assert uses_config(pod(volumes=[{"name": "v", "secret": {"secretName": "s"}}]))


def test_dispatch_sends_new_values_when_a_config_map_changes_and_only_to_the_pods_node(store: CachedStore) -> None:
    """The node running the pod gets the values in its desired state; another node's message never holds them."""
    dispatcher = Dispatcher(volumes=VolumeResolver(store), config=ConfigResolver(store))
    store.listen("Pod", dispatcher.observe)
    for kind in ("ConfigMap", "Secret"):
        store.listen(kind, functools.partial(dispatcher.config_changed, kind=kind))
    apply(store, secret("creds", pw="hunter2"), pod({"env": [{"name": "PW", "valueFrom": {"secretKeyRef": {
        "name": "creds", "key": "pw"}}}]}))  # fmt: skip
    messages = {m.node: m for m in dispatcher.flush(["n1", "n2"])}
    assert messages["n1"].pods[0][CONFIG_KEY]["env"] == {"app": {"PW": "hunter2"}}
    assert b"hunter2" not in messages["n2"].encode()
    apply(store, secret("creds", pw="changed"))
    [update] = dispatcher.flush(["n1", "n2"])
    assert update.node == "n1" and update.pods[0][CONFIG_KEY]["env"] == {"app": {"PW": "changed"}}


def test_viewers_read_everything_but_secrets_on_the_read_only_topic(tmp_path: Path) -> None:
    """As Kubernetes' `view` ClusterRole: api/read serves get and list of ConfigMaps, not of Secrets."""
    cluster = Cluster(tmp_path, TinyStateStore(None), MemoryBroker(inline=True), Clock())
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": [cm("c", a="1"), secret("s", pw="x")]})
    assert cluster.api(verb=Verb.APPLY, manifest=manifest).ok

    def read(kind: str, verb: Verb) -> ApiResponse:
        request = ApiRequest(verb=verb, kind=kind, namespace="default", name="s" if verb is Verb.GET else None)
        cluster.send(topics.API_READ, request.encode(), response_topic=READ_REPLY)
        return ApiResponse.decode(cluster.broker.published(READ_REPLY)[-1].payload)

    assert read("ConfigMap", Verb.LIST).ok
    for verb in (Verb.GET, Verb.LIST):
        answer = read("Secret", verb)
        assert not answer.ok and answer.error is not None
        assert answer.error.message.startswith("secrets is forbidden: edgekube/v1/api/read cannot")
    assert cluster.api(verb=Verb.GET, kind="Secret", namespace="default", name="s").ok  # the writers' topic


READ_REPLY = "edgekube/v1/clients/viewer/reply"


def test_a_pod_whose_values_do_not_fit_its_nodes_message_waits_saying_why(store: CachedStore) -> None:
    """Agents refuse a desired-state message over 1 MiB: a pod with too much config data waits instead."""
    dispatcher = Dispatcher(volumes=VolumeResolver(store), config=ConfigResolver(store))
    store.listen("Pod", dispatcher.observe)
    big = "x" * (CONFIG_BUDGET // 2)
    apply(store, cm("big", a=big, b=big), pod(volumes=[{"name": "v", "configMap": {"name": "big"}}]))
    [message] = dispatcher.flush(["n1"])
    config = message.pods[0][CONFIG_KEY]
    assert config["reason"] == "CreateContainerConfigError" and not config["files"]
    assert config["waiting"].startswith("the ConfigMap/Secret values this pod uses take ")
    assert len(message.encode()) < 4096


def test_env_values_name_the_variables_before_them(store: CachedStore) -> None:
    """kubelet makeEnvironmentVariables: each value is expanded over envFrom and the env entries before it."""
    apply(store, secret("db", user="admin", pw="s3cret"))
    container = {
        "envFrom": [{"prefix": "DB_", "secretRef": {"name": "db"}}],
        "env": [
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "pw"}}},
            {"name": "URL", "value": "postgres://$(DB_user):$(PW)@db/$(LATER)"},
            {"name": "LATER", "value": "x"},
        ],
    }
    config = resolve(store, pod(container))
    assert config.env["app"]["URL"] == "postgres://admin:s3cret@db/$(LATER)"
    assert uses_config(pod({"env": [{"name": "A", "value": "$(B)"}]}))
