"""Manifest loading: YAML/JSON → validated Pods and Nodes, and the exact problems a user is shown."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from edgekube.model.errors import ValidationError
from edgekube.model.manifest import (
    MAX_MANIFEST_BYTES,
    ManifestError,
    decode_documents,
    lint_manifests,
    load_manifests,
    parse_object,
)
from edgekube.model.node import Node
from edgekube.model.pod import Pod, Protocol, PullPolicy, RestartPolicy

FULL_POD = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: shop
  labels: {app: web, tier: frontend}
  annotations: {example.com/owner: team-a}
spec:
  restartPolicy: OnFailure
  nodeSelector: {kubernetes.io/arch: arm64}
  terminationGracePeriodSeconds: 5
  volumes:
  - name: cache
    emptyDir: {}
  - name: scratch
    emptyDir: {medium: Memory, sizeLimit: 64Mi}
  containers:
  - name: nginx
    image: nginx:1.25
    command: [nginx]
    args: [-g, daemon off;]
    workingDir: /srv
    imagePullPolicy: IfNotPresent
    env:
    - {name: MODE, value: production}
    - {name: EMPTY}
    ports:
    - {containerPort: 80, hostPort: 8080, protocol: TCP}
    - {containerPort: 53, hostPort: 8080, protocol: UDP}
    resources:
      requests: {cpu: 250m, memory: 64Mi}
      limits: {cpu: 1, memory: 128Mi}
    volumeMounts:
    - {name: cache, mountPath: /var/cache/nginx}
    - {name: scratch, mountPath: /tmp, readOnly: true}
  - name: sidecar
    image: busybox
"""

MINIMAL: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web"},
    "spec": {"containers": [{"name": "app", "image": "nginx"}]},
}


def pod(
    *, metadata: dict[str, Any] | None = None, spec: dict[str, Any] | None = None, **container: Any
) -> dict[str, Any]:
    """The minimal pod with the given metadata, spec and first-container fields merged in."""
    doc = copy.deepcopy(MINIMAL)
    doc["metadata"].update(metadata or {})
    doc["spec"].update(spec or {})
    if "containers" not in (spec or {}):
        doc["spec"]["containers"][0].update(container)
    return doc


def problems_of(doc: Any) -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_object(doc)
    return info.value.problems


# -- valid manifests ----------------------------------------------------------------------------------------


def test_a_pod_with_every_supported_field_loads() -> None:
    [document] = load_manifests(FULL_POD, source="web.yaml")
    assert (document.source, document.index) == ("web.yaml", 0)
    p = document.obj
    assert isinstance(p, Pod)
    assert (p.metadata.name, p.metadata.namespace) == ("web", "shop")
    assert p.metadata.labels == {"app": "web", "tier": "frontend"}
    assert p.metadata.annotations == {"example.com/owner": "team-a"}
    assert p.spec.restart_policy is RestartPolicy.ON_FAILURE
    assert p.spec.node_selector == {"kubernetes.io/arch": "arm64"}
    assert p.spec.termination_grace_period_seconds == 5
    assert [(v.name, v.empty_dir is not None) for v in p.spec.volumes] == [("cache", True), ("scratch", True)]
    assert p.spec.volumes[1].empty_dir is not None
    assert (p.spec.volumes[1].empty_dir.medium, p.spec.volumes[1].empty_dir.size_limit) == ("Memory", "64Mi")
    nginx, sidecar = p.spec.containers
    assert (nginx.name, nginx.image, nginx.command, nginx.args) == (
        "nginx",
        "nginx:1.25",
        ["nginx"],
        ["-g", "daemon off;"],
    )
    assert (nginx.working_dir, nginx.image_pull_policy) == ("/srv", PullPolicy.IF_NOT_PRESENT)
    assert [(e.name, e.value) for e in nginx.env] == [("MODE", "production"), ("EMPTY", "")]
    assert [(q.container_port, q.host_port, q.protocol) for q in nginx.ports] == [
        (80, 8080, Protocol.TCP),
        (53, 8080, Protocol.UDP),  # the same hostPort is fine with another protocol
    ]
    assert nginx.resources.requests == {"cpu": "250m", "memory": "64Mi"}
    assert nginx.resources.limits == {"cpu": 1, "memory": "128Mi"}
    assert [(m.name, m.mount_path, m.read_only) for m in nginx.volume_mounts] == [
        ("cache", "/var/cache/nginx", False),
        ("scratch", "/tmp", True),
    ]
    assert (sidecar.name, sidecar.ports, sidecar.env, sidecar.command) == ("sidecar", [], [], None)


