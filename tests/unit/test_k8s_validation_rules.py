"""Pod, RC and ReplicaSet validation rule by rule: Kubernetes' decoding, defaults, rules and messages.

Every test names, in its docstring, the Kubernetes function whose rule it checks: pkg/apis/core/validation/
validation.go (validation.go), pkg/apis/core/v1/defaults.go (defaults.go), apimachinery's util/validation
(IsValidPortName, IsEnvVarName, ...) or the JSON decoder. A valid case proves a rule is not stricter than
Kubernetes', an invalid one that it exists and is worded as Kubernetes words it (field.Invalid, Required,
NotSupported, Duplicate, NotFound, Forbidden).
"""

from __future__ import annotations

import copy
import json
import typing
from typing import Any

import pytest
from pydantic import BaseModel, PlainValidator
from pydantic.types import Strict

from edgekube.agent.runtime.podman.specgen import MAX_STOP_TIMEOUT, container_spec
from edgekube.agent.runtime.volumes import plan_volumes
from edgekube.model.controllers import ReplicaSet, ReplicationController
from edgekube.model.manifest import KINDS, ManifestError, decode_documents, lint_manifests, parse_object
from edgekube.model.pod import Pod
from edgekube.model.taints import TaintEffect, Toleration

ENV_RULE = (
    "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must "
    "not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation "
    "is '[-._a-zA-Z][-._a-zA-Z0-9]*')"
)
SUBDOMAIN_RULE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
QUANTITY_RULE = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
HEADER_RULE = (
    "a valid HTTP header must consist of alphanumeric characters or '-' "
    "(e.g. 'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')"
)
C0 = "spec.containers[0]"
UNMARSHAL = "cannot unmarshal"


