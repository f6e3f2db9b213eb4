"""Container probes (liveness, readiness): exec, httpGet, tcpSocket with Kubernetes' timing fields."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from edgekube.model.base import K8sModel
from edgekube.model.errors import ValidationError


class ExecAction(K8sModel):
    command: list[str] = Field(min_length=1)


class HTTPHeader(K8sModel):
    name: str
    value: str


class HTTPGetAction(K8sModel):
    path: str = "/"
    port: int | str
    host: str | None = None
    scheme: Literal["HTTP", "HTTPS"] = "HTTP"
    http_headers: list[HTTPHeader] = Field(default_factory=list)


class TCPSocketAction(K8sModel):
    port: int | str
    host: str | None = None


class Probe(K8sModel):
    """Exactly one handler; a probe fails after `failureThreshold` consecutive failures, every `periodSeconds`."""

    exec: ExecAction | None = None
    http_get: HTTPGetAction | None = None
    tcp_socket: TCPSocketAction | None = None
    initial_delay_seconds: int = Field(default=0, ge=0)
    period_seconds: int = Field(default=10, ge=1)
    timeout_seconds: int = Field(default=1, ge=1)
    success_threshold: int = Field(default=1, ge=1)
    failure_threshold: int = Field(default=3, ge=1)

    @model_validator(mode="after")
    def _one_handler(self) -> Probe:
        handlers = [h for h in (self.exec, self.http_get, self.tcp_socket) if h is not None]
        if len(handlers) != 1:
            raise ValidationError(
                "must specify exactly one handler (exec, httpGet or tcpSocket)"
                if not handlers
                else "may not specify more than 1 handler type"
            )
        return self