def test_defaults_of_an_omitted_field() -> None:
    p = parse_object(copy.deepcopy(MINIMAL))
    assert isinstance(p, Pod)
    assert p.metadata.namespace == "default"
    assert p.spec.restart_policy is RestartPolicy.ALWAYS
    assert p.spec.termination_grace_period_seconds == 10
    assert (p.spec.node_selector, p.spec.volumes, p.spec.node_name, p.status) == ({}, [], None, None)


@pytest.mark.parametrize(
    ("image", "policy"),
    [
        ("nginx", PullPolicy.ALWAYS),
        ("nginx:latest", PullPolicy.ALWAYS),
        ("nginx:1.25", PullPolicy.IF_NOT_PRESENT),
        ("registry:5000/nginx", PullPolicy.ALWAYS),
        ("registry:5000/nginx:1.25", PullPolicy.IF_NOT_PRESENT),
        ("nginx@sha256:abcd", PullPolicy.IF_NOT_PRESENT),
    ],
)
def test_the_default_image_pull_policy_follows_kubernetes(image: str, policy: PullPolicy) -> None:
    p = parse_object(pod(image=image))
    assert isinstance(p, Pod)
    assert p.spec.containers[0].pull_policy() is policy


@pytest.mark.parametrize(
    ("given", "namespace"),
    [
        ({}, "default"),
        ({"namespace": ""}, "default"),
        ({"namespace": None}, "default"),
        ({"namespace": "prod"}, "prod"),
    ],
)
def test_a_pod_namespace_defaults_to_default(given: dict[str, Any], namespace: str) -> None:
    p = parse_object(pod(metadata=given))
    assert p.to_dict()["metadata"]["namespace"] == namespace


@pytest.mark.parametrize("given", [{}, {"namespace": "default"}, {"namespace": "kube-system"}])
def test_a_node_is_cluster_scoped(given: dict[str, Any]) -> None:
    doc = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "pi-1", **given}}
    node = parse_object(doc)
    assert isinstance(node, Node)
    assert node.metadata.namespace == ""
    assert node.spec.unschedulable is False


def test_multi_document_yaml_keeps_order_and_skips_empty_documents() -> None:
    text = "---\n" + FULL_POD + "---\n# only a comment\n---\napiVersion: v1\nkind: Node\nmetadata: {name: pi-1}\n---\n"
    docs = load_manifests(text, source="all.yaml")
    assert [(type(d.obj).__name__, d.index, d.source) for d in docs] == [
        ("Pod", 0, "all.yaml"),
        ("Node", 1, "all.yaml"),
    ]


def test_a_list_is_flattened_into_its_items() -> None:
    text = json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": [pod(metadata={"name": "a"}), pod(metadata={"name": "b"})]}
    )
    assert [d.obj.to_dict()["metadata"]["name"] for d in load_manifests(text)] == ["a", "b"]


@pytest.mark.parametrize(
    "text", [json.dumps(MINIMAL), json.dumps(MINIMAL, indent=2).encode(), json.dumps(MINIMAL) + "\n---\n"]
)
def test_json_text_and_bytes_load_like_yaml(text: str | bytes) -> None:
    [document] = load_manifests(text)
    assert document.obj == parse_object(copy.deepcopy(MINIMAL))


@pytest.mark.parametrize("text", ["", "\n", "# nothing\n", "---\n---\n", b""])
def test_an_empty_manifest_has_no_documents(text: str | bytes) -> None:
    assert decode_documents(text) == []
    assert load_manifests(text) == []
    assert list(lint_manifests(text)) == []