def pod(spec: dict[str, Any] | None = None, **container: Any) -> dict[str, Any]:
    """A minimal pod, its first container's fields and its spec's fields merged in."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox", **container}], **(spec or {})},
    }


def rc(selector: dict[str, str] | None, labels: dict[str, str], **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
        **spec,
    }
    if selector is not None:
        body["selector"] = selector
    return {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "r"}, "spec": body}


def rs(selector: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    template = {"metadata": {"labels": labels or {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": "r"},
        "spec": {"selector": selector, "template": template},
    }


def problems(doc: dict[str, Any]) -> list[str]:
    """Every problem found in `doc`, as `ekctl lint` lists them ([] when it is valid)."""
    try:
        parse_object(copy.deepcopy(doc))
    except ManifestError as exc:
        return exc.problems
    return []


def probe(**fields: Any) -> dict[str, Any]:
    return {"tcpSocket": {"port": 80}, **fields}


# -- rules edgekube had and Kubernetes has not -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["my.env-name", "MY_ENV.NAME", "MyEnvName1", "-dash", "_x", "a-b.c"])
def test_an_env_var_name_may_hold_dots_and_dashes(name: str) -> None:
    """apimachinery IsEnvVarName (validation.go ValidateEnv): `[-._a-zA-Z][-._a-zA-Z0-9]*`, not a C identifier."""
    assert problems(pod(env=[{"name": name, "value": "v"}])) == []


@pytest.mark.parametrize(
    ("name", "rules"),
    [
        ("1ST", [ENV_RULE]),
        ("a=b", [ENV_RULE]),
        (".", ["must not be '.'"]),
        ("..", ["must not be '..'"]),
        ("..x", ["must not start with '..'"]),
    ],
)
def test_an_env_var_name_breaking_is_env_var_name_is_refused(name: str, rules: list[str]) -> None:
    """apimachinery IsEnvVarName (its regular expression, then hasChDirPrefix), via validation.go ValidateEnv."""
    assert problems(pod(env=[{"name": name, "value": "v"}])) == [
        f"{C0}.env[0].name: Invalid value: {json.dumps(name)}: {rule}" for rule in rules
    ]


def test_an_env_from_prefix_follows_the_env_var_name_rule() -> None:
    """validation.go ValidateEnvFrom: a prefix is checked with IsEnvVarName (so `my-app.` is fine, `1x` is not)."""
    ok = pod(envFrom=[{"prefix": "my-app.", "configMapRef": {"name": "cm"}}])
    bad = pod(envFrom=[{"prefix": "1x", "configMapRef": {"name": "cm"}}])
    assert problems(ok) == []
    assert problems(bad) == [f'{C0}.envFrom[0].prefix: Invalid value: "1x": {ENV_RULE}']


def test_a_mount_path_need_not_be_absolute_but_must_be_set() -> None:
    """validation.go ValidateVolumeMounts: mountPath is Required, nothing more (no absolute-path rule)."""
    volumes = {"volumes": [{"name": "v"}]}
    assert problems(pod(volumes, volumeMounts=[{"name": "v", "mountPath": "data"}])) == []
    assert problems(pod(volumes, volumeMounts=[{"name": "v", "mountPath": ""}])) == [
        f"{C0}.volumeMounts[0].mountPath: Required value"
    ]


def test_a_relative_mount_path_is_mounted_from_the_container_root() -> None:
    """kubelet_pods.go makeMounts: a relative mountPath is made absolute (MakeAbsolutePath) before the runtime."""
    parsed = parse_object(pod({"volumes": [{"name": "v"}]}, volumeMounts=[{"name": "v", "mountPath": "data"}]))
    assert isinstance(parsed, Pod)
    _, mounts = plan_volumes(parsed)
    assert [m.dest for m in mounts] == ["/data"]
    assert parsed.spec.containers[0].volume_mounts[0].mount_path == "data"  # the spec keeps what the user wrote


def test_mount_paths_are_unique_in_a_container() -> None:
    """validation.go ValidateVolumeMounts: `must be unique` for a second mount at the same path."""
    mounts = [{"name": "a", "mountPath": "/d"}, {"name": "b", "mountPath": "/d"}]
    doc = pod({"volumes": [{"name": "a"}, {"name": "b"}]}, volumeMounts=mounts)
    assert problems(doc) == [f'{C0}.volumeMounts[1].mountPath: Invalid value: "/d": must be unique']


def test_termination_grace_period_has_no_upper_bound_and_no_negative_value() -> None:
    """validation.go ValidatePodSpec: ValidateNonnegativeField(terminationGracePeriodSeconds), no maximum."""
    parsed = parse_object(pod({"terminationGracePeriodSeconds": 86_400}))
    assert isinstance(parsed, Pod) and parsed.spec.termination_grace_period_seconds == 86_400
    assert problems(pod({"terminationGracePeriodSeconds": -1})) == [
        "spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0"
    ]


@pytest.mark.parametrize(("grace", "stop_timeout"), [(30, 30), (2**40, MAX_STOP_TIMEOUT)])
def test_a_long_grace_is_capped_only_where_podman_needs_it(grace: int, stop_timeout: int) -> None:
    """ValidatePodSpec takes any grace >= 0; Podman's stop_timeout (a Go time.Duration of seconds) is capped."""
    parsed = parse_object(pod({"terminationGracePeriodSeconds": grace}))
    assert isinstance(parsed, Pod) and parsed.spec.termination_grace_period_seconds == grace
    assert container_spec(parsed, parsed.spec.containers[0], 0, "ek_p", {})["stop_timeout"] == stop_timeout


def test_host_port_zero_means_unset() -> None:
    """validation.go validateContainerPorts checks hostPort only when it is not 0 (the int32 zero value)."""
    parsed = parse_object(pod(ports=[{"containerPort": 80, "hostPort": 0}, {"containerPort": 81, "hostPort": 0}]))
    assert isinstance(parsed, Pod)
    assert [p.host_port for p in parsed.spec.containers[0].ports] == [None, None]
    assert "hostPort" not in parsed.to_dict()["spec"]["containers"][0]["ports"][0]


