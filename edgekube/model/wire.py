"""Versioned JSON schemas of every MQTT payload (see docs/protocol.md); validated on receipt by master and agent."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, Literal, Self

import pydantic
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr
from pydantic.alias_generators import to_camel

from edgekube.model import fielderrors, jsoncodec
from edgekube.model.errors import BY_REASON, EdgekubeError, InternalError, ValidationError
from edgekube.model.storage import NfsServer

SCHEMA = "edgekube/v1"
#: Payloads above this are refused before parsing: a Pi must not be made to buffer or parse arbitrary blobs.
MAX_PAYLOAD_BYTES = 1024 * 1024


class WireModel(BaseModel):
    """Base of wire messages: a `schema` tag, unknown fields rejected, camelCase on the wire."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)

    schema_: Literal["edgekube/v1"] = Field(default="edgekube/v1", alias="schema")

    def encode(self) -> bytes:
        return jsoncodec.dumpb(self.model_dump(by_alias=True, exclude_none=True, mode="json"))

    @classmethod
    def decode(cls, payload: bytes, *, what: str = "") -> Self:
        """Parse and validate a payload; ValidationError names the field and rule, or the size limit."""
        label = what or cls.__name__
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise ValidationError(f"{label}: payload of {len(payload)} bytes exceeds the limit of {MAX_PAYLOAD_BYTES}")
        try:
            data = jsoncodec.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValidationError(f"{label}: payload is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ValidationError(f"{label}: payload must be a JSON object")
        if "schema" not in data:
            raise ValidationError(f"{label}: schema: Required value (expected {SCHEMA!r})")
        if data.get("schema") != SCHEMA:
            raise ValidationError(f"{label}: schema: unsupported value {data.get('schema')!r} (expected {SCHEMA!r})")
        try:
            return cls.model_validate(data)
        except pydantic.ValidationError as exc:
            first = exc.errors(include_url=False)
            parts = []
            for err in first[:5]:
                loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
                msg = fielderrors.message(err)
                parts.append(f"{loc}: {msg}" if loc else msg)
            raise ValidationError(f"{label}: " + "; ".join(parts)) from None


class Verb(StrEnum):
    GET = "get"
    LIST = "list"
    APPLY = "apply"
    DELETE = "delete"
    LOGS = "logs"
    SCALE = "scale"  # kind RC/RS, name, replicas
    LABEL = "label"  # kind, name, labels {key: value | null to remove}, overwrite
    ANNOTATE = "annotate"  # as label, on metadata.annotations
    CORDON = "cordon"  # kind Node, name
    UNCORDON = "uncordon"
    DRAIN = "drain"  # cordon, then evict every pod on the node
    TOP = "top"  # kind Node or Pod: current usage from the master's memory (namespace None: all; selector)
    IDENTIFY = "identify"  # kind Node, name, seconds (0: cancel): the node blinks its LEDs; forwarded to the node
    EXEC = "exec"  # namespace, name, container, command, seconds (the timeout): forwarded to the pod's node
    CP = "cp"  # namespace, name, container, path; archive (base64 tar) to copy in: forwarded to the pod's node
    WATCH = "watch"  # kind, namespace, selector, name, stream; seconds 0: close (docs/protocol.md, "Watch")
    #: `ekctl dashboard`: a one-time login URL for the master's dashboard; viewer on api/read, admin on api/request.
    DASHBOARD = "dashboard"
    #: `ekctl port-forward`: one TCP connection to the pod's `port` per `stream`; forwarded to the pod's node.
    PORT_FORWARD = "portforward"


#: Verbs that change nothing: the only ones the master serves on the read-only topic `edgekube/v1/api/read`.
READ_VERBS = frozenset({Verb.GET, Verb.LIST, Verb.LOGS, Verb.TOP, Verb.WATCH, Verb.DASHBOARD})


class ApiRequest(WireModel):
    """CLI → master on `edgekube/v1/api/request` (MQTT 5 response topic + correlation data)."""

    verb: Verb
    kind: str | None = None
    namespace: str | None = None  # None with verb list = all namespaces
    name: str | None = None
    selector: str | None = None
    #: list: the label selector grammar over metadata.annotations (`ekctl get --annotation-selector`).
    annotation_selector: str | None = None
    manifest: str | None = None  # YAML/JSON text for apply
    container: str | None = None
    tail: int | None = Field(default=None, ge=0)
    replicas: int | None = Field(default=None, ge=0)
    #: label/annotate changes: a value of null removes the key (kubectl's `key-`)
    labels: dict[str, str | None] | None = None
    overwrite: bool = False
    #: delete: "background" (default: a controller's pods go with it) or "orphan" (they stay)
    cascade: Literal["background", "orphan"] = "background"
    #: list: at most this many items per answer (fewer if they would not fit in one message); the answer's
    #: `continue` token asks for the next page, as Kubernetes' limit/continue.
    limit: int | None = Field(default=None, ge=1)
    continue_token: str | None = Field(default=None, alias="continue")
    #: identify: how many seconds the node's LEDs blink (0 ends an identify early). watch: 0 closes the stream.
    seconds: float | None = Field(default=None, ge=0, le=3600)
    #: exec: the command and its arguments (`ekctl exec POD -- CMD...`).
    command: list[str] | None = None
    #: exec -it: a terminal of rows x cols on `stream`; later requests on the stream carry keystrokes (`stdin`,
    #: base64) and resizes; `ack` numbers them from 1 (a duplicate delivery is dropped).
    tty: bool = False
    #: cp: the path in the container (copied out), or the directory an `archive` (base64 tar) is unpacked into.
    path: str | None = None
    archive: str | None = None
    stdin: str | None = None
    rows: int | None = Field(default=None, ge=1, le=1000)
    cols: int | None = Field(default=None, ge=1, le=1000)
    #: logs: lines since this RFC 3339 time (`--since-time`, `--previous`) or these many seconds ago by the node's
    #: clock (`--since`), until this time (`--previous`: when the last terminated run ended); each line prefixed
    #: with its RFC 3339 time (`--timestamps`).
    since_time: str | None = None
    since_seconds: int | None = Field(default=None, ge=1)
    until_time: str | None = None
    timestamps: bool = False
    #: logs -f: follow on `stream` (the agent publishes LogChunks there); `ack`: the last chunk the caller printed.
    follow: bool = False
    ack: int | None = Field(default=None, ge=0)
    #: watch: the caller's stream id; changes go to edgekube/v1/clients/<client-id>/streams/<stream> (model.watch).
    stream: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    #: port-forward: the pod's port to connect to (first request of a stream); `stdin` carries bytes to it, `ack`
    #: numbers them; `received` acknowledges the node's chunks; `eof` closes the caller's side (half-close).
    port: int | None = Field(default=None, ge=1, le=65535)
    received: int | None = Field(default=None, ge=0)
    eof: bool = False


class ErrorInfo(WireModel):
    """A failed request's answer: the error class's reason word, one line, and a hint (see model.errors)."""

    reason: str  # Invalid, NotFound, Conflict, Unavailable, Internal (EdgekubeError.reason of each class)
    message: str
    hint: str = ""

    @classmethod
    def of(cls, exc: BaseException, *, component: str = "master") -> ErrorInfo:
        """The wire error for `exc`; an exception edgekube did not raise on purpose is Internal, naming its log."""
        if isinstance(exc, EdgekubeError):
            return cls(reason=exc.reason, message=str(exc), hint=exc.hint)
        return cls(
            reason=InternalError.reason,
            message=f"internal error: {type(exc).__name__}: {exc}",
            hint=f"see the {component}'s log",
        )

    def error(self) -> EdgekubeError:
        """The exception this error was made from (its class chosen by reason; unknown reasons: EdgekubeError)."""
        return BY_REASON.get(self.reason, EdgekubeError)(self.message, hint=self.hint)


def raise_for(error: ErrorInfo | None, *, who: str = "the master") -> None:
    """Raise the error a failed answer carries (or one saying it carried none)."""
    if error is None:
        raise EdgekubeError(f"{who} reported an error without details", hint=f"see {who}'s log")
    raise error.error()


class Outcome(WireModel):
    kind: str
    namespace: str
    name: str
    action: Literal["created", "updated", "unchanged", "deleted"]


class ApiResponse(WireModel):
    """Master (or agent, for logs) → CLI on the request's response topic."""

    ok: bool
    error: ErrorInfo | None = None
    items: list[dict[str, Any]] | None = None
    object: dict[str, Any] | None = None
    outcomes: list[Outcome] | None = None
    text: str | None = None
    #: list with a limit: the token for the next page (absent on the last page), and how many items follow.
    continue_token: str | None = Field(default=None, alias="continue")
    remaining_item_count: int | None = None


class ApplyResult(WireModel):
    """Master → anyone on `edgekube/v1/apply/result` after a manifest was published to `edgekube/v1/apply`."""

    ok: bool
    outcomes: list[Outcome] = Field(default_factory=list)
    error: ErrorInfo | None = None


class NodeDesired(WireModel):
    """Master → agent, retained on `edgekube/v1/nodes/<node>/desired`: the whole set of pods for that node.

    Level-triggered: a newer generation replaces the older entirely, so duplicates and reordering are harmless.
    """

    node: str
    generation: int = Field(ge=0)
    epoch: str  # master store identity; a generation is only comparable within one epoch
    #: The publishing master's term (docs/ha.md): agents refuse a lower term than the highest they accepted, so a
    #: deposed master cannot undo its successor's work. 0: a master without terms (single-master clusters).
    term: int = Field(default=0, ge=0)
    pods: list[dict[str, Any]] = Field(default_factory=list)
    #: The NFS servers the cluster's volumes live on: the node probes each and reports it (node status nfsServers),
    #: so the scheduler keeps pods off nodes that cannot reach their storage.
    nfs_servers: list[NfsServer] = Field(default_factory=list)
    #: Why the master sees this node NotReady (the lifecycle taint's key, e.g. node.kubernetes.io/unreachable);
    #: absent while it is Ready. The node shows it on its LEDs (docs/leds.md).
    not_ready: str | None = None
    _payload: bytes | None = PrivateAttr(default=None)

    @classmethod
    def prepared(
        cls,
        node: str,
        generation: int,
        epoch: str,
        pods: list[dict[str, Any]],
        fragments: list[str],
        *,
        nfs_servers: list[NfsServer] | None = None,
        not_ready: str | None = None,
        term: int = 0,
    ) -> NodeDesired:
        """A message the master built from its own data; `fragments` is the JSON of each pod.

        The master keeps each pod's JSON between messages, so encoding joins them instead of walking every pod of
        the node through pydantic again for each change.
        """
        servers = list(nfs_servers or ())
        message = cls.model_construct(
            node=node, generation=generation, epoch=epoch, term=term, pods=pods, nfs_servers=servers,
            not_ready=not_ready,
        )  # fmt: skip
        fields: dict[str, Any] = {
            "schema": SCHEMA,
            "node": node,
            "generation": generation,
            "epoch": epoch,
            "nfsServers": [s.to_dict() for s in servers],
        }
        if not_ready is not None:
            fields["notReady"] = not_ready
        if term:  # absent when 0, so a single master's messages stay as they were
            fields["term"] = term
        head = jsoncodec.dumpb(fields)
        message._payload = head[:-1] + b',"pods":[' + ",".join(fragments).encode() + b"]}"
        return message

    def encode(self) -> bytes:
        if self._payload is not None:
            return self._payload
        if self.term:
            return super().encode()
        # Term 0 stays off the wire, as in prepared(): a single master's messages are what they were before terms.
        return jsoncodec.dumpb(self.model_dump(by_alias=True, exclude_none=True, mode="json", exclude={"term"}))

    def __eq__(self, other: object) -> bool:  # the fields only: a prepared payload is a cache of them
        if not isinstance(other, NodeDesired):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # mutable, like every pydantic model


class PodReport(WireModel):
    uid: str
    namespace: str
    name: str
    status: dict[str, Any]


class NodeReport(WireModel):
    """Agent → master on `edgekube/v1/nodes/<node>/status`: the Node object and every pod's status."""

    node: str
    boot_id: str
    observed_generation: int = -1
    node_object: dict[str, Any]
    pods: list[PodReport] = Field(default_factory=list)


class Heartbeat(WireModel):
    """Agent → master on `edgekube/v1/nodes/<node>/heartbeat` (QoS 0, volatile, never stored on disk)."""

    node: str
    boot_id: str
    seq: int
    observed_generation: int = -1
    usage: dict[str, float] = Field(default_factory=dict)


class Presence(WireModel):
    """Retained on `edgekube/v1/nodes/<node>/online` (agent) and `edgekube/v1/master/online`; also the Last Will."""

    online: bool
    boot_id: str = ""


class EventReport(WireModel):
    """Agent → master on `edgekube/v1/nodes/<node>/events`: events the agent recorded (Started, BackOff, ...)."""

    node: str
    events: list[dict[str, Any]] = Field(default_factory=list, max_length=500)


class ContainerMetrics(WireModel):
    """One running container's usage in a NodeMetrics report (counters cumulative since the container started)."""

    namespace: str
    pod: str
    container: str
    #: Cores used on average over the report's window (absent on a container's first sample).
    cpu_cores: float | None = None
    memory_bytes: int = 0
    rx_bytes: int = 0
    tx_bytes: int = 0
    read_bytes: int = 0
    write_bytes: int = 0


class NodeMetrics(WireModel):
    """Agent → master on `edgekube/v1/nodes/<node>/metrics` every telemetry interval (QoS 0, kept in memory only).

    `usage` is the node's latest sample (the same keys as the heartbeat's); `history` one summary per window
    (windowSeconds, samples, cpuCoresMin/Avg/Max, memoryBytesMin/Avg/Max); `containers` every running container.
    """

    node: str
    boot_id: str
    timestamp: str  # RFC 3339 UTC of the sample
    window: float = Field(ge=0)  # seconds the rates cover (the sampling interval)
    usage: dict[str, float] = Field(default_factory=dict)
    history: list[dict[str, float]] = Field(default_factory=list, max_length=10)
    containers: list[ContainerMetrics] = Field(default_factory=list, max_length=5000)