def test_to_dict_round_trips_through_parse_object() -> None:
    p = load_manifests(FULL_POD)[0].obj
    assert parse_object(p.to_dict()) == p
    assert p.to_dict()["spec"]["containers"][0]["ports"][0] == {
        "containerPort": 80,
        "hostPort": 8080,
        "protocol": "TCP",
    }


# -- rejections: every problem names the field path and the rule ---------------------------------------------

LONG = "a" * 254
RFC1123_SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
RFC1123_LABEL = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        pytest.param(pod(volumeDevices=[]), "spec.containers[0].volumeDevices: not supported", id="container-field"),
        pytest.param(pod(spec={"ephemeralContainers": []}), "spec.ephemeralContainers: not supported", id="spec-field"),
        pytest.param({**MINIMAL, "extra": 1}, "extra: not supported", id="top-level-field"),
        pytest.param(
            pod(metadata={"name": "Web"}),
            f'metadata.name: Invalid value: "Web": {RFC1123_SUBDOMAIN}',
            id="name-uppercase",
        ),
        pytest.param(
            pod(metadata={"name": "-web"}), f'metadata.name: Invalid value: "-web": {RFC1123_SUBDOMAIN}', id="name-dash"
        ),
        pytest.param(
            pod(metadata={"name": LONG}),
            f'metadata.name: Invalid value: "{LONG}": must be no more than 253 characters',
            id="name-long",
        ),
        pytest.param(
            pod(metadata={"name": ""}),
            "metadata.name: Required value: name or generateName is required",
            id="name-empty",
        ),
        pytest.param(
            {**MINIMAL, "metadata": {}},
            "metadata.name: Required value: name or generateName is required",
            id="name-missing",
        ),
        pytest.param(
            {k: v for k, v in MINIMAL.items() if k != "metadata"}, "metadata: Required value", id="metadata-missing"
        ),
        pytest.param({k: v for k, v in MINIMAL.items() if k != "spec"}, "spec: Required value", id="spec-missing"),
        pytest.param(
            pod(metadata={"namespace": "Prod"}),
            f'metadata.namespace: Invalid value: "Prod": {RFC1123_LABEL}',
            id="namespace-bad",
        ),
        pytest.param(
            pod(name="Web_1"), f'spec.containers[0].name: Invalid value: "Web_1": {RFC1123_LABEL}', id="container-name"
        ),
        pytest.param(
            pod(name="a" * 64),
            f'spec.containers[0].name: Invalid value: "{"a" * 64}": must be no more than 63 characters',
            id="c-long",
        ),
        pytest.param(pod(name=""), "spec.containers[0].name: Required value", id="container-name-empty"),
        pytest.param(
            pod(spec={"containers": [{"name": "a", "image": "x"}, {"name": "a", "image": "y"}]}),
            'spec.containers[1].name: Duplicate value: "a"',
            id="container-duplicate",
        ),
        pytest.param(
            pod(
                spec={
                    "containers": [
                        {"name": "a", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}]},
                        {"name": "b", "image": "y", "ports": [{"containerPort": 81, "hostPort": 8080}]},
                    ]
                }
            ),
            'spec.containers[1].ports[0].hostPort: Duplicate value: "/TCP/8080"',
            id="hostport-duplicate",
        ),
        pytest.param(
            pod(volumeMounts=[{"name": "data", "mountPath": "/data"}]),
            'spec.containers[0].volumeMounts[0].name: Not found: "data"',
            id="mount-undeclared",
        ),
        pytest.param(
            pod(spec={"volumes": [{"name": "data", "emptyDir": {}}]}, volumeMounts=[{"name": "data", "mountPath": ""}]),
            "spec.containers[0].volumeMounts[0].mountPath: Required value",
            id="mount-path-empty",
        ),
        pytest.param(
            pod(spec={"volumes": [{"name": "data", "emptyDir": {}, "hostPath": {"path": "/"}}]}),
            "spec.volumes[0].emptyDir: Forbidden: may not specify more than 1 volume type",
            id="volume-two-sources",
        ),
        pytest.param(
            pod(spec={"volumes": [{"name": "data", "nfs": {"server": "nas", "path": "srv"}}]}),
            'spec.volumes[0].nfs.path: Invalid value: "srv": must be an absolute path',
            id="volume-nfs-relative",
        ),
        pytest.param(
            pod(spec={"volumes": [{"name": "data", "gitRepo": {"repository": "x"}}]}),
            "spec.volumes[0].gitRepo: not supported",
            id="volume-unsupported-source",
        ),
        pytest.param(
            pod(spec={"volumes": [{"name": "d", "emptyDir": {}}, {"name": "d", "emptyDir": {}}]}),
            'spec.volumes[1].name: Duplicate value: "d"',
            id="volume-duplicate",
        ),
        pytest.param(
            pod(resources={"requests": {"cpu": "500m"}, "limits": {"cpu": "250m"}}),
            'spec.containers[0].resources.requests: Invalid value: "500m": '
            "must be less than or equal to cpu limit of 250m",
            id="cpu-request-over-limit",
        ),
        pytest.param(
            pod(resources={"requests": {"memory": "1Gi"}, "limits": {"memory": "512Mi"}}),
            'spec.containers[0].resources.requests: Invalid value: "1Gi": '
            "must be less than or equal to memory limit of 512Mi",
            id="memory-request-over-limit",
        ),
        pytest.param(
            pod(resources={"limits": {"memory": "-1"}}),
            'spec.containers[0].resources.limits[memory]: Invalid value: "-1": must be greater than or equal to 0',
            id="quantity-negative",
        ),
        pytest.param(
            pod(resources={"limits": {"cpu": float("inf")}}),
            'spec.containers[0].resources.limits[cpu]: Invalid value: "inf": must be a finite number',
            id="quantity-infinite",
        ),
        pytest.param(
            pod(resources={"requests": {"gpu": 1}}),
            'spec.containers[0].resources.requests[gpu]: Invalid value: "gpu": must be a standard resource for '
            "containers (cpu, memory, ephemeral-storage) or an extended resource such as edgekube.io/serial",
            id="resource-unknown",
        ),
        pytest.param(
            pod(resources={"limits": {"kubernetes.io/serial": 1}}),
            'spec.containers[0].resources.limits[kubernetes.io/serial]: Invalid value: "kubernetes.io/serial": '
            "doesn't follow extended resource name standard",
            id="extended-resource-reserved-domain",
        ),
        pytest.param(
            pod(resources={"limits": {"edgekube.io/serial": "500m"}}),
            'spec.containers[0].resources.limits[edgekube.io/serial]: Invalid value: "500m": must be an integer',
            id="extended-resource-fraction",
        ),
        pytest.param(
            pod(resources={"requests": {"edgekube.io/serial": 1}}),
            "spec.containers[0].resources.limits[edgekube.io/serial]: Required value: "
            "Limit must be set for non overcommitable resources",
            id="extended-resource-request-without-limit",
        ),
        pytest.param(
            pod(resources={"requests": {"edgekube.io/i2c": 1}, "limits": {"edgekube.io/i2c": 2}}),
            'spec.containers[0].resources.requests[edgekube.io/i2c]: Invalid value: "1": '
            "must be equal to edgekube.io/i2c limit of 2",
            id="extended-resource-overcommit",
        ),
        pytest.param(
            pod(env=[{"name": "1ST", "value": "x"}]),
            'spec.containers[0].env[0].name: Invalid value: "1ST": a valid environment variable name must consist of '
            "alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  "
            "or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')",
            id="env-name",
        ),
        pytest.param(
            pod(ports=[{"containerPort": 0}]),
            "spec.containers[0].ports[0].containerPort: Required value",
            id="port-zero",
        ),
        pytest.param(
            pod(ports=[{"containerPort": 80, "hostPort": 65536}]),
            "spec.containers[0].ports[0].hostPort: Invalid value: 65536: must be between 1 and 65535, inclusive",
            id="hostport-too-big",
        ),
        pytest.param(
            pod(ports=[{"containerPort": 80, "protocol": "sctp"}]),
            'spec.containers[0].ports[0].protocol: Unsupported value: "sctp": supported values: "SCTP", "TCP", "UDP"',
            id="protocol",
        ),
        pytest.param(
            pod(spec={"restartPolicy": "Sometimes"}),
            'spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"',
            id="restart-policy",
        ),
        pytest.param(
            pod(imagePullPolicy="Sometimes"),
            'spec.containers[0].imagePullPolicy: Unsupported value: "Sometimes": '
            'supported values: "Always", "IfNotPresent", "Never"',
            id="pull-policy",
        ),
        pytest.param(
            pod(spec={"containers": []}),
            "spec.containers: Required value",
            id="no-containers",
        ),
        pytest.param(
            pod(spec={"containers": [{"name": "a"}]}), "spec.containers[0].image: Required value", id="no-image"
        ),
        pytest.param(
            pod(spec={"terminationGracePeriodSeconds": -1}),
            "spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0",
            id="grace-negative",
        ),
        pytest.param(
            pod(command="echo hi"),
            'spec.containers[0].command: Invalid value: "echo hi": cannot unmarshal string into a field of type array',
            id="command",
        ),
    ],
)
def test_a_rejection_names_the_field_path_and_the_rule(doc: dict[str, Any], problem: str) -> None:
    assert problems_of(doc) == [problem]