# -- defaults applied before the rules ---------------------------------------------------------------------------


def test_probe_timings_of_zero_take_their_defaults_before_validation() -> None:
    """defaults.go SetDefaults_Probe: timeout 1, period 10, success 1, failure 3 replace 0 before validateProbe."""
    zero = {"periodSeconds": 0, "timeoutSeconds": 0, "successThreshold": 0, "failureThreshold": 0}
    parsed = parse_object(pod(livenessProbe=probe(**zero), readinessProbe=probe(**zero)))
    assert isinstance(parsed, Pod)
    liveness = parsed.spec.containers[0].liveness_probe
    assert liveness is not None
    timings = (liveness.period_seconds, liveness.timeout_seconds, liveness.success_threshold)
    assert (*timings, liveness.failure_threshold) == (10, 1, 1, 3)


def test_a_negative_probe_timing_is_refused() -> None:
    """validation.go validateProbe: ValidateNonnegativeField on every timing."""
    assert problems(pod(readinessProbe=probe(periodSeconds=-1, initialDelaySeconds=-5))) == [
        f"{C0}.readinessProbe.initialDelaySeconds: Invalid value: -5: must be greater than or equal to 0",
        f"{C0}.readinessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to 0",
    ]


def test_a_volume_without_a_source_is_an_empty_dir() -> None:
    """defaults.go SetDefaults_Volume: no source given means emptyDir, before validateVolumeSource."""
    parsed = parse_object(pod({"volumes": [{"name": "v"}]}))
    assert isinstance(parsed, Pod) and parsed.spec.volumes[0].source_kind() == "emptyDir"


@pytest.mark.parametrize("selector", [None, {}])
def test_an_rc_without_a_selector_selects_its_template_labels(selector: dict[str, str] | None) -> None:
    """defaults.go SetDefaults_ReplicationController: an empty selector (and empty labels) take the template's."""
    parsed = parse_object(rc(selector, {"app": "web"}))
    assert isinstance(parsed, ReplicationController)
    assert parsed.spec.selector == {"app": "web"}
    assert parsed.metadata.labels == {"app": "web"}


def test_an_rc_whose_template_has_no_labels_needs_a_selector() -> None:
    """validation.go ValidateReplicationControllerSpec: ValidateNonEmptySelector after defaulting."""
    assert problems(rc({}, {})) == ["spec.selector: Required value"]


def test_a_toleration_operator_left_empty_means_equal() -> None:
    """validation.go ValidateTolerations: operator "" is Equal (its value is checked as a label value)."""
    parsed = parse_object(pod({"tolerations": [{"key": "k", "operator": "", "value": "v"}]}))
    assert isinstance(parsed, Pod) and parsed.spec.tolerations[0].operator == "Equal"


# -- strict decoding ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        (
            pod(securityContext={"runAsUser": "1000"}),
            f'{C0}.securityContext.runAsUser: Invalid value: "1000": {UNMARSHAL} string into a field of type integer',
        ),
        (
            pod(ports=[{"containerPort": "80"}]),
            f'{C0}.ports[0].containerPort: Invalid value: "80": cannot unmarshal string into a field of type integer',
        ),
        (
            pod({"volumes": [{"name": "v"}]}, volumeMounts=[{"name": "v", "mountPath": "/v", "readOnly": "true"}]),
            f'{C0}.volumeMounts[0].readOnly: Invalid value: "true": {UNMARSHAL} string into a field of type boolean',
        ),
        (
            rc(None, {"app": "web"}, replicas="3"),
            'spec.replicas: Invalid value: "3": cannot unmarshal string into a field of type integer',
        ),
        (
            pod({"terminationGracePeriodSeconds": 30.5}),
            f"spec.terminationGracePeriodSeconds: Invalid value: 30.5: {UNMARSHAL} number into a field of type integer",
        ),
        (
            pod({"hostNetwork": 1}),
            "spec.hostNetwork: Invalid value: 1: cannot unmarshal number into a field of type boolean",
        ),
    ],
)
def test_a_string_or_number_of_the_wrong_json_type_is_refused(doc: dict[str, Any], problem: str) -> None:
    """Kubernetes' JSON decoder: no string for an int32/int64/bool field, no number for a bool, no coercion."""
    assert problems(doc) == [problem]


