"""Wire schemas: every MQTT payload round-trips, and a bad payload is refused with the field named."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edgekube.model.errors import ValidationError
from edgekube.model.wire import (
    MAX_PAYLOAD_BYTES,
    SCHEMA,
    ApiRequest,
    ApiResponse,
    ApplyResult,
    ErrorInfo,
    Heartbeat,
    NodeDesired,
    NodeReport,
    Outcome,
    PodReport,
    Presence,
    Verb,
    WireModel,
)

OUTCOME = Outcome(kind="Pod", namespace="default", name="web", action="created")
ERROR = ErrorInfo(reason="NotFound", message="Pod default/web not found", hint="check the name")
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "uid": "u1"}, "spec": {"containers": []}}

MESSAGES: list[WireModel] = [
    ApiRequest(verb=Verb.GET, kind="Pod", namespace="default", name="web"),
    ApiRequest(verb=Verb.LIST, kind="Pod", selector="app=web,tier in (a,b)"),
    ApiRequest(verb=Verb.APPLY, manifest="apiVersion: v1\nkind: Pod\n"),
    ApiRequest(verb=Verb.DELETE, kind="Node", name="pi-1"),
    ApiRequest(verb=Verb.LOGS, kind="Pod", name="web", container="app", tail=0),
    ERROR,
    OUTCOME,
    ApiResponse(ok=True, items=[POD], outcomes=[OUTCOME]),
    ApiResponse(ok=True, object=POD),
    ApiResponse(ok=True, text="line 1\nline 2\n"),
    ApiResponse(ok=False, error=ERROR),
    ApplyResult(ok=True, outcomes=[OUTCOME, OUTCOME.model_copy(update={"action": "unchanged"})]),
    ApplyResult(ok=False, error=ERROR),
    NodeDesired(node="pi-1", generation=0, epoch="e1"),
    NodeDesired(node="pi-1", generation=7, epoch="e1", pods=[POD]),
    PodReport(uid="u1", namespace="default", name="web", status={"phase": "Running"}),
    NodeReport(
        node="pi-1",
        boot_id="b1",
        observed_generation=7,
        node_object={"kind": "Node"},
        pods=[PodReport(uid="u1", namespace="default", name="web", status={"phase": "Pending"})],
    ),
    Heartbeat(node="pi-1", boot_id="b1", seq=3, observed_generation=7, usage={"cpu": 0.25, "memory": 1e8}),
    Presence(online=True, boot_id="b1"),
    Presence(online=False),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message: WireModel) -> None:
    payload = message.encode()
    decoded = type(message).decode(payload)
    assert decoded == message
    assert decoded.encode() == payload


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_the_payload_is_compact_camel_case_json_tagged_with_the_schema(message: WireModel) -> None:
    payload = message.encode()
    data = json.loads(payload)
    assert data["schema"] == SCHEMA == "edgekube/v1"
    assert payload == json.dumps(data, separators=(",", ":")).encode()
    assert not any("_" in key for key in data)
    assert None not in data.values()  # unset optional fields are left out


@pytest.mark.parametrize(
    ("message", "keys"),
    [
        (Heartbeat(node="n", boot_id="b", seq=1), {"schema", "node", "bootId", "seq", "observedGeneration", "usage"}),
        (
            NodeReport(node="n", boot_id="b", node_object={}),
            {"schema", "node", "bootId", "observedGeneration", "nodeObject", "pods"},
        ),
        (ApiResponse(ok=True), {"schema", "ok"}),
        (Presence(online=True), {"schema", "online", "bootId"}),
    ],
)
def test_field_names_on_the_wire(message: WireModel, keys: set[str]) -> None:
    assert set(json.loads(message.encode())) == keys


def test_snake_case_names_are_accepted_by_python_callers_too() -> None:
    assert Heartbeat.model_validate({"node": "n", "boot_id": "b", "seq": 1}).boot_id == "b"


def payload(**fields: Any) -> bytes:
    return json.dumps({"schema": SCHEMA, **fields}).encode()


@pytest.mark.parametrize(
    ("cls", "data", "message"),
    [
        (Presence, b"not json", "Presence: payload is not valid JSON (Expecting value: line 1 column 1 (char 0))"),
        (Presence, b"", "Presence: payload is not valid JSON (Expecting value: line 1 column 1 (char 0))"),
        (
            Presence,
            b"\xff",
            "Presence: payload is not valid JSON ('utf-8' codec can't decode byte 0xff in position 0: "
            "invalid start byte)",
        ),
        (Presence, b"[]", "Presence: payload must be a JSON object"),
        (Presence, b'"online"', "Presence: payload must be a JSON object"),
        (Presence, b"null", "Presence: payload must be a JSON object"),
        (Presence, b'{"online": true}', "Presence: schema: Required value (expected 'edgekube/v1')"),
        (
            Presence,
            b'{"schema": "edgekube/v2", "online": true}',
            "Presence: schema: unsupported value 'edgekube/v2' (expected 'edgekube/v1')",
        ),
        (Presence, b'{"schema": null}', "Presence: schema: unsupported value None (expected 'edgekube/v1')"),
        (Presence, payload(online=True, extra=1), "Presence: extra: not supported"),
        (Presence, payload(), "Presence: online: Required value"),
        (
            Presence,
            payload(online="maybe"),
            "Presence: online: Input should be a valid boolean, unable to interpret input",
        ),
        (Heartbeat, payload(node="n", bootId="b"), "Heartbeat: seq: Required value"),
        (
            Heartbeat,
            payload(node="n", bootId="b", seq="x"),
            "Heartbeat: seq: Input should be a valid integer, unable to parse string as an integer",
        ),
        (
            Heartbeat,
            payload(node="n", bootId="b", seq=1, usage={"cpu": "lots"}),
            "Heartbeat: usage.cpu: Input should be a valid number, unable to parse string as a number",
        ),
        (Heartbeat, payload(node=1, bootId="b", seq=1), "Heartbeat: node: Input should be a valid string"),
        (
            NodeDesired,
            payload(node="n", generation=-1, epoch="e"),
            "NodeDesired: generation: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            NodeDesired,
            payload(node="n", generation=1, epoch="e", pods=[1]),
            "NodeDesired: pods[0]: Input should be a valid dictionary",
        ),
        (
            NodeDesired,
            payload(node="n", generation=1, epoch="e", pods={}),
            "NodeDesired: pods: Input should be a valid list",
        ),
        (
            NodeReport,
            payload(node="n", bootId="b", nodeObject={}, pods=[{"uid": "u", "namespace": "d", "name": "w"}]),
            "NodeReport: pods[0].status: Required value",
        ),
        (
            ApiRequest,
            payload(verb="patch"),
            'ApiRequest: verb: Unsupported value: "patch": supported values: "get", "list", "apply", '
            '"delete", "logs", "scale", "label", "annotate", "cordon", "uncordon", "drain", "top", "identify", "exec", '
            '"cp", "watch", "dashboard", "portforward"',
        ),
        (
            ApiRequest,
            payload(verb="logs", tail=-1),
            "ApiRequest: tail: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            ApiResponse,
            payload(ok=False, error={"schema": SCHEMA, "message": "m"}),
            "ApiResponse: error.reason: Required value",
        ),
        (
            ApplyResult,
            payload(ok=True, outcomes=[{"kind": "Pod", "namespace": "d", "name": "w", "action": "replaced"}]),
            'ApplyResult: outcomes[0].action: Unsupported value: "replaced": '
            'supported values: "created", "updated", "unchanged", "deleted"',
        ),
        (
            NodeDesired,
            payload(generation=1, epoch="e", schema_="x"),
            "NodeDesired: node: Required value; schema_: not supported",
        ),
    ],
)
def test_a_bad_payload_is_refused_naming_the_field(cls: type[WireModel], data: bytes, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        cls.decode(data)
    assert str(info.value) == message


def test_several_problems_are_listed_up_to_five() -> None:
    with pytest.raises(ValidationError) as info:
        NodeReport.decode(payload(a=1, b=2, c=3, d=4))
    message = str(info.value)
    assert message.startswith("NodeReport: node: Required value; bootId: Required value; nodeObject: Required value; ")
    assert message.count("; ") == 4


def test_what_replaces_the_class_name_in_messages() -> None:
    with pytest.raises(ValidationError, match=r"^edgekube/v1/nodes/pi-1/online: payload must be a JSON object$"):
        Presence.decode(b"[]", what="edgekube/v1/nodes/pi-1/online")


def test_an_oversize_payload_is_refused_before_parsing() -> None:
    big = b" " * (MAX_PAYLOAD_BYTES + 1)  # would otherwise be "not valid JSON"
    with pytest.raises(ValidationError) as info:
        Heartbeat.decode(big)
    assert str(info.value) == f"Heartbeat: payload of {MAX_PAYLOAD_BYTES + 1} bytes exceeds the limit of 1048576"


def test_a_payload_of_exactly_the_limit_is_parsed() -> None:
    body = payload(online=True)
    padded = body + b" " * (MAX_PAYLOAD_BYTES - len(body))
    assert len(padded) == MAX_PAYLOAD_BYTES
    assert Presence.decode(padded) == Presence(online=True)


def test_a_message_cannot_be_built_with_another_schema() -> None:
    with pytest.raises(Exception, match="schema"):
        Presence.model_validate({"schema": "edgekube/v0", "online": True})