NAME_PART_RULE = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with"
VALUE_RULE = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.'"


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        pytest.param(
            pod(metadata={"labels": {"-app": "web"}}),
            [f'metadata.labels["-app"]: Invalid value: "-app": {NAME_PART_RULE}'],
            id="label-key",
        ),
        pytest.param(
            pod(metadata={"labels": {"app": "-web-"}}),
            [f'metadata.labels["app"]: Invalid value: "-web-": {VALUE_RULE}'],
            id="label-value",
        ),
        pytest.param(
            pod(metadata={"labels": {"app": "v" * 64}}),
            [f'metadata.labels["app"]: Invalid value: "{"v" * 64}": must be no more than 63 characters'],
            id="label-value-long",
        ),
        pytest.param(
            pod(metadata={"labels": {"b c": "ok", "a": "x y"}}),  # every bad entry, sorted by key
            [
                f'metadata.labels["a"]: Invalid value: "x y": {VALUE_RULE}',
                f'metadata.labels["b c"]: Invalid value: "b c": {NAME_PART_RULE}',
            ],
            id="labels-several",
        ),
        pytest.param(
            pod(metadata={"labels": {"-k": "-v"}}),
            [
                f'metadata.labels["-k"]: Invalid value: "-k": {NAME_PART_RULE}',
                f'metadata.labels["-k"]: Invalid value: "-v": {VALUE_RULE}',
            ],
            id="label-key-and-value",
        ),
        pytest.param(
            pod(metadata={"annotations": {"a b": "any text at all"}}),
            [f'metadata.annotations["a b"]: Invalid value: "a b": {NAME_PART_RULE}'],
            id="annotation-key",
        ),
        pytest.param(
            pod(spec={"nodeSelector": {"disk type": "ssd"}}),
            [f'spec.nodeSelector["disk type"]: Invalid value: "disk type": {NAME_PART_RULE}'],
            id="selector-key",
        ),
        pytest.param(
            pod(spec={"nodeSelector": {"disk": "s s d"}}),
            [f'spec.nodeSelector["disk"]: Invalid value: "s s d": {VALUE_RULE}'],
            id="selector-value",
        ),
    ],
)
def test_label_problems_name_the_entry(doc: dict[str, Any], expected: list[str]) -> None:
    problems = problems_of(doc)
    assert len(problems) == len(expected)
    for got, want in zip(problems, expected, strict=True):
        assert got.startswith(want)
        assert "]: " in got and "]: :" not in got