def test_an_int32_or_int64_field_refuses_a_number_out_of_its_range() -> None:
    """Kubernetes' JSON decoder: `cannot unmarshal number ... of type int32` (replicas, probe timings) or int64."""
    assert problems(rc(None, {"app": "web"}, replicas=2**32)) == [
        f"spec.replicas: Invalid value: {2**32}: {UNMARSHAL} number into a field of type int32"
    ]
    assert problems(pod({"terminationGracePeriodSeconds": 2**63})) == [
        f"spec.terminationGracePeriodSeconds: Invalid value: {2**63}: {UNMARSHAL} number into a field of type int64"
    ]
    assert problems(pod({"terminationGracePeriodSeconds": 2**63 - 1})) == []


@pytest.mark.parametrize("port", [8080, "http"])
def test_an_int_or_string_port_takes_a_number_or_a_name(port: int | str) -> None:
    """intstr.IntOrString decoding, then validation.go ValidatePortNumOrName."""
    parsed = parse_object(
        pod(ports=[{"containerPort": 8080, "name": "http"}], livenessProbe={"httpGet": {"port": port}})
    )
    assert isinstance(parsed, Pod)
    probe_ = parsed.spec.containers[0].liveness_probe
    assert probe_ is not None and probe_.http_get is not None and probe_.http_get.port == port


@pytest.mark.parametrize("quantity", ["250m", 1, 0.5, "1e3", "64Mi", "+1"])
def test_a_quantity_is_a_string_or_a_number(quantity: str | int | float) -> None:
    """resource.Quantity UnmarshalJSON: a JSON string or number, parsed by ParseQuantity."""
    assert problems(pod(resources={"limits": {"cpu": quantity}})) == []


@pytest.mark.parametrize(
    ("quantity", "shown"), [(True, "true"), ("1.5.5", '"1.5.5"'), ("1 Gi", '"1 Gi"'), ("64MB", '"64MB"')]
)
def test_a_quantity_that_does_not_parse_is_refused(quantity: Any, shown: str) -> None:
    """resource.ParseQuantity's syntax (a boolean is not a quantity either)."""
    found = problems(pod(resources={"limits": {"memory": quantity}}))
    assert len(found) == 1
    assert found[0].endswith(f"Invalid value: {shown}: {QUANTITY_RULE}")


