"""Container probes (liveness, readiness): exec, httpGet, tcpSocket with Kubernetes' timing fields."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictInt, StrictStr, field_validator, model_validator

from edgekube.model import base
from edgekube.model.base import Int32, K8sModel
from edgekube.model.errors import ValidationError
from edgekube.model.fielderrors import Problems, invalid
from edgekube.model.names import http_header_name_errors, port_name_errors, port_num_errors

#: intstr.IntOrString (model.base), kept here too: the type of every IntOrString field.
IntOrString = base.IntOrString

#: SetDefaults_Probe: a timing left at 0 (or out) takes these values before validation.
PROBE_DEFAULTS = {"timeout_seconds": 1, "period_seconds": 10, "success_threshold": 1, "failure_threshold": 3}


def port_errors(port: int | str, path: str) -> list[str]:
    """validation.go ValidatePortNumOrName: a number 1..65535 or an IANA_SVC_NAME (a container port's name)."""
    msgs = port_num_errors(port) if isinstance(port, int) else port_name_errors(port)
    return [invalid(path, port, msg) for msg in msgs]


class ExecAction(K8sModel):
    command: list[str]

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str]) -> list[str]:
        """validation.go validateExecAction."""
        if not value:
            raise ValidationError("Required value")
        return value


class HTTPHeader(K8sModel):
    name: str
    value: str


class HTTPGetAction(K8sModel):
    path: str = "/"
    port: IntOrString
    host: str | None = None
    scheme: Literal["HTTP", "HTTPS"] = "HTTP"
    http_headers: list[HTTPHeader] = Field(default_factory=list)

    @field_validator("path")
    @classmethod
    def _default_path(cls, value: str) -> str:
        return value or "/"  # SetDefaults_HTTPGetAction

    @field_validator("scheme", mode="before")
    @classmethod
    def _default_scheme(cls, value: object) -> object:
        return "HTTP" if value == "" else value  # SetDefaults_HTTPGetAction

    @model_validator(mode="after")
    def _rules(self) -> HTTPGetAction:
        """validation.go validateHTTPGetAction: the port (ValidatePortNumOrName) and each header's name."""
        problems = Problems()
        problems.add(*port_errors(self.port, "port"))
        for header in self.http_headers:
            # Kubernetes names the list, not the entry: `httpHeaders: Invalid value: "X_Bad": ...`.
            problems.add(*(invalid("httpHeaders", header.name, m) for m in http_header_name_errors(header.name)))
        problems.raise_any()
        return self


class TCPSocketAction(K8sModel):
    port: IntOrString
    host: str | None = None

    @model_validator(mode="after")
    def _rules(self) -> TCPSocketAction:
        """validation.go validateTCPSocketAction: ValidatePortNumOrName."""
        problems = Problems()
        problems.add(*port_errors(self.port, "port"))
        problems.raise_any()
        return self


class GRPCAction(K8sModel):
    """One grpc.health.v1.Health/Check call (gRPC health checking protocol) to the pod's IP; agent/grpc_health.py."""

    port: StrictInt
    #: The service whose health is asked; "" (the default) asks about the server as a whole.
    service: StrictStr | None = None

    @model_validator(mode="after")
    def _rules(self) -> GRPCAction:
        """validation.go validateGRPCAction: ValidatePortNumOrName(intstr.FromInt32(port))."""
        problems = Problems()
        problems.add(*port_errors(self.port, "port"))
        problems.raise_any()
        return self


class Probe(K8sModel):
    """Exactly one handler; a probe fails after `failureThreshold` consecutive failures, every `periodSeconds`.

    Timings left at 0 take Kubernetes' defaults (SetDefaults_Probe) before the rules are checked, as the API
    server decodes, defaults, then validates.
    """

    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    grpc: GRPCAction | None = None
    initial_delay_seconds: Int32 = 0
    period_seconds: Int32 = 10
    timeout_seconds: Int32 = 1
    success_threshold: Int32 = 1
    failure_threshold: Int32 = 3

    @model_validator(mode="after")
    def _rules(self) -> Probe:
        """SetDefaults_Probe, then validation.go validateProbe: one handler (validateHandler), no negative timing."""
        for name, default in PROBE_DEFAULTS.items():
            if getattr(self, name) == 0:
                setattr(self, name, default)
        problems = Problems()
        handlers = [name for name, h in self._handlers() if h is not None]
        if not handlers:
            problems.add("Required value: must specify a handler type")
        elif len(handlers) > 1:
            problems.add(f"{handlers[1]}: Forbidden: may not specify more than 1 handler type")
        for name in (
            "initial_delay_seconds",
            "timeout_seconds",
            "period_seconds",
            "success_threshold",
            "failure_threshold",
        ):
            self._nonnegative(problems, name)
        problems.raise_any()
        return self

    def _handlers(self) -> tuple[tuple[str, object], ...]:
        # validateHandler's order, which decides the field named in the "more than 1" error.
        return (
            ("exec", self.exec),
            ("httpGet", self.http_get),
            ("tcpSocket", self.tcp_socket),
            ("grpc", self.grpc),
        )

    def _nonnegative(self, problems: Problems, name: str) -> None:
        """ValidateNonnegativeField."""
        value = getattr(self, name)
        if value < 0:
            head, *rest = name.split("_")
            problems.add(invalid(head + "".join(p.title() for p in rest), value, "must be greater than or equal to 0"))