def test_annotations_may_hold_any_text_but_not_more_than_256_kib() -> None:
    assert parse_object(pod(metadata={"annotations": {"note": "free text: -x- ünïcode!"}}))
    [problem] = problems_of(pod(metadata={"annotations": {"big": "x" * (256 * 1024)}}))
    assert (
        problem
        == "metadata.annotations: Too long: must have at most 262144 bytes (keys plus values total 262147 bytes)"
    )


def test_annotation_keys_ignore_case_but_label_keys_do_not() -> None:
    assert parse_object(pod(metadata={"annotations": {"Example.COM/Owner": "a"}}))
    [problem] = problems_of(pod(metadata={"labels": {"Example.COM/Owner": "a"}}))
    assert problem.startswith(
        'metadata.labels["Example.COM/Owner"]: Invalid value: "Example.COM/Owner": prefix part a DNS-1123 subdomain'
    )


def test_every_field_problem_of_one_document_is_listed() -> None:
    doc = pod(metadata={"name": "Web"}, name="App", image="")
    assert problems_of(doc) == [
        f'metadata.name: Invalid value: "Web": {RFC1123_SUBDOMAIN}',
        f'spec.containers[0].name: Invalid value: "App": {RFC1123_LABEL}',
        "spec.containers[0].image: Required value",
    ]