def test_the_store_and_the_wire_still_load_what_they_write() -> None:
    """A decoded object written as JSON (store, wire, the agent's desired state) decodes to the same object."""
    doc = pod(
        {"tolerations": [{"key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]},
        ports=[{"containerPort": 80, "name": "http", "protocol": "UDP"}],
        livenessProbe={"httpGet": {"port": "http", "httpHeaders": [{"name": "X-A", "value": "1"}]}},
        securityContext={"runAsUser": 1000, "readOnlyRootFilesystem": True},
        resources={"requests": {"cpu": 0.5, "memory": "64Mi"}, "limits": {"cpu": 1}},
    )
    parsed = parse_object(doc)
    again = Pod.from_dict(json.loads(json.dumps(parsed.to_dict())))
    assert again == parsed
    replicas = parse_object(rc(None, {"app": "web"}, replicas=2))
    assert ReplicationController.from_dict(json.loads(json.dumps(replicas.to_dict()))) == replicas


def test_enum_fields_still_take_plain_strings_in_python() -> None:
    """Strictness is per field: enums (StrEnum) keep taking their values' strings from dicts and constructors."""
    toleration = Toleration.model_validate({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"})
    assert toleration.effect is TaintEffect.NO_SCHEDULE


def _loose_fields(model: type[BaseModel], seen: set[type[BaseModel]]) -> list[str]:
    """Fields (reachable from `model`) typed int or bool without Strict: where "80" or "true" would be coerced."""
    if model in seen:
        return []
    seen.add(model)
    out: list[str] = []

    def walk(tp: Any, strict: bool, where: str) -> None:
        if typing.get_origin(tp) is typing.Annotated:
            base, *meta = typing.get_args(tp)
            custom = any(isinstance(m, Strict | PlainValidator) for m in meta)
            walk(base, strict or custom, where)
        elif tp in (int, bool):
            if not strict:
                out.append(where)
        elif isinstance(tp, type) and issubclass(tp, BaseModel):
            out.extend(_loose_fields(tp, seen))
        else:
            for arg in typing.get_args(tp):
                walk(arg, strict, where)

    for name, info in model.model_fields.items():
        strict = any(isinstance(m, Strict | PlainValidator) for m in info.metadata)
        walk(info.annotation, strict, f"{model.__name__}.{name}")
    return out


def test_every_number_and_boolean_field_of_a_manifest_kind_decodes_strictly() -> None:
    """Kubernetes' JSON decoder: every int and bool field of every kind refuses strings (StrictInt/StrictBool)."""
    seen: set[type[BaseModel]] = set()
    loose = [field for model in KINDS.values() for field in _loose_fields(model, seen)]
    assert loose == []


# -- rules edgekube lacked -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "rules"),
    [
        ("http_port", ["must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"]),
        ("8080", ["must contain at least one letter (a-z)"]),
        ("a--b", ["must not contain consecutive hyphens"]),
        ("-web", ["must not begin or end with a hyphen"]),
        ("metrics-endpoint", ["must be no more than 15 characters"]),
        (
            "HTTP",
            [
                "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "must contain at least one letter (a-z)",
            ],
        ),
    ],
)
def test_a_port_name_is_an_iana_service_name(name: str, rules: list[str]) -> None:
    """validation.go validateContainerPorts: IsValidPortName (IANA_SVC_NAME), every broken rule reported."""
    assert problems(pod(ports=[{"containerPort": 80, "name": name}])) == [
        f"{C0}.ports[0].name: Invalid value: {json.dumps(name)}: {rule}" for rule in rules
    ]


def test_port_names_are_unique_in_a_container() -> None:
    """validation.go validateContainerPorts: field.Duplicate for a second port of the same name."""
    doc = pod(ports=[{"containerPort": 80, "name": "web"}, {"containerPort": 81, "name": "web"}])
    assert problems(doc) == [f'{C0}.ports[1].name: Duplicate value: "web"']


def test_a_container_port_of_zero_is_required_and_one_above_65535_invalid() -> None:
    """validation.go validateContainerPorts: Required for 0, IsValidPortNum otherwise."""
    assert problems(pod(ports=[{"containerPort": 0}])) == [f"{C0}.ports[0].containerPort: Required value"]
    assert problems(pod(ports=[{"containerPort": 70000}])) == [
        f"{C0}.ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"
    ]


def test_node_name_is_a_dns_subdomain() -> None:
    """validation.go ValidatePodSpec: ValidateNodeName (NameIsDNSSubdomain) on a set nodeName."""
    assert problems(pod({"nodeName": "pi-1.local"})) == []
    assert problems(pod({"nodeName": "Pi_1"})) == [f'spec.nodeName: Invalid value: "Pi_1": {SUBDOMAIN_RULE}']


@pytest.mark.parametrize(
    ("port", "problem"),
    [
        (0, "Invalid value: 0: must be between 1 and 65535, inclusive"),
        ("80", 'Invalid value: "80": must contain at least one letter (a-z)'),
        ("Web", 'Invalid value: "Web": must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)'),
    ],
)
def test_a_probe_port_is_a_port_number_or_name(port: int | str, problem: str) -> None:
    """validation.go validateTCPSocketAction / validateHTTPGetAction: ValidatePortNumOrName."""
    assert problems(pod(readinessProbe={"tcpSocket": {"port": port}})) == [
        f"{C0}.readinessProbe.tcpSocket.port: {problem}"
    ]


@pytest.mark.parametrize("field", ["livenessProbe", "readinessProbe"])
def test_success_threshold_must_be_1_for_liveness_only(field: str) -> None:
    """validation.go validateContainerCommon: livenessProbe (and startupProbe) successThreshold `must be 1`."""
    found = problems(pod(**{field: probe(successThreshold=2)}))
    if field == "livenessProbe":
        assert found == [f"{C0}.livenessProbe.successThreshold: Invalid value: 2: must be 1"]
    else:
        assert found == []


def test_an_http_header_name_is_a_token() -> None:
    """validation.go validateHTTPGetAction: IsHTTPHeaderName on each header (the list's path, as Kubernetes)."""
    headers = [{"name": "X-Custom", "value": "1"}, {"name": "X_Custom", "value": "2"}]
    assert problems(pod(livenessProbe={"httpGet": {"port": 80, "httpHeaders": headers}})) == [
        f'{C0}.livenessProbe.httpGet.httpHeaders: Invalid value: "X_Custom": {HEADER_RULE}'
    ]


def test_an_image_with_edge_whitespace_is_refused_in_a_pod() -> None:
    """validation.go validateContainersOnlyForPod: `must not have leading or trailing whitespace` (pods only)."""
    assert problems(pod(image=" nginx")) == [
        f'{C0}.image: Invalid value: " nginx": must not have leading or trailing whitespace'
    ]


def test_an_unset_image_is_required() -> None:
    """validation.go validateContainerCommon: image Required."""
    assert problems(pod(image="")) == [f"{C0}.image: Required value"]


@pytest.mark.parametrize(
    ("toleration", "problem"),
    [
        (
            {"key": "k", "operator": "Exists", "value": "v"},
            'spec.tolerations[0].operator: Invalid value: {"key": "k", "operator": "Exists", "value": "v"}: '
            "value must be empty when `operator` is 'Exists'",
        ),
        (
            {"key": "k", "effect": "Sometimes"},
            'spec.tolerations[0].effect: Unsupported value: "Sometimes": '
            'supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"',
        ),
        (
            {"operator": "Equal", "value": "v"},
            'spec.tolerations[0].operator: Invalid value: "Equal": operator must be Exists when `key` is empty, '
            'which means "match all values and all keys"',
        ),
        (
            {"key": "k", "operator": "Gte"},
            'spec.tolerations[0].operator: Unsupported value: "Gte": supported values: "Equal", "Exists"',
        ),
    ],
)
def test_toleration_rules(toleration: dict[str, Any], problem: str) -> None:
    """validation.go ValidateTolerations: key, operator/value and effect (validateTaintEffect) rules."""
    assert problems(pod({"tolerations": [toleration]})) == [problem]


def test_a_toleration_key_and_value_are_a_qualified_name_and_a_label_value() -> None:
    """validation.go ValidateTolerations: ValidateLabelName(key), IsValidLabelValue(value) under `operator`."""
    found = problems(pod({"tolerations": [{"key": "bad key", "value": "bad value!"}]}))
    assert [p.split(": Invalid value: ")[0] for p in found] == [
        "spec.tolerations[0].key",
        "spec.tolerations[0].operator",
    ]
    assert found[0].startswith('spec.tolerations[0].key: Invalid value: "bad key": name part must consist of')
    assert found[1].startswith('spec.tolerations[0].operator: Invalid value: "bad value!": a valid label must be')


# -- every problem of a model, each at its own path --------------------------------------------------------------


def test_every_problem_of_a_resources_block_is_listed() -> None:
    """validation.go validateResourceRequirements: each name and quantity checked, none hiding the others."""
    resources = {"requests": {"cpu": "abc", "gpu": 1}, "limits": {"memory": "1.5.5", "cpu": "-1"}}
    assert problems(pod(resources=resources)) == [
        f'{C0}.resources.limits[memory]: Invalid value: "1.5.5": {QUANTITY_RULE}',
        f'{C0}.resources.limits[cpu]: Invalid value: "-1": must be greater than or equal to 0',
        f'{C0}.resources.requests[cpu]: Invalid value: "abc": {QUANTITY_RULE}',
        f'{C0}.resources.requests[gpu]: Invalid value: "gpu": must be a standard resource for containers '
        "(cpu, memory, ephemeral-storage) or an extended resource such as edgekube.io/serial",
    ]


def test_lint_lists_every_problem_of_a_resources_block() -> None:
    """validation.go validateResourceRequirements through `ekctl lint`: two bad quantities, two lines."""
    text = json.dumps(pod(resources={"limits": {"cpu": "x", "memory": "y"}}))
    [error] = list(lint_manifests(text))
    assert isinstance(error, ManifestError) and len(error.problems) == 2


def test_a_replica_set_selector_problem_reads_as_a_field_path() -> None:
    """ValidateLabelSelector / ValidateLabelSelectorRequirement (apimachinery), via apps ValidateReplicaSetSpec."""
    selector = {"matchExpressions": [{"key": "tier", "operator": "In"}, {"key": "x", "operator": "Foo"}]}
    assert problems(rs(selector)) == [
        "spec.selector.matchExpressions[0].values: Required value: "
        "must be specified when `operator` is 'In' or 'NotIn'",
        'spec.selector.matchExpressions[1].operator: Invalid value: "Foo": not a valid selector operator',
    ]


def test_a_replica_set_needs_a_non_empty_selector_that_selects_its_template() -> None:
    """apps validation ValidateReplicaSetSpec: empty selector, and `selector` does not match template `labels`."""
    assert problems(rs({})) == ["spec.selector: Invalid value: {}: empty selector is invalid for deployment"]
    assert problems(rs({"matchLabels": {"app": "db"}})) == [
        'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
        "`selector` does not match template `labels`"
    ]
    assert isinstance(parse_object(rs({"matchLabels": {"app": "web"}})), ReplicaSet)


def test_a_volume_problem_names_the_volume_and_its_source() -> None:
    """validation.go validateNFSVolumeSource (absolute path) and ValidateVolumeMounts' NotFound, at their paths."""
    doc = pod({"volumes": [{"name": "d", "nfs": {"server": "nas", "path": "srv"}}]})
    assert problems(doc) == ['spec.volumes[0].nfs.path: Invalid value: "srv": must be an absolute path']
    missing = pod(volumeMounts=[{"name": "data", "mountPath": "/data"}])
    assert problems(missing) == [f'{C0}.volumeMounts[0].name: Not found: "data"']


def test_an_affinity_problem_names_the_whole_path() -> None:
    """validation.go ValidateNodeSelectorRequirement: `not a valid selector operator`, under spec.affinity."""
    term = {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "Foo", "values": ["arm64"]}]}
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}
    assert problems(pod({"affinity": affinity})) == [
        "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
        '.matchExpressions[0].operator: Invalid value: "Foo": not a valid selector operator'
    ]


def test_duplicate_names_and_host_ports_use_kubernetes_values() -> None:
    """validation.go validateContainers (Duplicate name) and AccumulateUniqueHostPorts (hostIP/protocol/port)."""
    containers = [
        {"name": "a", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}]},
        {"name": "a", "image": "y", "ports": [{"containerPort": 81, "hostPort": 8080}]},
    ]
    assert problems(pod({"containers": containers})) == [
        'spec.containers[1].name: Duplicate value: "a"',
        'spec.containers[1].ports[0].hostPort: Duplicate value: "/TCP/8080"',
    ]


