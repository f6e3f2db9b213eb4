"""Events (v1 subset): what controllers and agents did or saw, shown by `ekctl get events` and `describe`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgekube.model.base import K8sModel
from edgekube.model.meta import ObjectMeta


class ObjectReference(K8sModel):
    kind: str
    name: str
    namespace: str = ""
    uid: str | None = None


class EventSource(K8sModel):
    component: str
    host: str | None = None


class Event(K8sModel):
    api_version: Literal["v1"] = "v1"
    kind: Literal["Event"] = "Event"
    metadata: ObjectMeta
    involved_object: ObjectReference
    reason: str  # Scheduled, Started, Killing, Evicted, BackOff, Unhealthy, FailedScheduling, ...
    message: str = ""
    type: Literal["Normal", "Warning"] = "Normal"
    source: EventSource
    count: int = Field(default=1, ge=1)
    first_timestamp: str | None = None
    last_timestamp: str | None = None