@pytest.mark.parametrize(
    ("doc", "problems"),
    [
        ({"kind": "Pod", "metadata": {"name": "x"}}, ["apiVersion: Required value"]),
        ({"apiVersion": "v1", "metadata": {"name": "x"}}, ["kind: Required value"]),
        ({}, ["apiVersion: Required value", "kind: Required value"]),
        (
            {"apiVersion": "apps/v1", "kind": "DaemonSet"},
            [
                "kind: DaemonSet (apps/v1) is not supported (supported: Pod (v1), Node (v1), "
                "ReplicationController (v1), ReplicaSet (apps/v1), Deployment (apps/v1), PersistentVolume (v1), "
                "PersistentVolumeClaim (v1), StorageClass (storage.k8s.io/v1), ConfigMap (v1), Secret (v1), "
                "Service (v1))"
            ],
        ),
        (
            {"apiVersion": "v1", "kind": "Ingress"},
            [
                "kind: Ingress (v1) is not supported (supported: Pod (v1), Node (v1), "
                "ReplicationController (v1), ReplicaSet (apps/v1), Deployment (apps/v1), PersistentVolume (v1), "
                "PersistentVolumeClaim (v1), StorageClass (storage.k8s.io/v1), ConfigMap (v1), Secret (v1), "
                "Service (v1))"
            ],
        ),
        (["a", "list"], ["document must be a mapping, got list"]),
        ("text", ["document must be a mapping, got str"]),
        (42, ["document must be a mapping, got int"]),
    ],
)
def test_document_level_rejections(doc: Any, problems: list[str]) -> None:
    assert problems_of(doc) == problems