def test_every_bad_sysctl_is_listed() -> None:
    """validation.go validateSysctls: Required, Invalid or Duplicate for each entry, none hiding the next."""
    sysctls = [{"name": "", "value": "1"}, {"name": "kernel.shm_rmid_forced", "value": "1"}]
    sysctls += [{"name": "kernel.shm_rmid_forced", "value": "0"}]
    assert problems(pod({"securityContext": {"sysctls": sysctls}})) == [
        "spec.securityContext.sysctls[0].name: Required value",
        'spec.securityContext.sysctls[2].name: Duplicate value: "kernel.shm_rmid_forced"',
    ]


def test_a_key_given_twice_in_one_mapping_is_refused() -> None:
    """Strict decoding (sigs.k8s.io/yaml): `key "image" already set in map`; merge keys may be overridden."""
    text = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n"
    text += "    image: a\n    image: b\n"
    [error] = list(lint_manifests(text))
    assert str(error) == 'manifest: invalid YAML at line 8, column 5: key "image" already set in map'
    merged = "apiVersion: v1\nkind: Pod\nmetadata: &m {name: p}\nx-meta: *m\n"
    assert decode_documents(merged.replace("x-meta: *m", "other:\n  <<: *m\n  name: q"))[0]["other"] == {"name": "q"}


