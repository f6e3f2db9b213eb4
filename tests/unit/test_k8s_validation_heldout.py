"""A held-out style table: small crafted manifests, each with Kubernetes' verdict and, if invalid, its messages.

Each row names the Kubernetes function that decides it (pkg/apis/core/validation/validation.go, pkg/apis/core/v1/
defaults.go, apimachinery's util/validation, or the JSON decoder) and covers one of issue 11's classes: rules
Kubernetes does not have, defaults applied before validation, strict decoding, and rules edgekube lacked. A valid row
must load; an invalid row must give exactly the listed problems, in order, as `ekctl lint` prints them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from edgekube.model.manifest import ManifestError, load_manifests

PORT_CHARSET = "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"
QUANTITY = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
ENV_NAME = (
    "a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must "
    "not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation "
    "is '[-._a-zA-Z][-._a-zA-Z0-9]*')"
)
SUBDOMAIN = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start "
    "and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
HEADER = (
    "a valid HTTP header must consist of alphanumeric characters or '-' "
    "(e.g. 'X-Header-Name', regex used for validation is '[-A-Za-z0-9]+')"
)
C = "spec.containers[0]"
UNMARSHAL = "cannot unmarshal"


@dataclass(frozen=True)
class Case:
    """One crafted manifest: what decides it in Kubernetes, its spec fields (YAML), its problems ([]: valid)."""

    source: str
    body: str
    problems: tuple[str, ...] = ()
    kind: str = "Pod"


def pod_yaml(spec: str, container: str = "") -> str:
    """A pod named p with one container `c` (busybox); `spec` and `container` are indented YAML lines."""
    lines = ["apiVersion: v1", "kind: Pod", "metadata: {name: p}", "spec:"]
    lines += [f"  {line}" for line in spec.strip("\n").splitlines()] if spec.strip() else []
    lines += ["  containers:", "  - name: c", "    image: busybox"]
    lines += [f"    {line}" for line in container.strip("\n").splitlines()] if container.strip() else []
    return "\n".join(lines) + "\n"


def rc_yaml(spec: str) -> str:
    head = "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: r}\nspec:\n"
    return head + "".join(f"  {line}\n" for line in spec.strip("\n").splitlines())


def rs_yaml(spec: str) -> str:
    head = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: r}\nspec:\n"
    return head + "".join(f"  {line}\n" for line in spec.strip("\n").splitlines())


TEMPLATE = """template:
  metadata: {labels: {app: web}}
  spec: {containers: [{name: c, image: busybox}]}"""

CASES: dict[str, Case] = {
    # -- rules Kubernetes does not have: these are valid -------------------------------------------------------
    "env-name-dots-dashes": Case("IsEnvVarName", pod_yaml("", "env: [{name: my.env-name, value: x}]")),
    "env-name-leading-dash": Case("IsEnvVarName", pod_yaml("", "env: [{name: -x, value: x}]")),
    "env-from-prefix-dot": Case("ValidateEnvFrom", pod_yaml("", "envFrom: [{prefix: app., configMapRef: {name: cm}}]")),
    "mount-path-relative": Case(
        "ValidateVolumeMounts",
        pod_yaml("volumes: [{name: v, emptyDir: {}}]", "volumeMounts: [{name: v, mountPath: data}]"),
    ),
    "grace-one-day": Case("ValidatePodSpec", pod_yaml("terminationGracePeriodSeconds: 86400")),
    "host-port-zero": Case("validateContainerPorts", pod_yaml("", "ports: [{containerPort: 80, hostPort: 0}]")),
    "two-host-ports-zero": Case(
        "AccumulateUniqueHostPorts",
        pod_yaml("", "ports: [{containerPort: 80, hostPort: 0}, {containerPort: 81, hostPort: 0}]"),
    ),
    # -- defaults applied before validation: valid -------------------------------------------------------------
    "probe-timings-zero": Case(
        "SetDefaults_Probe",
        pod_yaml(
            "",
            "livenessProbe: {exec: {command: [/bin/true]}, periodSeconds: 0, timeoutSeconds: 0, "
            "successThreshold: 0, failureThreshold: 0}",
        ),
    ),
    "volume-without-source": Case("SetDefaults_Volume", pod_yaml("volumes: [{name: scratch}]")),
    "rc-selector-empty": Case("SetDefaults_ReplicationController", rc_yaml("selector: {}\n" + TEMPLATE), kind="RC"),
    "rc-selector-missing": Case("SetDefaults_ReplicationController", rc_yaml(TEMPLATE), kind="RC"),
    "toleration-operator-empty": Case(
        "ValidateTolerations", pod_yaml('tolerations: [{key: dedicated, operator: "", value: gpu, effect: NoSchedule}]')
    ),
    "nulls-are-unset": Case(
        "JSON decoder (null is the zero value)",
        pod_yaml("nodeSelector: null\naffinity: null", "resources: null\nargs: null\nenv: [{name: A, value: null}]"),
    ),
    "empty-enums-default": Case(
        "SetDefaults_PodSpec / SetDefaults_Container / SetDefaults_ContainerPort / SetDefaults_HTTPGetAction",
        pod_yaml(
            'restartPolicy: ""',
            'imagePullPolicy: ""\nports: [{containerPort: 80, protocol: ""}]\n'
            'readinessProbe: {httpGet: {port: 80, scheme: ""}}',
        ),
    ),
    "http-get-path-empty": Case(
        "SetDefaults_HTTPGetAction", pod_yaml("", 'readinessProbe: {httpGet: {path: "", port: 80}}')
    ),
    # -- strict decoding: invalid --------------------------------------------------------------------------------
    "run-as-user-string": Case(
        "JSON decoder (int64)",
        pod_yaml("", 'securityContext: {runAsUser: "1000"}'),
        (f'{C}.securityContext.runAsUser: Invalid value: "1000": {UNMARSHAL} string into a field of type integer',),
    ),
    "container-port-string": Case(
        "JSON decoder (int32)",
        pod_yaml("", 'ports: [{containerPort: "80"}]'),
        (f'{C}.ports[0].containerPort: Invalid value: "80": {UNMARSHAL} string into a field of type integer',),
    ),
    "read-only-string": Case(
        "JSON decoder (bool)",
        pod_yaml("volumes: [{name: v}]", 'volumeMounts: [{name: v, mountPath: /v, readOnly: "true"}]'),
        (f'{C}.volumeMounts[0].readOnly: Invalid value: "true": {UNMARSHAL} string into a field of type boolean',),
    ),
    "rc-replicas-string": Case(
        "JSON decoder (int32)",
        rc_yaml('replicas: "3"\n' + TEMPLATE),
        (f'spec.replicas: Invalid value: "3": {UNMARSHAL} string into a field of type integer',),
        kind="RC",
    ),
    "run-as-non-root-yes": Case(
        "JSON decoder (bool)",
        pod_yaml('securityContext: {runAsNonRoot: "yes"}'),
        (f'spec.securityContext.runAsNonRoot: Invalid value: "yes": {UNMARSHAL} string into a field of type boolean',),
    ),
    "probe-period-float": Case(
        "JSON decoder (int32)",
        pod_yaml("", "livenessProbe: {exec: {command: [/bin/true]}, periodSeconds: 2.5}"),
        (f"{C}.livenessProbe.periodSeconds: Invalid value: 2.5: {UNMARSHAL} number into a field of type integer",),
    ),
    "quantity-boolean": Case(
        "resource.Quantity UnmarshalJSON",
        pod_yaml("", "resources: {limits: {cpu: true}}"),
        (f"{C}.resources.limits[cpu]: Invalid value: true: {QUANTITY}",),
    ),
    "quantity-number": Case(
        "resource.Quantity UnmarshalJSON", pod_yaml("", "resources: {limits: {cpu: 0.5, memory: 1e9}}")
    ),
    "probe-port-name": Case(
        "intstr.IntOrString, ValidatePortNumOrName",
        pod_yaml("", "ports: [{containerPort: 80, name: http}]\nlivenessProbe: {httpGet: {port: http}}"),
    ),
    "probe-port-quoted-number": Case(
        "intstr.IntOrString, ValidatePortNumOrName",
        pod_yaml("", 'livenessProbe: {tcpSocket: {port: "8080"}}'),
        (f'{C}.livenessProbe.tcpSocket.port: Invalid value: "8080": must contain at least one letter (a-z)',),
    ),
    # -- missing rules: invalid ----------------------------------------------------------------------------------
    "port-name-underscore": Case(
        "validateContainerPorts (IsValidPortName)",
        pod_yaml("", "ports: [{containerPort: 80, name: http_port}]"),
        (f'{C}.ports[0].name: Invalid value: "http_port": {PORT_CHARSET}',),
    ),
    "port-name-long": Case(
        "validateContainerPorts (IsValidPortName)",
        pod_yaml("", "ports: [{containerPort: 80, name: prometheus-metrics}]"),
        (f'{C}.ports[0].name: Invalid value: "prometheus-metrics": must be no more than 15 characters',),
    ),
    "port-name-digits": Case(
        "validateContainerPorts (IsValidPortName)",
        pod_yaml("", 'ports: [{containerPort: 80, name: "8080"}]'),
        (f'{C}.ports[0].name: Invalid value: "8080": must contain at least one letter (a-z)',),
    ),
    "port-name-double-hyphen": Case(
        "validateContainerPorts (IsValidPortName)",
        pod_yaml("", "ports: [{containerPort: 80, name: web--a}]"),
        (f'{C}.ports[0].name: Invalid value: "web--a": must not contain consecutive hyphens',),
    ),
    "port-name-trailing-hyphen": Case(
        "validateContainerPorts (IsValidPortName)",
        pod_yaml("", "ports: [{containerPort: 80, name: web-}]"),
        (f'{C}.ports[0].name: Invalid value: "web-": must not begin or end with a hyphen',),
    ),
    "port-name-duplicate": Case(
        "validateContainerPorts",
        pod_yaml("", "ports: [{containerPort: 80, name: web}, {containerPort: 8080, name: web}]"),
        (f'{C}.ports[1].name: Duplicate value: "web"',),
    ),
    "node-name-uppercase": Case(
        "ValidatePodSpec (ValidateNodeName)",
        pod_yaml("nodeName: Pi-1"),
        (f'spec.nodeName: Invalid value: "Pi-1": {SUBDOMAIN}',),
    ),
    "probe-port-zero": Case(
        "validateHTTPGetAction (ValidatePortNumOrName)",
        pod_yaml("", "readinessProbe: {httpGet: {port: 0}}"),
        (f"{C}.readinessProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive",),
    ),
    "liveness-success-threshold": Case(
        "validateContainerCommon",
        pod_yaml("", "livenessProbe: {exec: {command: [/bin/true]}, successThreshold: 3}"),
        (f"{C}.livenessProbe.successThreshold: Invalid value: 3: must be 1",),
    ),
    "readiness-success-threshold": Case(
        "validateContainerCommon", pod_yaml("", "readinessProbe: {exec: {command: [/bin/true]}, successThreshold: 3}")
    ),
    "probe-negative-timeout": Case(
        "validateProbe (ValidateNonnegativeField)",
        pod_yaml("", "readinessProbe: {exec: {command: [/bin/true]}, timeoutSeconds: -1}"),
        (f"{C}.readinessProbe.timeoutSeconds: Invalid value: -1: must be greater than or equal to 0",),
    ),
    "toleration-bad-key": Case(
        "ValidateTolerations (ValidateLabelName)",
        pod_yaml("tolerations: [{key: a/b/c, operator: Exists}]"),
        (
            'spec.tolerations[0].key: Invalid value: "a/b/c": a qualified name must consist of alphanumeric '
            "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or "
            "'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') "
            "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
        ),
    ),
    "toleration-exists-with-value": Case(
        "ValidateTolerations",
        pod_yaml("tolerations: [{key: k, operator: Exists, value: v}]"),
        (
            'spec.tolerations[0].operator: Invalid value: {"key": "k", "operator": "Exists", "value": "v"}: '
            "value must be empty when `operator` is 'Exists'",
        ),
    ),
    "toleration-bad-effect": Case(
        "ValidateTolerations (validateTaintEffect)",
        pod_yaml("tolerations: [{key: k, value: v, effect: NoRun}]"),
        (
            'spec.tolerations[0].effect: Unsupported value: "NoRun": '
            'supported values: "NoSchedule", "PreferNoSchedule", "NoExecute"',
        ),
    ),
    "toleration-seconds-without-no-execute": Case(
        "ValidateTolerations",
        pod_yaml("tolerations: [{key: k, operator: Exists, effect: NoSchedule, tolerationSeconds: 60}]"),
        (
            'spec.tolerations[0].effect: Invalid value: "NoSchedule": '
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        ),
    ),
    "mount-path-duplicate": Case(
        "ValidateVolumeMounts",
        pod_yaml(
            "volumes: [{name: a}, {name: b}]", "volumeMounts: [{name: a, mountPath: /d}, {name: b, mountPath: /d}]"
        ),
        (f'{C}.volumeMounts[1].mountPath: Invalid value: "/d": must be unique',),
    ),
    "quantity-unparsable": Case(
        "resource.ParseQuantity",
        pod_yaml("", "resources: {requests: {memory: 64MB}}"),
        (f'{C}.resources.requests[memory]: Invalid value: "64MB": {QUANTITY}',),
    ),
    "image-whitespace": Case(
        "validateContainersOnlyForPod",
        pod_yaml("", "").replace("image: busybox", 'image: "busybox "'),
        (f'{C}.image: Invalid value: "busybox ": must not have leading or trailing whitespace',),
    ),
    "http-header-underscore": Case(
        "validateHTTPGetAction (IsHTTPHeaderName)",
        pod_yaml("", "livenessProbe: {httpGet: {port: 80, httpHeaders: [{name: X_Trace, value: '1'}]}}"),
        (f'{C}.livenessProbe.httpGet.httpHeaders: Invalid value: "X_Trace": {HEADER}',),
    ),
    "env-name-digit": Case(
        "ValidateEnv (IsEnvVarName)",
        pod_yaml("", "env: [{name: 2FA, value: x}]"),
        (f'{C}.env[0].name: Invalid value: "2FA": {ENV_NAME}',),
    ),
    # -- every problem of a block, at its own path ---------------------------------------------------------------
    "resources-every-problem": Case(
        "validateResourceRequirements",
        pod_yaml("", "resources: {requests: {cpu: 2, memory: lots}, limits: {cpu: 1, memory: -1Gi}}"),
        (
            f'{C}.resources.limits[memory]: Invalid value: "-1Gi": must be greater than or equal to 0',
            f'{C}.resources.requests[memory]: Invalid value: "lots": {QUANTITY}',
            f'{C}.resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1',
        ),
    ),
    "rs-selector-expression": Case(
        "ValidateLabelSelectorRequirement",
        rs_yaml("selector: {matchExpressions: [{key: tier, operator: in, values: [web]}]}\n" + TEMPLATE),
        ('spec.selector.matchExpressions[0].operator: Invalid value: "in": not a valid selector operator',),
        kind="RS",
    ),
    "rs-selector-empty": Case(
        "ValidateReplicaSetSpec",
        rs_yaml("selector: {}\n" + TEMPLATE),
        ("spec.selector: Invalid value: {}: empty selector is invalid for deployment",),
        kind="RS",
    ),
    "rc-selector-mismatch": Case(
        "ValidatePodTemplateSpecForRC",
        rc_yaml("selector: {app: db}\n" + TEMPLATE),
        (
            'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
            "`selector` does not match template `labels`",
        ),
        kind="RC",
    ),
    "affinity-bad-operator": Case(
        "ValidateNodeSelectorRequirement",
        pod_yaml(
            "affinity:\n  nodeAffinity:\n    requiredDuringSchedulingIgnoredDuringExecution:\n"
            "      nodeSelectorTerms: [{matchExpressions: [{key: disk, operator: Equals, values: [ssd]}]}]"
        ),
        (
            "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
            '.matchExpressions[0].operator: Invalid value: "Equals": not a valid selector operator',
        ),
    ),
    "volume-two-problems": Case(
        "validateVolumes / ValidateVolumeMounts",
        pod_yaml("volumes: [{name: Data}]", "volumeMounts: [{name: data, mountPath: /d}]"),
        (
            'spec.volumes[0].name: Invalid value: "Data": a lowercase RFC 1123 label must consist of lower case '
            "alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  "
            "or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        ),
    ),
}


def verdict(case: Case) -> list[str]:
    try:
        load_manifests(case.body, source="case.yaml")
    except ManifestError as exc:
        return exc.problems
    return []


def test_the_table_covers_every_class_with_forty_manifests() -> None:
    """Issue 11's held-out classes: rules Kubernetes lacks, defaults, strict decoding, missing rules; >= 40 rows."""
    valid = [name for name, case in CASES.items() if not case.problems]
    invalid = [name for name, case in CASES.items() if case.problems]
    assert len(CASES) >= 40
    assert len(valid) >= 11 and len(invalid) >= 14


@pytest.mark.parametrize("name", list(CASES))
def test_a_crafted_manifest_gets_kubernetes_verdict_and_messages(name: str) -> None:
    """The verdict of the Kubernetes function named in each row's `source` (validation.go, defaults.go, decoder)."""
    case = CASES[name]
    assert verdict(case) == list(case.problems), case.source