@pytest.mark.parametrize(
    ("source", "index", "prefix"),
    [("", None, ""), ("", 2, "document 2: "), ("pods.yaml", None, "pods.yaml: "), ("pods.yaml", 1, "pods.yaml[1]: ")],
)
def test_a_manifest_error_says_where(source: str, index: int | None, prefix: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_object({"apiVersion": "v1"}, source=source, index=index)
    assert str(info.value) == f"{prefix}kind: Required value"
    assert info.value.hint == "run `ekctl lint FILE` to list every problem"
    assert (info.value.source, info.value.index) == (source, index)


def test_several_problems_are_joined_with_semicolons() -> None:
    with pytest.raises(ManifestError, match=r"^f\.yaml\[0\]: apiVersion: Required value; kind: Required value$"):
        load_manifests("metadata: {name: x}\n", source="f.yaml")


def test_load_stops_at_the_first_invalid_document_and_names_its_index() -> None:
    text = json.dumps(MINIMAL) + "\n---\n" + json.dumps(pod(name="A"))
    with pytest.raises(ManifestError, match=r"^m\.yaml\[1\]: spec\.containers\[0\]\.name: Invalid value: \"A\": "):
        load_manifests(text, source="m.yaml")


# -- text-level rejections ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [1, 2\n", "f.yaml: invalid YAML at line 2, column 1: expected ',' or ']', but got '<stream end>'"),
        ("a: b\n  c: d\n", "f.yaml: invalid YAML at line 2, column 4: mapping values are not allowed here"),
        ("kind: List\nitems: 3\n", "f.yaml: items: a List must have an `items` list"),
        (b"kind: Pod\n\xff\xfe", "f.yaml: not UTF-8 text (invalid start byte at byte 10)"),
        ("#" * (MAX_MANIFEST_BYTES + 1), f"f.yaml: {MAX_MANIFEST_BYTES + 1} bytes exceeds the limit of 1048576 bytes"),
        (b"#" * (MAX_MANIFEST_BYTES + 1), f"f.yaml: {MAX_MANIFEST_BYTES + 1} bytes exceeds the limit of 1048576 bytes"),
        # The limit is on bytes: 400 Ki three-byte characters are 1.2 MiB.
        ("€" * (400 * 1024), f"f.yaml: {3 * 400 * 1024} bytes exceeds the limit of 1048576 bytes"),
    ],
)
def test_text_that_cannot_be_decoded(text: str | bytes, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        decode_documents(text, source="f.yaml")
    assert str(info.value) == message
    assert not isinstance(info.value, ManifestError)
    [linted] = lint_manifests(text, source="f.yaml")
    assert str(linted) == message


def test_without_a_source_the_text_is_called_manifest() -> None:
    with pytest.raises(ValidationError, match=r"^manifest: invalid YAML at line 1, column 5: "):
        decode_documents("a: [")


def test_a_manifest_of_exactly_the_limit_is_accepted() -> None:
    assert decode_documents("#" * MAX_MANIFEST_BYTES) == []


# -- lint ---------------------------------------------------------------------------------------------------


def test_lint_yields_one_error_per_bad_document_with_every_field_problem() -> None:
    text = "\n---\n".join(
        [
            json.dumps(pod(metadata={"name": "Bad"}, volumeDevices=[])),
            json.dumps(MINIMAL),
            json.dumps({"apiVersion": "v1", "kind": "Ingress"}),
        ]
    )
    errors = list(lint_manifests(text, source="app.yaml"))
    assert len(errors) == 2
    first, second = errors
    assert isinstance(first, ManifestError) and isinstance(second, ManifestError)
    assert (first.index, second.index) == (0, 2)
    assert first.problems == [
        f'metadata.name: Invalid value: "Bad": {RFC1123_SUBDOMAIN}',
        "spec.containers[0].volumeDevices: not supported",
    ]
    assert second.problems == [
        "kind: Ingress (v1) is not supported (supported: Pod (v1), Node (v1), "
        "ReplicationController (v1), ReplicaSet (apps/v1), Deployment (apps/v1), PersistentVolume (v1), "
        "PersistentVolumeClaim (v1), StorageClass (storage.k8s.io/v1), ConfigMap (v1), Secret (v1), Service (v1))"
    ]
    assert (
        str(second) == "app.yaml[2]: kind: Ingress (v1) is not supported (supported: Pod (v1), Node (v1), "
        "ReplicationController (v1), ReplicaSet (apps/v1), Deployment (apps/v1), PersistentVolume (v1), "
        "PersistentVolumeClaim (v1), StorageClass (storage.k8s.io/v1), ConfigMap (v1), Secret (v1), Service (v1))"
    )


def test_lint_of_a_valid_manifest_yields_nothing() -> None:
    assert list(lint_manifests(FULL_POD + "---\n" + json.dumps(MINIMAL))) == []


def test_an_extended_resource_limit_alone_is_also_its_request() -> None:
    doc = pod(resources={"limits": {"edgekube.io/serial": 1, "cpu": "100m"}})
    parsed = parse_object(doc)
    assert isinstance(parsed, Pod)
    assert parsed.spec.containers[0].resources.extended() == {"edgekube.io/serial": 1}


def test_an_extended_resource_with_equal_request_and_limit_is_valid() -> None:
    doc = pod(resources={"requests": {"edgekube.io/gpiochip": "1"}, "limits": {"edgekube.io/gpiochip": 1}})
    parsed = parse_object(doc)
    assert isinstance(parsed, Pod)
    assert parsed.spec.containers[0].resources.extended() == {"edgekube.io/gpiochip": 1}