def test_a_field_given_as_null_is_unset() -> None:
    """Go's encoding/json (Kubernetes' decoder): null leaves a field at its zero value; `resources: null` is fine."""
    doc = pod(
        {"nodeSelector": None}, args=None, resources=None, securityContext=None, env=[{"name": "A", "value": None}]
    )
    parsed = parse_object(doc)
    assert isinstance(parsed, Pod)
    container = parsed.spec.containers[0]
    assert (container.args, container.resources.limits, container.env[0].value) == (None, {}, "")
    assert problems(pod(name=None)) == [f"{C0}.name: Required value"]


def test_empty_enum_fields_take_their_defaults() -> None:
    """defaults.go SetDefaults_PodSpec (restartPolicy), SetDefaults_Container (imagePullPolicy),
    SetDefaults_ContainerPort (protocol), SetDefaults_HTTPGetAction (scheme): "" is the default, before validation."""
    doc = pod(
        {"restartPolicy": ""},
        imagePullPolicy="",
        ports=[{"containerPort": 80, "protocol": ""}],
        readinessProbe={"httpGet": {"port": 80, "scheme": ""}},
    )
    parsed = parse_object(doc)
    assert isinstance(parsed, Pod)
    container = parsed.spec.containers[0]
    assert (parsed.spec.restart_policy, container.ports[0].protocol) == ("Always", "TCP")
    assert container.image_pull_policy is None and container.pull_policy() == "Always"
    assert container.readiness_probe is not None and container.readiness_probe.http_get is not None
    assert container.readiness_probe.http_get.scheme == "HTTP"


def test_a_volume_with_two_sources_names_the_second() -> None:
    """validation.go validateVolumeSource: Forbidden `may not specify more than 1 volume type` on each later source."""
    volume = {"name": "v", "configMap": {"name": "c"}, "emptyDir": {}, "hostPath": {"path": "/srv"}}
    assert problems(pod({"volumes": [volume]})) == [
        "spec.volumes[0].emptyDir: Forbidden: may not specify more than 1 volume type",
        "spec.volumes[0].configMap: Forbidden: may not specify more than 1 volume type",
    ]


@pytest.mark.parametrize(
    ("port", "shown", "kind"), [(1.5, "1.5", "number"), (True, "true", "bool"), (2**31, str(2**31), "number")]
)
def test_an_int_or_string_refuses_other_json_types(port: Any, shown: str, kind: str) -> None:
    """intstr.IntOrString UnmarshalJSON: a JSON string, or a number that is an int32; one problem, not one per type."""
    assert problems(pod(livenessProbe={"tcpSocket": {"port": port}})) == [
        f"{C0}.livenessProbe.tcpSocket.port: Invalid value: {shown}: "
        f"{UNMARSHAL} {kind} into a field of type int32 or string"
    ]
