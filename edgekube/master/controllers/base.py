"""One controller shape: a pure `plan(snapshot) -> actions` per controller and one shared `apply`; run by master.app.

A controller reads only its `Snapshot` (and its own memory, e.g. an index fed by the cache) and returns actions:
data that say what to change. `apply` carries them out in order against the store, the event log and the
binder; an action whose object changed since the plan (NotFound, Conflict) is skipped, and the next pass, which
re-reads everything (level-triggered), decides again. Controllers are listed in controllers.registry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from edgekube.master.cache import CachedStore
from edgekube.master.config import MasterConfig
from edgekube.master.controllers.volumes.services import VolumeServices
from edgekube.master.eventlog import EventLog
from edgekube.master.liveness import Health
from edgekube.model.errors import ConflictError, NotFoundError
from edgekube.model.lenient import decode_stored
from edgekube.model.taints import Toleration
from edgekube.model.types import Obj

log = logging.getLogger(__name__)

_Key = tuple[str, str]


class StoreView(Protocol):
    """The read side of the master's cache (CachedStore): shared objects, never to be mutated."""

    def objects(self, kind: str) -> Mapping[_Key, Obj]: ...

    def peek(self, kind: str, namespace: str, name: str) -> Obj: ...


def _tolerations(pod: Mapping[str, Any]) -> tuple[Toleration, ...]:
    return tuple(decode_stored(Toleration, t) for t in pod["spec"].get("tolerations") or ())


def _ready(node: str) -> Health:
    return Health.READY


@dataclass(frozen=True)
class Snapshot:
    """What every controller plans from in one pass of the master's loop.

    `now` (unix seconds), `judging` (may nodes be judged: the master hears them) and node `health` hold for the
    whole pass. `store` is read through the master's cache, so each controller sees what the controllers before
    it wrote in the same pass, as it did when each was run by hand.
    """

    store: StoreView
    now: float
    judging: bool = True
    health: Callable[[str], Health] = _ready
    #: A pod's tolerations (the master reads them from its spec cache instead of parsing each pass).
    tolerations: Callable[[Mapping[str, Any]], tuple[Toleration, ...]] = _tolerations


class Binder(Protocol):
    """Binds pods as they are created (the master's Placer); without one, new pods wait for the scheduler."""

    def bind_new(self, pods: list[Obj]) -> list[Obj]: ...

    def scheduled(self, pod: Mapping[str, Any]) -> None: ...


@dataclass(frozen=True)
class Effects:
    """Where actions take effect: the store (through the master's cache), the event log, the binder of new pods."""

    store: CachedStore
    events: EventLog
    binder: Binder | None = None


class Action(Protocol):
    """One change a controller planned; `apply` makes it (NotFoundError/ConflictError: it is skipped)."""

    def apply(self, effects: Effects) -> None: ...


class Controller(Protocol):
    """What every controller implements; `plan` may update the controller's own memory, never the world."""

    name: str

    def plan(self, snapshot: Snapshot) -> Sequence[Action]: ...


@dataclass(frozen=True)
class Setup:
    """What a controller is built from (see controllers.registry): the master's settings, its cache, volume parts."""

    config: MasterConfig
    store: CachedStore
    volumes: VolumeServices = field(default_factory=VolumeServices)


ControllerFactory = Callable[[Setup], Controller]


@dataclass(frozen=True)
class CreatePod:
    """Create a pod; with a binder it is placed first, so one write creates it bound."""

    pod: Obj
    #: The controller whose pod it is: the SuccessfulCreate event is about it (None: no event).
    by: Mapping[str, Any] | None = field(default=None, compare=False)
    component: str = ""

    def apply(self, effects: Effects) -> None:
        effects.store.create(self.pod)
        if self.by is not None:
            name = self.pod["metadata"]["name"]
            effects.events.record(self.by, "SuccessfulCreate", f"Created pod: {name}", component=self.component)


def planned_pod(effects: Effects, namespace: str, name: str, uid: str) -> Obj | None:
    """The stored pod if it is still the incarnation a plan saw (same uid), else None: the action is moot.

    NotFoundError if it is gone (apply skips the action).
    """
    pod = effects.store.peek("Pod", namespace, name)
    return pod if pod["metadata"].get("uid") == uid else None


def apply(actions: Sequence[Action], effects: Effects) -> int:
    """Carry out a plan in order; returns how many actions were taken (skipped ones included).

    With a binder, the plan's new pods are placed together before any is written (as one scheduling pass would
    place them one after the other), then each is created bound and its Scheduled event recorded.
    """
    new_pods = [a.pod for a in actions if isinstance(a, CreatePod)]
    binder = effects.binder
    bound = {id(p) for p in binder.bind_new(new_pods)} if binder is not None and new_pods else set()
    for action in actions:
        try:
            action.apply(effects)
        except (NotFoundError, ConflictError) as exc:
            log.info("skipped %s: %s", type(action).__name__, exc)
            continue
        if binder is not None and isinstance(action, CreatePod) and id(action.pod) in bound:
            meta = action.pod["metadata"]
            binder.scheduled(effects.store.peek("Pod", meta["namespace"], meta["name"]))
    return len(actions)
